#!/usr/bin/env bash
# Builds the reference AD3 (PyPI `ad3` 2.2.1, Andre Martins' C++ core with Cython bindings, 2018)
# for the side-by-side columns of benchmarks/bench_decode.py and benchmarks/bench_general.py, into
# a folder of its own that is put on PYTHONPATH (nothing is installed into your environment).
#
# Why `pip install ad3==2.2.1` fails on Python >= 3.11: its sdist ships Cython files generated in
# 2018 that include `longintrepr.h`, a header CPython 3.11 moved ("fatal error: longintrepr.h: No
# such file or directory"). The .pyx files are written for Cython 0.29 (implicit relative
# cimports, language level 2), so Cython 3 cannot regenerate them either. This script:
#   1. makes a throw-away build venv with `cython<3`, setuptools and wheel;
#   2. downloads the sdist from PyPI (or takes $CCNN_AD3_SDIST, the .tar.gz, when set) and
#      regenerates its three Cython files with Cython 0.29;
#   3. fixes one bug of the C++ sources that current compilers turn into a crash:
#      `FactorTree::RunCLE` (examples/cpp/parsing/FactorTree.cpp) is declared `int` but has no
#      return statement; GCC 12 at -O3 treats the missing return as unreachable, and every solve
#      with a tree factor (including the package's own test_tree_factor.py) aborts with "double
#      free or corruption". The fix adds `return 0;` (the value is never used);
#   4. builds a wheel (`--no-build-isolation`) and unpacks it into the target folder.
# The reference needs no numpy at build time (its .pyx files use no numpy C API).
#
# Usage:  bash benchmarks/install_reference_ad3.sh [TARGET]
#         (default TARGET: $HOME/.cache/ccnn/reference-ad3; PYTHON picks the interpreter, which
#         must be the one that runs the benchmarks: the same Python version)
#         PYTHONPATH=TARGET python benchmarks/bench_general.py
set -euo pipefail
PYTHON=${PYTHON:-python3}
# A relative path (PYTHON=.venv/bin/python) made absolute, symlinks kept: the check below runs from /.
case "$PYTHON" in */*) PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")" ;; esac
TARGET=$(realpath -m "${1:-$HOME/.cache/ccnn/reference-ad3}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PYTHON" -m venv "$WORK/venv"
BUILD_PY="$WORK/venv/bin/python"
"$BUILD_PY" -m pip install -q "cython<3" setuptools wheel
SDIST=${CCNN_AD3_SDIST:-}
if [ -z "$SDIST" ]; then
  "$BUILD_PY" -m pip download -q ad3==2.2.1 --no-deps --no-binary :all: -d "$WORK"
  SDIST="$WORK/ad3-2.2.1.tar.gz"
fi
tar -xzf "$SDIST" -C "$WORK"
SRC="$WORK/ad3-2.2.1"

(cd "$SRC/python/ad3" && for pyx in base factor_graph extensions; do
  "$BUILD_PY" -m cython --cplus -I . "$pyx.pyx" -o "$pyx.cpp"
done)

"$BUILD_PY" - "$SRC/examples/cpp/parsing/FactorTree.cpp" <<'EOF'
import sys
path = sys.argv[1]
text = open(path).read()
old = "    *value += scores[r];\n  }\n}\n"
if text.count(old) != 1:
    sys.exit(f"{path}: the end of FactorTree::RunCLE was not found where expected; not patched")
open(path, "w").write(text.replace(old, "    *value += scores[r];\n  }\n  return 0;\n}\n"))
EOF

"$BUILD_PY" -m pip wheel -q --no-build-isolation --no-deps -w "$WORK/wheel" "$SRC"
rm -rf "$TARGET"
"$BUILD_PY" -m pip install -q --no-deps --target "$TARGET" "$WORK"/wheel/ad3-2.2.1-*.whl

# A check that it imports and solves with a tree factor (the case the patch fixes).
cd /
PYTHONPATH="$TARGET" "$PYTHON" - <<'EOF'
import ad3
from ad3.extensions import PFactorTree
g = ad3.PFactorGraph()
arcs = [(h, m) for m in range(1, 4) for h in range(4) if h != m]
arc_vars = [g.create_binary_variable() for _ in arcs]
for v, s in zip(arc_vars, [0.5, -0.2, 0.1, 0.3, 0.9, -0.4, 0.2, 0.7, 0.0]):
    v.set_log_potential(s)
tree = PFactorTree()
g.declare_factor(tree, arc_vars)
tree.initialize(4, arcs)
value, posteriors, _, status = g.solve()
assert status == "integral" and abs(sum(posteriors) - 3) < 1e-6, (value, posteriors, status)
print("reference ad3", ad3.__version__, "built into", ad3.__file__.rsplit("/ad3/", 1)[0])
EOF
echo "use it with: PYTHONPATH=$TARGET"
