"""Checks of the structure arguments (flags, indices, index pairs) shared by the native API
(decode.py) and the compatibility layer (ad3/): each returns plain Python values or raises a
TypeError naming the argument."""
import numpy as np


def _ndim(values) -> int:
    """numpy's ndim of `values`; -1 for ragged nesting."""
    try:
        return np.ndim(values)
    except ValueError:
        return -1


def is_sequence(values) -> bool:
    """A flat sequence or 1-d array (not a string, a number or ragged nesting)."""
    return values is not None and not isinstance(values, (str, bytes)) and _ndim(values) == 1


def flag_list(values, name: str) -> list:
    """A list of bools from a flat sequence."""
    if not is_sequence(values):
        raise TypeError(f"{name}: expected a sequence of bools, got {values!r}")
    return [bool(x) for x in values]


def _int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected ints, got {value!r}")
    return int(value)


def int_list(values, name: str, width: int = 0) -> list:
    """ints from a flat sequence (width 0), or `width`-tuples of ints from a sequence of such;
    floats are refused (as the reference's int vectors do), arrays and tensors read as lists."""
    if hasattr(values, "tolist") and not isinstance(values, (list, tuple)):
        values = values.tolist()
    if not width:
        if not is_sequence(values):
            raise TypeError(f"{name}: expected a sequence of ints, got {values!r}")
        return [_int(v, name) for v in values]
    if values is None or isinstance(values, (str, bytes)) or _ndim(values) not in (1, 2):
        raise TypeError(f"{name}: expected a sequence of {width}-tuples of ints, got {values!r}")
    rows = []
    for row in values:
        if not is_sequence(row) or len(row) != width:
            raise TypeError(f"{name}: expected a sequence of {width}-tuples of ints, got {values!r}")
        rows.append(tuple(_int(v, name) for v in row))
    return rows
