"""ccnn_decoder.ad3.factor_graph: ``PFactorGraph``, its variables and factors (the reference's
``ad3.factor_graph`` and ``ad3.base``); see the package docstring for the differences."""
import math

import numpy as np

from .. import _decoder

__all__ = ["PBinaryVariable", "PMultiVariable", "PFactor", "PFactorGraph"]

_STATUS = {0: "integral", 1: "fractional", 2: "unsolved", 3: "unsolved", 4: "infeasible"}
_STATUS_CODES = {"integral": 0, "fractional": 1, "infeasible": 2, "unsolved": 3}

# The solver's factor type codes (csrc/ad3/factor_graph.h, FactorType) of the factors made here.
_BUDGET, _KNAPSACK = 8, 9
_NO_SCORES = ()

# Variables, factors and the hot graph methods are C types (csrc/bindings/ad3_compat.cpp).
PBinaryVariable = _decoder.PBinaryVariable
PMultiVariable = _decoder.PMultiVariable
PFactor = _decoder.PFactor


def _real(value, name):
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a real number, got {value!r}") from None


def _verbosity(value):
    if value is None:
        return 0
    if isinstance(value, (int, np.integer)):  # (bool included: verbose=True is 1)
        return int(value)
    raise TypeError(f"verbose: expected an int (a verbosity level), got {value!r}")


def _reported(method, value, score, bound, status, iterations, verbosity):
    """(value, status name) of a solve as solve() returns them, from the solver's value, score,
    bound and status code; prints the solve's line when verbosity > 1."""
    if status == 0 or (status in (2, 3) and score > -math.inf):
        value = score  # certified, or stopped early: the best labelling's score
    if verbosity > 1:
        steps = "search nodes" if method == "exact" else "iterations"
        print(f"ccnn_decoder.ad3 {method}: {_STATUS[status]} after {iterations} {steps}, value {value:.9g}, "
              f"bound {bound:.9g}", flush=True)
    return value, _STATUS[status]


def _new_factor(graph, kind, links):
    """A factor made by a create_* method."""
    factor = PFactor.__new__(PFactor)
    factor._kind = kind
    factor._links = links
    factor._graph = graph
    factor._additional = _NO_SCORES
    return factor


def _negated_list(negated, n):
    if negated is None:
        return None
    if not isinstance(negated, list):
        raise TypeError(f"negated: expected a list of bool or None, got {type(negated).__name__}")
    if negated and len(negated) != n:
        raise ValueError("Expected one negated flag per variable, or none at all.")
    return [bool(x) for x in negated] if negated else None


class PFactorGraph(_decoder.FactorGraphBase):
    """Factor graph instance: all variables and factors are attached to it (reference API).
    FactorGraphBase holds its lists (_variables, _kinds, _scores per unit, _factors, _specs: the
    solver's tuple per factor, declared ones made at solve time, _extras: additional
    log-potentials per factor, _declared: the declared factors' indices) and the hot methods
    create_binary_variable, create_multi_variable, create_factor_logic, create_factor_pair,
    create_factor_dense and declare_factor."""

    _eta, _adapt, _max_iter, _tol = 0.1, True, 1000, 1e-6
    _psdd_eta, _psdd_max_iter = 1.0, 1000
    last_bound = float("nan")
    _state = (b"", b"", b"")
    _verbosity = 0

    def set_verbosity(self, verbosity):
        """Above 1 (as the reference's threshold): each solve prints one line to stdout (method,
        status, iterations or search nodes, value and bound), not the reference's per-iteration
        trace; 0 or 1: nothing."""
        self._verbosity = _verbosity(verbosity)

    def _add(self, factor, spec, extras=_NO_SCORES):
        self._factors.append(factor)
        self._specs.append(spec)
        self._extras.append(extras)
        return factor

    def _unit_degree(self, unit):
        """Number of factors linked to a unit (the declared and created ones)."""
        count = 0
        for f in self._factors:
            if f._kind == "dense":
                count += any(unit in v._units() for v in f._links)
            else:
                count += any(v._unit == unit for v in f._links)
        return count

    def create_factor_budget(self, p_variables, budget, negated=None, owned_by_graph=True):
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
            raise TypeError(f"budget: expected an int, got {budget!r}")
        units = self._units_of(p_variables)
        flags = _negated_list(negated, len(units))
        if budget < 0:
            raise ValueError(f"budget: expected >= 0, got {budget}")
        factor = _new_factor(self, "budget", p_variables[:])
        factor._negated, factor._budget = flags or [], int(budget)
        # (a budget of len(units) or more constrains nothing: the solver gets len(units))
        return self._add(factor, (_BUDGET, units, flags, min(int(budget), len(units))))

    def create_factor_knapsack(self, p_variables, costs, budget, negated=None, owned_by_graph=True):
        if costs is None or np.ndim(costs) != 1 or isinstance(costs, (str, bytes)):
            raise TypeError(f"costs: expected a sequence of numbers, got {costs!r}")
        costs = [_real(c, "costs") for c in costs]
        budget = _real(budget, "budget")
        units = self._units_of(p_variables)
        flags = _negated_list(negated, len(units))
        if len(costs) != len(units):
            raise ValueError("Must provide one cost per variable.")
        if any(c < 0 for c in costs) or budget < 0:
            raise ValueError("costs and budget must be >= 0")
        factor = _new_factor(self, "knapsack", p_variables[:])
        factor._negated, factor._budget, factor._costs = flags or [], budget, costs
        return self._add(factor, (_KNAPSACK, units, flags, budget, costs))

    def fix_multi_variables_without_factors(self):
        """No-op: every multi-valued variable is one-hot in ccnn (see the module docstring)."""

    def set_eta_ad3(self, eta):
        self._eta = _real(eta, "eta")

    def adapt_eta_ad3(self, adapt):
        self._adapt = bool(adapt)

    def set_max_iterations_ad3(self, max_iterations):
        self._max_iter = max_iterations

    def set_residual_threshold_ad3(self, threshold):
        self._tol = _real(threshold, "threshold")

    def _complete(self):
        """Fills in the declared factors' tuples and additional log-potentials."""
        specs, extras, factors = self._specs, self._extras, self._factors
        for i in self._declared:
            f = factors[i]
            if not f._initialized:
                raise ValueError(f"{type(f).__name__}: declared but not initialized (call initialize)")
            specs[i] = f._spec()
            extras[i] = f._additional

    def _inputs(self):
        """(variables, factors, unit_scores, factor_scores) as _decoder.solve_factor_graph and
        _decoder.score_factor_graph take them."""
        self._complete()
        return list(self._kinds), list(self._specs), list(self._scores), [x for e in self._extras for x in e]

    def set_eta_psdd(self, eta):
        self._psdd_eta = _real(eta, "eta")

    def set_max_iterations_psdd(self, max_iterations):
        self._psdd_max_iter = max_iterations

    def _run(self, method):
        if self._declared:
            self._complete()
        max_iter, eta = (self._psdd_max_iter, self._psdd_eta) if method == "psdd" else (self._max_iter, self._eta)
        value, score, bound, status, iterations, posteriors, extra, dual, local, kept = _decoder.solve_general_graph(
            method, self._kinds, self._specs, self._scores, self._extras, max_iter, eta, self._adapt,
            self._tol, 1e-9, 1e-9)
        self.last_bound = bound
        self._state = (dual, local, kept)
        value, status = _reported(method, value, score, bound, status, iterations, self._verbosity)
        return value, posteriors, extra, status

    def solve_lp_map_ad3(self):
        value, post, extra, status = self._run("ad3")
        return value, post, extra, _STATUS_CODES[status]

    def solve_lp_map_psdd(self):
        """Projected subgradient dual decomposition (see the package docstring): returns (value,
        posteriors, additional_posteriors), as the reference's does (no status)."""
        value, post, extra, _ = self._run("psdd")
        return value, post, extra

    def solve_exact_map_ad3(self):
        value, post, extra, status = self._run("exact")
        return value, post, extra, _STATUS_CODES[status]

    def solve(self, eta=0.1, adapt=True, max_iter=1000, tol=1e-6, ensure_multi_variables=True,
              verbose=False, branch_and_bound=False):
        """Returns (value, posteriors, additional_posteriors, status), status one of "integral",
        "fractional", "infeasible", "unsolved" (see the module docstring)."""
        verbosity = _verbosity(verbose)
        self._eta = eta if type(eta) is float else _real(eta, "eta")
        self._adapt = bool(adapt)
        self._max_iter = max_iter
        self._tol = tol if type(tol) is float else _real(tol, "threshold")
        self._verbosity = verbosity
        return self._run("exact" if branch_and_bound else "ad3")

    def get_dual_variables(self):
        """AD3's Lagrange multipliers of the last solve, one per factor link (the declared
        factors' links, then those of the internal one-hot factors of multi-valued variables
        without a dense factor)."""
        return np.frombuffer(self._state[0]).tolist()

    def get_local_primal_variables(self):
        """The factors' local marginals of the last solve, one per link (as get_dual_variables)."""
        return np.frombuffer(self._state[1]).tolist()

    def get_global_primal_variables(self):
        """The unit marginals (posteriors) of the last solve."""
        return np.frombuffer(self._state[2]).tolist()
