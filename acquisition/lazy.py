"""Lazy package exports (PEP 562), defined once for the stage packages.

``prep`` imports every stage's ``cli`` module at start-up, and with it the stage package. Importing the
public names of ``registration``, ``datasetgen`` and ``training`` eagerly would load SimpleITK, OpenCV, h5py and
torch before ``prep --help`` could answer; with :func:`lazy_exports` each name is imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, where: Mapping[str, str], namespace: dict[str, Any],
                 public: list[str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return a module's ``__getattr__`` and ``__dir__`` that import ``name`` from ``package.where[name]``.

    Examples
    --------
    >>> __getattr__, __dir__ = lazy_exports(__name__, {"register_tree": "_tree"}, globals(), __all__)  # doctest: +SKIP
    """

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f".{module}", package), name)
        namespace[name] = value  # cache: later look-ups are plain module attributes
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *public})

    return __getattr__, __dir__
