// The tree factors with counts (factor_graph.h, kGeneralTreeCounts and kBinaryTreeCounts), solved
// inside AD3 by the active-set method (active_set.h) with a dynamic program over (node, state,
// number of counted nodes in its subtree), the children merged as in a knapsack.
#include <algorithm>
#include <array>
#include <limits>

#include "ad3/active_set.h"
#include "ad3/factors.h"

namespace ccnn {
namespace ad3 {
namespace detail {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// The nodes of the tree (parents[0] = -1) in breadth-first order from the root: every parent
// before its children.
std::vector<int> top_down_order(const std::vector<int>& parents) {
  const int n = static_cast<int>(parents.size());
  std::vector<std::vector<int>> children(n);
  for (int i = 1; i < n; ++i) children[parents[i]].push_back(i);
  std::vector<int> order(1, 0);
  for (std::size_t t = 0; t < order.size(); ++t) {
    for (int j : children[order[t]]) order.push_back(j);
  }
  return order;
}

// Nodes 0..n-1 (parents[0] = -1) with K_i states; a node "counts" when it is in the counting state
// and flagged in counts. General: links = the nodes' state units, then n + 1 count units (one-hot:
// the number of counted nodes); binary: one link per node (state = its value), and additional
// count scores for the flagged nodes (one per count 0..size of its subtree, for its subtree; with
// max_num_bins = m > 0, a count of m - 1 or more scores as m - 1).
// Edge scores: per non-root node, a K_parent x K_i table (parent's state first), first in the
// additional scores.
class TreeCountsFactor : public ActiveSetFactor {
 public:
  TreeCountsFactor(const std::vector<int>& parents, const std::vector<int>& num_states, bool binary,
                   std::vector<char> counts, std::vector<char> has_count_scores, int max_num_bins, int degree,
                   int num_additional)
      : ActiveSetFactor(degree, num_additional), n_(static_cast<int>(parents.size())), binary_(binary),
        last_bin_(max_num_bins > 0 ? max_num_bins - 1 : std::numeric_limits<int>::max()),
        parents_(parents), states_(num_states), counts_(std::move(counts)), children_(n_), unit_(n_),
        edge_(n_), size_(n_, 1), count_score_(n_, -1) {
    int unit = 0, index = 0;
    for (int i = 0; i < n_; ++i) {
      unit_[i] = unit;
      unit += binary_ ? 1 : states_[i];
      if (i > 0) {
        children_[parents_[i]].push_back(i);
        edge_[i] = index;
        index += states_[parents_[i]] * states_[i];
      }
    }
    count_unit_ = unit;
    order_ = top_down_order(parents_);
    for (int t = n_ - 1; t > 0; --t) size_[parents_[order_[t]]] += size_[order_[t]];
    for (int i = 0; binary_ && i < n_; ++i) {
      if (has_count_scores[i]) {
        count_score_[i] = index;
        index += size_[i] + 1;
      }
    }
  }

  double best_config(const double* s, const double* a, Config& config) override {
    value_.assign(n_, {});
    choice_.assign(n_, {});
    for (int t = n_ - 1; t >= 0; --t) solve_node(order_[t], s, a);  // children before their parent
    double best = kNegInf;
    int state = 0, count = 0;
    for (int k = 0; k < states_[0]; ++k) {
      for (int c = 0; c <= size_[0]; ++c) {
        const double v = value_[0][k * (size_[0] + 1) + c];
        if (v == kNegInf) continue;
        const double total = v + count_term(0, c, s, a);
        if (total > best) {
          best = total;
          state = k;
          count = c;
        }
      }
    }
    labels_.assign(n_, 0);
    backtrack(0, state, count);
    configuration(count, config);
    return best;
  }

  double evaluate(const int* y, const double* a, double* u) const override {
    std::vector<int> state(n_), subtree(n_, 0);
    for (int i = 0; i < n_; ++i) {
      if (binary_) {
        state[i] = y[unit_[i]];
        continue;
      }
      state[i] = -1;
      for (int k = 0; k < states_[i]; ++k) {
        if (y[unit_[i] + k]) {
          if (state[i] >= 0) return kNegInf;
          state[i] = k;
        }
      }
      if (state[i] < 0) return kNegInf;
    }
    for (int t = n_ - 1; t >= 0; --t) {
      const int i = order_[t];
      subtree[i] += counted(i, state[i]) ? 1 : 0;
      if (i > 0) subtree[parents_[i]] += subtree[i];
    }
    if (!binary_) {
      for (int c = 0; c <= n_; ++c) {
        if (y[count_unit_ + c] != (c == subtree[0] ? 1 : 0)) return kNegInf;
      }
    }
    if (u != nullptr) std::fill(u, u + num_additional(), 0.0);
    double total = 0.0;
    auto take = [&](int index) {
      total += a[index];
      if (u != nullptr) u[index] += 1.0;
    };
    for (int i = 1; i < n_; ++i) take(edge_[i] + state[parents_[i]] * states_[i] + state[i]);
    for (int i = 0; i < n_; ++i) {
      if (count_score_[i] >= 0) take(count_score_[i] + bin(subtree[i]));
    }
    return total;
  }

 private:
  bool counted(int i, int state) const { return counts_[i] && state == (binary_ ? 1 : 0); }
  int bin(int count) const { return std::min(count, last_bin_); }
  double node_score(int i, int k, const double* s) const {
    if (binary_) return k ? s[unit_[i]] : 0.0;
    return s[unit_[i] + k];
  }
  // The score of node i's subtree holding c counted nodes: a count score (binary) or, at the
  // root of a general tree, the count unit's score.
  double count_term(int i, int c, const double* s, const double* a) const {
    double v = count_score_[i] >= 0 ? a[count_score_[i] + bin(c)] : 0.0;
    if (!binary_ && i == 0) v += s[count_unit_ + c];
    return v;
  }

  // value_[i][k * (size_i + 1) + c]: the best score of i's subtree with i in state k and c counted
  // nodes in it (edges and count terms below i included, i's own count term not).
  void solve_node(int i, const double* s, const double* a) {
    const int width = size_[i] + 1;
    value_[i].assign(static_cast<std::size_t>(states_[i]) * width, kNegInf);
    choice_[i].assign(states_[i], {});
    for (int k = 0; k < states_[i]; ++k) {
      std::vector<double> merged(1, 0.0);  // children merged so far, by count
      std::vector<std::vector<std::array<int, 2>>>& picks = choice_[i][k];
      for (int j : children_[i]) {
        const int child_width = size_[j] + 1;
        std::vector<double> best_child(child_width, kNegInf);  // over j's state, by j's count
        std::vector<int> best_state(child_width, -1);
        for (int l = 0; l < states_[j]; ++l) {
          const double edge = a[edge_[j] + k * states_[j] + l];
          for (int c = 0; c < child_width; ++c) {
            const double v = value_[j][l * child_width + c];
            if (v == kNegInf) continue;
            const double total = v + edge + count_term(j, c, s, a);
            if (total > best_child[c]) {
              best_child[c] = total;
              best_state[c] = l;
            }
          }
        }
        std::vector<double> next(merged.size() + child_width - 1, kNegInf);
        std::vector<std::array<int, 2>> pick(next.size(), {-1, -1});
        for (std::size_t c1 = 0; c1 < merged.size(); ++c1) {
          if (merged[c1] == kNegInf) continue;
          for (int c2 = 0; c2 < child_width; ++c2) {
            if (best_state[c2] < 0) continue;
            const double v = merged[c1] + best_child[c2];
            if (v > next[c1 + c2]) {
              next[c1 + c2] = v;
              pick[c1 + c2] = {c2, best_state[c2]};
            }
          }
        }
        merged.swap(next);
        picks.push_back(std::move(pick));
      }
      const int own = counted(i, k) ? 1 : 0;
      for (std::size_t c = 0; c < merged.size(); ++c) {
        if (merged[c] > kNegInf) value_[i][k * width + c + own] = merged[c] + node_score(i, k, s);
      }
    }
  }

  void backtrack(int i, int k, int count) {
    labels_[i] = k;
    int rest = count - (counted(i, k) ? 1 : 0);
    const auto& picks = choice_[i][k];
    for (int t = static_cast<int>(children_[i].size()) - 1; t >= 0; --t) {
      const std::array<int, 2> pick = picks[t][rest];  // (child's count, child's state)
      backtrack(children_[i][t], pick[1], pick[0]);
      rest -= pick[0];
    }
  }

  void configuration(int count, Config& config) const {
    config.on.clear();
    config.extras.clear();
    std::vector<int> subtree(n_, 0);
    for (int t = n_ - 1; t >= 0; --t) {
      const int i = order_[t];
      if (!binary_ || labels_[i]) config.on.push_back(unit_[i] + (binary_ ? 0 : labels_[i]));
      subtree[i] += counted(i, labels_[i]) ? 1 : 0;
      if (i > 0) {
        subtree[parents_[i]] += subtree[i];
        config.extras.push_back(edge_[i] + labels_[parents_[i]] * states_[i] + labels_[i]);
      }
    }
    if (!binary_) config.on.push_back(count_unit_ + count);
    for (int i = 0; i < n_; ++i) {
      if (count_score_[i] >= 0) config.extras.push_back(count_score_[i] + bin(subtree[i]));
    }
  }

  int n_;
  bool binary_;
  int last_bin_;  // the bin of the largest counts (max_num_bins - 1, or no limit)
  std::vector<int> parents_, states_;
  std::vector<char> counts_;
  std::vector<std::vector<int>> children_;
  std::vector<int> unit_, edge_, size_, count_score_, order_;
  int count_unit_ = 0;
  std::vector<std::vector<double>> value_;
  std::vector<std::vector<std::vector<std::vector<std::array<int, 2>>>>> choice_;  // [i][k][child][count]
  std::vector<int> labels_;
};

}  // namespace

std::vector<std::size_t> subtree_sizes(const std::vector<int>& parents) {
  const std::vector<int> order = top_down_order(parents);
  std::vector<std::size_t> size(parents.size(), 1);
  for (std::size_t t = order.size(); t-- > 1;) size[parents[order[t]]] += size[order[t]];
  return size;
}

std::unique_ptr<LocalFactor> make_tree_counts_factor(const std::vector<int>& parents,
                                                    const std::vector<int>& num_states, bool binary,
                                                    const std::vector<char>& counts_for_budget,
                                                    const std::vector<char>& has_count_scores, int max_num_bins) {
  const int n = static_cast<int>(parents.size());
  const std::vector<std::size_t> size = subtree_sizes(parents);
  int degree = 0, additional = 0;
  for (int i = 0; i < n; ++i) {
    degree += binary ? 1 : num_states[i];
    if (i > 0) additional += num_states[parents[i]] * num_states[i];
    if (binary && has_count_scores[i]) additional += static_cast<int>(size[i]) + 1;
  }
  if (!binary) degree += n + 1;
  return std::make_unique<TreeCountsFactor>(parents, num_states, binary, counts_for_budget, has_count_scores,
                                            max_num_bins, degree, additional);
}

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
