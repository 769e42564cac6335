"""The decoder installs and runs without PyTorch: `pip install ./decoder` (the distribution
`ccnn-decoder`, import package `ccnn_decoder`) into a fresh virtual environment that holds numpy and
the build tools only, then a small problem solved with decode_exact and with the reference-API
PFactorGraph, checked against brute force, a factor given by a Python MAP oracle, and the installed
metadata (license, the distribution's README). With this interpreter, and with Python 3.13 where
the machine has it (pyenv's, or on the PATH; skipped otherwise), a Python on which
`pip install ad3==2.2.1` fails.

Needs the network for the venv's numpy / pybind11 / setuptools; skipped (with pip's words) when pip
cannot fetch them. About a minute per interpreter: most of it is compiling csrc/ad3 (`make
decoder-check` runs it).
"""
import glob
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import itertools
    import sys

    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        sys.exit("torch is importable in the fresh venv")

    import numpy as np
    import ccnn_decoder
    from ccnn_decoder.ad3 import PFactorGraph

    assert "torch" not in sys.modules
    assert "site-packages" in ccnn_decoder.__file__, ccnn_decoder.__file__  # the installed copy

    rng = np.random.default_rng(0)
    Q, L = 4, 3
    edges = np.array([(r, s) for r in range(Q) for s in range(r + 1, Q)])
    unary = rng.normal(size=(Q, L))
    pairwise = rng.normal(size=(len(edges), L, L))

    def score(y):
        return unary[np.arange(Q), y].sum() + sum(pairwise[e, y[r], y[s]] for e, (r, s) in enumerate(edges))

    best = max(itertools.product(range(L), repeat=Q), key=score)
    best_score = score(best)

    exact = ccnn_decoder.decode_exact(unary[None], pairwise, edges)
    assert exact.status_names[0] == "optimal", exact.status_names
    assert tuple(exact.labels[0]) == best, (exact.labels[0], best)
    assert abs(float(exact.score[0]) - best_score) < 1e-9

    g = PFactorGraph()
    variables = [g.create_multi_variable(L) for _ in range(Q)]
    for q, v in enumerate(variables):
        v.set_log_potentials(unary[q])
    for e, (r, s) in enumerate(edges):
        g.create_factor_dense([variables[r], variables[s]], pairwise[e].ravel())
    value, posteriors, _, status = g.solve(branch_and_bound=True)
    assert status == "integral", status
    labels = tuple(int(np.argmax(posteriors[q * L:(q + 1) * L])) for q in range(Q))
    assert labels == best, (labels, best)
    assert abs(value - best_score) < 1e-9, (value, best_score)

    # a factor given by a Python MAP oracle: exactly one of three binary variables (an XOR)
    f = ccnn_decoder.FactorGraph()
    x = [f.add_binary_variable(score) for score in (0.2, 0.9, 0.4)]
    f.add_oracle(x, lambda s, a: ([int(np.argmax(s))], []), lambda y: [] if y.sum() == 1 else None)
    one_hot = f.solve_exact()
    assert list(one_hot.labels) == [0, 1, 0] and abs(one_hot.score - 0.9) < 1e-12, one_hot

    # what `pip show` tells: the license and the distribution's own README
    from importlib.metadata import metadata
    meta = metadata("ccnn-decoder")
    assert meta["License-Expression"] == "MIT", meta["License-Expression"]
    assert meta["Description-Content-Type"] == "text/markdown", meta["Description-Content-Type"]
    assert meta.get_payload().startswith("# ccnn-decoder"), meta.get_payload()[:200]
    print("ok", ccnn_decoder.__file__)
""")


def _run(cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def _interpreter(name):
    """An installed `name` (python3.13, ...): pyenv's own copies first (its shims on the PATH fail
    for versions other than the selected one), else the PATH's."""
    installed = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/*/bin/{name}")))
    return installed[-1] if installed else shutil.which(name)


@pytest.mark.parametrize("interpreter", ["this", "python3.13"])
def test_decoder_installs_and_runs_without_torch(tmp_path, interpreter):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    base = sys.executable if interpreter == "this" else _interpreter(interpreter)
    if base is None:
        pytest.skip(f"{interpreter} is not installed")
    made = _run([base, "-m", "venv", str(tmp_path / "venv")], env=env, timeout=120)
    if made.returncode != 0:  # e.g. no ensurepip, or a pyenv shim of a version not installed
        pytest.skip(f"{interpreter}: cannot create a virtual environment with pip: {made.stderr.strip()[-600:]}")
    python = str(tmp_path / "venv" / "bin" / "python")

    deps = _run([python, "-m", "pip", "install", "-q", "--timeout", "20", "--retries", "1",
                 "numpy", "pybind11>=2.11", "setuptools>=77", "wheel"], env=env, timeout=300)
    if deps.returncode != 0:
        pytest.skip("pip cannot install numpy / pybind11 / setuptools into the fresh venv "
                    f"(no network?): {deps.stderr.strip()[-600:]}")

    build = _run([python, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
                  str(ROOT / "decoder")], env=env, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    check = _run([python, "-c", SCRIPT], env=env, cwd=tmp_path, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith("ok"), check.stdout
