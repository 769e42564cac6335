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


# The solver's factor type codes (csrc/ad3/factor_graph.h, FactorType).
_CODES = {name: code for code, name in enumerate(
    ("dense", "xor", "atmostone", "or", "xorout", "orout", "andout", "imply", "budget", "knapsack", "pair",
     "sequence", "tree", "headautomaton", "binarytree", "generaltree", "sequencecompressor",
     "compressionbudget", "generaltreecounts", "binarytreecounts"))}
_LOGIC_CODES = {name: _CODES[kind] for name, kind in _LOGIC.items()}
_NO_SCORES = ()
_F64 = np.dtype(np.float64)
_NP_FLOAT = np.float64


def _is_f64(values):
    """values is a float64 ndarray (the dtype compared by identity first: the common case)."""
    return type(values) is np.ndarray and (values.dtype is _F64 or values.dtype == _F64)


def _real(value, name):
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a real number, got {value!r}") from None


def _real_list(values, name):
    """A flat list of floats (a list of floats or a 1-d float64 array without numpy's general path)."""
    if _is_f64(values) and values.ndim == 1:
        return values.tolist()
    if type(values) is list and all(type(v) is float for v in values):
        return values[:]
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
    the value 1. Its log-potential lives in its graph (one float per unit)."""

    __slots__ = ("_graph", "_unit", "_own")

    def __init__(self, graph=None, unit=-1):
        self._graph = graph
        self._unit = unit
        self._own = 0.0  # (without a graph)

    def get_log_potential(self):
        graph = self._graph
        return self._own if graph is None else graph._scores[self._unit]

    def set_log_potential(self, log_potential):
        t = type(log_potential)
        if t is not float:
            log_potential = float(log_potential) if t is _NP_FLOAT else _real(log_potential, "log_potential")
        try:
            self._graph._scores[self._unit] = log_potential
        except AttributeError:  # (without a graph)
            if self._graph is not None:
                raise
            self._own = log_potential

    def get_id(self):
        return self._unit

    def get_degree(self):
        return 0 if self._graph is None else self._graph._unit_degree(self._unit)


def _check_state(i, k):
    if type(i) is not int and (isinstance(i, bool) or not isinstance(i, (int, np.integer))):
        raise TypeError(f"state: expected an int, got {i!r}")
    if not 0 <= i < k:
        raise IndexError("State {:d} is out of bounds.".format(i))


class PMultiVariable:
    """A multi-valued variable: K states, exactly one of which is on; its states are the units
    begin .. begin + K - 1 of its graph."""

    __slots__ = ("_graph", "_begin", "_k", "_index", "_states")

    def __init__(self, graph=None, begin=0, num_states=0, index=-1):
        self._graph = graph
        self._begin = begin
        self._k = num_states
        self._index = index     # the variable's index in its graph
        self._states = None     # PBinaryVariable per state, made on demand

    def __len__(self):
        return self._k

    def get_state(self, i, validate=True):
        k = self._k
        if type(i) is not int or not 0 <= i < k:
            _check_state(i, k)
        states = self._states
        if states is None:
            states = self._states = [None] * k
        state = states[i]
        if state is None:
            state = states[i] = PBinaryVariable(self._graph, self._begin + int(i))
        return state

    def __getitem__(self, i):
        return self.get_log_potential(i)

    def __setitem__(self, i, log_potential):
        self.set_log_potential(i, log_potential)

    def get_log_potential(self, i):
        _check_state(i, self._k)
        return self._graph._scores[self._begin + int(i)]

    def set_log_potential(self, i, log_potential):
        _check_state(i, self._k)
        self.get_state(i).set_log_potential(log_potential)

    def set_log_potentials(self, log_potentials, validate=True):
        if _is_f64(log_potentials) and log_potentials.ndim == 1:
            values = log_potentials.tolist()
        else:
            values = np.asarray(log_potentials, dtype=np.float64).reshape(-1).tolist()
        if len(values) != self._k:
            raise IndexError("Expected buffer of length {}".format(self._k))
        self._graph._scores[self._begin:self._begin + self._k] = values

    def get_num_states(self):
        return self._k

    def _units(self):
        return range(self._begin, self._begin + self._k)


class PFactor:
    """A factor of a :class:`PFactorGraph`."""

    # defaults (structured factors, extensions, set their own)
    _negated = ()
    _budget = 0
    _costs = ()
    _num_states = ()   # per position / node
    _num_nodes = 0
    _arcs = ()
    _parents = ()
    _counts = ()       # compression budget: per position
    _positions = ()    # compression budget: the bigram positions
    _has_count_scores = ()  # binary tree with counts: per node
    _link_units = None  # the units of the links, once bound to a graph
    _graph = None
    _initialized = True

    def __init__(self, kind=None, links=(), negated=(), budget=0, costs=(), additional=()):
        self._kind = kind
        self._links = list(links)      # PBinaryVariable (units) or, for dense, PMultiVariable
        self._negated = list(negated)
        self._budget = budget
        self._costs = list(costs)
        self._additional = _real_list(list(additional), "additional") if len(additional) else []

    def set_allocate(self, allocate):
        """Accepted for compatibility (memory is Python's)."""

    def get_additional_log_potentials(self):
        additional = self._additional
        return additional.tolist() if type(additional) is np.ndarray else list(additional)

    def set_additional_log_potentials(self, additional_log_potentials):
        values = additional_log_potentials
        if self._link_units is not None and _is_f64(values) and values.ndim == 1:
            # A declared factor (the graph reads its scores at solve time): a copy of the array
            # (the solver reads float64 arrays directly, no list of floats needed).
            if len(values) != len(self._additional):
                raise ValueError(f"additional_log_potentials: expected {len(self._additional)} values, "
                                 f"got {len(values)}")
            self._additional = values.copy()
            return
        values = _real_list(values, "additional_log_potentials")
        if len(values) != len(self._additional):
            raise ValueError(f"additional_log_potentials: expected {len(self._additional)} values, "
                             f"got {len(values)}")
        if values:
            self._additional[:] = values  # (in place: a created factor's list is held by the graph)

    def _check_size(self):
        """Structured factors: the number of bound variables must match the initialization."""

    def _units(self):
        if self._kind == "dense":
            return [v.get_state(i) for v in self._links for i in range(len(v))]
        return list(self._links)

    def _spec(self):
        """The solver's (type, links, negated, budget, costs, num_states, num_nodes, arcs, parents,
        counts_for_budget, bigram_positions, has_count_scores) tuple of a declared factor."""
        return (_CODES[self._kind], self._link_units, self._negated, self._budget, self._costs, self._num_states,
                self._num_nodes, self._arcs, self._parents, self._counts, self._positions, self._has_count_scores)

    def get_degree(self):
        return len(self._units())

    def get_variable(self, i):
        return self._units()[i]


def _new_factor(graph, kind, links, additional=_NO_SCORES):
    """A factor made by a create_* method (without PFactor.__init__'s conversions)."""
    factor = PFactor.__new__(PFactor)
    factor._kind = kind
    factor._links = links
    factor._graph = graph
    factor._additional = additional
    return factor


def _bad_variable(v, name, graph, expected=None):
    expected = expected or PBinaryVariable
    if v is None:
        raise AttributeError(f"{name}: None is not a {expected.__name__}")
    if not isinstance(v, expected):
        raise TypeError(f"{name}: expected {expected.__name__}, got {type(v).__name__}")
    if v._graph is not graph:
        raise ValueError(f"{name}: a variable of another factor graph")


def _units_of(graph, variables, name="p_variables"):
    """The units of a list of PBinaryVariable of `graph` (TypeError, AttributeError or ValueError
    as the reference)."""
    if type(variables) is not list and not isinstance(variables, list):
        raise TypeError(f"{name}: expected a list of PBinaryVariable, got {type(variables).__name__}")
    units = []
    for v in variables:
        if type(v) is not PBinaryVariable or v._graph is not graph:
            _bad_variable(v, name, graph)
        units.append(v._unit)
    return units


def _negated_list(negated, n):
    if negated is None:
        return None
    if not isinstance(negated, list):
        raise TypeError(f"negated: expected a list of bool or None, got {type(negated).__name__}")
    if negated and len(negated) != n:
        raise ValueError("Expected one negated flag per variable, or none at all.")
    return [bool(x) for x in negated] if negated else None


class PFactorGraph:
    """Factor graph instance: all variables and factors are attached to it (reference API)."""

    def __init__(self):
        self._variables = []   # PBinaryVariable or PMultiVariable, creation order
        self._kinds = []       # per variable: 0 (binary) or its number of states
        self._scores = []      # per unit: its log-potential
        self._factors: List[PFactor] = []
        self._specs = []       # per factor: the solver's tuple (declared factors: made at solve time)
        self._extras = []      # per factor: its additional log-potentials (declared: taken at solve time)
        self._declared = []    # indices of the declared factors
        self._eta, self._adapt, self._max_iter, self._tol = 0.1, True, 1000, 1e-6
        self.last_bound = float("nan")
        self._state = ((), (), [])

    def set_verbosity(self, verbosity):
        pass

    def create_binary_variable(self):
        scores = self._scores
        var = PBinaryVariable(self, len(scores))
        scores.append(0.0)
        self._kinds.append(0)
        self._variables.append(var)
        return var

    def create_multi_variable(self, num_states):
        if type(num_states) is not int and (isinstance(num_states, bool) or not isinstance(num_states, (int, np.integer))):
            raise TypeError(f"num_states: expected an int, got {num_states!r}")
        if num_states < 1:
            raise ValueError(f"num_states: expected at least 1 state, got {num_states}")
        k = int(num_states)
        scores, variables = self._scores, self._variables
        var = PMultiVariable(self, len(scores), k, len(variables))
        scores.extend([0.0] * k)
        self._kinds.append(k)
        variables.append(var)
        return var

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

    def create_factor_logic(self, factor_type, p_variables, negated=None, owned_by_graph=True):
        code = _LOGIC_CODES.get(factor_type) if type(factor_type) is str else None
        if code is None:
            if not isinstance(factor_type, str):
                raise TypeError(f"factor_type: expected a str, got {factor_type!r}")
            raise NotImplementedError("Unknown factor type: {}".format(factor_type))
        units = _units_of(self, p_variables)
        flags = None if negated is None else _negated_list(negated, len(units))
        if len(units) < (1 if code < 4 else 2) or len(set(units)) != len(units):  # (xor, atmostone, or: 1)
            raise ValueError(f"p_variables: {factor_type} needs at least {1 if code < 4 else 2} distinct variables")
        factor = PFactor.__new__(PFactor)
        factor._kind, factor._links, factor._graph, factor._additional = (
            _LOGIC[factor_type], p_variables[:], self, _NO_SCORES)
        if flags:
            factor._negated = flags
        self._factors.append(factor)
        self._specs.append((code, units, flags))
        self._extras.append(_NO_SCORES)
        return factor

    def create_factor_pair(self, p_variables, edge_log_potential, owned_by_graph=True):
        t = type(edge_log_potential)
        potential = edge_log_potential if t is float else float(edge_log_potential) if t is _NP_FLOAT else _real(
            edge_log_potential, "edge_log_potential")
        if type(p_variables) is list and len(p_variables) == 2:  # (the common case, inline)
            a, b = p_variables
            if type(a) is PBinaryVariable and type(b) is PBinaryVariable and a._graph is self and b._graph is self:
                units = [a._unit, b._unit]
            else:
                units = _units_of(self, p_variables)
        else:
            units = _units_of(self, p_variables)
        if len(units) != 2 or units[0] == units[1]:
            raise ValueError("Pair factors require exactly two binary variables.")
        additional = [potential]
        factor = PFactor.__new__(PFactor)
        factor._kind, factor._links, factor._graph, factor._additional = "pair", p_variables[:], self, additional
        self._factors.append(factor)
        self._specs.append((10, units))
        self._extras.append(additional)
        return factor

    def create_factor_budget(self, p_variables, budget, negated=None, owned_by_graph=True):
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
            raise TypeError(f"budget: expected an int, got {budget!r}")
        units = _units_of(self, p_variables)
        flags = _negated_list(negated, len(units))
        if budget < 0:
            raise ValueError(f"budget: expected >= 0, got {budget}")
        factor = _new_factor(self, "budget", p_variables[:])
        factor._negated, factor._budget = flags or [], int(budget)
        return self._add(factor, (_CODES["budget"], units, flags, int(budget)))

    def create_factor_knapsack(self, p_variables, costs, budget, negated=None, owned_by_graph=True):
        if costs is None or np.ndim(costs) != 1 or isinstance(costs, (str, bytes)):
            raise TypeError(f"costs: expected a sequence of numbers, got {costs!r}")
        costs = [_real(c, "costs") for c in costs]
        budget = _real(budget, "budget")
        units = _units_of(self, p_variables)
        flags = _negated_list(negated, len(units))
        if len(costs) != len(units):
            raise ValueError("Must provide one cost per variable.")
        if any(c < 0 for c in costs) or budget < 0:
            raise ValueError("costs and budget must be >= 0")
        factor = _new_factor(self, "knapsack", p_variables[:])
        factor._negated, factor._budget, factor._costs = flags or [], budget, costs
        return self._add(factor, (_CODES["knapsack"], units, flags, budget, costs))

    def create_factor_dense(self, p_multi_variables, additional_log_potentials, owned_by_graph=True):
        if type(p_multi_variables) is not list and not isinstance(p_multi_variables, list):
            raise TypeError("p_multi_variables: expected a list of PMultiVariable, got "
                            f"{type(p_multi_variables).__name__}")
        indices = []
        expected = 1
        for v in p_multi_variables:
            if type(v) is not PMultiVariable or v._graph is not self:
                _bad_variable(v, "p_multi_variables", self, PMultiVariable)
            indices.append(v._index)
            expected *= v._k
        values = additional_log_potentials
        if _is_f64(values):
            values = values.ravel().tolist()
        else:
            if values is None or isinstance(values, (str, bytes)):
                raise TypeError("additional_log_potentials: expected a sequence of numbers")
            values = np.asarray(values, dtype=np.float64).reshape(-1).tolist()
        if len(values) != expected:
            raise ValueError("Must provide one log-potential per joint state assignment of all the variables.")
        if not indices or len(set(indices)) != len(indices):
            raise ValueError("p_multi_variables: expected distinct variables")
        return self._add(_new_factor(self, "dense", p_multi_variables[:], values), (0, indices), values)

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
        units = _units_of(self, p_variables)
        if len(set(units)) != len(units):
            raise ValueError("p_variables: a variable appears twice")
        p_factor._links = p_variables[:]
        p_factor._link_units = units
        p_factor._graph = self
        p_factor._check_size()
        self._declared.append(len(self._factors))
        return self._add(p_factor, None)

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

    def _run(self, method):
        if self._declared:
            self._complete()
        value, score, bound, status, _, posteriors, extra, dual, local = _decoder.solve_general_graph(
            method, self._kinds, self._specs, self._scores, self._extras, self._max_iter, self._eta, self._adapt,
            self._tol, 1e-9, 1e-9)
        self.last_bound = bound
        self._state = (dual, local, posteriors[:])
        if status == 0 or (status in (2, 3) and score > -math.inf):
            value = score  # certified, or stopped early: the best labelling's score
        return value, posteriors, extra, _STATUS[status]

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
        self._eta = eta if type(eta) is float else _real(eta, "eta")
        self._adapt = bool(adapt)
        self._max_iter = max_iter
        self._tol = tol if type(tol) is float else _real(tol, "threshold")
        return self._run("exact" if branch_and_bound else "ad3")

    def _not_implemented(self, *args, **kwargs):
        raise NotImplementedError("not implemented in ccnn_decoder.ad3 (see its docstring)")

    def get_dual_variables(self):
        """AD3's Lagrange multipliers of the last solve, one per factor link (the declared
        factors' links, then those of the internal one-hot factors of multi-valued variables
        without a dense factor)."""
        return list(np.asarray(self._state[0], dtype=np.float64).tolist())

    def get_local_primal_variables(self):
        """The factors' local marginals of the last solve, one per link (as get_dual_variables)."""
        return list(np.asarray(self._state[1], dtype=np.float64).tolist())

    def get_global_primal_variables(self):
        """The unit marginals (posteriors) of the last solve."""
        return list(self._state[2])

    set_eta_psdd = set_max_iterations_psdd = solve_lp_map_psdd = _not_implemented
