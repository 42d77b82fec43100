"""Argument checks every stage's settings share: a number must be finite.

``float("nan")`` passes every ``x >= 0`` and ``x <= 1`` check written as ``if x < 0: raise`` (each comparison
with NaN is false), and infinity passes a lower bound: a NaN wait then never ends (``time.sleep`` of a NaN
deadline loops) and a NaN timeout is printed as "nan ms". Settings dataclasses call :func:`check_finite_fields`
first in ``__post_init__``; the CLI's options use :class:`acquisition.cli_common.FiniteFloatRange`.
"""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from typing import Any

__all__ = ["check_finite_fields", "require_finite"]


def require_finite(name: str, value: Any) -> None:
    """Raise ValueError naming ``name`` when ``value`` (a number, or a tuple/list of them) is NaN or infinite."""
    values = value if isinstance(value, (tuple, list)) else (value,)
    for item in values:
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{name} must be a finite number, got {item}")


def check_finite_fields(instance: Any) -> None:
    """Refuse NaN or infinity in any float field (or tuple of floats) of a dataclass instance."""
    if not is_dataclass(instance):
        raise TypeError(f"{type(instance).__name__} is not a dataclass")
    for f in fields(instance):
        require_finite(f.name, getattr(instance, f.name))
