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
    config.on.clear();
    config.extras.assign(length + 1, 0);
    config.extras[length] = transition(length, state, 0);
    for (int i = length - 1; i >= 0; --i) {
      config.on.push_back(offset_[i] + state);
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

// Maximum spanning arborescence rooted at node 0 by Chu-Liu-Edmonds, contracting cycles in place.
// A contracted cycle becomes a new node (ids n, n + 1, ...: after every remaining node, as the
// textbook recursion orders the contracted graph); its in- and out-arcs are computed from the
// cycle's in O(n |C|), and only the best heads that pointed into the cycle are recomputed, instead
// of building each contracted graph's score matrix anew (the tree factor's oracle contracts 3 to 9
// times per call on AD3's scores). Ties go to the first candidate in node order, as in the
// recursion. Assumes every node is reachable from 0 (checked when the factor is made).
class Arborescence {
 public:
  // n nodes, every arc score -inf. Write the arcs' scores at scores()[index(h, m)] and each
  // node's best head (the first of ties in node order) at heads()[m], then solve().
  explicit Arborescence(int n)
      : n_(n), stride_(2 * n), w_(static_cast<std::size_t>(stride_) * stride_, kNegInf),
        enter_(static_cast<std::size_t>(n) * stride_, -1), leave_(enter_.size(), -1), head_(stride_, -1),
        saved_head_(stride_, -1), kept_(stride_, 0.0), contraction_(stride_, -1), visit_(stride_, 0) {}

  std::size_t index(int h, int m) const { return static_cast<std::size_t>(m) * stride_ + h; }
  double* scores() { return w_.data(); }
  int* heads() { return head_.data(); }

  // The head of every node (head[0] = -1; entries from n on are scratch).
  const std::vector<int>& solve() {
    const int n = n_;
    active_.resize(n);
    std::iota(active_.begin(), active_.end(), 0);
    std::fill(contraction_.begin(), contraction_.end(), -1);
    cycle_begin_.assign(1, 0);
    cycles_.clear();
    int next = n;  // the id of the next contracted node
    while (find_cycle()) contract(next++);
    // Expand, the last contraction first: the arc into a contracted node enters one cycle node,
    // which drops its cycle arc; arcs out of it leave from the cycle node they came from.
    for (int c = next - 1; c >= n; --c) {
      const int* cycle = cycles_.data() + cycle_begin_[c - n];
      const int size = cycle_begin_[c - n + 1] - cycle_begin_[c - n];
      const int h = head_[c];
      for (int i = 0; i < size; ++i) head_[cycle[i]] = saved_head_[cycle[i]];
      head_[enter_[static_cast<std::size_t>(c - n) * stride_ + h]] = h;
      for (int v = 1; v < c; ++v) {
        if (head_[v] == c) head_[v] = leave_[static_cast<std::size_t>(c - n) * stride_ + v];
      }
    }
    return head_;
  }

 private:
  const double* row(int m) const { return w_.data() + static_cast<std::size_t>(m) * stride_; }
  double* row(int m) { return w_.data() + static_cast<std::size_t>(m) * stride_; }

  // The best head of m among the active nodes (the first of ties in node order).
  int best_head(int m) const {
    const double* in = row(m);
    double best = kNegInf;
    int arg = -1;
    for (int h : active_) {
      if (in[h] > best) {
        best = in[h];
        arg = h;
      }
    }
    return arg;
  }

  // Looks for a cycle among the best heads of the active nodes, walking from each in node order;
  // the first one found goes to the end of cycles_, its nodes in increasing order.
  bool find_cycle() {
    if (walk_ > (1 << 30)) {  // (walk ids only grow: restart them now and then)
      std::fill(visit_.begin(), visit_.end(), 0);
      walk_ = 0;
    }
    const int first_walk = walk_ + 1;
    for (std::size_t i = 1; i < active_.size(); ++i) {  // (active_[0] is the root)
      const int walk = ++walk_;
      int v = active_[i];
      while (v > 0 && visit_[v] < first_walk) {
        visit_[v] = walk;
        v = head_[v];
      }
      if (v > 0 && visit_[v] == walk) {
        const std::size_t begin = cycles_.size();
        int u = v;
        do {
          cycles_.push_back(u);
          u = head_[u];
        } while (u != v);
        std::sort(cycles_.begin() + begin, cycles_.end());
        cycle_begin_.push_back(static_cast<int>(cycles_.size()));
        return true;
      }
    }
    return false;
  }

  // Contracts the last cycle found into node c.
  void contract(int c) {
    const int* cycle = cycles_.data() + cycle_begin_[c - n_];
    const int size = cycle_begin_[c - n_ + 1] - cycle_begin_[c - n_];
    for (int i = 0; i < size; ++i) {
      const int u = cycle[i];
      contraction_[u] = c;
      saved_head_[u] = head_[u];
      kept_[u] = row(u)[head_[u]];
    }
    active_.erase(std::remove_if(active_.begin(), active_.end(), [&](int v) { return contraction_[v] == c; }),
                  active_.end());
    double* into_c = row(c);
    int* enter = enter_.data() + static_cast<std::size_t>(c - n_) * stride_;
    int* leave = leave_.data() + static_cast<std::size_t>(c - n_) * stride_;
    for (int h : active_) {  // h -> c: the best h -> u less u's cycle arc (the first u of ties)
      double best = kNegInf;
      int entered = -1;
      for (int i = 0; i < size; ++i) {
        const double v = row(cycle[i])[h] - kept_[cycle[i]];
        if (v > best) {
          best = v;
          entered = cycle[i];
        }
      }
      into_c[h] = best;
      enter[h] = entered;
    }
    into_c[c] = kNegInf;
    for (std::size_t i = 1; i < active_.size(); ++i) {  // c -> v: the best u -> v
      double* in = row(active_[i]);
      double best = kNegInf;
      int from = -1;
      for (int j = 0; j < size; ++j) {
        if (in[cycle[j]] > best) {
          best = in[cycle[j]];
          from = cycle[j];
        }
      }
      in[c] = best;
      leave[active_[i]] = from;
    }
    active_.push_back(c);
    // Best heads: c's, and those that pointed into the cycle (the others keep theirs: c comes
    // after them, and its arcs are no better than the cycle's).
    for (std::size_t i = 1; i + 1 < active_.size(); ++i) {
      const int v = active_[i];
      if (contraction_[head_[v]] == c) head_[v] = best_head(v);
    }
    head_[c] = best_head(c);
  }

  int n_, stride_;
  std::vector<double> w_;            // score of h -> m at m * stride_ + h (ids up to 2n - 2)
  std::vector<int> enter_, leave_;   // per contracted c, at (c - n) * stride_ + h / + v
  std::vector<int> head_, saved_head_;  // saved_head_: a cycle node's head when contracted
  std::vector<double> kept_;         // a cycle node's cycle arc score
  std::vector<int> contraction_;     // the node a node was contracted into (-1: none)
  std::vector<int> active_;          // the nodes of the current graph, increasing (root first)
  std::vector<int> cycles_, cycle_begin_;  // the contracted cycles' nodes, flat
  std::vector<int> visit_;           // walk id of the last visit (find_cycle)
  int walk_ = 0;
};

class TreeFactor : public ActiveSetFactor {
 public:
  TreeFactor(int num_nodes, std::vector<std::array<int, 2>> arcs)
      : ActiveSetFactor(static_cast<int>(arcs.size()), 0), n_(num_nodes), arcs_(std::move(arcs)),
        arc_of_(static_cast<std::size_t>(num_nodes) * num_nodes, -1), into_begin_(num_nodes + 1, 0),
        arborescence_(num_nodes) {
    for (std::size_t k = 0; k < arcs_.size(); ++k) {
      arc_of_[arcs_[k][0] * n_ + arcs_[k][1]] = static_cast<int>(k);
      ++into_begin_[arcs_[k][1] + 1];
    }
    for (int m = 0; m < n_; ++m) into_begin_[m + 1] += into_begin_[m];
    into_.resize(arcs_.size());
    for (int m = 0; m < n_; ++m) {  // (by head: the arcs into m in node order)
      int i = into_begin_[m];
      for (int h = 0; h < n_; ++h) {
        if (arc_of_[h * n_ + m] >= 0) into_[i++] = {arc_of_[h * n_ + m], h};
      }
    }
  }

  double best_config(const double* s, const double*, Config& config) override {
    // The scores into each node, and its best head, in one pass.
    double* scores = arborescence_.scores();
    int* heads = arborescence_.heads();
    for (int m = 1; m < n_; ++m) {
      double* in = scores + arborescence_.index(0, m);
      double best = kNegInf;
      int arg = -1;
      for (int i = into_begin_[m]; i < into_begin_[m + 1]; ++i) {
        const double v = s[into_[i].arc];
        in[into_[i].head] = v;
        if (v > best) {
          best = v;
          arg = into_[i].head;
        }
      }
      heads[m] = arg;
    }
    const std::vector<int>& head = arborescence_.solve();
    config.on.clear();
    config.extras.clear();
    double value = 0.0;
    for (int m = 1; m < n_; ++m) {
      const int k = arc_of_[head[m] * n_ + m];
      config.on.push_back(k);
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
  struct Into {
    int arc, head;
  };
  std::vector<Into> into_;       // the arcs into node m, by head, at into_begin_[m]..into_begin_[m + 1]
  std::vector<int> into_begin_;
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
    config.on.clear();
    config.extras.clear();
    for (int i = 0; i < n; ++i) {
      if (!binary_ || state_[i]) config.on.push_back(offset_[i] + (binary_ ? 0 : state_[i]));
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
        index_(static_cast<std::size_t>(length_ + 1) * (length_ + 1), -1), best_(length_), back_(length_ + 1) {
    for (std::size_t k = 0; k < siblings.size(); ++k) {
      index_[siblings[k][1] * (length_ + 1) + siblings[k][0]] = static_cast<int>(k);
    }
  }

  double best_config(const double* s, const double* a, Config& config) override {
    // best[p]: the best score of a chain ending at position p (p = 0: the head), back[p] its
    // previous position.
    double* const best = best_.data();
    int* const back = back_.data();
    best[0] = 0.0;
    for (int p = 1; p < length_; ++p) {
      const int* into = siblings_into(p);
      double top = kNegInf;
      int arg = 0;
      for (int m = 0; m < p; ++m) {
        const double v = best[m] + a[into[m]];
        if (v > top) {
          top = v;
          arg = m;
        }
      }
      best[p] = top + s[p - 1];
      back[p] = arg;
    }
    const int* into = siblings_into(length_);
    const double any = indicator_ ? s[length_ - 1] : 0.0;
    double value = kNegInf;
    back[length_] = 0;
    for (int m = 0; m < length_; ++m) {
      const double v = best[m] + a[into[m]] + (m > 0 ? any : 0.0);
      if (v > value) {
        value = v;
        back[length_] = m;
      }
    }
    config.on.clear();
    config.extras.clear();
    for (int p = length_; p > 0; p = back[p]) {
      config.extras.push_back(sibling(back[p], p));
      if (back[p] > 0) config.on.push_back(back[p] - 1);
    }
    std::reverse(config.extras.begin(), config.extras.end());
    if (indicator_ && back[length_] > 0) config.on.push_back(length_ - 1);
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
  int sibling(int m, int s) const { return index_[s * (length_ + 1) + m]; }
  const int* siblings_into(int s) const { return index_.data() + s * (length_ + 1); }  // by m

  int length_;
  bool indicator_;
  std::vector<int> index_;  // sibling score index of (m, s) at s * (length_ + 1) + m
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
