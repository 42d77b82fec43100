"""training stage: the DeepFlash network and loss, ``prep train``, ``prep evaluate``, ``prep enhance``.

The public names, listed once in ``__init__.pyi``, load lazily (lazy_loader, PEP 562): ``prep`` imports
``training.cli`` at start-up, and importing this package must not pull in torch then.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach_stub(__name__, __file__)
