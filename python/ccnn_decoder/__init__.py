"""ccnn_decoder: ccnn's MAP decoder without PyTorch.

The torch-free C++ core in ``csrc/ad3`` (AD3, certified exact branch-and-bound, exhaustive search)
as the pybind11 module ``ccnn_decoder._decoder``, its wrappers (``decode_ad3``, ``decode_exact``,
``decode_exhaustive``, ``FactorGraph``; see ``ccnn_decoder.decode``) and the reference AD3
package's API (``ccnn_decoder.ad3``). Needs numpy only: ``pip install ./decoder`` installs it alone
(docs/decoder.md, "Installing the decoder without torch"); ``pip install .`` installs it with ccnn,
and ``ccnn_ext`` re-exports it. Arrays may be numpy arrays or torch tensors when torch is installed
(torch is never imported here).
"""
from . import _decoder
from .decode import (
    DEFAULT_EXACT_TIME_LIMIT,
    STATUS_NAMES,
    DecodeResult,
    FactorGraph,
    FactorGraphBatch,
    FactorGraphSolution,
    decode_ad3,
    decode_exact,
    decode_exhaustive,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_EXACT_TIME_LIMIT",
    "STATUS_NAMES",
    "DecodeResult",
    "FactorGraph",
    "FactorGraphBatch",
    "FactorGraphSolution",
    "decode_ad3",
    "decode_exact",
    "decode_exhaustive",
]
