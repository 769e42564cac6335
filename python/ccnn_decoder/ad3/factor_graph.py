"""ccnn_decoder.ad3.factor_graph: ``PFactorGraph``, its variables and factors (the reference's
``ad3.factor_graph`` and ``ad3.base``); see the package docstring for the differences."""
from __future__ import annotations

import math
from typing import List

import numpy as np

from .. import _decoder

__all__ = ["PBinaryVariable", "PMultiVariable", "PFactor", "PFactorGraph"]

_STATUS = {0: "integral", 1: "fractional", 2: "unsolved", 3: "unsolved", 4: "infeasible"}
_STATUS_CODES = {"integral": 0, "fractional": 1, "infeasible": 2, "unsolved": 3}
_LOGIC = {"XOR": "xor", "XOROUT": "xorout", "ATMOSTONE": "atmostone", "OR": "or", "OROUT": "orout",
          "ANDOUT": "andout", "IMPLY": "imply"}


def _real(value, name):
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a real number, got {value!r}") from None


def _real_list(values, name):
    if values is None or isinstance(values, (str, bytes)):
        raise TypeError(f"{name}: expected a sequence of real numbers, got {values!r}")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a sequence of real numbers") from None
    if array.ndim != 1:
        raise TypeError(f"{name}: expected a flat sequence of real numbers, got shape {array.shape}")
    return array.tolist()


class PBinaryVariable:
    """A binary variable (or one state of a multi-valued variable): its log-potential scores
    the value 1."""

    def __init__(self, graph=None, unit=-1):
        self._graph = graph
        self._unit = unit
        self._log_potential = 0.0
        self._degree = 0

    def get_log_potential(self):
        return self._log_potential

    def set_log_potential(self, log_potential):
        self._log_potential = _real(log_potential, "log_potential")

    def get_id(self):
        return self._unit

    def get_degree(self):
        return self._degree


class PMultiVariable:
    """A multi-valued variable: K states, exactly one of which is on."""

    def __init__(self, graph=None, states=()):
        self._graph = graph
        self._states: List[PBinaryVariable] = list(states)

    def __len__(self):
        return len(self._states)

    def _check(self, i):
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"state: expected an int, got {i!r}")
        if not 0 <= i < len(self._states):
            raise IndexError("State {:d} is out of bounds.".format(i))

    def get_state(self, i, validate=True):
        self._check(i)
        return self._states[i]

    def __getitem__(self, i):
        return self.get_log_potential(i)

    def __setitem__(self, i, log_potential):
        self.set_log_potential(i, log_potential)

    def get_log_potential(self, i):
        self._check(i)
        return self._states[i].get_log_potential()

    def set_log_potential(self, i, log_potential):
        self._check(i)
        self._states[i].set_log_potential(log_potential)

    def set_log_potentials(self, log_potentials, validate=True):
        values = np.asarray(log_potentials, dtype=np.float64).reshape(-1)
        if len(values) != len(self._states):
            raise IndexError("Expected buffer of length {}".format(len(self._states)))
        for state, value in zip(self._states, values):
            state._log_potential = float(value)

    def get_num_states(self):
        return len(self._states)


class PFactor:
    """A factor of a :class:`PFactorGraph`."""

    def __init__(self, kind=None, links=(), negated=(), budget=0, costs=(), additional=()):
        self._kind = kind
        self._links = list(links)      # PBinaryVariable (units) or, for dense, PMultiVariable
        self._negated = list(negated)
        self._budget = budget
        self._costs = list(costs)
        self._additional = np.asarray(additional, dtype=np.float64).reshape(-1).tolist()
        self._graph = None
        # structured factors (extensions): states per position, or nodes and arcs
        self._num_states = []
        self._num_nodes = 0
        self._arcs = []
        self._parents = []
        self._counts = []      # compression budget: per position, and the bigram positions
        self._positions = []
        self._has_count_scores = []  # binary tree with counts: per node
        self._initialized = True

    def set_allocate(self, allocate):
        """Accepted for compatibility (memory is Python's)."""

    def get_additional_log_potentials(self):
        return list(self._additional)

    def set_additional_log_potentials(self, additional_log_potentials):
        values = _real_list(additional_log_potentials, "additional_log_potentials")
        if len(values) != len(self._additional):
            raise ValueError(f"additional_log_potentials: expected {len(self._additional)} values, "
                             f"got {len(values)}")
        self._additional = values

    def _check_size(self):
        """Structured factors: the number of bound variables must match the initialization."""

    def _units(self):
        if self._kind == "dense":
            return [s for v in self._links for s in v._states]
        return list(self._links)

    def get_degree(self):
        return len(self._units())

    def get_variable(self, i):
        return self._units()[i]


def _binary_list(graph, variables, name="p_variables"):
    if not isinstance(variables, list):
        raise TypeError(f"{name}: expected a list of PBinaryVariable, got {type(variables).__name__}")
    for v in variables:
        if v is None:
            raise AttributeError(f"{name}: None is not a PBinaryVariable")
        if not isinstance(v, PBinaryVariable):
            raise TypeError(f"{name}: expected PBinaryVariable, got {type(v).__name__}")
        if v._graph is not graph:
            raise ValueError(f"{name}: a variable of another factor graph")
    return variables


def _negated_list(negated, n):
    if negated is None:
        return []
    if not isinstance(negated, list):
        raise TypeError(f"negated: expected a list of bool or None, got {type(negated).__name__}")
    if negated and len(negated) != n:
        raise ValueError("Expected one negated flag per variable, or none at all.")
    return [bool(x) for x in negated]


class PFactorGraph:
    """Factor graph instance: all variables and factors are attached to it (reference API)."""

    def __init__(self):
        self._variables = []   # PBinaryVariable or PMultiVariable, creation order
        self._units: List[PBinaryVariable] = []
        self._factors: List[PFactor] = []
        self._eta, self._adapt, self._max_iter, self._tol = 0.1, True, 1000, 1e-6
        self.last_bound = float("nan")
        self._state = ([], [], [])

    def set_verbosity(self, verbosity):
        pass

    def create_binary_variable(self):
        var = PBinaryVariable(self, len(self._units))
        self._units.append(var)
        self._variables.append(var)
        return var

    def create_multi_variable(self, num_states):
        if isinstance(num_states, bool) or not isinstance(num_states, (int, np.integer)):
            raise TypeError(f"num_states: expected an int, got {num_states!r}")
        if num_states < 1:
            raise ValueError(f"num_states: expected at least 1 state, got {num_states}")
        states = [PBinaryVariable(self, len(self._units) + i) for i in range(int(num_states))]
        self._units.extend(states)
        var = PMultiVariable(self, states)
        self._variables.append(var)
        return var

    def _add(self, factor):
        for unit in factor._units():
            unit._degree += 1
        self._factors.append(factor)
        return factor

    def create_factor_logic(self, factor_type, p_variables, negated=None, owned_by_graph=True):
        if not isinstance(factor_type, str):
            raise TypeError(f"factor_type: expected a str, got {factor_type!r}")
        if factor_type not in _LOGIC:
            raise NotImplementedError("Unknown factor type: {}".format(factor_type))
        variables = _binary_list(self, p_variables)
        flags = _negated_list(negated, len(variables))
        minimum = 1 if factor_type in ("XOR", "OR", "ATMOSTONE") else 2
        if len(variables) < minimum or len(set(map(id, variables))) != len(variables):
            raise ValueError(f"p_variables: {factor_type} needs at least {minimum} distinct variables")
        return self._add(PFactor(_LOGIC[factor_type], list(variables), flags))

    def create_factor_pair(self, p_variables, edge_log_potential, owned_by_graph=True):
        potential = _real(edge_log_potential, "edge_log_potential")
        variables = _binary_list(self, p_variables)
        if len(variables) != 2 or variables[0] is variables[1]:
            raise ValueError("Pair factors require exactly two binary variables.")
        return self._add(PFactor("pair", list(variables), additional=[potential]))

    def create_factor_budget(self, p_variables, budget, negated=None, owned_by_graph=True):
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
            raise TypeError(f"budget: expected an int, got {budget!r}")
        variables = _binary_list(self, p_variables)
        flags = _negated_list(negated, len(variables))
        if budget < 0:
            raise ValueError(f"budget: expected >= 0, got {budget}")
        return self._add(PFactor("budget", list(variables), flags, budget=int(budget)))

    def create_factor_knapsack(self, p_variables, costs, budget, negated=None, owned_by_graph=True):
        if costs is None or np.ndim(costs) != 1 or isinstance(costs, (str, bytes)):
            raise TypeError(f"costs: expected a sequence of numbers, got {costs!r}")
        costs = [_real(c, "costs") for c in costs]
        budget = _real(budget, "budget")
        variables = _binary_list(self, p_variables)
        flags = _negated_list(negated, len(variables))
        if len(costs) != len(variables):
            raise ValueError("Must provide one cost per variable.")
        if any(c < 0 for c in costs) or budget < 0:
            raise ValueError("costs and budget must be >= 0")
        return self._add(PFactor("knapsack", list(variables), flags, budget=budget, costs=costs))

    def create_factor_dense(self, p_multi_variables, additional_log_potentials, owned_by_graph=True):
        if not isinstance(p_multi_variables, list):
            raise TypeError("p_multi_variables: expected a list of PMultiVariable, got "
                            f"{type(p_multi_variables).__name__}")
        for v in p_multi_variables:
            if v is None:
                raise AttributeError("p_multi_variables: None is not a PMultiVariable")
            if not isinstance(v, PMultiVariable):
                raise TypeError(f"p_multi_variables: expected PMultiVariable, got {type(v).__name__}")
            if v._graph is not self:
                raise ValueError("p_multi_variables: a variable of another factor graph")
        if additional_log_potentials is None or isinstance(additional_log_potentials, (str, bytes)):
            raise TypeError("additional_log_potentials: expected a sequence of numbers")
        values = np.asarray(additional_log_potentials, dtype=np.float64).reshape(-1)
        expected = math.prod(len(v._states) for v in p_multi_variables)
        if len(values) != expected:
            raise ValueError("Must provide one log-potential per joint state assignment of all the variables.")
        if not p_multi_variables or len(set(map(id, p_multi_variables))) != len(p_multi_variables):
            raise ValueError("p_multi_variables: expected distinct variables")
        return self._add(PFactor("dense", list(p_multi_variables), additional=values))

    def declare_factor(self, p_factor, p_variables, owned_by_graph=False):
        """Binds a separately created factor (ccnn_decoder.ad3.extensions: PFactorSequence,
        PFactorTree) to binary variables; initialize it before solving."""
        if not isinstance(p_factor, PFactor):
            raise TypeError(f"p_factor: expected a PFactor, got {type(p_factor).__name__}")
        if p_factor._kind not in ("sequence", "tree", "headautomaton", "binarytree", "generaltree",
                                  "sequencecompressor", "compressionbudget", "generaltreecounts",
                                  "binarytreecounts"):
            raise NotImplementedError(f"declare_factor: {type(p_factor).__name__} is not supported by ccnn_decoder.ad3")
        if p_factor._graph is not None:
            raise ValueError("p_factor: this factor is already declared in a factor graph")
        variables = _binary_list(self, p_variables)
        if len(set(map(id, variables))) != len(variables):
            raise ValueError("p_variables: a variable appears twice")
        p_factor._links = list(variables)
        p_factor._graph = self
        p_factor._check_size()
        return self._add(p_factor)

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

    def _inputs(self):
        variables, unit_scores = [], []
        for var in self._variables:
            if isinstance(var, PBinaryVariable):
                variables.append(0)
                unit_scores.append(var._log_potential)
            else:
                variables.append(len(var))
                unit_scores.extend(s._log_potential for s in var._states)
        index = {id(v): i for i, v in enumerate(self._variables)}
        factors, extra = [], []
        for f in self._factors:
            if not f._initialized:
                raise ValueError(f"{type(f).__name__}: declared but not initialized (call initialize)")
            links = ([index[id(v)] for v in f._links] if f._kind == "dense"
                     else [u._unit for u in f._links])
            factors.append((f._kind, links, f._negated, f._budget, f._costs, f._num_states, f._num_nodes,
                            f._arcs, f._parents, f._counts, f._positions, f._has_count_scores))
            extra.extend(f._additional)
        return variables, factors, unit_scores, extra

    def _run(self, method):
        variables, factors, unit_scores, factor_scores = self._inputs()
        raw = _decoder.solve_factor_graph(
            method, variables, factors, np.array(unit_scores, dtype=np.float64).reshape(1, -1),
            np.array(factor_scores, dtype=np.float64), self._max_iter, self._eta, self._adapt, self._tol,
            1e-9, 1e-9, 0, 0.0, 1)
        post, extra = raw[1][0], raw[2][0]
        value, score, bound, status = (x[0] for x in raw[3:7])
        dual, local = raw[8][0], raw[9][0]
        self.last_bound = float(bound)
        posteriors = post.tolist()
        self._state = (dual.tolist(), local.tolist(), posteriors)
        if status == 0 or (status in (2, 3) and score > -np.inf):
            value = score  # certified, or stopped early: the best labelling's score
        return float(value), list(posteriors), extra.tolist(), _STATUS[int(status)]

    def solve_lp_map_ad3(self):
        value, post, extra, status = self._run("ad3")
        return value, post, extra, _STATUS_CODES[status]

    def solve_exact_map_ad3(self):
        value, post, extra, status = self._run("exact")
        return value, post, extra, _STATUS_CODES[status]

    def solve(self, eta=0.1, adapt=True, max_iter=1000, tol=1e-6, ensure_multi_variables=True,
              verbose=False, branch_and_bound=False):
        """Returns (value, posteriors, additional_posteriors, status), status one of "integral",
        "fractional", "infeasible", "unsolved" (see the module docstring)."""
        self.set_eta_ad3(eta)
        self.adapt_eta_ad3(adapt)
        self.set_max_iterations_ad3(max_iter)
        self.set_residual_threshold_ad3(tol)
        return self._run("exact" if branch_and_bound else "ad3")

    def _not_implemented(self, *args, **kwargs):
        raise NotImplementedError("not implemented in ccnn_decoder.ad3 (see its docstring)")

    def get_dual_variables(self):
        """AD3's Lagrange multipliers of the last solve, one per factor link (the declared
        factors' links, then those of the internal one-hot factors of multi-valued variables
        without a dense factor)."""
        return list(self._state[0])

    def get_local_primal_variables(self):
        """The factors' local marginals of the last solve, one per link (as get_dual_variables)."""
        return list(self._state[1])

    def get_global_primal_variables(self):
        """The unit marginals (posteriors) of the last solve."""
        return list(self._state[2])

    set_eta_psdd = set_max_iterations_psdd = solve_lp_map_psdd = _not_implemented
