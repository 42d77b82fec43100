"""Numbers in messages: a fraction as a percentage that reads as what it is."""

from __future__ import annotations

import math

__all__ = ["percent"]


def percent(fraction: float, *, significant: int = 3) -> str:
    """``fraction`` (0.25) as a percentage ("25%"), to ``significant`` digits, trailing zeros dropped.

    ``f"{x:.0%}"`` printed a limit of 0.004 as "0%" ("shift 0.6% exceeds 0%"), 0.0151 as "2%" ("shift 1.6%
    exceeds 2%") and 0.996 as "100%". Here limits read as typed (up to ``significant`` digits), and a value
    that is not exactly 0 or 100 % never reads "0%" or "100%" (more digits are shown instead).

    >>> [percent(x) for x in (0, 0.004, 0.0151, 0.0086, 0.25, 0.996, 0.99999, 1.0, 1.5, -0.004, 1e-9)]
    ['0%', '0.4%', '1.51%', '0.86%', '25%', '99.6%', '99.999%', '100%', '150%', '-0.4%', '0.0000001%']
    """
    value = fraction * 100.0
    if value == 0 or not math.isfinite(value):
        return f"{value:g}%"
    decimals = max(0, significant - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}"
    while float(text) in (0.0, 100.0, -100.0) and abs(value) != 100.0 and decimals < 12:
        decimals += 1  # 0.99999 is not "100%", 1e-9 is not "0%"
        text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"
