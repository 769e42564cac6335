// Structured factors given by a MAP oracle, solved inside AD3 by the active-set method
// (active_set.h): the sequence factor (Viterbi), the dependency-tree factor (Chu-Liu-Edmonds
// maximum spanning arborescence) and the head automaton (a dynamic program over positions).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "ad3/active_set.h"
#include "ad3/factors.h"

namespace ccnn {
namespace ad3 {
namespace detail {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Positions 0..L-1 with K_i states (unit offset_[i] + k); transition (i, previous l, current k)
// at index_[i] + l * (i < L ? K_i : 1) + k, for i = 0..L (start, between, end).
class SequenceFactor : public ActiveSetFactor {
 public:
  explicit SequenceFactor(std::vector<int> num_states)
      : ActiveSetFactor(std::accumulate(num_states.begin(), num_states.end(), 0), transitions(num_states)),
        states_(std::move(num_states)) {
    const int length = static_cast<int>(states_.size());
    int unit = 0, index = 0;
    for (int i = 0; i <= length; ++i) {
      if (i < length) {
        offset_.push_back(unit);
        unit += states_[i];
      }
      index_.push_back(index);
      index += (i > 0 ? states_[i - 1] : 1) * (i < length ? states_[i] : 1);
    }
  }

  double best_config(const double* s, const double* a, Config& config) override {
    const int length = static_cast<int>(states_.size());
    value_.resize(degree());
    back_.resize(degree());
    for (int k = 0; k < states_[0]; ++k) value_[k] = a[index_[0] + k] + s[k];
    for (int i = 1; i < length; ++i) {
      // best previous state l for each state k (the first of ties), the transition table's rows
      // (one per l) read contiguously
      const int width = states_[i];
      const double* previous = value_.data() + offset_[i - 1];
      const double* table = a + index_[i];
      double* best = value_.data() + offset_[i];
      int* arg = back_.data() + offset_[i];
      std::fill(best, best + width, kNegInf);
      std::fill(arg, arg + width, 0);
      for (int l = 0; l < states_[i - 1]; ++l) {
        const double* row = table + l * width;
        for (int k = 0; k < width; ++k) {
          const double v = previous[l] + row[k];
          if (v > best[k]) {
            best[k] = v;
            arg[k] = l;
          }
        }
      }
      for (int k = 0; k < width; ++k) best[k] += s[offset_[i] + k];
    }
    double best = kNegInf;
    int state = 0;
    for (int l = 0; l < states_[length - 1]; ++l) {
      const double v = value_[offset_[length - 1] + l] + a[transition(length, l, 0)];
      if (v > best) {
        best = v;
        state = l;
      }
    }
    config.y.assign(degree(), 0);
    config.extras.assign(length + 1, 0);
    config.extras[length] = transition(length, state, 0);
    for (int i = length - 1; i >= 0; --i) {
      config.y[offset_[i] + state] = 1;
      const int previous = i > 0 ? back_[offset_[i] + state] : 0;
      config.extras[i] = transition(i, previous, state);
      state = previous;
    }
    return best;
  }

  double evaluate(const int* y, const double* a, double* u) const override {
    const int length = static_cast<int>(states_.size());
    if (u != nullptr) std::fill(u, u + num_additional(), 0.0);
    double total = 0.0;
    int previous = 0;
    for (int i = 0; i <= length; ++i) {
      int state = 0;
      if (i < length) {
        state = -1;
        for (int k = 0; k < states_[i]; ++k) {
          if (y[offset_[i] + k]) {
            if (state >= 0) return kNegInf;
            state = k;
          }
        }
        if (state < 0) return kNegInf;
      }
      const int t = transition(i, previous, state);
      total += a[t];
      if (u != nullptr) u[t] += 1.0;
      previous = state;
    }
    return total;
  }

 private:
  static int transitions(const std::vector<int>& k) {
    int total = k[0] + k.back();
    for (std::size_t i = 1; i < k.size(); ++i) total += k[i - 1] * k[i];
    return total;
  }
  int transition(int i, int previous, int current) const {
    const int width = i < static_cast<int>(states_.size()) ? states_[i] : 1;
    return index_[i] + previous * width + current;
  }

  std::vector<int> states_, offset_, index_;
  std::vector<double> value_;
  std::vector<int> back_;
};

// Maximum spanning arborescence rooted at node 0 of the dense score matrix w[m * n + h] of the arcs
// h -> m (the arcs into m contiguous; kNegInf: no arc, as on the diagonal), by Chu-Liu-Edmonds with cycle contraction, O(n^3). Writes the head of every node to
// head (head[0] = -1). Assumes every node is reachable from 0. The buffers of each contraction
// level are kept between calls (the oracle runs many times per solve).
class Arborescence {
 public:
  const std::vector<int>& solve(const std::vector<double>& w, int n) {
    // (each contraction removes at least one node: at most n levels; sized before the recursion,
    // which holds references into levels_)
    if (levels_.size() < static_cast<std::size_t>(n) + 1) levels_.resize(n + 1);
    return solve(w, n, 0);
  }

 private:
  struct Level {
    std::vector<int> head, mark, cycle, id, original, enter, leave, head2;
    std::vector<char> in_cycle;
    std::vector<double> w2;
  };

  const std::vector<int>& solve(const std::vector<double>& w, int n, std::size_t depth) {
    Level& L = levels_[depth];
    std::vector<int>& head = L.head;
    head.assign(n, -1);
    for (int m = 1; m < n; ++m) {  // best head of m: the first h of the largest w(h -> m)
      const double* in = w.data() + static_cast<std::size_t>(m) * n;
      double best = kNegInf;
      for (int h = 0; h < n; ++h) best = std::max(best, in[h]);
      if (best == kNegInf) continue;
      int h = 0;
      while (in[h] != best) ++h;
      head[m] = h;
    }
    // Find a cycle among the best heads.
    L.mark.assign(n, -1);
    L.cycle.clear();
    for (int start = 1; start < n && L.cycle.empty(); ++start) {
      int v = start;
      while (v > 0 && L.mark[v] < 0) {
        L.mark[v] = start;
        v = head[v];
      }
      if (v > 0 && L.mark[v] == start) {  // v lies on a new cycle
        int u = v;
        do {
          L.cycle.push_back(u);
          u = head[u];
        } while (u != v);
      }
    }
    if (L.cycle.empty()) return head;
    // Contract the cycle into node c (the new graph: the other nodes, then c).
    L.in_cycle.assign(n, 0);
    for (int v : L.cycle) L.in_cycle[v] = 1;
    L.id.assign(n, -1);
    L.original.clear();
    for (int v = 0; v < n; ++v) {
      if (!L.in_cycle[v]) {
        L.id[v] = static_cast<int>(L.original.size());
        L.original.push_back(v);
      }
    }
    const int c = static_cast<int>(L.original.size());
    const int n2 = c + 1;
    L.w2.assign(static_cast<std::size_t>(n2) * n2, kNegInf);
    L.enter.assign(n2, -1);  // for arcs u -> c: the cycle node entered
    L.leave.assign(n2, -1);  // for arcs c -> v: the cycle node left from
    for (int h = 0; h < n; ++h) {  // (h before m: the same first-of-ties choices as row-major arcs)
      for (int m = 0; m < n; ++m) {
        const double s = w[m * n + h];
        if (h == m || s == kNegInf) continue;
        if (!L.in_cycle[h] && !L.in_cycle[m]) {
          L.w2[L.id[m] * n2 + L.id[h]] = s;
        } else if (!L.in_cycle[h] && L.in_cycle[m]) {
          const double v = s - w[m * n + head[m]];
          if (v > L.w2[c * n2 + L.id[h]]) {
            L.w2[c * n2 + L.id[h]] = v;
            L.enter[L.id[h]] = m;
          }
        } else if (L.in_cycle[h] && !L.in_cycle[m]) {
          if (s > L.w2[L.id[m] * n2 + c]) {
            L.w2[L.id[m] * n2 + c] = s;
            L.leave[L.id[m]] = h;
          }
        }
      }
    }
    L.head2 = solve(L.w2, n2, depth + 1);
    // Expand: cycle nodes keep their heads but one.
    for (int v2 = 1; v2 < n2; ++v2) {
      const int h2 = L.head2[v2];
      if (v2 == c) {
        head[L.enter[h2]] = L.original[h2];
      } else {
        head[L.original[v2]] = h2 == c ? L.leave[v2] : L.original[h2];
      }
    }
    return head;
  }

  std::vector<Level> levels_;
};

class TreeFactor : public ActiveSetFactor {
 public:
  TreeFactor(int num_nodes, std::vector<std::array<int, 2>> arcs)
      : ActiveSetFactor(static_cast<int>(arcs.size()), 0), n_(num_nodes), arcs_(std::move(arcs)),
        arc_of_(static_cast<std::size_t>(num_nodes) * num_nodes, -1),
        weights_(static_cast<std::size_t>(num_nodes) * num_nodes, kNegInf), slot_(arcs_.size()) {
    for (std::size_t k = 0; k < arcs_.size(); ++k) {
      arc_of_[arcs_[k][0] * n_ + arcs_[k][1]] = static_cast<int>(k);
      slot_[k] = arcs_[k][1] * n_ + arcs_[k][0];
    }
  }

  double best_config(const double* s, const double*, Config& config) override {
    for (std::size_t k = 0; k < arcs_.size(); ++k) weights_[slot_[k]] = s[k];
    const std::vector<int>& head = arborescence_.solve(weights_, n_);
    config.y.assign(degree(), 0);
    config.extras.clear();
    double value = 0.0;
    for (int m = 1; m < n_; ++m) {
      const int k = arc_of_[head[m] * n_ + m];
      config.y[k] = 1;
      value += s[k];
    }
    return value;
  }

  double evaluate(const int* y, const double*, double*) const override {
    std::vector<int> head(n_, -1);
    for (std::size_t k = 0; k < arcs_.size(); ++k) {
      if (!y[k]) continue;
      const int m = arcs_[k][1];
      if (head[m] >= 0) return kNegInf;  // two heads
      head[m] = arcs_[k][0];
    }
    for (int m = 1; m < n_; ++m) {
      // every node has a head and reaches the root within n steps (no cycle)
      int v = m, steps = 0;
      while (v != 0 && steps <= n_) {
        v = head[v];
        if (v < 0) return kNegInf;
        ++steps;
      }
      if (v != 0) return kNegInf;
    }
    return 0.0;
  }

 private:
  int n_;
  std::vector<std::array<int, 2>> arcs_;
  std::vector<int> arc_of_;
  std::vector<double> weights_;  // arc scores by modifier, then head (n x n); -inf where there is no arc
  std::vector<int> slot_;        // per arc: its place in weights_
  Arborescence arborescence_;
};

// A tree-structured chain: node i in state k is link offset_[i] + k (general), or its one link
// being 1 for state 1 (binary); edge table of node i >= 1 at table_[i] + parent_state * K_i + k.
class TreeChainFactor : public ActiveSetFactor {
 public:
  TreeChainFactor(std::vector<int> parents, std::vector<int> num_states, bool binary)
      : ActiveSetFactor(binary ? static_cast<int>(parents.size())
                               : std::accumulate(num_states.begin(), num_states.end(), 0),
                        tables(parents, num_states)),
        parents_(std::move(parents)), states_(std::move(num_states)), binary_(binary) {
    const int n = static_cast<int>(parents_.size());
    int unit = 0, table = 0;
    offset_.resize(n);
    table_.assign(n, 0);
    value_offset_.resize(n);
    int values = 0;
    for (int i = 0; i < n; ++i) {
      offset_[i] = unit;
      unit += binary_ ? 1 : states_[i];
      value_offset_[i] = values;
      values += states_[i];
      if (i > 0) {
        table_[i] = table;
        table += states_[parents_[i]] * states_[i];
      }
    }
    // Children after parents: breadth-first order from the root.
    order_.push_back(0);
    for (std::size_t k = 0; k < order_.size(); ++k) {
      for (int i = 1; i < n; ++i) {
        if (parents_[i] == order_[k]) order_.push_back(i);
      }
    }
    state_.resize(n);
  }

  double best_config(const double* s, const double* a, Config& config) override {
    const int n = static_cast<int>(parents_.size());
    // value_[i][k]: the best score of node i's subtree with i in state k (node and edge scores
    // inside it, plus the edge to its parent excluded).
    value_.assign(value_offset_.back() + states_.back(), 0.0);
    choices_.resize(n);  // per child and parent state: the child's best state
    for (int i = 0; i < n; ++i) {
      for (int k = 0; k < states_[i]; ++k) value_[value_offset_[i] + k] = node_score(s, i, k);
    }
    for (int idx = n - 1; idx >= 1; --idx) {
      const int i = order_[idx], p = parents_[i];
      choices_[i].assign(states_[p], 0);
      for (int l = 0; l < states_[p]; ++l) {
        double best = -std::numeric_limits<double>::infinity();
        int arg = 0;
        for (int k = 0; k < states_[i]; ++k) {
          const double v = value_[value_offset_[i] + k] + a[table_[i] + l * states_[i] + k];
          if (v > best) {
            best = v;
            arg = k;
          }
        }
        value_[value_offset_[p] + l] += best;
        choices_[i][l] = arg;
      }
    }
    double best = -std::numeric_limits<double>::infinity();
    for (int k = 0; k < states_[0]; ++k) {
      if (value_[k] > best) {
        best = value_[k];
        state_[0] = k;
      }
    }
    for (int idx = 1; idx < n; ++idx) {
      const int i = order_[idx];
      state_[i] = choices_[i][state_[parents_[i]]];
    }
    fill_config(config);
    return best;
  }

  double evaluate(const int* y, const double* a, double* u) const override {
    const int n = static_cast<int>(parents_.size());
    std::vector<int> state(n);
    for (int i = 0; i < n; ++i) {
      if (binary_) {
        state[i] = y[offset_[i]];
        continue;
      }
      state[i] = -1;
      for (int k = 0; k < states_[i]; ++k) {
        if (y[offset_[i] + k]) {
          if (state[i] >= 0) return kNegInf;
          state[i] = k;
        }
      }
      if (state[i] < 0) return kNegInf;
    }
    if (u != nullptr) std::fill(u, u + num_additional(), 0.0);
    double total = 0.0;
    for (int i = 1; i < n; ++i) {
      const int t = table_[i] + state[parents_[i]] * states_[i] + state[i];
      total += a[t];
      if (u != nullptr) u[t] += 1.0;
    }
    return total;
  }

 private:
  static int tables(const std::vector<int>& parents, const std::vector<int>& k) {
    int total = 0;
    for (std::size_t i = 1; i < parents.size(); ++i) total += k[parents[i]] * k[i];
    return total;
  }
  double node_score(const double* s, int i, int k) const {
    if (binary_) return k == 1 ? s[offset_[i]] : 0.0;
    return s[offset_[i] + k];
  }
  void fill_config(Config& config) const {
    const int n = static_cast<int>(parents_.size());
    config.y.assign(degree(), 0);
    config.extras.clear();
    for (int i = 0; i < n; ++i) {
      if (binary_) {
        config.y[offset_[i]] = static_cast<char>(state_[i]);
      } else {
        config.y[offset_[i] + state_[i]] = 1;
      }
      if (i > 0) config.extras.push_back(table_[i] + state_[parents_[i]] * states_[i] + state_[i]);
    }
  }

  std::vector<int> parents_, states_;
  bool binary_;
  std::vector<int> offset_, table_, value_offset_, order_, state_;
  std::vector<double> value_;
  std::vector<std::vector<int>> choices_;
};

// Positions 1..L-1 (link p - 1); a configuration is an increasing list of chosen positions
// 0 = m_0 < m_1 < ... < m_k < L, scoring its links plus the sibling scores (m_j, m_{j+1}) and
// (m_k, L). With the indicator (sequence compressor), link L - 1 is 1 exactly when k > 0.
class HeadAutomatonFactor : public ActiveSetFactor {
 public:
  HeadAutomatonFactor(int num_positions, const std::vector<std::array<int, 2>>& siblings, bool indicator)
      : ActiveSetFactor(num_positions + (indicator ? 1 : 0), static_cast<int>(siblings.size())),
        length_(num_positions + 1), indicator_(indicator),
        index_(static_cast<std::size_t>(length_ + 1) * (length_ + 1), -1) {
    for (std::size_t k = 0; k < siblings.size(); ++k) index_[siblings[k][0] * (length_ + 1) + siblings[k][1]] = static_cast<int>(k);
  }

  double best_config(const double* s, const double* a, Config& config) override {
    // best_[p]: the best score of a chain ending at position p (p = 0: the head).
    best_.assign(length_, kNegInf);
    back_.assign(length_ + 1, 0);
    best_[0] = 0.0;
    for (int p = 1; p < length_; ++p) {
      for (int m = 0; m < p; ++m) {
        const double v = best_[m] + a[sibling(m, p)];
        if (v > best_[p]) {
          best_[p] = v;
          back_[p] = m;
        }
      }
      best_[p] += s[p - 1];
    }
    double value = kNegInf;
    for (int m = 0; m < length_; ++m) {
      const double v = best_[m] + a[sibling(m, length_)] + (indicator_ && m > 0 ? s[length_ - 1] : 0.0);
      if (v > value) {
        value = v;
        back_[length_] = m;
      }
    }
    config.y.assign(degree(), 0);
    config.extras.clear();
    for (int p = length_; p > 0; p = back_[p]) {
      config.extras.push_back(sibling(back_[p], p));
      if (back_[p] > 0) config.y[back_[p] - 1] = 1;
    }
    if (indicator_ && back_[length_] > 0) config.y[length_ - 1] = 1;
    std::reverse(config.extras.begin(), config.extras.end());
    return value;
  }

  double evaluate(const int* y, const double* a, double* u) const override {
    if (indicator_) {
      int any = 0;
      for (int p = 1; p < length_; ++p) any |= y[p - 1];
      if (y[length_ - 1] != any) return kNegInf;
    }
    if (u != nullptr) std::fill(u, u + num_additional(), 0.0);
    double total = 0.0;
    int m = 0;
    for (int p = 1; p <= length_; ++p) {
      if (p < length_ && !y[p - 1]) continue;
      const int k = sibling(m, p);
      total += a[k];
      if (u != nullptr) u[k] += 1.0;
      m = p;
    }
    return total;
  }

 private:
  int sibling(int m, int s) const { return index_[m * (length_ + 1) + s]; }

  int length_;
  bool indicator_;
  std::vector<int> index_;
  std::vector<double> best_;
  std::vector<int> back_;
};

}  // namespace

std::unique_ptr<LocalFactor> make_tree_chain_factor(const std::vector<int>& parents,
                                                    const std::vector<int>& num_states, bool binary) {
  return std::make_unique<TreeChainFactor>(parents, num_states, binary);
}

std::unique_ptr<LocalFactor> make_head_automaton_factor(int num_positions,
                                                       const std::vector<std::array<int, 2>>& siblings,
                                                       bool with_indicator) {
  return std::make_unique<HeadAutomatonFactor>(num_positions, siblings, with_indicator);
}

std::unique_ptr<LocalFactor> make_sequence_factor(const std::vector<int>& num_states) {
  return std::make_unique<SequenceFactor>(num_states);
}

std::unique_ptr<LocalFactor> make_tree_factor(int num_nodes, const std::vector<std::array<int, 2>>& arcs) {
  return std::make_unique<TreeFactor>(num_nodes, arcs);
}

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
