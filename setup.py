"""Builds the compiled parts of ccnn with torch.utils.cpp_extension and ninja.

    ccnn_ext._C        torch ops: the fused Frank copula kernels (CPU always, CUDA when enabled)
    ccnn_decoder._decoder  plain pybind11 module (no torch): the AD3 / exact MAP decoder, csrc/ad3

The decoder's Python package `ccnn_decoder` (python/ccnn_decoder) is shipped here too, so one
`pip install .` installs ccnn with its decoder (ccnn_ext re-exports it). The same sources also make
the torch-free distribution `ccnn-decoder` of decoder/ (`pip install ./decoder`, numpy only); the two
install the same import package, so install one or the other in an environment.

CUDA is compiled when the installed torch has CUDA and a toolkit is found, or when
CCNN_FORCE_CUDA=1; CCNN_NO_CUDA=1 turns it off. GPU targets default to sm_80 and sm_90
(override with TORCH_CUDA_ARCH_LIST). Install with `pip install --no-build-isolation -e .`.
"""
import glob
import os
import sys

from setuptools import Extension, find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def find_cuda_home():
    """The CUDA toolkit root. An `nvcc` on the PATH may be a wrapper script outside the toolkit,
    so torch's guess from it can be wrong: prefer CUDA_HOME/CUDA_PATH, then the usual roots."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    candidates = ["/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    for root in candidates:
        if os.path.isfile(os.path.join(root, "bin", "nvcc")) and os.path.isfile(
            os.path.join(root, "include", "cuda_runtime.h")
        ):
            return root
    return None


_cuda_home = find_cuda_home()
if _cuda_home:
    os.environ["CUDA_HOME"] = _cuda_home  # must be set before torch.utils.cpp_extension is imported
os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")

import torch  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402


def want_cuda():
    if os.environ.get("CCNN_NO_CUDA") == "1":
        return False
    if os.environ.get("CCNN_FORCE_CUDA") == "1":
        return True
    return torch.version.cuda is not None and _cuda_home is not None


def rel(pattern):
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


def ops_extension(with_cuda):
    sources = ["csrc/bindings/ops.cpp"] + rel("csrc/*/*_cpu.cpp")
    openmp = [] if sys.platform == "darwin" else ["-fopenmp"]
    cxx = ["-O3"] + openmp
    if not with_cuda:
        return CppExtension(
            "ccnn_ext._C", sources, include_dirs=[os.path.join(ROOT, "csrc")],
            extra_compile_args={"cxx": cxx}, extra_link_args=openmp,
        )
    sources += rel("csrc/*/*.cu") + rel("csrc/*/*_cuda.cpp")
    return CUDAExtension(
        "ccnn_ext._C", sources, include_dirs=[os.path.join(ROOT, "csrc")],
        define_macros=[("CCNN_WITH_CUDA", "1")],
        extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "-lineinfo"]},
        extra_link_args=openmp,
    )


def decoder_extension():
    """The MAP decoder: torch-free C++ (csrc/ad3) with its pybind11 binding."""
    import pybind11

    sources = ["csrc/bindings/decoder.cpp", "csrc/bindings/ad3_compat.cpp"] + rel("csrc/ad3/*.cpp")
    return Extension(
        "ccnn_decoder._decoder", sources, language="c++",
        include_dirs=[os.path.join(ROOT, "csrc"), pybind11.get_include()],
        extra_compile_args=["-O3", "-std=c++17", "-fvisibility=hidden"],  # (as pybind11 advises; calls within a file inline)
    )


with_cuda = want_cuda()
print(f"ccnn: building with CUDA: {with_cuda} (CUDA_HOME={_cuda_home})")

setup(
    packages=["ccnn_ext"] + find_packages("python", include=["ccnn", "ccnn.*", "ccnn_decoder", "ccnn_decoder.*"]),
    package_dir={"ccnn_ext": "ccnn_ext", "ccnn": "python/ccnn", "ccnn_decoder": "python/ccnn_decoder"},
    ext_modules=[ops_extension(with_cuda), decoder_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
