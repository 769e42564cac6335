// Dense factors of any arity (oracle: enumeration) and XOR-with-output (parity oracle), solved by
// the active-set method (active_set.h); the pair factor in closed form; the factory of every factor.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "ad3/active_set.h"
#include "ad3/factors.h"

namespace ccnn {
namespace ad3 {
namespace detail {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// A dense factor's additional score of the 0/1 configuration y (its links: the variables' state
// units, variable after variable), -inf unless every variable has exactly one state on; u: the
// joint state's indicator.
double evaluate_dense(const int* states, std::size_t m, const int* y, const double* a, double* u, int num_additional) {
  int index = 0, offset = 0;
  for (std::size_t j = 0; j < m; ++j) {
    const int k = states[j];
    int state = -1;
    for (int t = 0; t < k; ++t) {
      if (y[offset + t]) {
        if (state >= 0) return kNegInf;
        state = t;
      }
    }
    if (state < 0) return kNegInf;
    index = index * k + state;
    offset += k;
  }
  std::fill(u, u + num_additional, 0.0);
  u[index] = 1.0;
  return a[index];
}

// Dense factor over multi-valued variables: its links are the variables' state units, variable
// after variable; configuration index = row-major joint state.
class DenseFactor : public ActiveSetFactor {
 public:
  explicit DenseFactor(std::vector<int> num_states)
      : ActiveSetFactor(std::accumulate(num_states.begin(), num_states.end(), 0),
                        static_cast<int>(std::accumulate(num_states.begin(), num_states.end(), 1.0,
                                                         std::multiplies<double>()))),
        states_(std::move(num_states)), offset_(states_.size()), state_(states_.size()) {
    int total = 0;
    for (std::size_t j = 0; j < states_.size(); ++j) {
      offset_[j] = total;
      total += states_[j];
    }
  }

  double best_config(const double* s, const double* a, Config& config) override {
    const int m = static_cast<int>(states_.size());
    std::fill(state_.begin(), state_.end(), 0);
    double best = kNegInf;
    int best_index = 0;
    for (int index = 0; index < num_additional(); ++index) {
      double v = a[index];
      for (int j = 0; j < m; ++j) v += s[offset_[j] + state_[j]];
      if (v > best) {
        best = v;
        best_index = index;
      }
      for (int j = m - 1; j >= 0; --j) {  // odometer, last variable fastest
        if (++state_[j] < states_[j]) break;
        state_[j] = 0;
      }
    }
    config.on.clear();
    int rest = best_index;
    for (int j = m - 1; j >= 0; --j) {
      config.on.push_back(offset_[j] + rest % states_[j]);
      rest /= states_[j];
    }
    config.extras.assign(1, best_index);
    return best;
  }

  double evaluate(const int* y, const double* a, double* u) const override {
    return evaluate_dense(states_.data(), states_.size(), y, a, u, num_additional());
  }

 private:
  std::vector<int> states_, offset_, state_;
};

// Dense factor over two variables (K1 x K2 states), as DenseFactor but with the configurations as
// (state 1, state 2) pairs and the oracle a K1 x K2 scan: the same local solutions, several
// times faster (pairwise graphs: grids, general pairwise models).
class PairDenseFactor : public ActiveSetLocalFactor<PairDenseFactor> {
 public:
  PairDenseFactor(int k1, int k2)
      : ActiveSetLocalFactor(k1 + k2, k1 * k2), k1_(k1), k2_(k2), states_{k1, k2}, slots_(2 * (k1 + k2)) {}

  double map(const double* s, const double* a, double* y, double* u) override {
    const double value = oracle(s, a);
    std::fill(y, y + degree(), 0.0);
    y[ci_] = 1.0;
    y[k1_ + cj_] = 1.0;
    std::fill(u, u + num_additional(), 0.0);
    u[ci_ * k2_ + cj_] = 1.0;
    return value;
  }

  double evaluate(const int* y, const double* a, double* u) const override {
    return evaluate_dense(states_, 2, y, a, u, num_additional());
  }

  // Configs of ActiveSetSolver (active_set.h).
  double oracle(const double* s, const double* a) {
    const double* s2 = s + k1_;
    double best = kNegInf;
    for (int i = 0; i < k1_; ++i) {
      const double* row = a + i * k2_;
      for (int j = 0; j < k2_; ++j) {
        const double v = s[i] + s2[j] + row[j];
        if (v > best) {
          best = v;
          ci_ = i;
          cj_ = j;
        }
      }
    }
    return best;
  }
  double score(int c, const double* x, const double* a) const {
    const int i = slots_[2 * c], j = slots_[2 * c + 1];
    return x[i] + x[k1_ + j] + a[i * k2_ + j];
  }
  double overlap(int c) const { return (slots_[2 * c] == ci_ ? 1.0 : 0.0) + (slots_[2 * c + 1] == cj_ ? 1.0 : 0.0); }
  double candidate_size() const { return 2.0; }
  bool candidate_is_active(int k) const {
    for (int c = 0; c < k; ++c) {
      if (slots_[2 * c] == ci_ && slots_[2 * c + 1] == cj_) return true;
    }
    return false;
  }
  void store_candidate(int c) {
    if (static_cast<int>(slots_.size()) <= 2 * c + 1) slots_.resize(2 * c + 2);
    slots_[2 * c] = ci_;
    slots_[2 * c + 1] = cj_;
  }
  void swap_slots(int c, int d) {
    std::swap(slots_[2 * c], slots_[2 * d]);
    std::swap(slots_[2 * c + 1], slots_[2 * d + 1]);
  }
  void link_marginals(const double* w, int k, double* q) const {
    std::fill(q, q + k1_ + k2_, 0.0);
    for (int c = 0; c < k; ++c) {
      q[slots_[2 * c]] += w[c];
      q[k1_ + slots_[2 * c + 1]] += w[c];
    }
  }
  void additional_marginals(const double* w, int k, double* u) const {
    for (int c = 0; c < k; ++c) u[slots_[2 * c] * k2_ + slots_[2 * c + 1]] += w[c];
  }

 private:
  int k1_, k2_;
  int states_[2];
  std::vector<int> slots_;  // active configurations' states, (i, j) pairs (at most k1 + k2 - 1 are active)
  int ci_ = 0, cj_ = 0;       // the candidate
};

// Two binary units; additional score a[0] when both are 1. Its polytope is {(q0, q1, w):
// max(0, q0 + q1 - 1) <= w <= min(q0, q1)}; the local problem has a closed form (below).
class PairFactor : public LocalFactor {
 public:
  PairFactor() : LocalFactor(2, 1) {}

  double map(const double* s, const double* a, double* y, double* u) override {
    double best = 0.0;  // (0, 0)
    int y0 = 0, y1 = 0;
    if (s[0] > best) { best = s[0]; y0 = 1; y1 = 0; }
    if (s[1] > best) { best = s[1]; y0 = 0; y1 = 1; }
    if (s[0] + s[1] + a[0] > best) { best = s[0] + s[1] + a[0]; y0 = 1; y1 = 1; }
    y[0] = y0;
    y[1] = y1;
    u[0] = y0 && y1 ? 1.0 : 0.0;
    return best;
  }

  // min 1/2 ||q - x||^2 - a w. For a >= 0 the optimum has w = min(q0, q1), and the objective
  // max(g0, g1), g_i = 1/2 ||q - x||^2 - a q_i, is convex: the minimiser of g0 over the box,
  // (clip(x0 + a), clip(x1)), is optimal when it has q0 <= q1 (there g0 >= g1, so it minimises
  // the maximum too); likewise for g1; otherwise the optimum lies on q0 = q1 = clip((x0 + x1 + a) / 2).
  // For a < 0, flipping the second unit (q1' = 1 - q1, w' = q0 - w) gives the case a' = -a > 0
  // with x0 + a and 1 - x1.
  void solve_qp(const double* x, const double* a, double* q, double* u) override {
    if (a[0] >= 0.0) {
      solve_attractive(x[0], x[1], a[0], q);
      u[0] = std::min(q[0], q[1]);
    } else {
      solve_attractive(x[0] + a[0], 1.0 - x[1], -a[0], q);
      const double w_flipped = std::min(q[0], q[1]);
      q[1] = 1.0 - q[1];
      u[0] = q[0] - w_flipped;
    }
  }

  double evaluate(const int* y, const double* a, double* u) const override {
    u[0] = (y[0] && y[1]) ? 1.0 : 0.0;
    return u[0] * a[0];
  }

 private:
  static double clip(double v) { return std::min(1.0, std::max(0.0, v)); }
  static void solve_attractive(double x0, double x1, double a, double* q) {
    q[0] = clip(x0 + a);
    q[1] = clip(x1);
    if (q[0] <= q[1]) return;
    q[0] = clip(x0);
    q[1] = clip(x1 + a);
    if (q[1] <= q[0]) return;
    q[0] = q[1] = clip(0.5 * (x0 + x1 + a));
  }
};

// The last unit is the parity of the others: the allowed configurations have an even sum.
class XorOutFactor : public ActiveSetFactor {
 public:
  explicit XorOutFactor(int n) : ActiveSetFactor(n, 0) {}

  double best_config(const double* s, const double*, Config& config) override {
    const int n = degree();
    config.on.clear();
    config.extras.clear();
    double value = 0.0;
    int cheapest = 0;
    for (int i = 0; i < n; ++i) {
      if (s[i] > 0.0) {
        config.on.push_back(i);
        value += s[i];
      }
      if (std::fabs(s[i]) < std::fabs(s[cheapest])) cheapest = i;
    }
    if (config.on.size() % 2 == 1) {  // odd: flip the cheapest unit
      const auto it = std::find(config.on.begin(), config.on.end(), cheapest);
      if (it != config.on.end()) {
        config.on.erase(it);
      } else {
        config.on.push_back(cheapest);
      }
      value -= std::fabs(s[cheapest]);
    }
    return value;
  }

  double evaluate(const int* y, const double*, double*) const override {
    int parity = 0;
    for (int i = 0; i < degree(); ++i) parity ^= y[i];
    return parity == 0 ? 0.0 : kNegInf;
  }
};

class EnumeratedFactor : public ActiveSetFactor {
 public:
  explicit EnumeratedFactor(std::vector<std::vector<char>> configurations)
      : ActiveSetFactor(static_cast<int>(configurations.at(0).size()), 0), configurations_(std::move(configurations)) {}

  double best_config(const double* s, const double*, Config& config) override {
    double best = kNegInf;
    const std::vector<char>* chosen = nullptr;
    for (const auto& c : configurations_) {
      double v = 0.0;
      for (int i = 0; i < degree(); ++i) v += c[i] ? s[i] : 0.0;
      if (v > best) {
        best = v;
        chosen = &c;
      }
    }
    config.on.clear();
    config.extras.clear();
    for (int i = 0; chosen != nullptr && i < degree(); ++i) {
      if ((*chosen)[i]) config.on.push_back(i);
    }
    return best;
  }

  double evaluate(const int* y, const double*, double*) const override {
    for (const auto& c : configurations_) {
      if (std::equal(c.begin(), c.end(), y, [](char a, int b) { return a == b; })) return 0.0;
    }
    return kNegInf;
  }

 private:
  std::vector<std::vector<char>> configurations_;
};

}  // namespace

std::unique_ptr<LocalFactor> make_enumerated_factor(std::vector<std::vector<char>> configurations) {
  return std::make_unique<EnumeratedFactor>(std::move(configurations));
}

std::unique_ptr<LocalFactor> make_dense_factor(const std::vector<int>& num_states, bool generic) {
  if (num_states.size() == 2 && !generic) return std::make_unique<PairDenseFactor>(num_states[0], num_states[1]);
  return std::make_unique<DenseFactor>(num_states);
}
std::unique_ptr<LocalFactor> make_pair_factor() { return std::make_unique<PairFactor>(); }
std::unique_ptr<LocalFactor> make_xor_out_factor(int n) { return std::make_unique<XorOutFactor>(n); }

void append_factor_units(const FactorGraph& graph, const FactorSpec& spec, std::vector<int>& out) {
  if (spec.type != FactorType::kDense) {
    out.insert(out.end(), spec.links.begin(), spec.links.end());
    return;
  }
  for (int v : spec.links) {
    for (int t = 0; t < graph.unit_count(v); ++t) out.push_back(graph.unit_begin(v) + t);
  }
}

std::unique_ptr<LocalFactor> make_local_factor(const FactorGraph& graph, const FactorSpec& spec) {
  if (spec.type == FactorType::kDense) {
    std::vector<int> states(spec.links.size());
    for (std::size_t i = 0; i < states.size(); ++i) states[i] = graph.num_states(spec.links[i]);
    return make_dense_factor(states);
  }
  if (spec.type == FactorType::kPair) return make_pair_factor();
  if (spec.type == FactorType::kSequence) return make_sequence_factor(spec.num_states);
  if (spec.type == FactorType::kTree) return make_tree_factor(spec.num_nodes, spec.arcs);
  if (spec.type == FactorType::kGeneralTree) return make_tree_chain_factor(spec.parents, spec.num_states, false);
  if (spec.type == FactorType::kBinaryTree) {
    return make_tree_chain_factor(spec.parents, std::vector<int>(spec.parents.size(), 2), true);
  }
  if (spec.type == FactorType::kHeadAutomaton) {
    return make_head_automaton_factor(static_cast<int>(spec.links.size()), spec.arcs);
  }
  if (spec.type == FactorType::kGeneralTreeCounts) {
    return make_tree_counts_factor(spec.parents, spec.num_states, false, spec.counts_for_budget, {}, 0);
  }
  if (spec.type == FactorType::kBinaryTreeCounts) {
    return make_tree_counts_factor(spec.parents, std::vector<int>(spec.parents.size(), 2), true,
                                   spec.counts_for_budget, spec.has_count_scores, spec.max_num_bins);
  }
  if (spec.type == FactorType::kCompressionBudget) {
    return make_compression_budget_factor(spec.num_nodes, static_cast<int>(spec.budget), spec.counts_for_budget,
                                          spec.positions);
  }
  if (spec.type == FactorType::kSequenceCompressor) {
    return make_head_automaton_factor(static_cast<int>(spec.links.size()) - 1, spec.arcs, true);
  }
  if (spec.type == FactorType::kOracle) return make_oracle_factor(spec);
  return make_logic_factor(spec);
}

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
