// FactorGraph (factor_graph.h): construction with argument checks, scores of labellings and the
// exhaustive solver (the test oracle).
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "ad3/factors.h"
#include "ad3/general.h"

namespace ccnn {
namespace ad3 {

namespace {
constexpr double kNegInf = -std::numeric_limits<double>::infinity();
}

const char* factor_type_name(FactorType type) {
  switch (type) {
    case FactorType::kDense: return "dense";
    case FactorType::kXor: return "xor";
    case FactorType::kAtMostOne: return "atmostone";
    case FactorType::kOr: return "or";
    case FactorType::kXorOut: return "xorout";
    case FactorType::kOrOut: return "orout";
    case FactorType::kAndOut: return "andout";
    case FactorType::kImply: return "imply";
    case FactorType::kBudget: return "budget";
    case FactorType::kKnapsack: return "knapsack";
    case FactorType::kPair: return "pair";
    case FactorType::kSequence: return "sequence";
    case FactorType::kTree: return "tree";
    case FactorType::kHeadAutomaton: return "headautomaton";
    case FactorType::kBinaryTree: return "binarytree";
    case FactorType::kGeneralTree: return "generaltree";
    case FactorType::kSequenceCompressor: return "sequencecompressor";
    case FactorType::kCompressionBudget: return "compressionbudget";
    case FactorType::kGeneralTreeCounts: return "generaltreecounts";
    case FactorType::kBinaryTreeCounts: return "binarytreecounts";
    case FactorType::kOracle: return "oracle";
  }
  return "unknown";
}

int FactorGraph::add_binary_variable() {
  unit_begin_.push_back(num_units_);
  states_.push_back(2);
  binary_.push_back(1);
  unit_variable_.push_back(num_variables() - 1);
  unit_degree_.push_back(0);
  ++num_units_;
  return num_variables() - 1;
}

int FactorGraph::add_multi_variable(int num_states) {
  if (num_states < 1 || num_states > kMaxStates) {
    throw std::invalid_argument("num_states: expected 1 to 2^20 states, got " + std::to_string(num_states));
  }
  unit_begin_.push_back(num_units_);
  states_.push_back(num_states);
  binary_.push_back(0);
  ++num_multi_;
  for (int t = 0; t < num_states; ++t) {
    unit_variable_.push_back(num_variables() - 1);
    unit_degree_.push_back(0);
  }
  num_units_ += num_states;
  return num_variables() - 1;
}

int FactorGraph::num_states(int variable) const { return states_[variable]; }

int FactorGraph::unit(int variable, int state) const {
  if (variable < 0 || variable >= num_variables()) {
    throw std::invalid_argument("variable: " + std::to_string(variable) + " is not a variable index in [0, " +
                                std::to_string(num_variables()) + ")");
  }
  if (binary_[variable]) {
    if (state != 0 && state != 1) throw std::invalid_argument("state: a binary variable has states 0 and 1");
    return unit_begin_[variable];
  }
  if (state < 0 || state >= states_[variable]) {
    throw std::invalid_argument("state: " + std::to_string(state) + " is out of range for a variable with " +
                                std::to_string(states_[variable]) + " states");
  }
  return unit_begin_[variable] + state;
}

void FactorGraph::check_units(const std::vector<int>& units, const char* what, std::size_t min_count) {
  if (units.size() < min_count) {
    throw std::invalid_argument(std::string(what) + ": expected at least " + std::to_string(min_count) +
                                " units, got " + std::to_string(units.size()));
  }
  for (int u : units) {
    if (u < 0 || u >= num_units_) {
      throw std::invalid_argument(std::string(what) + ": unit " + std::to_string(u) + " is not in [0, " +
                                  std::to_string(num_units_) + ")");
    }
  }
  auto repeated = [&](int u) {
    return std::string(what) + ": unit " + std::to_string(u) + " appears twice";
  };
  if (units.size() <= 16) {  // (most factors: no allocation)
    for (std::size_t i = 1; i < units.size(); ++i) {
      if (std::find(units.begin(), units.begin() + i, units[i]) != units.begin() + i) {
        throw std::invalid_argument(repeated(units[i]));
      }
    }
    return;
  }
  unit_mark_.resize(num_units_, 0);
  if (mark_ == std::numeric_limits<int>::max()) {
    std::fill(unit_mark_.begin(), unit_mark_.end(), 0);
    mark_ = 0;
  }
  ++mark_;
  for (int u : units) {
    if (unit_mark_[u] == mark_) throw std::invalid_argument(repeated(u));
    unit_mark_[u] = mark_;
  }
}

void FactorGraph::check_negated(const std::vector<char>& negated, std::size_t count) const {
  if (!negated.empty() && negated.size() != count) {
    throw std::invalid_argument("negated: expected one flag per unit (" + std::to_string(count) + ") or none, got " +
                                std::to_string(negated.size()));
  }
}

void FactorGraph::reserve(std::size_t num_variables, std::size_t num_factors) {
  unit_begin_.reserve(num_variables);
  states_.reserve(num_variables);
  binary_.reserve(num_variables);
  unit_variable_.reserve(num_variables);  // (at least one unit per variable)
  unit_degree_.reserve(num_variables);
  factors_.reserve(num_factors);
  additional_offset_.reserve(num_factors + 1);
}

int FactorGraph::add_factor(FactorSpec spec, std::size_t num_additional) {
  if (num_additional > kMaxAdditional) {
    throw std::invalid_argument("factor scores: a factor may have at most 2^31 - 1 additional scores; this one "
                                "needs " + std::to_string(num_additional));
  }
  if (spec.type == FactorType::kDense) {
    for (int v : spec.links) {
      for (int t = 0; t < unit_count(v); ++t) ++unit_degree_[unit_begin(v) + t];
    }
  } else {
    for (int u : spec.links) ++unit_degree_[u];
  }
  factors_.push_back(std::move(spec));
  additional_offset_.push_back(additional_offset_.back() + num_additional);
  return num_factors() - 1;
}

int FactorGraph::add_logic(FactorType type, const std::vector<int>& units, const std::vector<char>& negated) {
  std::size_t min_count = 1;
  switch (type) {
    case FactorType::kXor:
    case FactorType::kAtMostOne:
    case FactorType::kOr:
      break;
    case FactorType::kXorOut:
    case FactorType::kOrOut:
    case FactorType::kAndOut:
    case FactorType::kImply:
      min_count = 2;
      break;
    default:
      throw std::invalid_argument(std::string("type: '") + factor_type_name(type) +
                                  "' is not a logic factor (xor, atmostone, or, xorout, orout, andout, imply)");
  }
  check_units(units, "units", min_count);
  check_negated(negated, units.size());
  FactorSpec spec;
  spec.type = type;
  spec.links = units;
  spec.negated = negated;
  return add_factor(std::move(spec), 0);
}

int FactorGraph::add_budget(const std::vector<int>& units, int budget, const std::vector<char>& negated) {
  check_units(units, "units", 1);
  check_negated(negated, units.size());
  if (budget < 0) throw std::invalid_argument("budget: must be >= 0, got " + std::to_string(budget));
  FactorSpec spec;
  spec.type = FactorType::kBudget;
  spec.links = units;
  spec.negated = negated;
  spec.budget = budget;
  return add_factor(std::move(spec), 0);
}

int FactorGraph::add_knapsack(const std::vector<int>& units, const std::vector<double>& costs, double budget,
                              const std::vector<char>& negated) {
  check_units(units, "units", 1);
  check_negated(negated, units.size());
  if (costs.size() != units.size()) {
    throw std::invalid_argument("costs: expected one cost per unit (" + std::to_string(units.size()) + "), got " +
                                std::to_string(costs.size()));
  }
  for (double c : costs) {
    if (!(c >= 0.0) || !std::isfinite(c)) {
      throw std::invalid_argument("costs: every cost must be finite and >= 0, got " + std::to_string(c));
    }
  }
  if (!(budget >= 0.0) || !std::isfinite(budget)) {
    throw std::invalid_argument("budget: must be finite and >= 0, got " + std::to_string(budget));
  }
  FactorSpec spec;
  spec.type = FactorType::kKnapsack;
  spec.links = units;
  spec.negated = negated;
  spec.budget = budget;
  spec.costs = costs;
  return add_factor(std::move(spec), 0);
}

int FactorGraph::add_pair(int unit_a, int unit_b) {
  FactorSpec spec;
  spec.type = FactorType::kPair;
  spec.links = {unit_a, unit_b};
  check_units(spec.links, "units", 2);
  return add_factor(std::move(spec), 1);
}

int FactorGraph::add_dense(const std::vector<int>& variables) {
  if (variables.empty()) throw std::invalid_argument("variables: a dense factor needs at least one variable");
  double configurations = 1.0;
  for (std::size_t i = 0; i < variables.size(); ++i) {
    const int v = variables[i];
    if (v < 0 || v >= num_variables()) {
      throw std::invalid_argument("variables: " + std::to_string(v) + " is not a variable index in [0, " +
                                  std::to_string(num_variables()) + ")");
    }
    if (binary_[v]) {
      throw std::invalid_argument("variables: " + std::to_string(v) +
                                  " is a binary variable; dense factors take multi-valued variables");
    }
    if (std::find(variables.begin(), variables.begin() + i, v) != variables.begin() + i) {  // (few variables)
      throw std::invalid_argument("variables: " + std::to_string(v) + " appears twice");
    }
    configurations *= states_[v];
  }
  if (configurations > (1 << 24)) {
    throw std::invalid_argument("variables: a dense factor may have at most 2^24 joint states");
  }
  FactorSpec spec;
  spec.type = FactorType::kDense;
  spec.links = variables;
  return add_factor(std::move(spec), static_cast<std::size_t>(configurations));
}

int FactorGraph::add_sequence(const std::vector<int>& units, const std::vector<int>& num_states) {
  if (num_states.empty()) throw std::invalid_argument("num_states: a sequence needs at least one position");
  std::size_t total = 0, transitions = 0;
  for (std::size_t i = 0; i < num_states.size(); ++i) {
    if (num_states[i] < 1) {
      throw std::invalid_argument("num_states: position " + std::to_string(i) + " has " +
                                  std::to_string(num_states[i]) + " states; expected >= 1");
    }
    total += num_states[i];
    transitions += static_cast<std::size_t>(i > 0 ? num_states[i - 1] : 1) * num_states[i];
  }
  transitions += num_states.back();
  if (units.size() != total) {
    throw std::invalid_argument("units: expected sum(num_states) = " + std::to_string(total) + " units, got " +
                                std::to_string(units.size()));
  }
  check_units(units, "units", 1);
  FactorSpec spec;
  spec.type = FactorType::kSequence;
  spec.links = units;
  spec.num_states = num_states;
  return add_factor(std::move(spec), transitions);
}

int FactorGraph::add_compression_budget(const std::vector<int>& units, int length, int budget,
                                        const std::vector<char>& counts_for_budget,
                                        const std::vector<int>& bigram_positions) {
  if (length < 1) throw std::invalid_argument("length: expected at least one position, got " + std::to_string(length));
  if (budget < 0) throw std::invalid_argument("budget: expected >= 0, got " + std::to_string(budget));
  if (counts_for_budget.size() != static_cast<std::size_t>(length)) {
    throw std::invalid_argument("counts_for_budget: expected one flag per position (" + std::to_string(length) +
                                "), got " + std::to_string(counts_for_budget.size()));
  }
  std::vector<char> seen(length + 1, 0);
  for (int p : bigram_positions) {
    if (p < -1 || p >= length) {
      throw std::invalid_argument("bigram_positions: " + std::to_string(p) + " is not in [-1, " +
                                  std::to_string(length - 1) + "]");
    }
    if (seen[p + 1]++) throw std::invalid_argument("bigram_positions: " + std::to_string(p) + " appears twice");
  }
  const std::size_t expected = static_cast<std::size_t>(length) + bigram_positions.size();
  if (units.size() != expected) {
    throw std::invalid_argument("units: expected length + bigram positions = " + std::to_string(expected) +
                                " units, got " + std::to_string(units.size()));
  }
  check_units(units, "units", 1);
  FactorSpec spec;
  spec.type = FactorType::kCompressionBudget;
  spec.links = units;
  spec.num_nodes = length;
  spec.budget = budget;
  spec.counts_for_budget = counts_for_budget;
  spec.positions = bigram_positions;
  return add_factor(std::move(spec), 4 * static_cast<std::size_t>(length) - bigram_positions.size());
}

int FactorGraph::add_tree(const std::vector<int>& units, int num_nodes, const std::vector<std::array<int, 2>>& arcs) {
  if (num_nodes < 2 || num_nodes > kMaxTreeNodes) {
    throw std::invalid_argument("num_nodes: expected 2 to " + std::to_string(kMaxTreeNodes) + " nodes, got " +
                                std::to_string(num_nodes));
  }
  if (arcs.size() != units.size()) {
    throw std::invalid_argument("arcs: expected one arc per unit (" + std::to_string(units.size()) + "), got " +
                                std::to_string(arcs.size()));
  }
  std::vector<std::array<int, 2>> sorted = arcs;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t k = 0; k < sorted.size(); ++k) {
    const int h = sorted[k][0], m = sorted[k][1];
    if (h < 0 || h >= num_nodes || m < 1 || m >= num_nodes || h == m) {
      throw std::invalid_argument("arcs: (" + std::to_string(h) + ", " + std::to_string(m) +
                                  ") is not an arc (head in [0, num_nodes), modifier in [1, num_nodes), distinct)");
    }
    if (k > 0 && sorted[k] == sorted[k - 1]) {
      throw std::invalid_argument("arcs: (" + std::to_string(h) + ", " + std::to_string(m) + ") appears twice");
    }
  }
  // Every node reachable from the root, so that a spanning arborescence exists.
  // (a depth-first search over the arcs sorted by head: those out of h are sorted[first[h]..first[h + 1]))
  std::vector<int> first(num_nodes + 1, 0);
  for (const auto& arc : sorted) ++first[arc[0] + 1];
  for (int v = 0; v < num_nodes; ++v) first[v + 1] += first[v];
  std::vector<char> reached(num_nodes, 0);
  reached[0] = 1;
  for (std::vector<int> stack{0}; !stack.empty();) {
    const int h = stack.back();
    stack.pop_back();
    for (int k = first[h]; k < first[h + 1]; ++k) {
      const int m = sorted[k][1];
      if (!reached[m]) {
        reached[m] = 1;
        stack.push_back(m);
      }
    }
  }
  for (int v = 0; v < num_nodes; ++v) {
    if (!reached[v]) throw std::invalid_argument("arcs: node " + std::to_string(v) + " cannot be reached from the root 0");
  }
  check_units(units, "units", 1);
  FactorSpec spec;
  spec.type = FactorType::kTree;
  spec.links = units;
  spec.num_nodes = num_nodes;
  spec.arcs = arcs;
  return add_factor(std::move(spec), 0);
}

int FactorGraph::add_sequence_compressor(const std::vector<int>& units,
                                         const std::vector<std::array<int, 2>>& siblings) {
  check_units(units, "units", 2);
  const std::vector<int> positions(units.begin(), units.end() - 1);
  const int f = add_head_automaton(positions, siblings);  // (validates the siblings)
  FactorSpec& spec = factors_[f];
  spec.type = FactorType::kSequenceCompressor;
  spec.links = units;
  ++unit_degree_[units.back()];
  return f;
}

int FactorGraph::add_head_automaton(const std::vector<int>& units, const std::vector<std::array<int, 2>>& siblings) {
  check_units(units, "units", 1);
  const int length = static_cast<int>(units.size()) + 1;
  const std::size_t expected = static_cast<std::size_t>(length) * (length + 1) / 2;
  if (siblings.size() != expected) {
    throw std::invalid_argument("siblings: expected every pair (m, s), 0 <= m < s <= " + std::to_string(length) +
                                ", once (" + std::to_string(expected) + " pairs), got " +
                                std::to_string(siblings.size()));
  }
  std::vector<char> seen(static_cast<std::size_t>(length + 1) * (length + 1), 0);
  for (const auto& pair : siblings) {
    const int m = pair[0], sib = pair[1];
    if (m < 0 || m >= sib || sib > length) {
      throw std::invalid_argument("siblings: (" + std::to_string(m) + ", " + std::to_string(sib) +
                                  ") is not a pair 0 <= m < s <= " + std::to_string(length));
    }
    char& flag = seen[m * (length + 1) + sib];
    if (flag) {
      throw std::invalid_argument("siblings: (" + std::to_string(m) + ", " + std::to_string(sib) + ") appears twice");
    }
    flag = 1;
  }
  FactorSpec spec;
  spec.type = FactorType::kHeadAutomaton;
  spec.links = units;
  spec.arcs = siblings;
  return add_factor(std::move(spec), siblings.size());
}

namespace {

// parents[0] = -1 and every node reaches node 0 through its parents.
void check_parents(const std::vector<int>& parents) {
  const int n = static_cast<int>(parents.size());
  if (n < 1 || parents[0] != -1) throw std::invalid_argument("parents: expected parents[0] = -1 (node 0 is the root)");
  for (int i = 1; i < n; ++i) {
    if (parents[i] < 0 || parents[i] >= n || parents[i] == i) {
      throw std::invalid_argument("parents: node " + std::to_string(i) + " has parent " + std::to_string(parents[i]) +
                                  "; expected a node in [0, " + std::to_string(n) + ") other than itself");
    }
    int v = i, steps = 0;
    while (v != 0 && steps <= n) {
      v = parents[v];
      ++steps;
    }
    if (v != 0) throw std::invalid_argument("parents: node " + std::to_string(i) + " is on a cycle");
  }
}

}  // namespace

int FactorGraph::add_general_tree(const std::vector<int>& units, const std::vector<int>& parents,
                                  const std::vector<int>& num_states) {
  check_parents(parents);
  if (num_states.size() != parents.size()) {
    throw std::invalid_argument("num_states: expected one per node (" + std::to_string(parents.size()) + "), got " +
                                std::to_string(num_states.size()));
  }
  std::size_t total = 0, tables = 0;
  for (std::size_t i = 0; i < num_states.size(); ++i) {
    if (num_states[i] < 1) throw std::invalid_argument("num_states: every node needs at least one state");
    total += num_states[i];
    if (i > 0) tables += static_cast<std::size_t>(num_states[parents[i]]) * num_states[i];
  }
  if (units.size() != total) {
    throw std::invalid_argument("units: expected sum(num_states) = " + std::to_string(total) + " units, got " +
                                std::to_string(units.size()));
  }
  check_units(units, "units", 1);
  FactorSpec spec;
  spec.type = FactorType::kGeneralTree;
  spec.links = units;
  spec.parents = parents;
  spec.num_states = num_states;
  return add_factor(std::move(spec), tables);
}

int FactorGraph::add_binary_tree(const std::vector<int>& units, const std::vector<int>& parents) {
  check_parents(parents);
  if (units.size() != parents.size()) {
    throw std::invalid_argument("units: expected one unit per node (" + std::to_string(parents.size()) + "), got " +
                                std::to_string(units.size()));
  }
  check_units(units, "units", 1);
  FactorSpec spec;
  spec.type = FactorType::kBinaryTree;
  spec.links = units;
  spec.parents = parents;
  return add_factor(std::move(spec), 4 * (parents.size() - 1));
}

int FactorGraph::add_general_tree_counts(const std::vector<int>& units, const std::vector<int>& parents,
                                         const std::vector<int>& num_states,
                                         const std::vector<char>& counts_for_budget) {
  if (units.size() < parents.size() + 1) throw std::invalid_argument("units: too few for the nodes and the counts");
  const std::vector<int> node_units(units.begin(), units.end() - static_cast<long>(parents.size()) - 1);
  FactorGraph check;  // the node part's checks are add_general_tree's
  for (int u = 0; u < num_units(); ++u) check.add_binary_variable();
  check.add_general_tree(node_units, parents, num_states);
  if (counts_for_budget.size() != parents.size()) {
    throw std::invalid_argument("counts_for_budget: expected one flag per node (" + std::to_string(parents.size()) +
                                "), got " + std::to_string(counts_for_budget.size()));
  }
  check_units(units, "units", 1);
  FactorSpec spec;
  spec.type = FactorType::kGeneralTreeCounts;
  spec.links = units;
  spec.parents = parents;
  spec.num_states = num_states;
  spec.counts_for_budget = counts_for_budget;
  return add_factor(std::move(spec), check.additional_size());
}

int FactorGraph::add_binary_tree_counts(const std::vector<int>& units, const std::vector<int>& parents,
                                        const std::vector<char>& counts_for_budget,
                                        const std::vector<char>& has_count_scores, int max_num_bins) {
  if (max_num_bins < 0) {
    throw std::invalid_argument("max_num_bins: expected >= 1 bins (or 0: no truncation), got " +
                                std::to_string(max_num_bins));
  }
  FactorGraph check;
  for (int u = 0; u < num_units(); ++u) check.add_binary_variable();
  check.add_binary_tree(units, parents);
  for (const auto* flags : {&counts_for_budget, &has_count_scores}) {
    if (flags->size() != parents.size()) {
      throw std::invalid_argument(std::string(flags == &counts_for_budget ? "counts_for_budget" : "has_count_scores") +
                                  ": expected one flag per node (" + std::to_string(parents.size()) + "), got " +
                                  std::to_string(flags->size()));
    }
  }
  check_units(units, "units", 1);
  FactorSpec spec;
  spec.type = FactorType::kBinaryTreeCounts;
  spec.links = units;
  spec.parents = parents;
  spec.counts_for_budget = counts_for_budget;
  spec.has_count_scores = has_count_scores;
  spec.max_num_bins = max_num_bins;
  std::size_t additional = check.additional_size();
  const std::vector<std::size_t> sizes = detail::subtree_sizes(parents);
  for (std::size_t i = 0; i < parents.size(); ++i) additional += has_count_scores[i] ? sizes[i] + 1 : 0;
  return add_factor(std::move(spec), additional);
}

int FactorGraph::add_oracle(const std::vector<int>& units, std::size_t num_additional,
                            std::shared_ptr<const MapOracle> oracle, const std::vector<char>& negated) {
  if (oracle == nullptr) throw std::invalid_argument("oracle: expected a MapOracle, got null");
  check_units(units, "units", 1);
  check_negated(negated, units.size());
  FactorSpec spec;
  spec.type = FactorType::kOracle;
  spec.links = units;
  spec.negated = negated;
  spec.oracle = std::move(oracle);
  spec.num_additional = num_additional;
  return add_factor(std::move(spec), num_additional);
}

namespace detail {

void check_general_scores(const FactorGraph& graph, const std::vector<double>& unit_scores,
                          const std::vector<double>& factor_scores) {
  if (unit_scores.size() != static_cast<std::size_t>(graph.num_units())) {
    throw std::invalid_argument("unit_scores: expected " + std::to_string(graph.num_units()) + " values, got " +
                                std::to_string(unit_scores.size()));
  }
  if (factor_scores.size() != graph.additional_size()) {
    throw std::invalid_argument("factor_scores: expected " + std::to_string(graph.additional_size()) +
                                " values, got " + std::to_string(factor_scores.size()));
  }
  check_general_scores(graph, unit_scores.data(), factor_scores.data());
}

void check_general_scores(const FactorGraph& graph, const double* unit_scores, const double* factor_scores) {
  const std::size_t u = graph.num_units(), f = graph.additional_size();
  // One branch-free pass each; check_finite only to name a bad value.
  if (largest_magnitude_bits(unit_scores, u) >= kNonFiniteBits) check_finite(unit_scores, u, "unit_scores", -1);
  if (f > 0 && largest_magnitude_bits(factor_scores, f) >= kNonFiniteBits) {
    check_finite(factor_scores, f, "factor_scores", -1);
  }
  double magnitude = 0.0;
  for (std::size_t k = 0; k < u; ++k) magnitude += std::fabs(unit_scores[k]);
  for (int i = 0; f > 0 && i < graph.num_factors(); ++i) {
    magnitude += magnitude_from_bits(
        largest_magnitude_bits(factor_scores + graph.additional_offset(i), graph.additional_count(i)));
  }
  check_magnitude(magnitude, -1);
}

namespace {

// Marks the multi-valued variables whose units form exactly one one-hot group of the factor (a
// sequence position, a general tree node, a non-negated XOR): the factor already enforces their
// one-hot constraint, so they need no internal XOR (an XOR there would only slow AD3 down).
void mark_one_hot_groups(const FactorGraph& g, const FactorSpec& spec, std::vector<char>& one_hot) {
  std::vector<int> sizes;
  if (spec.type == FactorType::kSequence || spec.type == FactorType::kGeneralTree ||
      spec.type == FactorType::kGeneralTreeCounts) {
    sizes = spec.num_states;
  } else if (spec.type == FactorType::kXor && spec.negated.empty()) {
    sizes.assign(1, static_cast<int>(spec.links.size()));
  } else {
    return;
  }
  std::size_t begin = 0;
  for (int size : sizes) {
    const int v = g.unit_variable(spec.links[begin]);
    bool whole = !g.is_binary(v) && g.unit_count(v) == size;
    for (int t = 0; whole && t < size; ++t) whole = g.unit_variable(spec.links[begin + t]) == v;
    if (whole) one_hot[v] = 1;  // (units are distinct within a factor)
    begin += size;
  }
}

// See GeneralModel::pairwise.
bool is_pairwise_graph(const FactorGraph& g) {
  for (int v = 0; v < g.num_variables(); ++v) {
    if (g.is_binary(v) || g.unit_count(v) < 2) return false;
  }
  std::vector<std::pair<int, int>> pairs;
  pairs.reserve(g.num_factors());
  for (int f = 0; f < g.num_factors(); ++f) {
    const FactorSpec& spec = g.factor(f);
    if (spec.type != FactorType::kDense || spec.links.size() != 2 || spec.links[0] == spec.links[1]) return false;
    pairs.emplace_back(std::min(spec.links[0], spec.links[1]), std::max(spec.links[0], spec.links[1]));
  }
  std::sort(pairs.begin(), pairs.end());
  return std::adjacent_find(pairs.begin(), pairs.end()) == pairs.end();
}

}  // namespace

GeneralModel::GeneralModel(const FactorGraph& g) : graph(g) {
  link_begin.reserve(g.num_factors() + g.num_variables() + 1);
  link_begin.push_back(0);
  additional.reserve(g.num_factors() + g.num_variables());
  std::size_t num_links = g.num_units();  // (room for the internal one-hot factors' links)
  for (int u = 0; u < g.num_units(); ++u) num_links += g.unit_degree(u);
  link_unit.reserve(num_links);
  degree.assign(g.num_units(), 0);
  has_dense.assign(g.num_variables(), 0);
  one_hot.assign(g.num_variables(), 0);
  for (int f = 0; f < g.num_factors(); ++f) {
    const FactorSpec& spec = g.factor(f);
    append_factor_units(g, spec, link_unit);
    link_begin.push_back(link_unit.size());
    additional.push_back(g.additional_offset(f));
    if (spec.type == FactorType::kDense) {
      for (int v : spec.links) has_dense[v] = 1;
    }
    mark_one_hot_groups(g, spec, one_hot);
  }
  for (int v = 0; v < g.num_variables(); ++v) {
    if (g.is_binary(v) || has_dense[v] || one_hot[v]) continue;
    one_hot_factor_variables.push_back(v);
    for (int t = 0; t < g.unit_count(v); ++t) link_unit.push_back(g.unit_begin(v) + t);
    link_begin.push_back(link_unit.size());
    additional.push_back(0);
  }
  for (int u : link_unit) ++degree[u];
  // (an internal XOR over a variable in no declared factor changes nothing the pairwise solver
  // needs: it fixes such a variable at its best state)
  bool internal_factors_isolated = true;
  for (int v : one_hot_factor_variables) {
    for (int t = 0; t < g.unit_count(v); ++t) internal_factors_isolated &= g.unit_degree(g.unit_begin(v) + t) == 0;
  }
  pairwise = g.num_factors() > 0 && internal_factors_isolated && is_pairwise_graph(g);
  if (!pairwise) build_factors();
}

void GeneralModel::build_factors() {
  if (!factors.empty() || link_begin.size() == 1) return;
  factors.reserve(link_begin.size() - 1);
  for (int f = 0; f < graph.num_factors(); ++f) factors.push_back(make_local_factor(graph, graph.factor(f)));
  for (int v : one_hot_factor_variables) factors.push_back(make_one_hot_factor(graph.unit_count(v)));
}

double GeneralModel::score(const double* unit_scores, const double* factor_scores, const int* labels,
                           double* additional_out) {
  // units of the labelling
  unit_values.assign(graph.num_units(), 0);
  double total = 0.0;
  for (int v = 0; v < graph.num_variables(); ++v) {
    const int u = graph.is_binary(v) ? graph.unit_begin(v) : graph.unit_begin(v) + labels[v];
    if (graph.is_binary(v) && labels[v] == 0) continue;
    unit_values[u] = 1;
    total += unit_scores[u];
  }
  if (factors.empty()) {  // a pairwise model (see build_factors): the tables' entries
    for (int f = 0; f < graph.num_factors(); ++f) {
      const std::vector<int>& pair = graph.factor(f).links;
      const int ka = graph.unit_count(pair[0]), kb = graph.unit_count(pair[1]);
      const std::size_t entry = additional[f] + static_cast<std::size_t>(labels[pair[0]]) * kb + labels[pair[1]];
      total += factor_scores[entry];
      if (additional_out != nullptr) {
        std::fill(additional_out + additional[f], additional_out + additional[f] + ka * kb, 0.0);
        additional_out[entry] = 1.0;
      }
    }
    return total;
  }
  for (std::size_t f = 0; f < factors.size(); ++f) {
    LocalFactor& factor = *factors[f];
    link_values.resize(factor.degree());
    const int* us = units(static_cast<int>(f));
    for (int i = 0; i < factor.degree(); ++i) link_values[i] = unit_values[us[i]];
    double* u = nullptr;
    if (factor.num_additional() > 0) {
      if (additional_out != nullptr) {
        u = additional_out + additional[f];
      } else {
        scratch_u.resize(factor.num_additional());
        u = scratch_u.data();
      }
    }
    const double extra = factor.evaluate(link_values.data(), factor_scores + additional[f], u);
    if (extra == kNegInf) return kNegInf;
    total += extra;
  }
  return total;
}

}  // namespace detail

double score_labelling(const FactorGraph& graph, const std::vector<double>& unit_scores,
                       const std::vector<double>& factor_scores, const std::vector<int>& labels) {
  detail::check_general_scores(graph, unit_scores, factor_scores);
  if (labels.size() != static_cast<std::size_t>(graph.num_variables())) {
    throw std::invalid_argument("labels: expected " + std::to_string(graph.num_variables()) + " labels, got " +
                                std::to_string(labels.size()));
  }
  for (int v = 0; v < graph.num_variables(); ++v) {
    if (labels[v] < 0 || labels[v] >= graph.num_states(v)) {
      throw std::invalid_argument("labels: label " + std::to_string(labels[v]) + " of variable " +
                                  std::to_string(v) + " is out of range");
    }
  }
  detail::GeneralModel model(graph);
  return model.score(unit_scores.data(), factor_scores.data(), labels.data(), nullptr);
}

namespace detail {

void check_exhaustive_size(const FactorGraph& graph) {
  double count = 1.0;
  for (int v = 0; v < graph.num_variables(); ++v) count *= graph.num_states(v);
  if (count > (1 << 26)) {
    throw std::invalid_argument("graph: too many labellings for exhaustive search (more than 2^26)");
  }
}

FactorSolution solve_general_exhaustive(GeneralModel& model, const double* unit_scores, const double* factor_scores,
                                        StopControl& stop) {
  const FactorGraph& graph = model.graph;
  const int n = graph.num_variables();
  std::vector<int> current(n, 0);
  FactorSolution solution;
  solution.labels.assign(n, 0);
  solution.score = kNegInf;
  for (;;) {
    if ((++solution.iterations & 65535) == 0 && stop.stop() != StopReason::kNone) break;
    const double s = model.score(unit_scores, factor_scores, current.data(), nullptr);
    if (s > solution.score) {
      solution.score = s;
      solution.labels = current;
    }
    int v = n - 1;
    for (; v >= 0; --v) {
      if (++current[v] < graph.num_states(v)) break;
      current[v] = 0;
    }
    if (v < 0) break;
  }
  fill_integral(model, unit_scores, factor_scores, solution);
  return solution;
}

}  // namespace detail

FactorSolution solve_exhaustive(const FactorGraph& graph, const std::vector<double>& unit_scores,
                                const std::vector<double>& factor_scores) {
  detail::check_general_scores(graph, unit_scores, factor_scores);
  detail::check_exhaustive_size(graph);
  detail::GeneralModel model(graph);
  detail::StopControl never;
  return detail::solve_general_exhaustive(model, unit_scores.data(), factor_scores.data(), never);
}

}  // namespace ad3
}  // namespace ccnn
