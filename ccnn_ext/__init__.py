"""ccnn_ext: the compiled ops of ccnn and their thin Python wrappers.

Usable on its own: the copula ops are torch ops (``torch.ops.ccnn.*``) with autograd and
fake implementations; the MAP decoder (``decode_ad3``, ``decode_exact``, ``FactorGraph``, see
``ccnn_ext.decode``; the reference AD3 package's API in ``ccnn_ext.ad3``) is a plain pybind11
module that takes numpy arrays or torch tensors. The decoder is the torch-free package
``ccnn_decoder`` (installable alone: ``pip install ./decoder``), re-exported here: ``ccnn_ext.decode``
and ``ccnn_ext.ad3`` (with its submodules) are the very modules ``ccnn_decoder.decode`` and
``ccnn_decoder.ad3``, and ``ccnn_ext._decoder`` is ``ccnn_decoder._decoder``.
"""
import sys

import torch  # noqa: F401  (loads libtorch before the extension)

import ccnn_decoder
import ccnn_decoder.ad3
from ccnn_decoder import _decoder, ad3, decode  # noqa: F401

# Alias the decoder's modules under their old names (one module object each, so classes and
# isinstance checks agree whichever name imported them).
for _name, _module in list(sys.modules.items()):
    if _name == "ccnn_decoder" or not _name.startswith("ccnn_decoder."):
        continue
    sys.modules.setdefault("ccnn_ext." + _name[len("ccnn_decoder."):], _module)
del _name, _module

from . import _C
from .copula import (
    LOG_PROB_FLOOR,
    data_checks,
    data_checks_enabled,
    frank_copula,
    ordinal_logprob,
    pairwise_loglik,
    pairwise_logtable,
    set_data_checks,
)
from ccnn_decoder.decode import (
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


def built_with_cuda() -> bool:
    """True when the extension was compiled with its CUDA kernels."""
    return _C.built_with_cuda()


def simd_level() -> str:
    """The SIMD version the CPU copula kernels run: "avx512" (16 float32 / 8 float64 lanes),
    "avx2" (8 / 4), "avx" (8 / 4, AVX with FMA but no AVX2) or "base" (4 / 2). The widest the
    processor supports is picked when the library loads; CCNN_SIMD=base|avx|avx2 in the
    environment caps it."""
    return _C.simd_level()


__all__ = [
    "LOG_PROB_FLOOR",
    "built_with_cuda",
    "simd_level",
    "data_checks",
    "data_checks_enabled",
    "frank_copula",
    "ordinal_logprob",
    "pairwise_loglik",
    "pairwise_logtable",
    "set_data_checks",
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
