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
