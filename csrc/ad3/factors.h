// Internal to csrc/ad3: the local solvers of the general factor graph's factors (factor_graph.h).
// One object per factor per solver; it may keep state between calls (the active set).
//
// A factor has n links (binary units) and m additional scores. Its marginal polytope M is the
// convex hull of its allowed configurations (y in {0,1}^n, plus the one-hot indicator of the
// configuration's additional score, if any); the knapsack factor uses its LP relaxation.
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "ad3/factor_graph.h"

namespace ccnn {
namespace ad3 {
namespace detail {

class LocalFactor {
 public:
  LocalFactor(int degree, int num_additional) : degree_(degree), num_additional_(num_additional) {}
  virtual ~LocalFactor() = default;
  int degree() const { return degree_; }
  int num_additional() const { return num_additional_; }

  // max over (y, u) in M of s . y + a . u: writes the maximiser (y: n values, u: m values) and
  // returns its value. Used for the dual bound and the branch-and-bound.
  virtual double map(const double* s, const double* a, double* y, double* u) = 0;
  // The same maximum restricted to configurations with y_i = clamp[i] where clamp[i] >= 0
  // (-1: free); -inf when there is none. The default adds a penalty larger than the range of the
  // scores to every clamped link's wrong value (exact for polytopes with 0/1 vertices).
  virtual double map_clamped(const double* s, const double* a, const signed char* clamp, double* y, double* u);
  // The exact solution of  min 1/2 ||q - x||^2 - a . u  over (q, u) in M  (AD3's local problem);
  // an iterative solver under a step budget (limit_qp_steps) may return an earlier iterate.
  virtual void solve_qp(const double* x, const double* a, double* q, double* u) = 0;
  // Iterative local solvers (the active-set factors): at most `steps` steps per solve_qp, each
  // solve warm-started from the last one (0: solved exactly, the default); AD3 sets this.
  virtual void limit_qp_steps(int steps) { (void)steps; }
  // Whether the last solve_qp reached its exact solution.
  virtual bool last_qp_exact() const { return true; }
  // Whether solve_qp accepts u == nullptr, leaving the additional posteriors of its solution to
  // additional_posteriors() (the active-set factors: AD3 asks for them only for the iterates it
  // keeps).
  virtual bool defers_additional() const { return false; }
  // The additional posteriors of the last solve_qp (num_additional() values), for the factors
  // that defer them.
  virtual void additional_posteriors(double* u) { (void)u; }
  // Whether the 0/1 configuration y is allowed; if so writes its additional posteriors u (one-hot
  // or zero) and returns its additional score a . u, else returns -inf.
  virtual double evaluate(const int* y, const double* a, double* u) const = 0;

 private:
  int degree_, num_additional_;
  std::vector<double> clamped_scores_;
};

// The local solver of factor f of graph (for dense factors, links are the units of its
// variables, variable after variable).
std::unique_ptr<LocalFactor> make_local_factor(const FactorGraph& graph, const FactorSpec& spec);
// An XOR (one-hot) over n units, for multi-valued variables without a dense factor.
std::unique_ptr<LocalFactor> make_one_hot_factor(int n);

// Appends the units of a factor's links to out, in link order.
void append_factor_units(const FactorGraph& graph, const FactorSpec& spec, std::vector<int>& out);

// q_i = clip(x_i - tau * w_i, 0, 1) with tau chosen so that sum_i w_i q_i = target (w_i >= 0;
// target within [0, sum w]); sort-based, O(n log n).
void project_box_hyperplane(const double* x, const double* w, int n, double target, double* q);

// Factories of the families (factors_logic.cpp, factors_dense.cpp, factors_structured.cpp).
std::unique_ptr<LocalFactor> make_logic_factor(const FactorSpec& spec);
// Two variables: a specialised solver (configurations as state pairs) unless `generic`.
std::unique_ptr<LocalFactor> make_dense_factor(const std::vector<int>& num_states, bool generic = false);
std::unique_ptr<LocalFactor> make_pair_factor();
std::unique_ptr<LocalFactor> make_xor_out_factor(int n);
std::unique_ptr<LocalFactor> make_sequence_factor(const std::vector<int>& num_states);
std::unique_ptr<LocalFactor> make_tree_factor(int num_nodes, const std::vector<std::array<int, 2>>& arcs);
// Tree-structured chain over nodes with parents (parents[0] = -1); binary: one unit per node.
std::unique_ptr<LocalFactor> make_tree_chain_factor(const std::vector<int>& parents,
                                                    const std::vector<int>& num_states, bool binary);
// with_indicator: one more link after the positions, 1 exactly when some position is chosen
// (the sequence compressor).
std::unique_ptr<LocalFactor> make_head_automaton_factor(int num_positions,
                                                       const std::vector<std::array<int, 2>>& siblings,
                                                       bool with_indicator = false);
// Compression budget (factor_graph.h, kCompressionBudget): links = `length` positions, then the
// bigram links of bigram_positions.
std::unique_ptr<LocalFactor> make_compression_budget_factor(int length, int budget,
                                                           const std::vector<char>& counts_for_budget,
                                                           const std::vector<int>& bigram_positions);
// Tree factors with counts (kGeneralTreeCounts, kBinaryTreeCounts; parents form a tree rooted at
// 0): links = the nodes' units then, general, n + 1 count units; has_count_scores and
// max_num_bins (0: none): binary only.
std::unique_ptr<LocalFactor> make_tree_counts_factor(const std::vector<int>& parents,
                                                    const std::vector<int>& num_states, bool binary,
                                                    const std::vector<char>& counts_for_budget,
                                                    const std::vector<char>& has_count_scores, int max_num_bins);
// A factor given by the caller's MAP oracle (kOracle): spec.oracle over spec.links.
std::unique_ptr<LocalFactor> make_oracle_factor(const FactorSpec& spec);
// Number of nodes in each node's subtree (itself included) of the tree given by parents.
std::vector<std::size_t> subtree_sizes(const std::vector<int>& parents);
// An active-set factor over an explicit list of allowed configurations (0/1 link vectors),
// without additional scores: a reference for the closed-form solvers in the tests.
std::unique_ptr<LocalFactor> make_enumerated_factor(std::vector<std::vector<char>> configurations);
// Wraps `inner` so that link i sees 1 - y_i where negated[i].
std::unique_ptr<LocalFactor> make_negated(std::unique_ptr<LocalFactor> inner, std::vector<char> negated);

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
