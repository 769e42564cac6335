"""What a run says besides its results: one plain line per epoch and per data preparation step, and
warnings as one plain line.

The library logs these lines to the `ccnn` logger at INFO level, which Python does not show unless a
handler is set up: a script or notebook that calls `fit` or `preprocess` stays quiet. The command
line calls `show_lines` when it draws no progress bars (stderr is not a terminal, or --no-progress),
so that a log file gets one line per epoch instead of carriage-return frames, and `plain_warnings`
around every command, so that a warning is one `warning: ...` line without its source line.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import warnings

LOG = logging.getLogger("ccnn")


def epoch_line(record: dict, epochs: int) -> str:
    """One epoch's summary: 'epoch 3/10: train loss 1.234, val ICC 0.512 MAE 0.731, 12.3 s'."""
    parts = [f"epoch {record['epoch'] + 1}/{epochs}:"]
    if record.get("loss") is not None:
        parts.append(f"train loss {record['loss']:.4g},")
    part = "val" if "val" in record else "train"
    metrics = record[part]
    parts.append(f"{part} ICC {metrics['icc_avg']:.3f} MAE {metrics['mae_avg']:.3f},")
    parts.append(f"{record['seconds']:.1f} s")
    return " ".join(parts)


def report_epoch(record: dict, epochs: int) -> None:
    LOG.info(epoch_line(record, epochs))


def show_lines(stream=None) -> logging.Handler:
    """Show the library's INFO lines on `stream` (default: stderr), one plain line each."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    return handler


def _plain(message, category, filename, lineno, file=None, line=None) -> None:
    text = str(message)
    if category is not UserWarning:
        text = f"{text} ({category.__name__})"
    print(f"warning: {text}", file=file if file is not None else sys.stderr, flush=True)


@contextlib.contextmanager
def plain_warnings():
    """Within: each warning is printed once as 'warning: <message>' (no file name, no source line)."""
    with warnings.catch_warnings():
        warnings.showwarning = _plain
        yield
