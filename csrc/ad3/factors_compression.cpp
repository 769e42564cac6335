// The compression budget factor (factor_graph.h, kCompressionBudget), solved inside AD3 by the
// active-set method (active_set.h) with a Viterbi oracle over (position, kept or not, number of
// counted positions kept so far).
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

// Transition i (0..L) joins position i - 1 (i = 0: the start, one state) to position i (i = L: the
// end, one state). edge_[i][previous][state] is the additional score's index, or -1 - link for a
// transition scored by a bigram link (previous and state both the last state: "kept").
class CompressionBudgetFactor : public ActiveSetFactor {
 public:
  CompressionBudgetFactor(int length, int budget, std::vector<char> counts, const std::vector<int>& bigrams)
      : ActiveSetFactor(length + static_cast<int>(bigrams.size()), 4 * length - static_cast<int>(bigrams.size())),
        length_(length), budget_(budget), counts_(std::move(counts)), edge_(length + 1, {{{0, 0}, {0, 0}}}) {
    std::vector<int> bigram_link(length + 1, -1);
    for (std::size_t k = 0; k < bigrams.size(); ++k) bigram_link[bigrams[k] + 1] = length + static_cast<int>(k);
    int index = 0;
    for (int i = 0; i <= length; ++i) {
      const int previous_states = i > 0 ? 2 : 1, states = i < length ? 2 : 1;
      for (int j = 0; j < previous_states; ++j) {
        for (int k = 0; k < states; ++k) {
          const bool bigram = bigram_link[i] >= 0 && j == previous_states - 1 && k == states - 1;
          edge_[i][j][k] = bigram ? -1 - bigram_link[i] : index++;
        }
      }
    }
  }

  double best_config(const double* s, const double* a, Config& config) override {
    const int bins = budget_ + 1;
    value_.assign(static_cast<std::size_t>(length_) * 2 * bins, kNegInf);
    back_.assign(value_.size(), -1);
    for (int k = 0; k < 2; ++k) {
      const int count = k && counts_[0] ? 1 : 0;
      if (count < bins) at(value_, 0, k, count) = node(s, 0, k) + edge(s, a, 0, 0, k);
    }
    for (int i = 1; i < length_; ++i) {
      for (int k = 0; k < 2; ++k) {
        const int step = k && counts_[i] ? 1 : 0;
        for (int count = step; count < bins; ++count) {
          for (int j = 0; j < 2; ++j) {
            const double previous = at(value_, i - 1, j, count - step);
            if (previous == kNegInf) continue;
            const double v = previous + edge(s, a, i, j, k);
            if (v > at(value_, i, k, count)) {
              at(value_, i, k, count) = v;
              at(back_, i, k, count) = j;
            }
          }
          if (at(value_, i, k, count) > kNegInf) at(value_, i, k, count) += node(s, i, k);
        }
      }
    }
    double best = kNegInf;
    int state = 0, count = 0;
    for (int j = 0; j < 2; ++j) {
      for (int c = 0; c < bins; ++c) {
        const double v = at(value_, length_ - 1, j, c);
        if (v > kNegInf && v + edge(s, a, length_, j, 0) > best) {
          best = v + edge(s, a, length_, j, 0);
          state = j;
          count = c;
        }
      }
    }
    states_.assign(length_, 0);
    for (int i = length_ - 1; i >= 0; --i) {
      states_[i] = state;
      const int previous = i > 0 ? at(back_, i, state, count) : 0;
      count -= state && counts_[i] ? 1 : 0;
      state = previous;
    }
    configuration(states_.data(), config);
    return best;
  }

  double evaluate(const int* y, const double* a, double* u) const override {
    int kept = 0;
    for (int i = 0; i < length_; ++i) kept += y[i] && counts_[i] ? 1 : 0;
    if (kept > budget_) return kNegInf;
    if (u != nullptr) std::fill(u, u + num_additional(), 0.0);
    double total = 0.0;
    for (int i = 0; i <= length_; ++i) {
      const int j = i > 0 ? y[i - 1] : 0, k = i < length_ ? y[i] : 0;
      const int e = edge_[i][j][k];
      if (e < 0) continue;
      total += a[e];
      if (u != nullptr) u[e] += 1.0;
    }
    for (int i = 0; i <= length_; ++i) {  // a bigram link is 1 exactly when its transition is taken
      for (int j = 0; j < (i > 0 ? 2 : 1); ++j) {
        for (int k = 0; k < (i < length_ ? 2 : 1); ++k) {
          const int e = edge_[i][j][k];
          if (e >= 0) continue;
          const bool taken = (i == 0 || y[i - 1] == j) && (i == length_ || y[i] == k);
          if (y[-1 - e] != (taken ? 1 : 0)) return kNegInf;
        }
      }
    }
    return total;
  }

 private:
  template <typename T>
  T& at(std::vector<T>& table, int i, int state, int count) const {
    return table[(static_cast<std::size_t>(i) * 2 + state) * (budget_ + 1) + count];
  }
  static double node(const double* s, int i, int state) { return state ? s[i] : 0.0; }
  double edge(const double* s, const double* a, int i, int j, int k) const {
    const int e = edge_[i][j][k];
    return e >= 0 ? a[e] : s[-1 - e];
  }
  // The links and additional scores of the kept positions `states`.
  void configuration(const int* states, Config& config) const {
    config.on.clear();
    config.extras.clear();
    for (int i = 0; i < length_; ++i) {
      if (states[i]) config.on.push_back(i);
    }
    for (int i = 0; i <= length_; ++i) {
      const int e = edge_[i][i > 0 ? states[i - 1] : 0][i < length_ ? states[i] : 0];
      if (e >= 0) {
        config.extras.push_back(e);
      } else {
        config.on.push_back(-1 - e);
      }
    }
  }

  int length_, budget_;
  std::vector<char> counts_;
  std::vector<std::array<std::array<int, 2>, 2>> edge_;
  std::vector<double> value_;
  std::vector<int> back_, states_;
};

}  // namespace

std::unique_ptr<LocalFactor> make_compression_budget_factor(int length, int budget,
                                                           const std::vector<char>& counts_for_budget,
                                                           const std::vector<int>& bigram_positions) {
  return std::make_unique<CompressionBudgetFactor>(length, budget, counts_for_budget, bigram_positions);
}

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
