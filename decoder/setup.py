"""The distribution `ccnn-decoder` (import package `ccnn_decoder`): ccnn's MAP decoder without torch.

Built from the repository's own sources, by relative paths: the C++ core `../csrc/ad3`, its pybind11
binding `../csrc/bindings/decoder.cpp` (with `ad3_compat.cpp`, the C types of `ccnn_decoder.ad3`)
and the Python package `../python/ccnn_decoder` (the same files the main `setup.py` ships inside
`ccnn`). Needs a C++17 compiler, setuptools and pybind11 to build and numpy to run:
`pip install ./decoder` from the repository root (an in-tree build; no sdist).
"""
import glob
import os

import pybind11
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
os.chdir(HERE)  # setuptools wants paths relative to this folder
SOURCES = ["../csrc/bindings/decoder.cpp", "../csrc/bindings/ad3_compat.cpp"] + sorted(
    os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, "..", "csrc", "ad3", "*.cpp")))
HEADERS = ["../csrc/bindings/ad3_compat.h"] + sorted(
    os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, "..", "csrc", "ad3", "*.h")))


class BuildExt(build_ext):
    """Object files of "../csrc/x.cpp" are named "<build_temp>/../csrc/x.o" (inside build/), a path
    the compiler can only open once build_temp exists."""

    def run(self):
        os.makedirs(self.build_temp, exist_ok=True)
        super().run()


setup(
    packages=["ccnn_decoder", "ccnn_decoder.ad3"],
    package_dir={"ccnn_decoder": "../python/ccnn_decoder"},
    ext_modules=[
        Extension(
            "ccnn_decoder._decoder", SOURCES, language="c++",
            depends=HEADERS,  # a changed header rebuilds the in-tree build (decoder/build)
            include_dirs=["../csrc", pybind11.get_include()],
            extra_compile_args=["-O3", "-std=c++17", "-fvisibility=hidden"],  # (as pybind11 advises; calls within a file inline)
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
