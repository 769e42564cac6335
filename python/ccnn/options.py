"""Checked command-line values and the one error path of the `ccnn` command line.

Every numeric option of the CLI parses with `number(...)`, so a value out of its range fails at parse
time with argparse's `ccnn <command>: error: argument --flag: ...` (exit status 2), and the range
shows in `--help` (`number(...).range`). `error_message` turns an exception raised while a command
runs into `<what>, <which argument or file>, <what to do>`; `USER_ERRORS` are the exceptions that
count as the user's (bad input: exit status 2, no traceback unless --debug).
"""
from __future__ import annotations

import argparse
import errno
import math
import re

USER_ERRORS = (ValueError, OSError, MemoryError)


class number:
    """An argparse `type` for a number in a range: integer or float, closed or open bounds, and
    optionally the word `none` (or `off`) for None. Its `.range` is the text that --help shows."""

    def __init__(self, low=None, high=None, *, integer=False, low_open=False, high_open=False,
                 none=False):
        self.low, self.high, self.integer, self.none = low, high, integer, none
        self.low_open, self.high_open = low_open, high_open
        parts = []
        if low is not None and high is not None:
            parts.append(f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}")
        elif low is not None:
            parts.append(f"{'>' if low_open else '>='} {low:g}")
        elif high is not None:
            parts.append(f"{'<' if high_open else '<='} {high:g}")
        self.range = ("an integer " if integer else "a number ") + " ".join(parts) + \
            (" or 'none'" if none else "")

    def __call__(self, text: str):
        if self.none and str(text).strip().lower() in ("none", "off"):
            return None
        try:
            value = int(text) if self.integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.range}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {self.range}, got {text!r} (not finite)")
        low_bad = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        high_bad = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if low_bad or high_bad:
            raise argparse.ArgumentTypeError(f"expected {self.range}, got {text!r}")
        return value


_DEVICE = re.compile(r"(auto|cpu|cuda(:\d+)?)")


def device(text: str) -> str:
    """An argparse `type` for --device: auto, cpu, cuda or cuda:N."""
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use auto, cpu, cuda or cuda:N")
    return text


_ADVICE = {
    errno.ENOSPC: "free some disk space or write to another disk; files written before stay intact",
    errno.EDQUOT: "free some of your disk quota or write elsewhere",
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.EISDIR: "it is a folder where a file is expected; give a file path",
    errno.ENOTDIR: "a file stands where a folder is expected; give a folder path",
    errno.EEXIST: "a file stands where a folder is needed; remove it or choose another path",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "use a shorter path",
}


def error_message(exc: BaseException) -> str:
    """The text after `ccnn <command>: error: ` for an exception of USER_ERRORS."""
    if isinstance(exc, MemoryError):
        return ("out of memory for the asked sizes; choose a smaller --size/--image-size, --batch-size "
                "or data set")
    if isinstance(exc, OSError) and exc.errno in _ADVICE and exc.filename is not None:
        what = (exc.strerror or "error").lower()
        path = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
        return f"{what}: {str(path)!r}; {_ADVICE[exc.errno]}"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.errno in _ADVICE:
        return f"{text}; {_ADVICE[exc.errno]}"
    return text
