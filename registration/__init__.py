"""Registration stage: align each studio shot onto its flash shot (mutual-information affine, SimpleITK).

>>> from registration import register_tree
>>> summary = register_tree("raw", "aligned", workers=2)        # doctest: +SKIP
>>> summary.ok, summary.flagged, summary.failed                  # doctest: +SKIP

The public names, listed once in ``__init__.pyi``, are imported on first use (lazy_loader, PEP 562), so that
``prep --help``, which imports ``registration.cli`` and with it this package, does not load SimpleITK and OpenCV.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach_stub(__name__, __file__)
