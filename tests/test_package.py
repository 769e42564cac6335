import subprocess
import sys

import torch

import ccnn
import ccnn_ext


def test_versions_agree():
    assert ccnn.__version__ == ccnn_ext.__version__


def test_cuda_kernels_are_registered_iff_the_build_says_so():
    """built_with_cuda() must match the dispatcher: every ccnn op with a CPU kernel has a CUDA kernel
    exactly when the extension was compiled with CUDA."""
    ops = [name for name in torch._C._dispatch_get_all_op_names() if name.startswith("ccnn::")]
    cpu_ops = [op for op in ops if torch._C._dispatch_has_kernel_for_dispatch_key(op, "CPU")]
    assert {"ccnn::pairwise_loglik", "ccnn::pairwise_logtable", "ccnn::ordinal_logprob"} <= set(cpu_ops)
    with_cuda = {op: torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA") for op in cpu_ops}
    assert with_cuda == dict.fromkeys(cpu_ops, ccnn_ext.built_with_cuda())


def test_cli_help_runs():
    out = subprocess.run([sys.executable, "-m", "ccnn.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "usage: ccnn" in out.stdout


def test_ccnn_ext_reexports_the_torch_free_decoder():
    import ccnn_decoder
    import ccnn_decoder.ad3.extensions
    import ccnn_ext.ad3.extensions
    from ccnn_ext.ad3 import PFactorGraph

    assert ccnn_ext.decode_ad3 is ccnn_decoder.decode_ad3
    assert ccnn_ext.FactorGraph is ccnn_decoder.FactorGraph
    assert ccnn_ext.decode is ccnn_decoder.decode and ccnn_ext.ad3 is ccnn_decoder.ad3
    assert ccnn_ext.ad3.extensions is ccnn_decoder.ad3.extensions
    assert PFactorGraph is ccnn_decoder.ad3.PFactorGraph
    assert ccnn_ext._decoder is ccnn_decoder._decoder


def test_the_decoder_package_imports_without_torch():
    """ccnn_decoder runs with torch made unimportable (tests/test_decoder_without_torch.py checks
    the same in a fresh virtual environment, from `pip install ./decoder`)."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np, ccnn_decoder, ccnn_decoder.ad3, ccnn_decoder.ad3.extensions\n"
            "r = ccnn_decoder.decode_exact(np.zeros((1, 2, 2)), np.eye(2)[None], np.array([[0, 1]]))\n"
            "assert r.score[0] == 1.0, r\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
