"""MAP decoding of factor graphs: AD3, certified exact branch-and-bound, exhaustive search.

The solvers are the torch-free C++ core in ``csrc/ad3`` (module ``ccnn_decoder._decoder``); they run
with the GIL released, in parallel over the problems of a batch, with results that do not depend
on the number of threads. Scores are maximised: a labelling ``y`` of a problem scores

    S(y) = sum_q unary[q, y_q] + sum_e pairwise[e, y_r, y_s],   (r, s) = edges[e].

Batched API (problems that share an edge list, all variables with L states, the CCNN case)::

    import numpy as np, ccnn_decoder
    rng = np.random.default_rng(0)
    edges = np.array([(r, s) for r in range(5) for s in range(r + 1, 5)])   # (E, 2)
    unary = rng.normal(size=(100, 5, 6))                                    # (B, Q, L)
    pairwise = rng.normal(size=(100, len(edges), 6, 6))                     # (B, E, L, L) or (E, L, L)
    exact = ccnn_decoder.decode_exact(unary, pairwise, edges)
    relaxed = ccnn_decoder.decode_ad3(unary, pairwise, edges, return_posteriors=True)
    relaxed.labels, relaxed.score, relaxed.bound, relaxed.status_names, relaxed.posteriors

Arrays may be numpy arrays or torch tensors (CUDA tensors are copied to the CPU); results are
numpy arrays. For variables with different numbers of states, binary variables, dense factors of
any arity and hard-logic / budget / knapsack / pair factors use :class:`FactorGraph`; for code
written against the reference AD3 package, :mod:`ccnn_decoder.ad3`.

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
from ._arguments import flag_list, int_list

#: Status names by code: ``status == 0`` is "optimal" (the labelling is certified optimal by a
#: matching upper bound; for AD3 this means its relaxation was tight), 1 "fractional" (AD3
#: converged to a fractional solution; the labelling is a rounding), 2 "iteration_limit" (AD3's
#: max_iter or the exact search's max_nodes ran out), 3 "time_limit" (the exact search's
#: time_limit ran out), 4 "infeasible" (general graphs: the exact search proved that the hard
#: factors allow no labelling). Only "optimal" is certified; the bound is valid with every status.
STATUS_NAMES = tuple(_decoder.STATUS_NAMES)
OPTIMAL, FRACTIONAL, ITERATION_LIMIT, TIME_LIMIT, INFEASIBLE = range(5)

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


def _qp_steps_option(value) -> int:
    steps = _int_option(value, "max_qp_steps", 0, _INT32_MAX, " (0: exact local solutions)")
    if steps == 1:
        raise ValueError("max_qp_steps: expected 0 (exact local solutions) or at least 2 (a solve over "
                         "the active set and an oracle call), got 1")
    return steps


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


def _scalar(value, name: str) -> float:
    """One real number (a Python or numpy number, a 0-d array or tensor)."""
    if _is_torch_tensor(value):
        value = value.detach().cpu().double().numpy()
    if isinstance(value, (bool, np.bool_, str, bytes)) or np.ndim(value) != 0:
        raise TypeError(f"{name}: expected one real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected one real number, got {value!r}") from None


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

    labels (N,) int64 (binary variables: 0/1); score, bound floats (bound is a valid upper bound
    on the optimum; score is -inf when no allowed labelling was found); status one of
    :data:`STATUS_NAMES`; iterations (AD3 iterations or search nodes); posteriors: one array of
    marginals per variable (a binary variable: [P(0), P(1)]); additional_posteriors: one array per
    factor (dense factors: the marginals of their joint states, shaped like their table; pair
    factors: the marginal of "both 1", shape (); sequence factors: the marginals of the
    transitions, flat; other factors: empty); value: the objective at
    the posteriors (equal to score when the status is "optimal").
    """

    labels: np.ndarray
    score: float
    bound: float
    status: str
    iterations: int
    posteriors: List[np.ndarray] = field(default_factory=list)
    additional_posteriors: List[np.ndarray] = field(default_factory=list)
    value: float = math.nan


@dataclass(frozen=True)
class FactorGraphBatch:
    """Results of :meth:`FactorGraph.solve_batch` for B problems: labels (B, N); posteriors
    (B, U) and additional_posteriors (B, F) in the flat layout of :meth:`FactorGraph.flat_scores`;
    value, score, bound (B,); status (B,) codes (see :data:`STATUS_NAMES`); iterations (B,)."""

    labels: np.ndarray
    posteriors: np.ndarray
    additional_posteriors: np.ndarray
    value: np.ndarray
    score: np.ndarray
    bound: np.ndarray
    status: np.ndarray
    iterations: np.ndarray

    @property
    def status_names(self) -> List[str]:
        return [STATUS_NAMES[code] for code in self.status]


#: Logic factor kinds of :meth:`FactorGraph.add_logic` (see docs/decoder.md, "General graphs").
LOGIC_FACTORS = ("xor", "atmostone", "or", "xorout", "orout", "andout", "imply")


class FactorGraph:
    """A factor graph of binary and multi-valued variables, solved for its labelling of maximum
    total score.

    Pairwise graphs (multi-valued variables and ``add_factor`` tables) use the pairwise solvers;
    anything else uses the general ones (docs/decoder.md, "General factor graphs")::

        from ccnn_decoder import FactorGraph
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
    a = i, b = j. Each pair of variables may have one ``add_factor`` table.

    General factors (``add_binary_variable``, ``add_dense``, ``add_logic``, ``add_budget``,
    ``add_knapsack``, ``add_pair``, ``add_sequence``, ``add_tree``, ``add_head_automaton``,
    ``add_tree_chain``, ``add_tree_counts``, ``add_compression_budget``, and ``add_oracle`` for a
    factor given by your own MAP oracle) take
    *literals*: a binary variable's index (its value), or a
    pair ``(variable, state)`` for "the multi-valued variable is in this state"; ``negated``
    flips literals (one bool per literal).
    """

    def __init__(self):
        self._unary: List[np.ndarray] = []
        self._binary: List[bool] = []
        self._edges: List[tuple] = []      # add_factor tables (pairwise)
        # every factor: (type, links, negated, budget, costs, scores, num_states, num_nodes, arcs)
        self._factors: List[tuple] = []

    @property
    def num_variables(self) -> int:
        return len(self._unary)

    @property
    def num_factors(self) -> int:
        return len(self._factors)

    def add_variable(self, scores_or_num_states) -> int:
        """Adds a multi-valued variable from its unary scores (a 1-d sequence) or its number of
        states (scores 0). Returns its index."""
        if isinstance(scores_or_num_states, (int, np.integer)) and not isinstance(scores_or_num_states, bool):
            num_states = int(scores_or_num_states)
            if not 2 <= num_states <= _decoder.MAX_STATES:
                raise ValueError(f"num_states: expected 2 to 2^20 states, got {num_states}")
            scores = np.zeros(num_states)
        else:
            scores = _as_array(scores_or_num_states, "scores", np.float64, "real")
            if scores.ndim != 1 or not 2 <= scores.shape[0] <= _decoder.MAX_STATES:
                raise ValueError(f"scores: expected a 1-d sequence of 2 to 2^20 unary scores, "
                                 f"got shape {tuple(scores.shape)}")
        self._unary.append(scores.copy())
        self._binary.append(False)
        return len(self._unary) - 1

    def add_binary_variable(self, score: float = 0.0) -> int:
        """Adds a binary variable (labels 0/1) whose label 1 scores `score`. Returns its index."""
        self._unary.append(np.array([0.0, _scalar(score, "score")]))
        self._binary.append(True)
        return len(self._unary) - 1

    def set_unary(self, variable: int, scores) -> None:
        """Replaces the unary scores of a variable (same number of states; a binary variable:
        [0, score of 1] or just the score of 1)."""
        self._check_variable(variable, "variable")
        if self._binary[variable] and np.ndim(scores) == 0:
            scores = [0.0, _scalar(scores, "scores")]
        scores = _as_array(scores, "scores", np.float64, "real")
        if self._binary[variable] and scores.shape == (2,):
            scores = np.array([0.0, scores[1] - scores[0]])  # (a constant offset does not matter)
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
        for name, v in (("a", a), ("b", b)):
            if self._binary[v]:
                raise ValueError(f"{name}: variable {v} is binary; tables take multi-valued variables "
                                 "(add_variable(2)) or use add_pair")
        table = _as_array(table, "table", np.float64, "real")
        expected = (self._unary[a].shape[0], self._unary[b].shape[0])
        if table.shape != expected:
            raise ValueError(f"table: expected shape {expected} (states of a, states of b), "
                             f"got {tuple(table.shape)}")
        self._edges.append((int(a), int(b)))
        self._factors.append(("dense", [int(a), int(b)], [], 0, [], table.copy(), [], 0, []))
        return len(self._factors) - 1

    def add_dense(self, variables: Sequence[int], table) -> int:
        """Adds a dense factor over any number of distinct multi-valued variables; `table` has
        shape (K_1, ..., K_m). Returns its index."""
        variables = self._variable_list(variables)
        for v in variables:
            if self._binary[v]:
                raise ValueError(f"variables: variable {v} is binary; dense factors take multi-valued variables")
        table = _as_array(table, "table", np.float64, "real")
        expected = tuple(self._unary[v].shape[0] for v in variables)
        if table.shape != expected:
            raise ValueError(f"table: expected shape {expected}, got {tuple(table.shape)}")
        self._factors.append(("dense", variables, [], 0, [], table.copy(), [], 0, []))
        return len(self._factors) - 1

    def add_logic(self, kind: str, literals, negated=None) -> int:
        """Adds a hard-logic factor: kind one of :data:`LOGIC_FACTORS` ("xor": exactly one literal
        true; "atmostone"; "or": at least one; "xorout" / "orout" / "andout": the last literal is
        the XOR (parity) / OR / AND of the others; "imply": all but the last true implies the
        last). The reference API's XOROUT (``ccnn_decoder.ad3``) is not "xorout" but an "xor"
        with its last literal negated. Returns its index."""
        if not isinstance(kind, str) or kind.lower() not in LOGIC_FACTORS:
            raise ValueError(f"kind: expected one of {LOGIC_FACTORS}, got {kind!r}")
        return self._add_literal_factor(kind.lower(), literals, negated)

    def add_budget(self, literals, budget: int, negated=None) -> int:
        """At most `budget` of the literals are true. Returns its index."""
        budget = _int_option(budget, "budget", 0, _INT32_MAX)
        return self._add_literal_factor("budget", literals, negated, budget=budget)

    def add_knapsack(self, literals, costs, budget: float, negated=None) -> int:
        """sum of the costs (>= 0) of the true literals <= budget. Returns its index."""
        costs = _as_array(costs, "costs", np.float64, "real")
        if costs.ndim != 1:
            raise ValueError(f"costs: expected a 1-d sequence, got shape {tuple(costs.shape)}")
        if not np.all(np.isfinite(costs)) or np.any(costs < 0):
            raise ValueError(f"costs: every cost must be finite and >= 0, got {costs.tolist()}")
        budget = _float_option(budget, "budget", positive=False)
        return self._add_literal_factor("knapsack", literals, negated, budget=float(budget),
                                        costs=[float(c) for c in costs])

    def add_pair(self, a, b, score: float) -> int:
        """Adds `score` when both literals a and b are true. Returns its index."""
        score = _scalar(score, "score")
        index = self._add_literal_factor("pair", [a, b], None)
        self._factors[index] = self._factors[index][:5] + (np.array([score]),) + self._factors[index][6:]
        return index

    def score(self, labels: Sequence[int]) -> float:
        """The total score of a labelling (-inf when a hard factor forbids it)."""
        labels = _as_array(labels, "labels", np.int64, "integer")
        if labels.shape != (self.num_variables,):
            raise ValueError(f"labels: expected {self.num_variables} labels, got shape {tuple(labels.shape)}")
        for i, (label, scores) in enumerate(zip(labels, self._unary)):
            if not 0 <= label < scores.shape[0]:
                raise ValueError(f"labels: label {label} of variable {i} is outside [0, {scores.shape[0]})")
        if self._is_pairwise():
            total = sum(scores[y] for scores, y in zip(self._unary, labels))
            total += sum(f[5][labels[f[1][0]], labels[f[1][1]]] for f in self._factors)
            return float(total)
        variables, factors, unit_scores, factor_scores = self._general_inputs()
        return float(_decoder.score_factor_graph(variables, factors, unit_scores, factor_scores,
                                                 [int(y) for y in labels]))

    def solve_ad3(self, *, max_iter: int = 1000, eta: float = 0.1, adapt_eta: bool = True,
                  tol: float = 1e-6, gap_tol: float = 1e-9, max_qp_steps: int = 10) -> FactorGraphSolution:
        """AD3, as :func:`decode_ad3`; posteriors are AD3's variable marginals. max_qp_steps:
        the active-set factors' steps (a solve over the active set, or an oracle call) per local
        problem and iteration, warm-started at the next, as the reference's generic factors do
        (10); 0 solves every local problem exactly; pairwise graphs always solve their edges
        exactly."""
        return self._solve("ad3", max_iter=max_iter, eta=eta, adapt_eta=adapt_eta, tol=tol,
                           ad3_gap_tol=gap_tol, max_qp_steps=max_qp_steps, return_posteriors=True)

    def solve_exact(self, *, gap_tol: float = 1e-9, max_nodes: Optional[int] = None,
                    time_limit: Optional[float] = DEFAULT_EXACT_TIME_LIMIT) -> FactorGraphSolution:
        """Certified exact MAP by branch-and-bound, as :func:`decode_exact` (the same limits:
        max_nodes, time_limit in seconds, None for no limit; status "iteration_limit" or
        "time_limit" when one stops the search; "infeasible" when the hard factors allow no
        labelling)."""
        return self._solve("exact", exact_gap_tol=gap_tol, max_nodes=max_nodes, time_limit=time_limit,
                           return_posteriors=True)

    def solve_exhaustive(self) -> FactorGraphSolution:
        """Exact MAP by enumeration (small graphs only)."""
        return self._solve("exhaustive", return_posteriors=True)

    def solve_psdd(self, *, max_iter: int = 1000, eta: float = 1.0, gap_tol: float = 1e-9) -> FactorGraphSolution:
        """Projected subgradient dual decomposition, the reference package's other LP-MAP solver:
        each iteration every factor takes its best configuration, their sum is the dual bound, and
        the multipliers move along the subgradient with step 2 eta / sqrt(t + 1) (the reference's
        rule). Status "optimal" when a rounding of the mean configurations meets the best bound
        (certified), else "iteration_limit" after max_iter iterations, with the best labelling
        found; never "fractional". Always uses the general solver."""
        return self._solve("psdd", max_iter=max_iter, eta=eta, ad3_gap_tol=gap_tol)

    def add_head_automaton(self, literals, scores, siblings=None, indicator=None) -> int:
        """Adds a head automaton (the sibling part of a second-order dependency parser) for one
        head and one side: literals[p - 1] is the arc to the modifier at distance p = 1..L-1 (any
        subset may be on); scores[k] is added when siblings[k] = (m, s) are consecutive chosen
        positions (m = 0: the head, s = L: the end). siblings default to
        [(m, s) for s in 1..L for m in 0..s-1]; every pair must appear once. With an
        `indicator` literal, that literal is true exactly when some position is chosen (the
        reference's sequence compressor: kept words and bigram scores). Returns its index."""
        if isinstance(literals, (int, np.integer, str)) or literals is None:
            raise TypeError(f"literals: expected a sequence of literals, got {literals!r}")
        length = len(literals) + 1
        if siblings is None:
            siblings = [(m, s) for s in range(1, length + 1) for m in range(s)]
        siblings = int_list(siblings, "siblings", 2)
        scores = _as_array(scores, "scores", np.float64, "real").reshape(-1)
        if scores.shape[0] != len(siblings) or len(siblings) != length * (length + 1) // 2:
            raise ValueError(f"scores: expected one score per sibling pair ({length * (length + 1) // 2}), "
                             f"got {scores.shape[0]} scores for {len(siblings)} pairs")
        if indicator is None:
            index = self._add_literal_factor("headautomaton", literals, None)
        else:
            index = self._add_literal_factor("sequencecompressor", list(literals) + [indicator], None)
        self._factors[index] = self._factors[index][:5] + (scores.copy(), [], 0, siblings)
        return index

    def add_tree_chain(self, nodes, parents, tables) -> int:
        """Adds a tree-structured chain factor: nodes[i] is a multi-valued variable (a general
        tree, the reference's FactorGeneralTree) or a binary variable for every i (a binary tree,
        FactorBinaryTree, state = its value); parents[0] = -1 and parents[i] the parent of node i
        (a tree rooted at node 0); tables: for i = 1..n-1 a (K_parent, K_i) table (parent's state
        first), as a list or flattened in that order. Its MAP oracle is a dynamic program. Returns
        its index."""
        if isinstance(nodes, (int, np.integer, str)) or nodes is None:
            raise TypeError(f"nodes: expected a sequence of variables, got {nodes!r}")
        nodes = [int(v) for v in nodes]
        for v in nodes:
            self._check_variable(v, "nodes")
        if len(set(nodes)) != len(nodes) or not nodes:
            raise ValueError("nodes: expected distinct variables (at least one)")
        binary = [self._binary[v] for v in nodes]
        if any(binary) and not all(binary):
            raise ValueError("nodes: expected all binary or all multi-valued variables")
        parents = int_list(parents, "parents")
        if len(parents) != len(nodes):
            raise ValueError(f"parents: expected one per node ({len(nodes)}), got {len(parents)}")
        states = [2 if b else self._unary[v].shape[0] for v, b in zip(nodes, binary)]
        shapes = [(states[p], states[i]) for i, p in enumerate(parents) if i > 0]
        if any(not 0 <= p < len(nodes) for p in parents[1:]):
            raise ValueError(f"parents: expected parents[0] = -1 and parents[i] in [0, {len(nodes)})")
        if isinstance(tables, (list, tuple)) and len(tables) == len(shapes) and all(np.ndim(t) == 2 for t in tables):
            parts = [_as_array(t, "tables", np.float64, "real") for t in tables]
            for i, (part, shape) in enumerate(zip(parts, shapes)):
                if part.shape != shape:
                    raise ValueError(f"tables: table of node {i + 1} has shape {part.shape}, expected {shape}")
            flat = np.concatenate([p.reshape(-1) for p in parts]) if parts else np.zeros(0)
        else:
            flat = _as_array(tables, "tables", np.float64, "real").reshape(-1)
            expected = sum(a * b for a, b in shapes)
            if flat.shape[0] != expected:
                raise ValueError(f"tables: expected tables of shapes {shapes} ({expected} values), got {flat.shape[0]}")
        if all(binary):
            links = [(v, 1) for v in nodes]
            kind = "binarytree"
        else:
            links = [(v, t) for v, k in zip(nodes, states) for t in range(k)]
            kind = "generaltree"
        self._factors.append((kind, links, [], 0, [], flat.copy(), states, 0, [], parents))
        return len(self._factors) - 1

    def add_tree_counts(self, nodes, parents, tables, counts_for_budget=None, count_literals=None,
                        count_scores=None, max_num_bins=None) -> int:
        """Adds a tree factor with counts (the reference's FactorGeneralTreeCounts /
        FactorBinaryTreeCounts): the tree chain of add_tree_chain, whose nodes count when flagged in
        counts_for_budget (default: all) and in state 0 (multi-valued nodes) or true (binary
        nodes). Multi-valued nodes: count_literals, n + 1 binary literals, the one of the number of
        counted nodes true. Binary nodes: count_scores, {node: scores for its subtree's count
        0..subtree size}, and max_num_bins = m (None: no truncation): counts of m - 1 or more take
        the score of count m - 1. Returns its index."""
        index = self.add_tree_chain(nodes, parents, tables)
        kind, links, flags, budget, costs, flat, states, _, _, parents = self._factors.pop()
        n = len(parents)
        counts = [True] * n if counts_for_budget is None else flag_list(counts_for_budget, "counts_for_budget")
        if len(counts) != n:
            raise ValueError(f"counts_for_budget: expected one flag per node ({n}), got {len(counts)}")
        scored, extra = [False] * n, []
        if kind == "generaltree":
            if count_literals is None or len(count_literals) != n + 1 or count_scores is not None:
                raise ValueError(f"count_literals: multi-valued nodes need n + 1 = {n + 1} count literals "
                                 "(and no count_scores)")
            if max_num_bins is not None:
                raise ValueError("max_num_bins: only binary nodes' count scores are truncated")
            links = links + [self._literal(lit) or (None, None) for lit in count_literals]
            if (None, None) in links:
                raise ValueError("count_literals: expected positive literals")
        else:
            if count_literals is not None:
                raise ValueError("count_literals: binary nodes take count_scores instead")
            if max_num_bins is not None:
                budget = _int_option(max_num_bins, "max_num_bins", 1, _INT32_MAX, " or None")
            sizes = [1] * n
            for i in sorted(range(1, n), key=lambda i: -self._depth(parents, i)):
                sizes[parents[i]] += sizes[i]
            for node, scores in sorted((count_scores or {}).items()):
                if not 0 <= int(node) < n:
                    raise ValueError(f"count_scores: node {node} is not in [0, {n})")
                scores = _as_array(scores, "count_scores", np.float64, "real").reshape(-1)
                if scores.shape[0] != sizes[int(node)] + 1:
                    raise ValueError(f"count_scores: node {node} needs {sizes[int(node)] + 1} scores, got {scores.shape[0]}")
                scored[int(node)] = True
                extra.append(scores)
        flat = np.concatenate([flat] + extra)
        self._factors.append((kind + "counts", links, flags, budget, costs, flat, states, 0, [], parents, counts, [],
                              scored))
        return index

    @staticmethod
    def _depth(parents, i):
        return 0 if i == 0 else 1 + FactorGraph._depth(parents, parents[i])

    def add_compression_budget(self, positions, budget: int, transitions, counts_for_budget=None,
                               bigrams=()) -> int:
        """Adds a compression budget (the reference's FactorCompressionBudget): positions[i] is the
        binary literal "word i kept", at most `budget` kept among the positions whose
        counts_for_budget flag is set (default: all); bigrams: (p, literal) pairs, the literal
        true exactly when p and p + 1 are both kept (p = -1: the first word kept, p = L - 1: the
        last); transitions: the scores of the chain's transitions (i, previous, state) for i = 0..L
        (previous of 0: the start, state of L: the end) in that order, without those of the
        bigram literals, 4 L - len(bigrams) values. Its MAP oracle is Viterbi with a counter.
        Returns its index."""
        if isinstance(positions, (int, np.integer, str)) or positions is None:
            raise TypeError(f"positions: expected a sequence of literals, got {positions!r}")
        length = len(positions)
        budget = _int_option(budget, "budget", 0, _INT32_MAX)
        counts = [True] * length if counts_for_budget is None else flag_list(counts_for_budget, "counts_for_budget")
        if len(counts) != length:
            raise ValueError(f"counts_for_budget: expected one flag per position ({length}), got {len(counts)}")
        pairs = [(int(p), literal) for p, literal in bigrams]
        flat = _as_array(transitions, "transitions", np.float64, "real").reshape(-1)
        if flat.shape[0] != 4 * length - len(pairs):
            raise ValueError(f"transitions: expected 4 * {length} - {len(pairs)} = {4 * length - len(pairs)} "
                             f"scores, got {flat.shape[0]}")
        index = self._add_literal_factor("compressionbudget", list(positions) + [lit for _, lit in pairs], None)
        if any(self._factors[index][2]):
            self._factors.pop()
            raise ValueError("positions, bigrams: expected positive literals (a variable, or (variable, 1))")
        self._factors[index] = self._factors[index][:3] + (budget, [], flat.copy(), [], length, [], [], counts,
                                                           [p for p, _ in pairs])
        return index

    def add_oracle(self, literals, maximize, evaluate, scores=(), negated=None) -> int:
        """Adds a factor given by your own MAP oracle (the reference AD3's generic factor): any
        nonempty set of allowed configurations y of its n literals, each collecting some of its m
        additional `scores` (1-d, default none), to be added to the labelling's score.

        ``maximize(s, a) -> (on, extras)``: s (n,) and a (m,) float64 arrays of literal and
        additional scores (as the solver passes them: AD3 divides ``a`` by its step size, the exact
        search moves clamped literals' scores by large penalties); returns the indices (into
        `literals`) of the true literals of the allowed configuration maximising
        ``s[on].sum() + a[extras].sum()``, and the indices of the additional scores it collects
        (as evaluate gives them for that configuration); indices, not masks (booleans are refused).
        ``evaluate(y) -> extras or None``: y (n,) int64 of 0/1; None when y is not allowed, else
        the indices of the additional scores it collects (for scores of labellings: AD3's
        rounding, :meth:`score`, ``solve_exhaustive``).
        Both are called many times per solve, with the GIL held (threads of :meth:`solve_batch`
        take turns); the solver checks their answers (indices in range, none repeated) and
        computes the values itself, and an exception they raise ends the solve. AD3 solves the
        factor's local problems by the active-set method, as for the built-in structured factors.
        The oracle sees the literals, negated ones included: ``s[i]`` is literal i's score and
        ``y[i]`` its value. Returns its index."""
        if not callable(maximize) or not callable(evaluate):
            raise TypeError(f"maximize, evaluate: expected two callables, got {maximize!r} and {evaluate!r}")
        flat = _as_array(scores, "scores", np.float64, "real").reshape(-1)
        if flat.shape[0] > _INT32_MAX:
            raise ValueError(f"scores: a factor may have at most 2^31 - 1 additional scores, got {flat.shape[0]}")
        index = self._add_literal_factor("oracle", literals, negated)
        self._factors[index] = self._factors[index][:3] + (flat.shape[0], [], flat.copy(), [], 0, [], [], [], [], [],
                                                           (maximize, evaluate))
        return index

    def flat_scores(self):
        """The graph's scores in the flat layout of :meth:`solve_batch`: ``(unit_scores (U,),
        factor_scores (F,))``. Units: one per binary variable (the score of label 1 minus that of
        0), K per multi-valued variable, in variable order; factor scores: each dense table
        (row-major), pair score and sequence transitions, in factor order."""
        _, _, unit_scores, factor_scores = self._general_inputs()
        return np.array(unit_scores, dtype=np.float64), np.array(factor_scores, dtype=np.float64)

    def solve_batch(self, method: str, unit_scores, factor_scores=None, *, num_threads: int = 0,
                    max_iter: int = 1000, eta: Optional[float] = None, adapt_eta: bool = True, tol: float = 1e-6,
                    gap_tol: float = 1e-9, max_nodes: Optional[int] = None,
                    time_limit: Optional[float] = DEFAULT_EXACT_TIME_LIMIT,
                    max_qp_steps: int = 10) -> "FactorGraphBatch":
        """Solves B problems with this graph's structure and other scores, on num_threads threads
        (0: all cores; the results do not depend on it). method: "ad3", "exact", "exhaustive" or
        "psdd"; unit_scores (B, U) and factor_scores (F,) shared or (B, F) in the layout of
        :meth:`flat_scores` (None: this graph's factor scores). Always uses the general solvers.
        eta: AD3's (default 0.1) or PSDD's (default 1.0); max_qp_steps is AD3's step budget as in
        :meth:`solve_ad3` (method "ad3" only)."""
        if method not in ("ad3", "exact", "exhaustive", "psdd"):
            raise ValueError(f"method: expected 'ad3', 'exact', 'exhaustive' or 'psdd', got {method!r}")
        if eta is None:
            eta = 1.0 if method == "psdd" else 0.1
        variables, factors, _, own_factor_scores = self._general_inputs()
        unit_scores = _as_array(unit_scores, "unit_scores", np.float64, "real")
        factor_scores = (np.array(own_factor_scores, dtype=np.float64) if factor_scores is None
                         else _as_array(factor_scores, "factor_scores", np.float64, "real"))
        max_nodes = 0 if max_nodes is None else _int_option(max_nodes, "max_nodes", 0, _INT64_MAX,
                                                            " or None (0 or None: no limit)")
        raw = _decoder.solve_factor_graph(
            method, variables, factors, unit_scores, factor_scores,
            _int_option(max_iter, "max_iter", 1, _INT32_MAX), _float_option(eta, "eta", positive=True),
            bool(adapt_eta), _float_option(tol, "tol", positive=False),
            _float_option(gap_tol, "gap_tol", positive=False), _float_option(gap_tol, "gap_tol", positive=False),
            max_nodes, float(_limit_option(time_limit, "time_limit", 1e9)),
            _int_option(num_threads, "num_threads", 0, _INT32_MAX, " (0: all cores)"),
            _qp_steps_option(max_qp_steps))
        return FactorGraphBatch(labels=raw[0], posteriors=raw[1], additional_posteriors=raw[2], value=raw[3],
                                score=raw[4], bound=raw[5], status=raw[6], iterations=raw[7])

    # ---- internals ----

    def _check_variable(self, index, name):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < self.num_variables:
            raise ValueError(f"{name}: expected a variable index in [0, {self.num_variables}), got {index!r}")

    def _variable_list(self, variables) -> List[int]:
        if isinstance(variables, (int, np.integer, str)) or variables is None:
            raise TypeError(f"variables: expected a sequence of variable indices, got {variables!r}")
        out = []
        for v in variables:
            self._check_variable(v, "variables")
            out.append(int(v))
        if len(set(out)) != len(out) or not out:
            raise ValueError(f"variables: expected distinct variable indices (at least one), got {out}")
        return out

    def _literal(self, literal):
        """(variable, state) of a literal."""
        if isinstance(literal, tuple) and len(literal) == 2:
            v, state = literal
            self._check_variable(v, "literals")
            if self._binary[v]:
                if state not in (0, 1):
                    raise ValueError(f"literals: binary variable {v} has states 0 and 1, got {state!r}")
                return (int(v), 1) if state == 1 else None
            if isinstance(state, bool) or not isinstance(state, (int, np.integer)) or not 0 <= state < self._unary[v].shape[0]:
                raise ValueError(f"literals: state {state!r} of variable {v} is out of range")
            return int(v), int(state)
        self._check_variable(literal, "literals")
        if not self._binary[literal]:
            raise ValueError(f"literals: variable {literal} is multi-valued; use (variable, state)")
        return int(literal), 1

    def _add_literal_factor(self, kind, literals, negated, budget=0, costs=()):
        if isinstance(literals, (int, np.integer, str)) or literals is None:
            raise TypeError(f"literals: expected a sequence of literals, got {literals!r}")
        links = []
        flags = [] if negated is None else flag_list(negated, "negated")
        if flags and len(flags) != len(literals):
            raise ValueError(f"negated: expected one flag per literal ({len(literals)}) or None, got {len(flags)}")
        for i, literal in enumerate(literals):
            resolved = self._literal(literal)
            if resolved is None:  # (binary v, 0) == not v
                resolved = (int(literal[0]), 1)
                if not flags:
                    flags = [False] * len(literals)
                flags[i] = not flags[i]
            links.append(resolved)
        if len(set(links)) != len(links):
            raise ValueError(f"literals: a literal appears twice in {list(literals)}")
        minimum = 2 if kind in ("xorout", "orout", "andout", "imply", "pair") else 1
        if kind == "headautomaton":
            minimum = 1
        elif kind == "sequencecompressor":
            minimum = 2
        if len(links) < minimum:
            raise ValueError(f"literals: a {kind} factor needs at least {minimum} literals, got {len(links)}")
        if kind == "knapsack" and len(costs) != len(links):
            raise ValueError(f"costs: expected one cost per literal ({len(links)}), got {len(costs)}")
        self._factors.append((kind, links, flags, budget, list(costs), np.zeros(0), [], 0, []))
        return len(self._factors) - 1

    def add_sequence(self, variables: Sequence[int], transitions) -> int:
        """Adds a sequence (chain) factor over multi-valued variables v_1..v_L (positions in
        order) with transition scores: a list of L + 1 tables [start (K_1,), (K_1, K_2), ...,
        (K_{L-1}, K_L), end (K_L,)], or all of them flattened in that order (the reference's
        FactorSequence layout). Its MAP oracle is Viterbi. Returns its index."""
        variables = self._variable_list(variables)
        for v in variables:
            if self._binary[v]:
                raise ValueError(f"variables: variable {v} is binary; sequences take multi-valued variables")
        states = [self._unary[v].shape[0] for v in variables]
        shapes = [(states[0],)] + [(a, b) for a, b in zip(states, states[1:])] + [(states[-1],)]
        if isinstance(transitions, (list, tuple)) and len(transitions) == len(shapes) and all(
                np.ndim(t) >= 1 for t in transitions):
            parts = [_as_array(t, "transitions", np.float64, "real") for t in transitions]
            for i, (part, shape) in enumerate(zip(parts, shapes)):
                if part.shape != shape:
                    raise ValueError(f"transitions: table {i} has shape {part.shape}, expected {shape}")
            flat = np.concatenate([p.reshape(-1) for p in parts])
        else:
            flat = _as_array(transitions, "transitions", np.float64, "real").reshape(-1)
            expected = sum(int(np.prod(s)) for s in shapes)
            if flat.shape[0] != expected:
                raise ValueError(f"transitions: expected {len(shapes)} tables of shapes {shapes} or "
                                 f"{expected} values, got {flat.shape[0]}")
        units = [(v, t) for v, k in zip(variables, states) for t in range(k)]
        self._factors.append(("sequence", units, [], 0, [], flat.copy(), states, 0, []))
        return len(self._factors) - 1

    def add_tree(self, num_nodes: int, arcs, literals) -> int:
        """Adds a dependency-tree factor: arcs[k] = (head, modifier) over nodes 0..num_nodes-1 is
        the binary literal literals[k]; the true arcs must form a spanning tree directed away
        from the root 0 (every node 1..num_nodes-1 has one head, no cycle). Its MAP oracle is
        Chu-Liu-Edmonds. Returns its index."""
        num_nodes = _int_option(num_nodes, "num_nodes", 2, _decoder.MAX_TREE_NODES,
                                " (the oracle keeps dense num_nodes^2 tables)")
        arcs = _as_array(arcs, "arcs", np.int64, "integer")
        if arcs.ndim != 2 or arcs.shape[1] != 2:
            raise ValueError(f"arcs: expected (head, modifier) pairs, got shape {tuple(arcs.shape)}")
        if isinstance(literals, (int, np.integer, str)) or literals is None or len(literals) != len(arcs):
            raise ValueError(f"literals: expected one literal per arc ({len(arcs)})")
        index = self._add_literal_factor("tree", literals, None)
        self._factors[index] = self._factors[index][:6] + ([], num_nodes, [tuple(int(x) for x in a) for a in arcs])
        return index

    def _is_pairwise(self) -> bool:
        return not any(self._binary) and len(self._edges) == len(self._factors)

    def _general_inputs(self):
        variables, begin, unit_scores, start = [], [], [], 0
        for binary, scores in zip(self._binary, self._unary):
            begin.append(start)
            if binary:
                variables.append(0)
                unit_scores.append(float(scores[1] - scores[0]))
                start += 1
            else:
                variables.append(int(scores.shape[0]))
                unit_scores.extend(float(x) for x in scores)
                start += scores.shape[0]
        factors, extra = [], []
        for kind, links, flags, budget, costs, scores, states, nodes, arcs, *rest in self._factors:
            parents, counts, bigrams, scored, oracle = (list(rest) + [[], [], [], [], None])[:5]
            if kind == "dense":
                units = list(links)
            else:
                units = [begin[v] + (0 if self._binary[v] else state) for v, state in links]
            factors.append((kind, units, flags, budget, costs, states, nodes, arcs, parents, counts, bigrams, scored,
                            oracle))
            extra.extend(float(x) for x in np.asarray(scores).reshape(-1))
        return variables, factors, unit_scores, extra

    def _solve(self, method, **options) -> FactorGraphSolution:
        if self.num_variables == 0:
            raise ValueError("FactorGraph: add at least one variable before solving")
        max_qp_steps = _qp_steps_option(options.pop("max_qp_steps", 10))
        if self._is_pairwise() and method != "psdd":
            return self._solve_pairwise(method, **options)
        max_nodes = options.get("max_nodes")
        max_nodes = 0 if max_nodes is None else _int_option(max_nodes, "max_nodes", 0, _INT64_MAX,
                                                            " or None (0 or None: no limit)")
        variables, factors, unit_scores, factor_scores = self._general_inputs()
        raw = _decoder.solve_factor_graph(
            method, variables, factors, np.array([unit_scores], dtype=np.float64).reshape(1, -1),
            np.array(factor_scores, dtype=np.float64),
            _int_option(options.get("max_iter", 1000), "max_iter", 1, _INT32_MAX),
            _float_option(options.get("eta", 0.1), "eta", positive=True), bool(options.get("adapt_eta", True)),
            _float_option(options.get("tol", 1e-6), "tol", positive=False),
            _float_option(options.get("ad3_gap_tol", 1e-9), "gap_tol", positive=False),
            _float_option(options.get("exact_gap_tol", 1e-9), "gap_tol", positive=False),
            max_nodes, float(_limit_option(options.get("time_limit"), "time_limit", 1e9)), 1, max_qp_steps)
        labels, post, extra = raw[0][0], raw[1][0], raw[2][0]
        value, score, bound, status, iterations = (x[0] for x in raw[3:8])
        posteriors, start = [], 0
        for binary, scores in zip(self._binary, self._unary):
            if binary:
                posteriors.append(np.array([1.0 - post[start], post[start]]))
                start += 1
            else:
                posteriors.append(post[start:start + scores.shape[0]].copy())
                start += scores.shape[0]
        additional, start = [], 0
        for factor in self._factors:
            table = np.asarray(factor[5])
            additional.append(extra[start:start + table.size].reshape(() if factor[0] == "pair" else table.shape))
            start += table.size
        return FactorGraphSolution(labels=labels, score=float(score), bound=float(bound),
                                   status=STATUS_NAMES[int(status)], iterations=int(iterations),
                                   posteriors=posteriors, additional_posteriors=additional, value=float(value))

    def _solve_pairwise(self, method, **options) -> FactorGraphSolution:
        num_states = np.array([u.shape[0] for u in self._unary], dtype=np.int64)
        edges = np.array(self._edges, dtype=np.int64).reshape(-1, 2)
        unary = np.concatenate(self._unary)[None, :]
        tables = [f[5] for f in self._factors]  # (only add_factor tables here)
        pairwise = (np.concatenate([t.reshape(-1) for t in tables]) if tables else np.zeros(0))
        labels, score, bound, status, iterations, posteriors = _run(
            method, unary, pairwise, edges, num_states, num_threads=1, **options)
        splits = np.cumsum(num_states)[:-1]
        marginals = np.split(posteriors[0], splits)
        additional = []
        for (a, b), table in zip(self._edges, tables):
            additional.append(np.outer(marginals[a], marginals[b]) if STATUS_NAMES[status[0]] == "optimal"
                              else np.full(table.shape, np.nan))
        return FactorGraphSolution(labels=labels[0], score=float(score[0]), bound=float(bound[0]),
                                   status=STATUS_NAMES[status[0]], iterations=int(iterations[0]),
                                   posteriors=marginals, additional_posteriors=additional,
                                   value=float(score[0]) if STATUS_NAMES[status[0]] == "optimal" else math.nan)
