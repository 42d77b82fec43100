"""Numbers in messages: a fraction as a percentage that reads as what it is."""

from __future__ import annotations

import math

__all__ = ["beside_limit", "percent"]


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


def beside_limit(value: float, limit: float, *, decimals: int = 1, unit: str = "", limit_unit: str | None = None,
                 sign: bool = False, centre: float = 0.0) -> tuple[str, str]:
    """``value`` and ``limit`` as texts, the value with the digits it needs to read on its side of the limit.

    A reason that prints the measured value more coarsely than the limit contradicts itself ("rotation -3.1 deg
    exceeds 3.12 deg", "shear +0.000 exceeds 0.00012"). The value is judged by its distance from ``centre``
    (``|value - centre|``, e.g. a scale's from 1) against ``limit``; it is shown with ``decimals`` decimals (of
    the percentage when ``unit`` is ``"%"``), or more until its text is strictly beyond (or within) both the
    limit and the limit's text, as the value itself is. The limit reads as typed: :func:`percent` when
    ``limit_unit`` (by default ``unit``) is ``"%"``, else ``:g`` (either with more digits where the value lies
    between the limit and its rounded text). ``sign`` puts a "+" before positive values. A value that is not
    finite, or equal to the limit, is shown with ``decimals`` decimals.

    >>> beside_limit(20.004, 15, sign=True)
    ('+20.0', '15')
    >>> beside_limit(-3.124, 3.12, sign=True)
    ('-3.124', '3.12')
    >>> beside_limit(0.00013, 0.00012, decimals=3, sign=True)
    ('+0.00013', '0.00012')
    >>> beside_limit(1.0205, 0.0203, decimals=3, limit_unit="%", centre=1.0)
    ('1.0205', '2.03%')
    >>> beside_limit(0.00844, 0.0084, unit="%"), beside_limit(0.007, 0.004, unit="%")
    (('0.844%', '0.84%'), ('0.7%', '0.4%'))
    >>> beside_limit(0.9989, 0.999, unit="%"), beside_limit(39.6, 40, decimals=0)
    (('99.89%', '99.9%'), ('39.6', '40'))
    >>> beside_limit(0.020352, 0.02035, unit="%")  # "2.04%" would be a limit this value does not exceed
    ('2.04%', '2.035%')
    """
    as_percent = (unit if limit_unit is None else limit_unit) == "%"
    scale, plus = (100.0 if unit == "%" else 1.0), ("+" if sign else "")
    distance = abs(value - centre)
    beyond = distance > limit  # the side the value is on: both texts must read that way
    judged = math.isfinite(distance) and distance != limit

    def past(a: float, b: float) -> bool:
        """``a`` lies on the value's side of ``b``."""
        return a > b if beyond else a < b

    def limit_reading(significant: int) -> tuple[str, float]:
        text = percent(limit, significant=significant) if as_percent else f"{limit:.{significant}g}"
        return text, float(text.rstrip("%")) / (100.0 if as_percent else 1.0)

    significant = 3 if as_percent else 6  # a limit typed with more digits than these shows them when it must
    limit_text, shown_limit = limit_reading(significant)
    while judged and not past(distance, shown_limit) and significant < 17:
        significant += 1
        limit_text, shown_limit = limit_reading(significant)
    text = f"{value * scale:{plus}.{decimals}f}"
    for places in range(decimals, decimals + 13 if judged else decimals):
        text = f"{value * scale:{plus}.{places}f}"
        shown = abs(float(text) / scale - centre)
        if past(shown, limit) and past(shown, shown_limit):
            break
    if unit == "%" and "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}{unit}", limit_text
