"""Checks of the Python API's arguments, shared by its modules (the CLI checks its own options in
options.py, at parse time)."""
from __future__ import annotations

import numbers
import operator


def whole_number(value, name: str, low: int, high: int | None = None) -> int:
    """`value` as an int, or a ValueError naming `name` (bools and fractions are refused, not cast)."""
    try:
        whole = operator.index(value)  # (ints, numpy and 0-d torch integers)
    except TypeError:
        whole = int(value) if isinstance(value, numbers.Real) and float(value).is_integer() else None
    if isinstance(value, bool) or whole is None or whole < low or (high is not None and whole > high):
        raise ValueError(f"{name} must be a whole number {_span(low, high)}, got {value!r}")
    return whole


def int_argument(value, name: str, low: int, high: int | None = None) -> int:
    """`value` if it is an int (numpy's too) in [low, high], else a ValueError naming `name`."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low
            or (high is not None and value > high)):
        raise ValueError(f"{name} must be an int {_span(low, high)}, got {value!r}")
    return int(value)


def _span(low: int, high: int | None) -> str:
    return f"in [{low}, {high}]" if high is not None else f">= {low}"


def au_list(values, name: str) -> list[int]:
    """`values` as a non-empty list of distinct whole AU numbers, or a ValueError naming `name`."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name} must be a non-empty list of distinct AU numbers, got {values!r}")
    aus = [whole_number(a, f"each AU in {name}", 0) for a in values]
    if len(set(aus)) != len(aus) or not aus:
        raise ValueError(f"{name} must be a non-empty list of distinct AU numbers, got {values}")
    return aus
