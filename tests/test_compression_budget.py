"""The compression budget factor (the reference's FactorCompressionBudget) through
ccnn_decoder.FactorGraph and the compatibility module, against an independent brute force over
the kept positions; and the counts tree variants, which say they are not implemented."""
import itertools

import numpy as np
import pytest

from ccnn_decoder import FactorGraph
from ccnn_decoder.ad3 import PFactorGraph
from ccnn_decoder.ad3.extensions import (PFactorBinaryTreeCounts, PFactorCompressionBudget,
                                         PFactorGeneralTreeCounts)


def transition_index(length, bigrams):
    """(i, previous, state) -> index into the transition scores, None for a bigram's transition."""
    index, out = 0, {}
    for i in range(length + 1):
        for j in range(2 if i > 0 else 1):
            for k in range(2 if i < length else 1):
                is_bigram = (i - 1) in bigrams and j == (1 if i > 0 else 0) and k == (1 if i < length else 0)
                out[(i, j, k)] = None if is_bigram else index
                index += not is_bigram
    return out


def brute_force(length, budget, counts, bigrams, node_scores, bigram_scores, transitions, allowed=None):
    """max over kept subsets within the budget (and `allowed`), and the best kept tuple."""
    index = transition_index(length, bigrams)
    best, best_kept = -np.inf, None
    for kept in itertools.product((0, 1), repeat=length):
        if sum(k for k, c in zip(kept, counts) if c) > budget or (allowed and not allowed(kept)):
            continue
        states = (0,) + kept + (0,)  # start and end have the one state 0
        total = float(np.dot(node_scores, kept))
        for i in range(length + 1):
            t = index[(i, states[i], states[i + 1])]
            total += transitions[t] if t is not None else bigram_scores[bigrams.index(i - 1)]
        if total > best:
            best, best_kept = total, kept
    return best, best_kept


CASES = [(1, 0, [1], []), (3, 1, [1, 0, 1], [0]), (4, 2, [1, 1, 1, 1], [-1, 1, 3]), (5, 2, [1, 0, 1, 1, 1], [2, 0]),
         (5, 5, [1] * 5, [-1, 0, 1, 2, 3, 4])]


@pytest.mark.parametrize("length, budget, counts, bigrams", CASES)
def test_compat_factor_against_brute_force(length, budget, counts, bigrams):
    rng = np.random.default_rng(length * 10 + budget)
    for _ in range(5):
        node_scores, bigram_scores = rng.normal(size=length), rng.normal(size=len(bigrams))
        transitions = rng.normal(size=4 * length - len(bigrams))
        g = PFactorGraph()
        variables = [g.create_binary_variable() for _ in range(length + len(bigrams))]
        for v, s in zip(variables, list(node_scores) + list(bigram_scores)):
            v.set_log_potential(s)
        factor = PFactorCompressionBudget()
        g.declare_factor(factor, variables)
        factor.initialize(length, budget, counts, bigrams)
        factor.set_additional_log_potentials(list(transitions))
        best, kept = brute_force(length, budget, counts, bigrams, node_scores, bigram_scores, transitions)
        value, posteriors, additional, status = g.solve(branch_and_bound=True)
        assert status == "integral" and value == pytest.approx(best, abs=1e-9)
        states = (1,) + tuple(int(round(p)) for p in posteriors[:length]) + (1,)
        assert tuple(states[1:-1]) == kept
        assert posteriors[length:] == [float(states[p + 1] and states[p + 2]) for p in bigrams]
        assert len(additional) == len(transitions) and sum(additional) == length + 1 - sum(posteriors[length:])
        ad3_value, _, _, ad3_status = g.solve()
        assert g.last_bound >= best - 1e-9  # AD3's bound is valid
        if ad3_status == "integral":
            assert ad3_value == pytest.approx(best, abs=1e-9)


def test_factor_graph_method_with_other_factors():
    """FactorGraph.add_compression_budget beside an OR factor: exact and exhaustive search agree
    with the brute force restricted by the OR."""
    rng = np.random.default_rng(3)
    length, budget, counts, bigrams = 4, 2, [1, 1, 0, 1], [0, 2]
    for _ in range(5):
        node_scores, bigram_scores = rng.normal(size=length), rng.normal(size=len(bigrams))
        transitions = rng.normal(size=4 * length - len(bigrams))
        g = FactorGraph()
        words = [g.add_binary_variable(s) for s in node_scores]
        pairs = [g.add_binary_variable(s) for s in bigram_scores]
        g.add_compression_budget(words, budget, transitions, counts, list(zip(bigrams, pairs)))
        g.add_logic("or", [words[0], words[3]])
        best, kept = brute_force(length, budget, counts, bigrams, node_scores, bigram_scores, transitions,
                                 allowed=lambda kept: kept[0] or kept[3])
        exact, exhaustive = g.solve_exact(), g.solve_exhaustive()
        assert exact.status == "optimal" and exact.score == pytest.approx(best, abs=1e-9)
        assert exhaustive.score == pytest.approx(best, abs=1e-9)
        assert tuple(exact.labels[:length]) == kept
        assert g.solve_ad3().bound >= best - 1e-9


def test_argument_errors():
    g = PFactorGraph()
    variables = [g.create_binary_variable() for _ in range(3)]
    factor = PFactorCompressionBudget()
    g.declare_factor(factor, variables)
    with pytest.raises(ValueError, match="counts_for_budget"):
        factor.initialize(3, 1, [1, 1], [])
    with pytest.raises(ValueError, match="bigram_positions"):
        factor.initialize(2, 1, [1, 1], [2])
    with pytest.raises(ValueError, match="budget"):
        factor.initialize(3, -1, [1, 1, 1], [])
    with pytest.raises(ValueError, match="variables"):
        factor.initialize(3, 1, [1, 1, 1], [0])  # 4 variables expected, 3 bound
    with pytest.raises(TypeError, match="length"):
        factor.initialize("3", 1, [1, 1, 1], [])
    fg = FactorGraph()
    words = [fg.add_binary_variable() for _ in range(2)]
    with pytest.raises(ValueError, match="transitions"):
        fg.add_compression_budget(words, 1, np.zeros(7))
    with pytest.raises(ValueError, match="positive literals"):
        fg.add_compression_budget([(words[0], 0), words[1]], 1, np.zeros(8))


@pytest.mark.parametrize("factor_class", [PFactorBinaryTreeCounts, PFactorGeneralTreeCounts])
def test_counts_tree_variants_say_not_implemented(factor_class):
    g = PFactorGraph()
    variables = [g.create_binary_variable() for _ in range(2)]
    with pytest.raises(NotImplementedError):
        g.declare_factor(factor_class(), variables)
    with pytest.raises(NotImplementedError):
        factor_class().initialize([-1, 0], [True, True])
