"""ccnn_decoder.ad3.extensions: the reference's structured factors given by a MAP oracle, declared
with ``PFactorGraph.declare_factor(factor, binary_variables)`` and then ``initialize``d:

``PFactorSequence``  a chain of positions, each a group of binary variables of which exactly one
                     is on (``initialize(num_states)``, the variables position after position);
                     additional log-potentials: the transitions, start (K_0), between consecutive
                     positions (K_{i-1} x K_i, row-major) and end (K_{L-1}), via
                     ``set_additional_log_potentials``. MAP oracle: Viterbi.
``PFactorTree``      one binary variable per arc (head, modifier) over nodes 0..n-1; the arcs on
                     form a spanning tree directed away from the root 0
                     (``initialize(n_nodes, arcs)``, 2 to 4096 nodes: the oracle keeps dense
                     n x n tables). MAP oracle: Chu-Liu-Edmonds.
``PFactorHeadAutomaton``  the arcs from one head to its modifiers on one side, by increasing
                     distance (``initialize(length, siblings)``, length = number of arcs + 1,
                     siblings: one (head, modifier, next modifier) triple per additional
                     log-potential, the head itself standing for "no previous modifier" and the
                     position beyond the last arc for "no next one"). MAP oracle: a dynamic program.

``PFactorBinaryTree`` / ``PFactorGeneralTree``  a tree-structured chain over nodes with
                     ``parents`` (parents[0] < 0): binary nodes, one variable each
                     (``initialize(parents)``), or nodes with num_states[i] states, their state
                     variables node after node (``initialize(parents, num_states)``); additional
                     log-potentials: for each node i >= 1 a K_parent x K_i table (parent's state
                     first). MAP oracle: a dynamic program from the leaves.

``PFactorSequenceCompressor``  a head automaton over positions 1..length-1 (the first
                     length - 1 variables: the words kept) whose last variable is on exactly when
                     some position is (``initialize(length, left_positions, right_positions)``,
                     one (previous, next) pair per additional log-potential, 0 = the start,
                     length = the end; every pair once).

``PFactorCompressionBudget``  a binary chain over `length` positions (the first `length`
                     variables: the words kept) with at most `budget` kept among those whose
                     counts_for_budget flag is set, then one variable per bigram position p
                     (-1..length-1), on exactly when p and p + 1 are both kept (p = -1: the first
                     word, p = length - 1: the last) (``initialize(length, budget,
                     counts_for_budget, bigram_positions)``); additional log-potentials: the
                     chain's transitions (i, previous, state), i = 0..length, without those of the
                     bigram variables, 4 length - len(bigram_positions) values. MAP oracle:
                     Viterbi with a counter.

``PFactorGeneralTreeCounts``  a general tree whose variables are followed by n + 1 count
                     variables: the one of the number of nodes in state 0 is on
                     (``initialize(parents, num_states)``, additional log-potentials as the
                     general tree's). ``PFactorBinaryTreeCounts``  a binary tree counting, for each
                     node flagged in has_count_scores (default: the root), the nodes with value 1
                     flagged in counts_for_budget in its subtree, with one additional
                     log-potential per count 0..subtree size after the edge tables
                     (``initialize(parents, counts_for_budget, has_count_scores=None,
                     max_num_bins=None)``; with max_num_bins = m, counts of m - 1 or more take the
                     score of count m - 1, in the MAP oracle and in the scores alike). MAP oracle of
                     both: a dynamic program over (node, state, count in its subtree).
"""
import numpy as np

from .. import _decoder
from .._arguments import flag_list, int_list
from .factor_graph import PFactor

__all__ = ["PFactorSequence", "PFactorTree", "PFactorHeadAutomaton", "PFactorBinaryTree", "PFactorGeneralTree",
           "PFactorSequenceCompressor", "PFactorCompressionBudget", "PFactorBinaryTreeCounts",
           "PFactorGeneralTreeCounts", "PFactorOracle"]


# The sequence, tree and head automaton (hot in parsers and taggers) are C types
# (csrc/bindings/ad3_compat.cpp).
PFactorSequence = _decoder.PFactorSequence
PFactorTree = _decoder.PFactorTree
PFactorHeadAutomaton = _decoder.PFactorHeadAutomaton

# The solver's limits (csrc/ad3/factor_graph.h): states per node, additional scores per factor.
_MAX_STATES, _MAX_ADDITIONAL = _decoder.MAX_STATES, _decoder.MAX_ADDITIONAL


def _parents_list(parents):
    out = int_list(parents, "parents")
    if not out or out[0] >= 0:
        raise ValueError("parents: expected parents[0] < 0 (node 0 is the root)")
    out[0] = -1
    return out


class PFactorBinaryTree(PFactor):
    """Binary tree-structured factor (reference: ``ad3.extensions.PFactorBinaryTree``)."""

    def __init__(self, allocate=True):
        super().__init__("binarytree")
        self._initialized = False

    def initialize(self, parents):
        self._parents = _parents_list(parents)
        self._num_states = [2] * len(self._parents)
        self._additional = [0.0] * (4 * (len(self._parents) - 1))
        self._initialized = True
        self._check_size()

    def _check_size(self):
        if self._initialized and self._graph is not None and len(self._links) != len(self._parents):
            raise ValueError(f"parents: {len(self._parents)} nodes, but {len(self._links)} variables are bound")


class PFactorGeneralTree(PFactor):
    """Tree-structured factor over multi-state nodes (reference: ``ad3.extensions.PFactorGeneralTree``)."""

    def __init__(self, allocate=True):
        super().__init__("generaltree")
        self._initialized = False

    def initialize(self, parents, num_states):
        parents = _parents_list(parents)
        states = int_list(num_states, "num_states")
        if len(states) != len(parents) or any(not 1 <= k <= _MAX_STATES for k in states):
            raise ValueError("num_states: expected one number of states, 1 to 2^20, per node")
        if any(not 0 <= p < len(parents) for p in parents[1:]):
            raise ValueError("parents: every node but the root needs a parent in [0, n)")
        tables = sum(states[p] * states[i] for i, p in enumerate(parents) if i > 0)
        if tables > _MAX_ADDITIONAL:
            raise ValueError(f"num_states: {tables} edge scores; a factor may have at most 2^31 - 1")
        self._parents, self._num_states = parents, states
        self._additional = [0.0] * tables
        self._initialized = True
        self._check_size()

    def _check_size(self):
        if self._initialized and self._graph is not None and len(self._links) != sum(self._num_states):
            raise ValueError(f"num_states: {sum(self._num_states)} states in all, but {len(self._links)} "
                             "variables are bound")


class PFactorSequenceCompressor(PFactor):
    """Sequence compressor (reference: ``ad3.extensions.PFactorSequenceCompressor``)."""

    def __init__(self, allocate=True):
        super().__init__("sequencecompressor")
        self._initialized = False

    def initialize(self, length, left_positions, right_positions):
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
            raise TypeError(f"length: expected an int, got {length!r}")
        left, right = int_list(left_positions, "left_positions"), int_list(right_positions, "right_positions")
        pairs = list(zip(left, right))
        if len(left) != len(right):
            raise ValueError("left_positions, right_positions: expected the same length")
        if length < 2 or len(pairs) != length * (length + 1) // 2 or len(set(pairs)) != len(pairs) or any(
                not 0 <= m < s <= length for m, s in pairs):
            raise ValueError(f"positions: expected every pair 0 <= left < right <= {length} once (length >= 2)")
        self._length = int(length)
        self._arcs = pairs
        self._additional = [0.0] * len(pairs)
        self._initialized = True
        self._check_size()

    def _check_size(self):
        if self._initialized and self._graph is not None and len(self._links) != self._length:
            raise ValueError(f"length: {self._length} variables expected (positions and the indicator), "
                             f"{len(self._links)} are bound")


class PFactorCompressionBudget(PFactor):
    """Compression budget (reference: ``ad3.extensions.PFactorCompressionBudget``)."""

    def __init__(self, allocate=True):
        super().__init__("compressionbudget")
        self._initialized = False

    def initialize(self, length, budget, counts_for_budget, bigram_positions):
        for name, value in (("length", length), ("budget", budget)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name}: expected an int, got {value!r}")
        counts = flag_list(counts_for_budget, "counts_for_budget")
        positions = int_list(bigram_positions, "bigram_positions")
        if length < 1 or budget < 0:
            raise ValueError(f"length, budget: expected length >= 1 and budget >= 0, got {length} and {budget}")
        if len(counts) != length:
            raise ValueError(f"counts_for_budget: expected one flag per position ({length}), got {len(counts)}")
        if len(set(positions)) != len(positions) or any(not -1 <= p < length for p in positions):
            raise ValueError(f"bigram_positions: expected distinct positions in [-1, {length - 1}]")
        self._num_nodes, self._budget = int(length), min(int(budget), int(length))  # (more constrains nothing)
        self._counts, self._positions = counts, positions
        self._additional = [0.0] * (4 * length - len(positions))
        self._initialized = True
        self._check_size()

    def _check_size(self):
        expected = self._num_nodes + len(self._positions)
        if self._initialized and self._graph is not None and len(self._links) != expected:
            raise ValueError(f"length, bigram_positions: {expected} variables expected (positions, then bigrams), "
                             f"{len(self._links)} are bound")


def _subtree_sizes(parents):
    children = [[] for _ in parents]
    for i, p in enumerate(parents[1:], start=1):
        children[p].append(i)
    order = [0]
    for node in order:
        order.extend(children[node])
    sizes = [1] * len(parents)
    for node in reversed(order[1:]):
        sizes[parents[node]] += sizes[node]
    return sizes


def _flags(values, name, count):
    flags = flag_list(values, name)
    if len(flags) != count:
        raise ValueError(f"{name}: expected one flag per node ({count}), got {len(flags)}")
    return flags


class PFactorBinaryTreeCounts(PFactorBinaryTree):
    """Binary tree with counts (reference: ``ad3.extensions.PFactorBinaryTreeCounts``)."""

    def __init__(self, allocate=True):
        super().__init__(allocate)
        self._kind = "binarytreecounts"

    def initialize(self, parents, counts_for_budget, has_count_scores=None, max_num_bins=None):
        parents = _parents_list(parents)
        n = len(parents)
        if any(not 0 <= p < n for p in parents[1:]):
            raise ValueError("parents: every node but the root needs a parent in [0, n)")
        counts = _flags(counts_for_budget, "counts_for_budget", n)
        scored = [i == 0 for i in range(n)] if has_count_scores is None else _flags(
            has_count_scores, "has_count_scores", n)
        bad_bins = isinstance(max_num_bins, bool) or not isinstance(max_num_bins, (int, np.integer)) or max_num_bins < 1
        if max_num_bins is not None and bad_bins:
            raise ValueError(f"max_num_bins: expected None or an int >= 1, got {max_num_bins!r}")
        # (the solver's spec carries it in the budget slot; n + 1 bins or more merge no count)
        self._budget = 0 if max_num_bins is None else min(int(max_num_bins), n + 1)
        sizes = _subtree_sizes(parents)
        self._parents, self._num_states, self._counts, self._has_count_scores = parents, [2] * n, counts, scored
        self._additional = [0.0] * (4 * (n - 1) + sum(sizes[i] + 1 for i in range(n) if scored[i]))
        self._initialized = True
        self._check_size()


class PFactorGeneralTreeCounts(PFactorGeneralTree):
    """General tree with counts (reference: ``ad3.extensions.PFactorGeneralTreeCounts``): the bound
    variables are the nodes' states, then one per count 0..n of the nodes in state 0."""

    def __init__(self, allocate=True):
        super().__init__(allocate)
        self._kind = "generaltreecounts"

    def initialize(self, parents, num_states):
        super().initialize(parents, num_states)
        self._counts = [True] * len(self._parents)

    def _check_size(self):
        expected = sum(self._num_states) + len(self._parents) + 1
        if self._initialized and self._graph is not None and len(self._links) != expected:
            raise ValueError(f"num_states: {expected} variables expected (the nodes' states, then n + 1 counts), "
                             f"{len(self._links)} are bound")


class PFactorOracle(PFactor):
    """A factor given by your own MAP oracle: ccnn's extension of the reference API (whose Python
    package takes no factor written in Python; its C++ GenericFactor subclasses are the same
    idea). Declared over binary variables (or states of multi-valued ones) with
    ``declare_factor``, then ``initialize(maximize, evaluate, num_additional=0)`` and, with
    additional scores, ``set_additional_log_potentials``. maximize(s, a) -> (on, extras) and
    evaluate(y) -> extras or None are those of ``ccnn_decoder.FactorGraph.add_oracle``: indices
    into the declared variables and into the additional scores."""

    def __init__(self, allocate=True):
        super().__init__("oracle")
        self._initialized = False

    def initialize(self, maximize, evaluate, num_additional=0):
        if not callable(maximize) or not callable(evaluate):
            raise TypeError(f"maximize, evaluate: expected two callables, got {maximize!r} and {evaluate!r}")
        if isinstance(num_additional, bool) or not isinstance(num_additional, (int, np.integer)):
            raise TypeError(f"num_additional: expected an int, got {num_additional!r}")
        if not 0 <= num_additional <= _MAX_ADDITIONAL:
            raise ValueError(f"num_additional: expected 0 to 2^31 - 1, got {num_additional}")
        self._oracle = (maximize, evaluate)
        self._additional = [0.0] * int(num_additional)
        self._initialized = True

    def _spec(self):
        spec = super()._spec()  # (code, links, negated, budget, ...): the budget slot carries m
        return spec[:3] + (len(self._additional),) + spec[4:] + (self._oracle,)
