"""Random call sequences with hostile arguments (fixed seeds, seconds): the decoder's compatibility
API (ccnn_decoder.ad3), its native FactorGraph and the generic label CSV reader must answer every
bad argument with a TypeError / ValueError (or IndexError, OverflowError) that names it, and every
call they accept with a finite result. Runs like these found a pybind11 cast message leaking out of
solve() for budgets past a C int, numpy's own messages for malformed sibling pairs, and
OverflowError out of load_csv for an 'inf' label."""
import math
import random
import warnings

import numpy as np

import ccnn_decoder
import ccnn_decoder.ad3 as ad3
from ccnn_decoder.ad3 import extensions as ext

REFUSED = (TypeError, ValueError, IndexError, OverflowError)
# Python's, numpy's and pybind11's own messages, which name no argument
RAW_MESSAGES = ("Unable to cast", "is not iterable", "iteration over a 0-d array", "truth value of an array",
                "only 0-dimensional arrays", "int() argument must be", "cannot convert float",
                "could not convert string to float")


def hostile_scalar(rng):
    return rng.choice([None, -1, 0, 1, 2, 3, 7, 10**20, -10**20, 2**31, 2**63, 1.5, math.nan, math.inf,
                       -math.inf, "x", b"y", True, np.float32(0.5), np.int64(2), object()])


def hostile_array(rng, n=None):
    n = rng.choice([0, 1, 2, 3, 4, 6, 9]) if n is None else n
    kind = rng.randrange(7)
    if kind == 0:
        return [rng.gauss(0, 1) for _ in range(n)]
    if kind == 1:
        return np.random.default_rng(rng.randrange(99)).normal(size=n)
    if kind == 2:
        return np.arange(n, dtype=rng.choice([np.int32, np.float32, np.int64, np.bool_]))
    if kind == 3:
        return np.zeros((n, 2))[:, 0]  # non-contiguous
    if kind == 4:
        return [hostile_scalar(rng) for _ in range(n)]
    if kind == 5:
        return np.full(n, np.nan)
    return hostile_scalar(rng)


def run(call, counts):
    try:
        call()
        counts["accepted"] += 1
    except REFUSED as error:
        message = str(error)
        assert message and not any(raw in message for raw in RAW_MESSAGES), message
        counts["refused"] += 1
    except NotImplementedError as error:  # (the reference's own exception for an unknown factor type)
        assert "Unknown factor type" in str(error) or "not supported" in str(error), error
        counts["refused"] += 1


# ---- ccnn_decoder.ad3 -------------------------------------------------------------------------------

LOGIC = ["XOR", "XOROUT", "ATMOSTONE", "OR", "OROUT", "ANDOUT", "IMPLY", "BOGUS", 3, None]
EXTENSIONS = {
    ext.PFactorSequence: lambda r: (hostile_array(r),),
    ext.PFactorTree: lambda r: (hostile_scalar(r), r.choice([[(0, 1), (1, 2)], [(0, 1)], [(5, 9)], [(0, 0)],
                                                             hostile_array(r)])),
    ext.PFactorHeadAutomaton: lambda r: (hostile_scalar(r), r.choice([[(0, 1, 2)], [(0, 0, 1)], [(1, 2)],
                                                                      hostile_array(r)])),
    ext.PFactorBinaryTree: lambda r: (hostile_array(r),),
    ext.PFactorGeneralTree: lambda r: (hostile_array(r), hostile_array(r)),
    ext.PFactorSequenceCompressor: lambda r: (hostile_scalar(r), hostile_array(r), hostile_array(r)),
    ext.PFactorCompressionBudget: lambda r: (r.choice([2, 3, hostile_scalar(r)]), hostile_scalar(r),
                                             [True, True, False], [0]),
    ext.PFactorBinaryTreeCounts: lambda r: ([-1, 0, 0], [True] * 3, None, hostile_scalar(r)),
    ext.PFactorGeneralTreeCounts: lambda r: (hostile_array(r), hostile_array(r)),
}


class CompatState:
    def __init__(self):
        self.graph = ad3.PFactorGraph()
        self.variables, self.factors = [], []

    def binaries(self, rng):
        pool = [v for v in self.variables if isinstance(v, ad3.PBinaryVariable)]
        return [rng.choice(pool) for _ in range(rng.choice([0, 1, 2, 3, 4]))] if pool else []

    def multis(self, rng):
        pool = [v for v in self.variables if isinstance(v, ad3.PMultiVariable)]
        return [rng.choice(pool) for _ in range(rng.choice([1, 2, 3]))] if pool else []


def compat_declare(s, r):
    cls = r.choice(list(EXTENSIONS))
    factor = cls()
    s.factors.append(factor)
    s.graph.declare_factor(factor, s.binaries(r))
    factor.initialize(*EXTENSIONS[cls](r))
    factor.set_additional_log_potentials(hostile_array(r))


def compat_solve(s, r):
    kwargs = {name: hostile_scalar(r) for name in ("eta", "max_iter", "tol") if r.random() < 0.2}
    value, posteriors, additional, status = s.graph.solve(branch_and_bound=r.random() < 0.5, **kwargs)
    assert status in ("integral", "fractional", "infeasible", "unsolved")
    if status != "infeasible":
        assert math.isfinite(value) and all(math.isfinite(p) for p in posteriors), (value, status)


COMPAT_ACTIONS = [
    lambda s, r: s.variables.append(s.graph.create_binary_variable()),
    lambda s, r: s.variables.append(s.graph.create_multi_variable(r.choice([1, 2, 3, 0, -1, 2.0, None]))),
    lambda s, r: r.choice(s.variables).set_log_potential(hostile_scalar(r)) if s.variables else None,
    lambda s, r: s.multis(r)[0].set_log_potentials(hostile_array(r)) if s.multis(r) else None,
    lambda s, r: s.factors.append(s.graph.create_factor_logic(r.choice(LOGIC), s.binaries(r),
                                                              r.choice([None, [True, False], hostile_array(r)]))),
    lambda s, r: s.factors.append(s.graph.create_factor_pair(s.binaries(r), hostile_scalar(r))),
    lambda s, r: s.factors.append(s.graph.create_factor_budget(s.binaries(r), hostile_scalar(r))),
    lambda s, r: s.factors.append(s.graph.create_factor_knapsack(s.binaries(r), hostile_array(r), hostile_scalar(r))),
    lambda s, r: s.factors.append(s.graph.create_factor_dense(s.multis(r), hostile_array(r, r.choice([2, 4, 9])))),
    compat_declare,
    compat_solve,
    compat_solve,
    lambda s, r: ad3.simple_grid(r.choice([hostile_array(r), np.zeros((2, 2, 2)), [[["x", 1]]]]),
                                 r.choice([np.eye(2), hostile_array(r)]), verbose=0),
]


def test_compatibility_api_refuses_hostile_arguments_by_name():
    rng, counts = random.Random(7), {"accepted": 0, "refused": 0}
    for _ in range(150):
        state = CompatState()
        for _ in range(rng.randrange(5, 40)):
            action = rng.choice(COMPAT_ACTIONS)
            run(lambda: action(state, rng), counts)
    assert counts["accepted"] > 500 and counts["refused"] > 500, counts  # (both paths exercised)


# ---- ccnn_decoder.FactorGraph ---------------------------------------------------------------------------

def literals(g, r):
    n = max(1, g.num_variables)
    return [r.randrange(-1, n + 1) if r.random() < 0.2 else r.randrange(n) for _ in range(r.choice([0, 1, 2, 3]))]


def native_solve(g, r):
    solution = r.choice([lambda: g.solve_ad3(max_iter=r.choice([5, 100])), g.solve_exact, g.solve_psdd])()
    if solution.status != "infeasible":
        assert math.isfinite(solution.score), solution.status


NATIVE_ACTIONS = [
    lambda g, r: g.add_variable(r.choice([2, 3, 1, 0, -1, [0.5, 1.0], 2**21, hostile_array(r)])),
    lambda g, r: g.add_binary_variable(hostile_scalar(r) if r.random() < 0.3 else 0.3),
    lambda g, r: g.set_unary(r.randrange(-1, g.num_variables + 1), hostile_array(r)),
    lambda g, r: g.add_factor(r.randrange(-1, g.num_variables + 1), r.randrange(-1, g.num_variables + 1),
                              hostile_array(r)),
    lambda g, r: g.add_logic(r.choice(["xor", "or", "imply", "nope", None]), literals(g, r),
                             r.choice([None, [True, False], hostile_array(r)])),
    lambda g, r: g.add_budget(literals(g, r), hostile_scalar(r)),
    lambda g, r: g.add_knapsack(literals(g, r), hostile_array(r), hostile_scalar(r)),
    lambda g, r: g.add_pair(r.randrange(-1, g.num_variables + 1), r.randrange(-1, g.num_variables + 1),
                            hostile_scalar(r)),
    lambda g, r: g.add_head_automaton(literals(g, r), hostile_array(r), r.choice([None, hostile_array(r)])),
    lambda g, r: g.add_tree_chain(literals(g, r), r.choice([[-1, 0, 1], hostile_array(r)]), hostile_array(r)),
    lambda g, r: g.add_tree(r.choice([3, 2, 1, hostile_scalar(r)]), r.choice([[(0, 1), (1, 2), (0, 2)],
                                                                               hostile_array(r)]), literals(g, r)),
    native_solve,
    native_solve,
]


def test_native_factor_graph_refuses_hostile_arguments_by_name():
    rng, counts = random.Random(11), {"accepted": 0, "refused": 0}
    for _ in range(120):
        graph = ccnn_decoder.FactorGraph()
        for _ in range(rng.randrange(5, 40)):
            action = rng.choice(NATIVE_ACTIONS)
            run(lambda: action(graph, rng), counts)
    assert counts["accepted"] > 300 and counts["refused"] > 300, counts


# ---- ccnn.data.load_csv ---------------------------------------------------------------------------------

def test_label_csv_cells_never_crash_the_reader(tmp_path):
    from ccnn.data.dataset import load_csv
    (tmp_path / "a.png").write_bytes(b"x")
    cells = ["a.png", "", "1", "5", "9", "-1", "6", "2.5", "nan", "+nan", "inf", "-inf", "1e400", "x", "s1",
             '"', " 3 ", "\u00e9"]
    headers = ["image,subject,AU01,AU02", "file,AU12", "image,subject,AU5,eye_left_x,eye_left_y,eye_right_x,"
               "eye_right_y", "frame,face_id,timestamp,confidence,success,file,AU12_r,AU12_c"]
    rng, read = random.Random(3), 0
    for k in range(300):
        header = rng.choice(headers)
        width = header.count(",") + 1
        lines = [",".join(rng.choice(cells) for _ in range(width + rng.choice([-1, 0, 0, 1])))
                 for _ in range(rng.randrange(1, 5))]
        path = tmp_path / f"{k}.csv"
        path.write_text("\n".join([header] + lines) + "\n", encoding="utf-8")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # (the counted problems)
                ds = load_csv(path, check_files=False)
        except ValueError:
            continue
        read += 1
        assert ((ds.labels >= -1) & (ds.labels <= 5)).all()
        if ds.eyes is not None:
            assert not np.isinf(ds.eyes).any()
    assert read > 50

