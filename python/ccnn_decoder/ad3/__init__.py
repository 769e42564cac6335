"""Compatibility layer for code written against the reference AD3 package (PyPI ``ad3`` 2.2.1).

Replace ``from ad3 import factor_graph as fg`` by ``from ccnn_decoder.ad3 import factor_graph as fg``,
``from ad3.extensions import ...`` by ``from ccnn_decoder.ad3.extensions import ...`` (or ``import ad3``
by ``import ccnn_decoder.ad3 as ad3``); the names, arguments and return conventions below are the
reference's. The solvers are ccnn's (``csrc/ad3``, see
docs/decoder.md, "General factor graphs").

Implemented: ``PFactorGraph`` with ``create_binary_variable``, ``create_multi_variable``,
``create_factor_logic`` (XOR, XOROUT, ATMOSTONE, OR, OROUT, ANDOUT, IMPLY, with ``negated``;
XOROUT as the reference builds it: an XOR whose last literal is negated, so the output is true
exactly when one input is and two true inputs are forbidden),
``create_factor_pair``, ``create_factor_budget``, ``create_factor_knapsack``,
``create_factor_dense``, ``fix_multi_variables_without_factors``, ``solve``, the AD3 setters
(``set_eta_ad3``, ``adapt_eta_ad3``, ``set_max_iterations_ad3``, ``set_residual_threshold_ad3``),
``solve_lp_map_ad3``, ``solve_exact_map_ad3``, the PSDD solver (``set_eta_psdd``,
``set_max_iterations_psdd``, ``solve_lp_map_psdd``); variables (``PBinaryVariable``, ``PMultiVariable``)
with ``get/set_log_potential(s)``, ``get_degree``, ``get_id``, ``get_state``, item access;
``simple_grid``, ``general_graph`` and ``general_constrained_graph``; ``declare_factor`` with ``extensions.PFactorSequence``
(Viterbi), ``extensions.PFactorTree`` (dependency tree, Chu-Liu-Edmonds),
``extensions.PFactorHeadAutomaton``, ``extensions.PFactorBinaryTree``,
``extensions.PFactorGeneralTree``, ``extensions.PFactorSequenceCompressor``,
``extensions.PFactorCompressionBudget``, ``extensions.PFactorGeneralTreeCounts`` and
``extensions.PFactorBinaryTreeCounts``; beyond the reference, ``extensions.PFactorOracle``: a factor
given by your own MAP oracle in Python.

Deliberate differences (docs/decoder.md lists them too):
  * Multi-valued variables are always one-hot: the one-of-K constraint is enforced for every
    multi-valued variable, whether or not a dense factor covers it, so
    ``fix_multi_variables_without_factors`` and ``ensure_multi_variables`` change nothing
    (the reference leaves a multi-valued variable without factors unconstrained unless asked).
  * ``solve(branch_and_bound=True)`` is ccnn's certified branch-and-bound: "integral" means
    certified optimal (no depth limit; the reference may answer "unsolved"), "infeasible" that
    no labelling satisfies the hard factors.
  * ``value``: "integral": the MAP score; "fractional": the objective at the returned
    (fractional) posteriors, the LP value up to the tolerance; "unsolved": the score of the best
    labelling found (a lower bound on the MAP; the reference reports an internal quantity there,
    also below the MAP in its tests), the posteriors being those of the AD3 iterate whose rounding
    is that labelling. The valid upper bound is ``PFactorGraph.last_bound``.
  * ``verbose`` (and ``set_verbosity``) above 1 prints one line per solve (status, iterations or
    search nodes, value, bound), not the reference's per-iteration trace; ``owned_by_graph`` is
    accepted and ignored (memory is Python's).
  * ``PFactorBinaryTreeCounts.initialize(..., max_num_bins=m)``: counts of m - 1 or more take the
    score of count m - 1 everywhere (the reference's oracle and its scoring of configurations
    disagree there, and its wrapper ignores max_num_bins without has_count_scores).
  * ``solve_lp_map_psdd``: ``value`` as ``solve``'s (the MAP score when certified, else the best
    labelling's score), the posteriors and additional posteriors of the iterate whose rounding is
    that labelling (the reference: posteriors of its best dual iterate, additional posteriors of
    its last); the bound is ``PFactorGraph.last_bound``.
  * ``general_constrained_graph``: a last literal of node type 0 is used (the reference ignores it).
  * A budget of a factor's size or more (and ``max_num_bins`` past n + 1) constrains nothing and is
    accepted at any size (the reference's C ints refuse one past 2^31 - 1).
  * ``get_dual_variables`` / ``get_local_primal_variables``: ccnn's multipliers are in score units
    (the reference's scaling may differ); empty after an exhaustive solve.
"""
from . import extensions, factor_graph, simple_constrained_inference, simple_inference
from .factor_graph import PBinaryVariable, PFactor, PFactorGraph, PMultiVariable
from .simple_constrained_inference import general_constrained_graph
from .simple_inference import general_graph, simple_grid

__all__ = ["PBinaryVariable", "PMultiVariable", "PFactor", "PFactorGraph", "simple_grid", "general_graph",
           "general_constrained_graph", "factor_graph", "extensions", "simple_inference",
           "simple_constrained_inference"]
