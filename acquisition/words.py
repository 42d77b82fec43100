"""Numbers in messages: a fraction as a percentage that never reads "0%" for something that is not zero."""

from __future__ import annotations

__all__ = ["percent"]


def percent(fraction: float) -> str:
    """``fraction`` (0.25) as a percentage ("25%"), whole above 1 %, with one significant digit below it.

    ``f"{x:.0%}"`` prints a limit of 0.004 as "0%" ("shift 0.6% exceeds 0%") and 0.996 coverage as "100%";
    here they read "0.4%" and "99.6%". Exactly 0 and 1 stay "0%" and "100%".

    >>> [percent(x) for x in (0, 0.004, 0.00004, 0.25, 0.996, 1.0, 1.5)]
    ['0%', '0.4%', '0.004%', '25%', '99.6%', '100%', '150%']
    """
    value = fraction * 100.0
    if value == 0 or abs(value) >= 100 or round(value) == value:
        return f"{value:.0f}%"
    if abs(value) < 1:
        return f"{value:.1g}%" if abs(value) >= 0.001 else f"{value:.1e}%"
    if 99 < abs(value) < 100:
        return f"{min(value, 99.9):.1f}%" if value > 0 else f"{max(value, -99.9):.1f}%"
    return f"{value:.0f}%"
