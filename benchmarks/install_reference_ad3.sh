#!/usr/bin/env bash
# Installs the reference AD3 (PyPI `ad3` 2.2.1, Andre Martins' C++ core with Cython bindings) into
# the active Python environment, for the side-by-side columns of benchmarks/bench_decode.py.
#
# Its sdist does not build on Python >= 3.11 as shipped: the pre-generated Cython files include
# `longintrepr.h`, which CPython 3.11 moved. Re-running `cython --cplus` (Cython < 3, the language
# level the .pyx files are written for) on its three .pyx files regenerates them; then it builds
# with `pip install --no-build-isolation`. Everything is downloaded from PyPI only.
#
# Usage: bash benchmarks/install_reference_ad3.sh   (with the project's virtual environment active)
set -euo pipefail
PYTHON=${PYTHON:-python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PYTHON" -m pip install -q "cython<3" numpy setuptools wheel
"$PYTHON" -m pip download -q ad3==2.2.1 --no-deps --no-binary :all: -d "$WORK"
tar -xzf "$WORK"/ad3-2.2.1.tar.gz -C "$WORK"
cd "$WORK"/ad3-2.2.1/python/ad3
for pyx in base factor_graph extensions; do
  "$PYTHON" -m cython --cplus -I . "$pyx.pyx" -o "$pyx.cpp"
done
cd "$WORK"/ad3-2.2.1
"$PYTHON" -m pip install -q --no-build-isolation .
cd /
"$PYTHON" -c 'import ad3; print("reference ad3", ad3.__version__, "installed")'
