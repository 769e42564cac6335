"""MAP decoding of pairwise factor graphs: AD3, certified exact branch-and-bound, exhaustive search.

The solvers are the torch-free C++ core in ``csrc/ad3`` (module ``ccnn_ext._decoder``); they run
with the GIL released, in parallel over the problems of a batch, with results that do not depend
on the number of threads. Scores are maximised: a labelling ``y`` of a problem scores

    S(y) = sum_q unary[q, y_q] + sum_e pairwise[e, y_r, y_s],   (r, s) = edges[e].

Batched API (problems that share an edge list, all variables with L states, the CCNN case)::

    import numpy as np, ccnn_ext
    rng = np.random.default_rng(0)
    edges = np.array([(r, s) for r in range(5) for s in range(r + 1, 5)])   # (E, 2)
    unary = rng.normal(size=(100, 5, 6))                                    # (B, Q, L)
    pairwise = rng.normal(size=(100, len(edges), 6, 6))                     # (B, E, L, L) or (E, L, L)
    exact = ccnn_ext.decode_exact(unary, pairwise, edges)
    relaxed = ccnn_ext.decode_ad3(unary, pairwise, edges, return_posteriors=True)
    relaxed.labels, relaxed.score, relaxed.bound, relaxed.status_names, relaxed.posteriors

Arrays may be numpy arrays or torch tensors (CUDA tensors are copied to the CPU); results are
numpy arrays. For variables with different numbers of states use :class:`FactorGraph`.

Every decode can be stopped with Ctrl-C (KeyboardInterrupt within about 50 ms, also with the GIL
released and on several threads); ``decode_exact`` is bounded by default by
:data:`DEFAULT_EXACT_TIME_LIMIT` seconds per problem (status "time_limit"), see docs/decoder.md,
"Reliability".
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from . import _decoder

#: Status names by code: ``status == 0`` is "optimal" (the labelling is certified optimal by a
#: matching upper bound; for AD3 this means its relaxation was tight), 1 "fractional" (AD3
#: converged to a fractional solution; the labelling is a rounding), 2 "iteration_limit" (AD3's
#: max_iter or the exact search's max_nodes ran out), 3 "time_limit" (the exact search's
#: time_limit ran out). Only "optimal" is certified; the bound is valid with every status.
STATUS_NAMES = tuple(_decoder.STATUS_NAMES)
OPTIMAL, FRACTIONAL, ITERATION_LIMIT, TIME_LIMIT = range(4)

#: ``decode_exact`` / ``FactorGraph.solve_exact`` stop a problem after this many seconds unless
#: told otherwise (``time_limit=None``: no limit). CCNN problems take well under a millisecond;
#: this only bounds pathological ones (frustrated Gaussian tables with tens of variables can take
#: hours), which then come back with status "time_limit", the best labelling found and a valid bound.
DEFAULT_EXACT_TIME_LIMIT = 10.0

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class DecodeResult:
    """Results of a batch of B problems with Q variables of L states.

    labels      (B, Q) int64, the decoded labellings
    score       (B,) float64, the score of each labelling
    bound       (B,) float64, a valid upper bound on each problem's optimum (>= score)
    status      (B,) int32 codes, see :data:`STATUS_NAMES` and :attr:`status_names`
    iterations  (B,) int64: AD3 iterations, or branch-and-bound nodes for ``decode_exact``
    posteriors  (B, Q, L) float64 AD3 variable marginals (one-hot for exact), when requested
    """

    labels: np.ndarray
    score: np.ndarray
    bound: np.ndarray
    status: np.ndarray
    iterations: np.ndarray
    posteriors: Optional[np.ndarray] = None

    @property
    def status_names(self) -> List[str]:
        """The status of each problem as a name: "optimal", "fractional", "iteration_limit" or
        "time_limit"."""
        return [STATUS_NAMES[code] for code in self.status]

    @property
    def optimal(self) -> np.ndarray:
        """(B,) bool: the labelling is certified optimal (score == bound within tolerance)."""
        return self.status == OPTIMAL


def _is_torch_tensor(x) -> bool:
    torch = sys.modules.get("torch")  # a tensor cannot exist unless torch was imported
    return torch is not None and isinstance(x, torch.Tensor)


def _as_array(x, name: str, dtype, kind: str) -> np.ndarray:
    """A C-contiguous numpy array of `dtype` from a numpy array, torch tensor or sequence."""
    if _is_torch_tensor(x):
        x = x.detach().cpu()
        if x.dtype.is_floating_point:
            x = x.double()  # numpy has no bfloat16
        x = x.numpy()
    try:
        a = np.asarray(x)
    except Exception as exc:  # ragged sequences and the like
        raise TypeError(f"{name}: expected an array, got {type(x).__name__} ({exc})") from None
    if a.dtype.kind not in ("fiu" if kind == "real" else "iu") and a.size > 0:
        expected = "real numbers" if kind == "real" else "integers"
        raise TypeError(f"{name}: expected {expected}, got an array of dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def _int_option(value, name: str, minimum: int, maximum: int, what: str = "") -> int:
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
            or not minimum <= value <= maximum):
        raise ValueError(f"{name}: expected an int in [{minimum}, {maximum}]{what}, got {value!r}")
    return int(value)


def _limit_option(value, name: str, maximum) -> float:
    """None (or inf) -> 0, the C++ core's "no limit"; otherwise a positive number up to maximum."""
    if value is None:
        return 0
    try:
        number = math.nan if isinstance(value, (str, bytes)) else float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if number == math.inf:
        return 0
    if isinstance(value, bool) or not 0 < number <= maximum:
        raise ValueError(f"{name}: expected None (no limit) or a number in (0, {maximum:g}], got {value!r}")
    return number


def _float_option(value, name: str, positive: bool) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0 or (positive and number == 0):
        expected = "a positive finite number" if positive else "a finite number >= 0"
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return number


def _batch_inputs(unary, pairwise, edges):
    unary = _as_array(unary, "unary", np.float64, "real")
    pairwise = _as_array(pairwise, "pairwise", np.float64, "real")
    edges = _as_array(edges, "edges", np.int64, "integer")
    if edges.size == 0:
        edges = edges.reshape(0, 2)  # no edges, e.g. []
    if unary.ndim != 3:
        raise ValueError(f"unary: expected shape (B, Q, L), got {tuple(unary.shape)}")
    batch, num_nodes, num_levels = unary.shape
    if num_levels < 2:
        raise ValueError(f"unary: every variable needs at least 2 states, got L = {num_levels}")
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise ValueError(f"edges: expected shape (E, 2), got {tuple(edges.shape)}")
    num_edges = edges.shape[0]
    table = (num_edges, num_levels, num_levels)
    if pairwise.shape == table:
        pairwise_flat = pairwise.reshape(-1)
    elif pairwise.shape == (batch,) + table:
        pairwise_flat = pairwise.reshape(batch, num_edges * num_levels * num_levels)
    else:
        raise ValueError(
            f"pairwise: expected shape (E, L, L) = {table} or (B, E, L, L) = {(batch,) + table} "
            f"for unary of shape {tuple(unary.shape)} and {num_edges} edges, got {tuple(pairwise.shape)}")
    num_states = np.empty(num_nodes, dtype=np.int64)
    num_states.fill(num_levels)
    return unary.reshape(batch, num_nodes * num_levels), pairwise_flat, edges, num_states, (batch, num_nodes, num_levels)


def _run(method, unary, pairwise, edges, num_states, *, max_iter=1000, eta=0.1, adapt_eta=True,
         tol=1e-6, ad3_gap_tol=1e-9, exact_gap_tol=1e-9, max_nodes=None, time_limit=None,
         num_threads=0, return_posteriors=False):
    max_nodes = 0 if max_nodes is None else _int_option(max_nodes, "max_nodes", 0, _INT64_MAX,
                                                        " or None (0 or None: no limit)")
    return _decoder.solve(
        method, num_states, edges, unary, pairwise,
        _int_option(max_iter, "max_iter", 1, _INT32_MAX),
        _float_option(eta, "eta", positive=True), bool(adapt_eta),
        _float_option(tol, "tol", positive=False),
        _float_option(ad3_gap_tol, "gap_tol", positive=False),
        _float_option(exact_gap_tol, "gap_tol", positive=False),
        max_nodes,
        _int_option(num_threads, "num_threads", 0, _INT32_MAX, " (0: all cores)"),
        bool(return_posteriors),
        float(_limit_option(time_limit, "time_limit", 1e9)))


def _result(raw, shape, return_posteriors) -> DecodeResult:
    labels, score, bound, status, iterations, posteriors = raw
    if return_posteriors:
        posteriors = posteriors.reshape(shape)
    return DecodeResult(labels=labels, score=score, bound=bound, status=status,
                        iterations=iterations, posteriors=posteriors)


def decode_ad3(unary, pairwise, edges, *, max_iter: int = 1000, eta: float = 0.1,
               adapt_eta: bool = True, tol: float = 1e-6, gap_tol: float = 1e-9,
               num_threads: int = 0, return_posteriors: bool = False) -> DecodeResult:
    """MAP labellings by AD3 (alternating directions dual decomposition, Martins et al. 2015).

    unary (B, Q, L), pairwise (E, L, L) shared by the batch or (B, E, L, L), edges (E, 2) of
    distinct variable pairs (r, s), pairwise[e, y_r, y_s]. Scores are maximised.

    max_iter, eta (initial penalty, reference-AD3 convention), adapt_eta (residual balancing),
    tol (primal and dual residuals) are AD3's settings, with the reference package's defaults.
    AD3 also stops as soon as its rounded labelling is within gap_tol * max(1, |score|) of its dual
    bound (status "optimal"). Otherwise the labelling is the best rounding seen (argmax of the
    posteriors, then ICM) with status "fractional" (converged) or "iteration_limit".
    num_threads: 0 uses all cores. return_posteriors adds the (B, Q, L) variable marginals.
    """
    unary, pairwise, edges, num_states, shape = _batch_inputs(unary, pairwise, edges)
    raw = _run("ad3", unary, pairwise, edges, num_states, max_iter=max_iter, eta=eta,
               adapt_eta=adapt_eta, tol=tol, ad3_gap_tol=gap_tol, num_threads=num_threads,
               return_posteriors=return_posteriors)
    return _result(raw, shape, return_posteriors)


def decode_exact(unary, pairwise, edges, *, num_threads: int = 0, gap_tol: float = 1e-9,
                 max_nodes: Optional[int] = None,
                 time_limit: Optional[float] = DEFAULT_EXACT_TIME_LIMIT) -> DecodeResult:
    """Certified exact MAP labellings by depth-first branch-and-bound.

    Same inputs and result as :func:`decode_ad3`. Every labelling comes back with status
    "optimal" and bound - score <= gap_tol * max(1, |score|), unless a limit stops its search
    first: max_nodes (search nodes per problem; None or 0: no limit) gives status
    "iteration_limit", time_limit (wall-clock seconds per problem, default
    :data:`DEFAULT_EXACT_TIME_LIMIT`; None: no limit) status "time_limit". A stopped problem keeps
    the best labelling found and a valid bound; results stopped by time depend on the machine
    (max_nodes is the reproducible bound). ``iterations`` counts search nodes. Worst-case time is
    exponential in Q; Ctrl-C stops a decode (KeyboardInterrupt).
    """
    unary, pairwise, edges, num_states, shape = _batch_inputs(unary, pairwise, edges)
    raw = _run("exact", unary, pairwise, edges, num_states, exact_gap_tol=gap_tol,
               max_nodes=max_nodes, time_limit=time_limit, num_threads=num_threads)
    return _result(raw, shape, False)


def decode_exhaustive(unary, pairwise, edges, *, num_threads: int = 0) -> DecodeResult:
    """Exact MAP labellings by enumerating all L^Q labellings (at most 2^30): a reference."""
    unary, pairwise, edges, num_states, shape = _batch_inputs(unary, pairwise, edges)
    raw = _run("exhaustive", unary, pairwise, edges, num_states, num_threads=num_threads)
    return _result(raw, shape, False)


@dataclass(frozen=True)
class FactorGraphSolution:
    """The solution of one :class:`FactorGraph`.

    labels (N,) int64; score, bound floats (bound is a valid upper bound on the optimum);
    status one of :data:`STATUS_NAMES`; iterations (AD3 iterations or search nodes);
    posteriors: one array of marginals per variable.
    """

    labels: np.ndarray
    score: float
    bound: float
    status: str
    iterations: int
    posteriors: List[np.ndarray] = field(default_factory=list)


class FactorGraph:
    """A pairwise factor graph of variables with their own numbers of states.

    Build it variable by variable and factor by factor, then solve for the labelling of maximum
    total score (unary scores of the chosen states plus each factor's table entry)::

        from ccnn_ext import FactorGraph
        g = FactorGraph()
        weather = g.add_variable([0.2, 0.5, 0.1])      # 3 states with unary scores
        umbrella = g.add_variable(2)                   # 2 states, zero unary scores
        coat = g.add_variable([0.0, -0.3])
        g.add_factor(weather, umbrella, [[-1.0, 1.0], [0.5, -0.5], [0.3, 0.0]])  # 3 x 2 table
        g.add_factor(weather, coat, [[0.0, 1.0], [0.4, -0.2], [0.0, 0.0]])
        best = g.solve_exact()         # certified optimum: best.status == "optimal"
        approx = g.solve_ad3()         # AD3, with posteriors for each variable
        best.labels, best.score, approx.posteriors[weather]

    A table for factor (a, b) has shape (states of a, states of b); entry [i, j] scores
    a = i, b = j. Each pair of variables may have one factor.
    """

    def __init__(self):
        self._unary: List[np.ndarray] = []
        self._edges: List[tuple] = []
        self._tables: List[np.ndarray] = []

    @property
    def num_variables(self) -> int:
        return len(self._unary)

    @property
    def num_factors(self) -> int:
        return len(self._edges)

    def add_variable(self, scores_or_num_states) -> int:
        """Adds a variable from its unary scores (a 1-d sequence) or its number of states (scores
        0). Returns its index."""
        if isinstance(scores_or_num_states, (int, np.integer)) and not isinstance(scores_or_num_states, bool):
            num_states = int(scores_or_num_states)
            if num_states < 2:
                raise ValueError(f"num_states: a variable needs at least 2 states, got {num_states}")
            scores = np.zeros(num_states)
        else:
            scores = _as_array(scores_or_num_states, "scores", np.float64, "real")
            if scores.ndim != 1 or scores.shape[0] < 2:
                raise ValueError(f"scores: expected a 1-d sequence of at least 2 unary scores, "
                                 f"got shape {tuple(scores.shape)}")
        self._unary.append(scores.copy())
        return len(self._unary) - 1

    def set_unary(self, variable: int, scores) -> None:
        """Replaces the unary scores of a variable (same number of states)."""
        self._check_variable(variable, "variable")
        scores = _as_array(scores, "scores", np.float64, "real")
        if scores.shape != self._unary[variable].shape:
            raise ValueError(f"scores: variable {variable} has {self._unary[variable].shape[0]} "
                             f"states, got scores of shape {tuple(scores.shape)}")
        self._unary[variable] = scores.copy()

    def add_factor(self, a: int, b: int, table) -> int:
        """Adds a pairwise factor between variables a and b with a (K_a, K_b) score table.
        Returns its index."""
        self._check_variable(a, "a")
        self._check_variable(b, "b")
        if a == b:
            raise ValueError(f"a, b: a factor needs two different variables, got {a} twice")
        if any({a, b} == {r, s} for r, s in self._edges):
            raise ValueError(f"a, b: variables {a} and {b} already share a factor")
        table = _as_array(table, "table", np.float64, "real")
        expected = (self._unary[a].shape[0], self._unary[b].shape[0])
        if table.shape != expected:
            raise ValueError(f"table: expected shape {expected} (states of a, states of b), "
                             f"got {tuple(table.shape)}")
        self._edges.append((int(a), int(b)))
        self._tables.append(table.copy())
        return len(self._edges) - 1

    def score(self, labels: Sequence[int]) -> float:
        """The total score of a labelling."""
        labels = _as_array(labels, "labels", np.int64, "integer")
        if labels.shape != (self.num_variables,):
            raise ValueError(f"labels: expected {self.num_variables} labels, got shape {tuple(labels.shape)}")
        for i, (label, scores) in enumerate(zip(labels, self._unary)):
            if not 0 <= label < scores.shape[0]:
                raise ValueError(f"labels: label {label} of variable {i} is outside [0, {scores.shape[0]})")
        total = sum(scores[y] for scores, y in zip(self._unary, labels))
        total += sum(t[labels[a], labels[b]] for (a, b), t in zip(self._edges, self._tables))
        return float(total)

    def solve_ad3(self, *, max_iter: int = 1000, eta: float = 0.1, adapt_eta: bool = True,
                  tol: float = 1e-6, gap_tol: float = 1e-9) -> FactorGraphSolution:
        """AD3, as :func:`decode_ad3`; posteriors are AD3's variable marginals."""
        return self._solve("ad3", max_iter=max_iter, eta=eta, adapt_eta=adapt_eta, tol=tol,
                           ad3_gap_tol=gap_tol, return_posteriors=True)

    def solve_exact(self, *, gap_tol: float = 1e-9, max_nodes: Optional[int] = None,
                    time_limit: Optional[float] = DEFAULT_EXACT_TIME_LIMIT) -> FactorGraphSolution:
        """Certified exact MAP by branch-and-bound, as :func:`decode_exact` (the same limits:
        max_nodes, time_limit in seconds, None for no limit; status "iteration_limit" or
        "time_limit" when one stops the search)."""
        return self._solve("exact", exact_gap_tol=gap_tol, max_nodes=max_nodes, time_limit=time_limit,
                           return_posteriors=True)

    def solve_exhaustive(self) -> FactorGraphSolution:
        """Exact MAP by enumeration (small graphs only)."""
        return self._solve("exhaustive", return_posteriors=True)

    def _check_variable(self, index, name):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < self.num_variables:
            raise ValueError(f"{name}: expected a variable index in [0, {self.num_variables}), got {index!r}")

    def _solve(self, method, **options) -> FactorGraphSolution:
        if self.num_variables == 0:
            raise ValueError("FactorGraph: add at least one variable before solving")
        num_states = np.array([u.shape[0] for u in self._unary], dtype=np.int64)
        edges = np.array(self._edges, dtype=np.int64).reshape(-1, 2)
        unary = np.concatenate(self._unary)[None, :]
        pairwise = (np.concatenate([t.reshape(-1) for t in self._tables]) if self._tables
                    else np.zeros(0))
        labels, score, bound, status, iterations, posteriors = _run(
            method, unary, pairwise, edges, num_states, num_threads=1, **options)
        splits = np.cumsum(num_states)[:-1]
        return FactorGraphSolution(labels=labels[0], score=float(score[0]), bound=float(bound[0]),
                                   status=STATUS_NAMES[status[0]], iterations=int(iterations[0]),
                                   posteriors=np.split(posteriors[0], splits))
