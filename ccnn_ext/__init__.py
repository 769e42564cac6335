"""ccnn_ext: the compiled ops of ccnn and their thin Python wrappers.

Usable on its own: the copula ops are torch ops (``torch.ops.ccnn.*``) with autograd and
fake implementations; the MAP decoder (``decode_ad3``, ``decode_exact``, ``FactorGraph``, see
``ccnn_ext.decode``; the reference AD3 package's API in ``ccnn_ext.ad3``) is a plain pybind11
module that takes numpy arrays or torch tensors.
"""
import torch  # noqa: F401  (loads libtorch before the extension)

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


def built_with_cuda() -> bool:
    """True when the extension was compiled with its CUDA kernels."""
    return _C.built_with_cuda()


__all__ = [
    "LOG_PROB_FLOOR",
    "built_with_cuda",
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
