// ccnn AD3 decoder, general factor graphs: binary and multi-valued variables, dense factors of any
// arity, the hard-logic, budget, knapsack and pair factors of the reference AD3 (Martins et al.,
// "AD3: Alternating Directions Dual Decomposition for MAP Inference in Graphical Models", JMLR 2015)
// and structured factors given by a MAP oracle (sequence, dependency tree, head automaton,
// tree-structured chains).
// Plain C++17 like ad3.h, beside it: the pairwise Graph keeps its own fast solvers.
//
// The model. As in the reference AD3, everything is built on binary *units* u = 0..U-1:
//   - a binary variable is one unit (its value y_u in {0, 1});
//   - a multi-valued variable with K states is K consecutive units, one per state, exactly one of
//     which is 1 in every labelling (its state). The solvers enforce this one-hot constraint for
//     every multi-valued variable (through its dense factors, or an internal XOR when it has none).
// Factors link to units (all but dense) or to multi-valued variables (dense).
// A labelling y in {0,1}^U scores
//     S(y) = sum_u unit_scores[u] * y_u + sum_f (additional scores of f at y)
// when every factor allows it, and is infeasible (-inf) otherwise. Factor types (n = its links):
//   kDense      over multi-valued variables v_1..v_m: one additional score per joint state, in
//               row-major order (the last variable's state varies fastest), prod_j K_j of them.
//   kXor        exactly one of the n units is 1 (one-hot).
//   kAtMostOne  at most one is 1.
//   kOr         at least one is 1.
//   kXorOut     the last unit is the XOR (parity) of the first n - 1.
//   kOrOut      the last unit is the OR of the first n - 1.
//   kAndOut     the last unit is the AND of the first n - 1.
//   kImply      if the first n - 1 units are all 1, so is the last.
//   kBudget     at most `budget` of the n units are 1.
//   kKnapsack   sum_i costs[i] * y_i <= budget (costs >= 0).
//   kPair       two units; one additional score, added when both are 1.
//   kSequence   a chain of L positions, position i a group of num_states[i] units (links in order,
//               position after position) of which exactly one is 1; additional scores: the
//               transitions, for i = 0..L a (i > 0 ? K_{i-1} : 1) x (i < L ? K_i : 1) row-major
//               table (start, between consecutive positions, end), as the reference's
//               FactorSequence. MAP oracle: Viterbi.
//   kTree       one unit per arc (head, modifier) of a graph over nodes 0..num_nodes-1: the arcs
//               that are 1 form a spanning arborescence rooted at node 0 (a dependency tree).
//               MAP oracle: Chu-Liu-Edmonds maximum spanning arborescence.
//   kHeadAutomaton  the modifiers of one head on one side (a dependency parser's second-order
//               "sibling" part): links = positions 1..L-1 at increasing distance from the head;
//               any subset is allowed; additional scores: one per sibling pair (m, s),
//               0 <= m < s <= L, added when s is the next chosen position after m (m = 0: the
//               head itself, s = L: no further modifier), every such pair given exactly once.
//               MAP oracle: a dynamic program over the positions.
//   kGeneralTree  a tree-structured chain: nodes 0..n-1 with parents[0] = -1 and parents[i] the
//               parent of node i (a tree rooted at 0), node i a group of num_states[i] units (links
//               node after node) of which exactly one is 1; additional scores: for each node
//               i = 1..n-1 in order, a K_parent x K_i row-major table (parent's state first), as
//               the reference's FactorGeneralTree. MAP oracle: dynamic program from the leaves.
//   kBinaryTree   the same over binary nodes, one unit each (state = its value); 2 x 2 tables.
//   kSequenceCompressor  a head automaton over positions 1..L-1 (links 0..L-2) plus a last link
//               that is 1 exactly when some position is chosen, as the reference's
//               FactorSequenceCompressor (sentence compression: the positions kept, bigram
//               scores between consecutive kept ones).
//   kCompressionBudget  a binary chain over L positions (links 0..L-1: position kept or not) with
//               at most `budget` kept among the positions marked in counts_for_budget, then one
//               link per bigram position p in bigram_positions (-1 <= p <= L-1, distinct): 1
//               exactly when p and p + 1 are both kept (p = -1: the start, always "kept"; p = L-1:
//               with the end), as the reference's FactorCompressionBudget. Additional scores: the
//               transitions (i, previous state, state) for i = 0..L (start: 1 previous state,
//               end: 1 state) in that order, without those of the bigram links (their score is
//               the link's unit score): 4 L - bigrams values. MAP oracle: Viterbi over
//               (position, state, count kept).
//   kGeneralTreeCounts  a general tree (kGeneralTree) whose counted nodes (state 0, flagged in
//               counts_for_budget) are counted: links = the nodes' units, then n + 1 count units of
//               which exactly the one of the count is 1, as the reference's FactorGeneralTreeCounts.
//   kBinaryTreeCounts  a binary tree (kBinaryTree) counting its flagged nodes with value 1; after
//               the edge tables, additional scores for each node with has_count_scores: one per
//               count 0..size of its subtree, for the count in its subtree, as the reference's
//               FactorBinaryTreeCounts; with max_num_bins = m > 0, counts of m - 1 or more take
//               the score of count m - 1 (the reference's truncation to m bins). MAP oracle of
//               both: a dynamic program over (node, state, count in its subtree).
//   kOracle     any factor given by the caller's MAP oracle (MapOracle below, the reference's
//               GenericFactor): its allowed 0/1 configurations of the n links, each collecting
//               some of the factor's num_additional additional scores (add_oracle).
// Logic, budget and knapsack factors take per-link `negated` flags: a negated link uses 1 - y_u.
// Dense, pair, sequence, head-automaton, tree-chain and oracle factors have additional scores;
// factor f's are at additional_offset(f) in the flat `factor_scores` array, additional_size()
// values in all.
//
// Solvers (same Status contract as ad3.h, plus kInfeasible):
//   solve_ad3         AD3 on the LP relaxation, each factor's local quadratic problem solved
//                     exactly: closed-form / sort-based projections for the logic, budget and
//                     knapsack factors, the active-set method of the paper (section 6) for the
//                     others, given by their MAP oracles. kOptimal when a rounded labelling
//                     meets the dual bound (the relaxation is tight), or the factors' best
//                     configurations in the dual agree on every unit (checked before the first
//                     iteration too: 0 iterations when no unit is shared), kFractional when it
//                     converged without that,
//                     kIterationLimit otherwise. The knapsack factor's local polytope is the LP
//                     relaxation {q in [0,1]^n : costs . q <= budget} (as in the reference), a
//                     superset of the convex hull of its feasible configurations: bounds stay
//                     valid, certificates need an integral solution.
//   solve_exact       depth-first branch-and-bound over the variables, bounded by the sum of each
//                     factor's best configuration consistent with the partial labelling under
//                     AD3's final multipliers (at the root: AD3's dual bound). Certified: kOptimal
//                     with bound - score within the gap, kInfeasible when no labelling is allowed.
//   solve_exhaustive  every labelling (tiny graphs; the test oracle).
//   solve_psdd        projected subgradient dual decomposition (PsddOptions below).
//
// Results: labels per variable (binary: 0/1; multi-valued: its state), posteriors per unit (the
// AD3 marginals p, of the last iterate, or, when the iteration limit stopped AD3, of the iterate
// whose rounding gave the best labelling; 0/1 of the labelling when certified or exact), additional posteriors per
// factor (dense: the marginal of each joint state; pair: the marginal of "both 1"; structured:
// the marginals of their transitions / sibling pairs / edge states), `value` = the
// objective at those posteriors, sum_u unit_scores . p + sum_f factor_scores_f . additional_f
// (S(labels) when the status is kOptimal), score = S(labels) and a valid upper bound.
//
// Example:
//     ccnn::ad3::FactorGraph g;
//     int a = g.add_multi_variable(3), b = g.add_multi_variable(3), c = g.add_binary_variable();
//     g.add_dense({a, b});                                 // 9 additional scores
//     g.add_logic(ccnn::ad3::FactorType::kImply, {g.unit(a, 0), c}, {false, true});  // a=0 -> !c
//     std::vector<double> units(g.num_units()), extra(g.additional_size());
//     ... fill ...
//     ccnn::ad3::FactorSolution s = ccnn::ad3::solve_exact(g, units, extra);
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "ad3/ad3.h"

namespace ccnn {
namespace ad3 {

enum class FactorType : std::int32_t {
  kDense = 0,
  kXor,
  kAtMostOne,
  kOr,
  kXorOut,
  kOrOut,
  kAndOut,
  kImply,
  kBudget,
  kKnapsack,
  kPair,
  kSequence,
  kTree,
  kHeadAutomaton,
  kBinaryTree,
  kGeneralTree,
  kSequenceCompressor,
  kCompressionBudget,
  kGeneralTreeCounts,
  kBinaryTreeCounts,
  kOracle,
};

// "dense", "xor", "atmostone", "or", "xorout", "orout", "andout", "imply", "budget", "knapsack",
// "pair", "sequence", "tree", "headautomaton", "binarytree", "generaltree", "sequencecompressor",
// "compressionbudget", "generaltreecounts", "binarytreecounts".
const char* factor_type_name(FactorType type);

// One factor as declared: its type, its links (units; for dense factors, variables), per-link
// negation flags (empty: none), budget and costs (budget / knapsack).
// A factor given by its MAP oracle (FactorGraph::add_oracle; the reference's GenericFactor): its
// allowed configurations are any nonempty set of 0/1 vectors y over its n links, each collecting a
// set of the factor's m additional scores (indices 0..m-1; its score a . u is their sum). AD3 solves
// its local problems by the active-set method, calling maximize; the exact search calls maximize
// with clamped links' scores moved by a large finite penalty; scores of labellings (the rounding,
// solve_exhaustive, score_labelling) call evaluate. The solver checks every answer (indices in
// range, none repeated) and computes the values itself. solve_batch with several threads calls
// one oracle object from all of them, unless clone() gives each solver its own copy.
class MapOracle {
 public:
  virtual ~MapOracle() = default;
  // Optional: a copy for one solve's exclusive use. Each solve (each problem of solve_batch) asks
  // once per oracle factor and, given a copy, calls only that copy, from one thread: the copy may
  // keep scratch buffers between calls (mutable members). The default, null, shares this object
  // between solve_batch's threads: keep it free of mutable state then.
  virtual std::unique_ptr<MapOracle> clone() const { return nullptr; }
  // The best allowed configuration for link scores s (n values) and additional scores a (m
  // values), maximising s . y + a . u: the links that are 1 into `on` and the additional scores it
  // collects into `extras` (both empty on entry; any order), as evaluate would give them.
  virtual void maximize(const double* s, const double* a, std::vector<int>& on, std::vector<int>& extras) const = 0;
  // Whether configuration y (n values, 0 or 1) is allowed; if so, the additional scores it
  // collects into `extras` (empty on entry).
  virtual bool evaluate(const int* y, std::vector<int>& extras) const = 0;
};

struct FactorSpec {
  FactorType type = FactorType::kXor;
  std::vector<int> links;
  std::vector<char> negated;
  double budget = 0.0;
  std::vector<double> costs;
  std::vector<int> num_states;              // kSequence: states per position; kGeneralTree: per node
  std::vector<int> parents;                 // kBinaryTree, kGeneralTree
  int num_nodes = 0;                        // kTree; kCompressionBudget: the length L
  std::vector<char> counts_for_budget;      // kCompressionBudget: per position
  std::vector<int> positions;               // kCompressionBudget: the bigram positions
  std::vector<char> has_count_scores;       // kBinaryTreeCounts: per node
  int max_num_bins = 0;                     // kBinaryTreeCounts: the count bins (0: no truncation)
  std::vector<std::array<int, 2>> arcs;     // kTree: (head, modifier) of each link;
                                            // kHeadAutomaton: (m, s) of each additional score
  std::shared_ptr<const MapOracle> oracle;  // kOracle
  std::size_t num_additional = 0;           // kOracle: its additional scores
};

// The most states a multi-valued variable may have.
constexpr int kMaxStates = 1 << 20;
// The most nodes of a tree factor (add_tree): its oracle keeps dense tables of about 50 n^2 bytes
// (870 MB at this size).
constexpr int kMaxTreeNodes = 1 << 12;
// The most additional scores of one factor (they are indexed by int).
constexpr std::size_t kMaxAdditional = std::numeric_limits<int>::max();

// Structure of a general factor graph. Built incrementally; every add_* validates its arguments
// and throws std::invalid_argument naming the bad one. Read-only while solving.
class FactorGraph {
 public:
  // Room for this many variables and factors (optional: saves reallocations).
  void reserve(std::size_t num_variables, std::size_t num_factors);

  // Variables; both return the variable's index (0, 1, ... in creation order).
  int add_binary_variable();
  int add_multi_variable(int num_states);  // 1 <= num_states <= kMaxStates

  // Factors; each returns the factor's index. Units must be distinct within a factor.
  // negated: empty (none negated) or one flag per unit.
  int add_logic(FactorType type, const std::vector<int>& units, const std::vector<char>& negated = {});
  int add_budget(const std::vector<int>& units, int budget, const std::vector<char>& negated = {});
  int add_knapsack(const std::vector<int>& units, const std::vector<double>& costs, double budget,
                   const std::vector<char>& negated = {});
  int add_pair(int unit_a, int unit_b);
  // Multi-valued variables only, distinct.
  int add_dense(const std::vector<int>& variables);
  // Sequence over groups of units: num_states[i] units per position (each >= 1), sum = units.size().
  int add_sequence(const std::vector<int>& units, const std::vector<int>& num_states);
  // Dependency tree: arcs[k] = (head, modifier) is unit units[k]; heads and modifiers in
  // [0, num_nodes), modifiers >= 1, no self-loops or duplicates, every node reachable from 0.
  int add_tree(const std::vector<int>& units, int num_nodes, const std::vector<std::array<int, 2>>& arcs);
  // Head automaton over L - 1 = units.size() positions; siblings: the (m, s) pair of each
  // additional score, every pair 0 <= m < s <= L exactly once (L (L + 1) / 2 of them).
  int add_head_automaton(const std::vector<int>& units, const std::vector<std::array<int, 2>>& siblings);
  // Sequence compressor: units = L - 1 positions then the "any position chosen" unit; siblings
  // as for the head automaton (every pair 0 <= m < s <= L once).
  int add_sequence_compressor(const std::vector<int>& units, const std::vector<std::array<int, 2>>& siblings);
  // Tree-structured factors: parents[0] = -1, parents[i] in [0, n) forming a tree rooted at 0.
  // General: num_states[i] >= 1 units per node, sum = units.size(); binary: one unit per node.
  int add_general_tree(const std::vector<int>& units, const std::vector<int>& parents,
                       const std::vector<int>& num_states);
  int add_binary_tree(const std::vector<int>& units, const std::vector<int>& parents);
  // Compression budget: units = `length` positions then one unit per bigram position (see
  // kCompressionBudget); budget >= 0; counts_for_budget: one flag per position.
  int add_compression_budget(const std::vector<int>& units, int length, int budget,
                             const std::vector<char>& counts_for_budget, const std::vector<int>& bigram_positions);
  // Tree factors with counts: as add_general_tree / add_binary_tree, a node counting when it is in
  // state 0 (general) or 1 (binary) and flagged in counts_for_budget (one flag per node). General:
  // units = the nodes' units then n + 1 count units; binary: has_count_scores, one flag per node,
  // and max_num_bins >= 0 (0: none; m: counts of m - 1 or more share the score of count m - 1).
  int add_general_tree_counts(const std::vector<int>& units, const std::vector<int>& parents,
                              const std::vector<int>& num_states, const std::vector<char>& counts_for_budget);
  int add_binary_tree_counts(const std::vector<int>& units, const std::vector<int>& parents,
                             const std::vector<char>& counts_for_budget, const std::vector<char>& has_count_scores,
                             int max_num_bins = 0);
  // A factor given by the caller's MAP oracle (MapOracle above, not null) over units (distinct, at
  // least one), with num_additional additional scores; the graph shares the oracle's ownership.
  // negated: as for add_logic; the oracle then sees link i as 1 - unit (scores and configurations
  // of the literals).
  int add_oracle(const std::vector<int>& units, std::size_t num_additional, std::shared_ptr<const MapOracle> oracle,
                 const std::vector<char>& negated = {});

  int num_variables() const { return static_cast<int>(unit_begin_.size()); }
  int num_units() const { return num_units_; }
  int num_factors() const { return static_cast<int>(factors_.size()); }
  bool is_binary(int variable) const { return binary_[variable] != 0; }
  bool all_binary() const { return num_multi_ == 0; }  // (then unit v is variable v)
  // Number of states: 2 for a binary variable, K for a multi-valued one.
  int num_states(int variable) const;
  // Unit of a variable's state: a binary variable's only unit (state must be 0 or 1: both give
  // its unit, whose value is the variable's), or the unit of state `state` of a multi-valued one.
  int unit(int variable, int state = 0) const;
  // Units of a variable: [unit_begin, unit_begin + unit_count).
  int unit_begin(int variable) const { return unit_begin_[variable]; }
  int unit_count(int variable) const { return binary_[variable] ? 1 : num_states(variable); }
  // Variable owning a unit.
  int unit_variable(int unit) const { return unit_variable_[unit]; }
  const FactorSpec& factor(int f) const { return factors_[f]; }
  // Additional scores of factor f: additional_count(f) values from additional_offset(f).
  std::size_t additional_offset(int f) const { return additional_offset_[f]; }
  std::size_t additional_count(int f) const { return additional_offset_[f + 1] - additional_offset_[f]; }
  std::size_t additional_size() const { return additional_offset_.back(); }
  // Number of factors linked to a unit (a dense factor links to every unit of its variables).
  int unit_degree(int unit) const { return unit_degree_[unit]; }

 private:
  int add_factor(FactorSpec spec, std::size_t num_additional);
  void check_units(const std::vector<int>& units, const char* what, std::size_t min_count);
  void check_negated(const std::vector<char>& negated, std::size_t count) const;

  std::vector<int> unit_begin_;     // per variable
  std::vector<int> states_;         // per variable (2 for binary)
  std::vector<char> binary_;        // per variable
  int num_multi_ = 0;               // multi-valued variables
  std::vector<int> unit_variable_;  // per unit
  std::vector<int> unit_degree_;    // per unit
  int num_units_ = 0;
  std::vector<int> unit_mark_;  // check_units' scratch: the mark_ of the last factor listing the unit
  int mark_ = 0;
  std::vector<FactorSpec> factors_;
  std::vector<std::size_t> additional_offset_{0};
};

// Status::kInfeasible (code 4, "infeasible"): no labelling satisfies the hard factors (exact and
// exhaustive solvers; AD3 and PSDD do not detect infeasibility).

struct FactorSolution {
  std::vector<int> labels;                    // per variable
  std::vector<double> posteriors;             // per unit
  std::vector<double> additional_posteriors;  // additional_size()
  double value = 0.0;   // objective at (posteriors, additional_posteriors)
  double score = 0.0;   // S(labels); -inf when no feasible labelling was found
  double bound = 0.0;   // valid upper bound on max_y S(y) (AD3: its best dual value)
  Status status = Status::kIterationLimit;
  std::int64_t iterations = 0;  // AD3 iterations, search nodes, or labellings enumerated
  // AD3's (PSDD's) final state, one value per factor link (the declared factors' links in order,
  // then those of the internal one-hot factors): Lagrange multipliers and local marginals q (PSDD:
  // the factors' last configurations). Empty for solve_exhaustive and when solve_exact did not need
  // AD3's state.
  std::vector<double> dual_variables;
  std::vector<double> local_posteriors;
};

// Projected subgradient dual decomposition (PSDD; Komodakis et al., ICCV 2007), the reference
// package's other LP-MAP solver beside AD3: every iteration each factor takes its best
// configuration under its share of the unit scores plus multipliers mu, whose sum over the
// factors is the dual bound, and mu moves along the subgradient, mu_fi -= 2 eta / sqrt(t + 1) *
// (y_fi - p_u), p_u the mean of unit u's copies (the reference's step rule). Roundings of p are
// scored; the run ends certified (kOptimal) when the best one meets the best bound (always when
// the copies agree), else after max_iterations (kIterationLimit). It never reports kFractional.
struct PsddOptions {
  int max_iterations = 1000;
  double eta = 1.0;  // step size scale, > 0
  // Certificate: the best rounded labelling within gap_tolerance * max(1, |score|) of the bound.
  double gap_tolerance = 1e-9;
};

// unit_scores: num_units() values; factor_scores: additional_size() values. Scores must be finite
// with sum_u |unit_scores[u]| + sum_f max |factor_scores_f| <= kMaxScoreMagnitude.
FactorSolution solve_ad3(const FactorGraph& graph, const std::vector<double>& unit_scores,
                         const std::vector<double>& factor_scores, const Ad3Options& options = {});
FactorSolution solve_exact(const FactorGraph& graph, const std::vector<double>& unit_scores,
                           const std::vector<double>& factor_scores, const ExactOptions& options = {});
// PSDD's posteriors when not certified: the mean of the factors' configurations (and their
// additional posteriors) at the iteration whose rounding is the best labelling.
FactorSolution solve_psdd(const FactorGraph& graph, const std::vector<double>& unit_scores,
                          const std::vector<double>& factor_scores, const PsddOptions& options = {});
// Throws std::invalid_argument when the graph has more than 2^26 labellings.
FactorSolution solve_exhaustive(const FactorGraph& graph, const std::vector<double>& unit_scores,
                                const std::vector<double>& factor_scores);

// ---- Batches: B problems sharing one FactorGraph ----

// unit_scores: batch_size * num_units() values, problem b at b * num_units(); factor_scores:
// additional_size() values shared by every problem, or batch_size * additional_size() values.
// The counts are the numbers of values behind the pointers (checked).
struct FactorBatchScores {
  std::size_t batch_size = 0;
  const double* unit_scores = nullptr;
  std::size_t unit_count = 0;
  const double* factor_scores = nullptr;
  std::size_t factor_count = 0;
};

// Solves every problem with `method` on num_threads std::threads (0: all hardware threads; never
// more than problems, fewer when the system refuses to start one); each result is the same as its
// solve_* call alone (unless a time_limit stops it). Bad input throws std::invalid_argument naming
// the first offending problem; a cancel through `interrupt` (see ad3.h) throws Cancelled (or the
// poll's exception), and a worker's own exception (std::bad_alloc) is rethrown, once every thread
// has stopped.
std::vector<FactorSolution> solve_batch(const FactorGraph& graph, Method method, const FactorBatchScores& scores,
                                        const Ad3Options& ad3_options = {}, const ExactOptions& exact_options = {},
                                        const PsddOptions& psdd_options = {}, int num_threads = 0,
                                        const Interrupt& interrupt = {});

// S(labels), or -inf when a factor forbids the labelling (labels checked against the variables).
double score_labelling(const FactorGraph& graph, const std::vector<double>& unit_scores,
                       const std::vector<double>& factor_scores, const std::vector<int>& labels);

}  // namespace ad3
}  // namespace ccnn
