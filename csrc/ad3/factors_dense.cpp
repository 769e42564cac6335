// Factors solved by the active-set method of the AD3 paper (Martins et al., JMLR 2015, section 6):
// the local problem  min 1/2 ||M w - x||^2 - a . w  over distributions w on the factor's
// configurations (M: their 0/1 link vectors), with only a MAP oracle over the configurations.
// The active set is kept between AD3 iterations (warm start). Used for dense factors of any arity
// (oracle: enumeration), the pair factor and XOR-with-output (parity oracle).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "ad3/factors.h"

namespace ccnn {
namespace ad3 {
namespace detail {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// A configuration: its links (0/1) and the index of its additional score (-1: none).
struct Config {
  std::vector<char> y;
  int extra = -1;
};

// Solves the square system A z = b (row-major, size n) by Gaussian elimination with partial
// pivoting; false when singular.
bool solve_linear(std::vector<double>& A, std::vector<double>& b, int n) {
  for (int col = 0; col < n; ++col) {
    int pivot = col;
    for (int r = col + 1; r < n; ++r) {
      if (std::fabs(A[r * n + col]) > std::fabs(A[pivot * n + col])) pivot = r;
    }
    if (std::fabs(A[pivot * n + col]) < 1e-12) return false;
    if (pivot != col) {
      for (int c = 0; c < n; ++c) std::swap(A[col * n + c], A[pivot * n + c]);
      std::swap(b[col], b[pivot]);
    }
    for (int r = col + 1; r < n; ++r) {
      const double f = A[r * n + col] / A[col * n + col];
      if (f == 0.0) continue;
      for (int c = col; c < n; ++c) A[r * n + c] -= f * A[col * n + c];
      b[r] -= f * b[col];
    }
  }
  for (int r = n - 1; r >= 0; --r) {
    double v = b[r];
    for (int c = r + 1; c < n; ++c) v -= A[r * n + c] * b[c];
    b[r] = v / A[r * n + r];
  }
  return true;
}

class ActiveSetFactor : public LocalFactor {
 public:
  using LocalFactor::LocalFactor;

  // The best configuration for link scores s and additional scores a; returns its value.
  virtual double best_config(const double* s, const double* a, Config& config) = 0;

  double map(const double* s, const double* a, double* y, double* u) override {
    const double value = best_config(s, a, scratch_);
    for (int i = 0; i < degree(); ++i) y[i] = scratch_.y[i];
    std::fill(u, u + num_additional(), 0.0);
    if (scratch_.extra >= 0) u[scratch_.extra] = 1.0;
    return value;
  }

  void solve_qp(const double* x, const double* a, double* q, double* u) override {
    const int n = degree();
    residual_.resize(n);
    if (active_.empty()) {
      active_.emplace_back();
      best_config(x, a, active_.back());
      weights_.assign(1, 1.0);
    }
    for (int step = 0; step < 200; ++step) {
      const int k = static_cast<int>(active_.size());
      // Equality-constrained minimiser over the active set: [G 1; 1' 0] [w; sigma] = [M'x + a; 1].
      build_kkt();
      rhs_.assign(k + 1, 1.0);
      for (int c = 0; c < k; ++c) rhs_[c] = dot_x(active_[c], x) + extra_score(active_[c], a);
      if (!solve_linear(kkt_, rhs_, k + 1)) break;  // (cannot happen: the set is affinely independent)
      const double sigma = rhs_[k];
      // Blocked by a weight turning negative: move to the boundary and drop that configuration.
      double step_length = 1.0;
      int blocking = -1;
      for (int c = 0; c < k; ++c) {
        if (rhs_[c] < 0.0) {
          const double t = weights_[c] / (weights_[c] - rhs_[c]);
          if (t < step_length) {
            step_length = t;
            blocking = c;
          }
        }
      }
      for (int c = 0; c < k; ++c) weights_[c] += step_length * (rhs_[c] - weights_[c]);
      if (blocking >= 0) {
        remove(blocking);
        continue;
      }
      // Optimal for this set; optimal overall unless a configuration scores above sigma.
      marginals(q);
      for (int i = 0; i < n; ++i) residual_[i] = x[i] - q[i];
      const double best = best_config(residual_.data(), a, candidate_);
      if (best <= sigma + 1e-12 * (1.0 + std::fabs(sigma))) break;
      if (std::any_of(active_.begin(), active_.end(), [&](const Config& c) {
            return c.extra == candidate_.extra && c.y == candidate_.y;
          })) {
        break;  // numerical noise
      }
      add_candidate();
    }
    marginals(q);
    std::fill(u, u + num_additional(), 0.0);
    for (std::size_t c = 0; c < active_.size(); ++c) {
      if (active_[c].extra >= 0) u[active_[c].extra] += weights_[c];
    }
  }

 protected:
  Config scratch_;

 private:
  static double overlap(const Config& a, const Config& b) {
    int count = 0;
    for (std::size_t i = 0; i < a.y.size(); ++i) count += a.y[i] & b.y[i];
    return count;
  }
  static double dot_x(const Config& c, const double* x) {
    double v = 0.0;
    for (std::size_t i = 0; i < c.y.size(); ++i) {
      if (c.y[i]) v += x[i];
    }
    return v;
  }
  static double extra_score(const Config& c, const double* a) { return c.extra >= 0 ? a[c.extra] : 0.0; }

  void build_kkt() {
    const int k = static_cast<int>(active_.size());
    kkt_.assign(static_cast<std::size_t>(k + 1) * (k + 1), 1.0);
    for (int r = 0; r < k; ++r) {
      for (int c = 0; c < k; ++c) kkt_[r * (k + 1) + c] = overlap(active_[r], active_[c]);
    }
    kkt_[k * (k + 1) + k] = 0.0;
  }

  void marginals(double* q) const {
    std::fill(q, q + degree(), 0.0);
    for (std::size_t c = 0; c < active_.size(); ++c) {
      for (int i = 0; i < degree(); ++i) {
        if (active_[c].y[i]) q[i] += weights_[c];
      }
    }
  }

  void remove(int c) {
    active_.erase(active_.begin() + c);
    weights_.erase(weights_.begin() + c);
  }

  // Adds candidate_ with weight 0. When it is an affine combination of the active configurations
  // (M d = 0, sum d = 0 with d = 1 on it), the objective is linear along d with slope
  // score(candidate) - sigma > 0: move along d until an active weight reaches zero and drop it.
  void add_candidate() {
    const int k = static_cast<int>(active_.size());
    build_kkt();
    rhs_.assign(k + 1, -1.0);
    for (int c = 0; c < k; ++c) rhs_[c] = -overlap(active_[c], candidate_);
    bool dependent = false;
    if (solve_linear(kkt_, rhs_, k + 1)) {
      // residual || M_A d + y ||^2
      double norm = 0.0;
      for (int i = 0; i < degree(); ++i) {
        double v = candidate_.y[i];
        for (int c = 0; c < k; ++c) {
          if (active_[c].y[i]) v += rhs_[c];
        }
        norm += v * v;
      }
      dependent = norm < 1e-9;
    }
    if (!dependent) {
      active_.push_back(candidate_);
      weights_.push_back(0.0);
      return;
    }
    double t = std::numeric_limits<double>::infinity();
    int blocking = -1;
    for (int c = 0; c < k; ++c) {
      if (rhs_[c] < -1e-12 && weights_[c] / -rhs_[c] < t) {
        t = weights_[c] / -rhs_[c];
        blocking = c;
      }
    }
    if (blocking < 0) return;  // (cannot happen: sum d over the active set is -1)
    for (int c = 0; c < k; ++c) weights_[c] += t * rhs_[c];
    active_.push_back(candidate_);
    weights_.push_back(t);
    remove(blocking);
  }

  std::vector<Config> active_;
  std::vector<double> weights_;
  Config candidate_;
  std::vector<double> kkt_, rhs_, residual_;
};

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
    config.y.assign(degree(), 0);
    int rest = best_index;
    for (int j = m - 1; j >= 0; --j) {
      config.y[offset_[j] + rest % states_[j]] = 1;
      rest /= states_[j];
    }
    config.extra = best_index;
    return best;
  }

  double evaluate(const int* y, const double* a, double* u) const override {
    int index = 0;
    for (std::size_t j = 0; j < states_.size(); ++j) {
      int state = -1;
      for (int t = 0; t < states_[j]; ++t) {
        if (y[offset_[j] + t]) {
          if (state >= 0) return kNegInf;
          state = t;
        }
      }
      if (state < 0) return kNegInf;
      index = index * states_[j] + state;
    }
    std::fill(u, u + num_additional(), 0.0);
    u[index] = 1.0;
    return a[index];
  }

 private:
  std::vector<int> states_, offset_, state_;
};

// Two binary units; additional score a[0] when both are 1.
class PairFactor : public ActiveSetFactor {
 public:
  PairFactor() : ActiveSetFactor(2, 1) {}

  double best_config(const double* s, const double* a, Config& config) override {
    double best = 0.0;  // (0, 0)
    int y0 = 0, y1 = 0;
    if (s[0] > best) { best = s[0]; y0 = 1; y1 = 0; }
    if (s[1] > best) { best = s[1]; y0 = 0; y1 = 1; }
    if (s[0] + s[1] + a[0] > best) { best = s[0] + s[1] + a[0]; y0 = 1; y1 = 1; }
    config.y = {static_cast<char>(y0), static_cast<char>(y1)};
    config.extra = (y0 && y1) ? 0 : -1;
    return best;
  }

  double evaluate(const int* y, const double* a, double* u) const override {
    u[0] = (y[0] && y[1]) ? 1.0 : 0.0;
    return u[0] * a[0];
  }
};

// The last unit is the parity of the others: the allowed configurations have an even sum.
class XorOutFactor : public ActiveSetFactor {
 public:
  explicit XorOutFactor(int n) : ActiveSetFactor(n, 0) {}

  double best_config(const double* s, const double*, Config& config) override {
    const int n = degree();
    config.y.assign(n, 0);
    config.extra = -1;
    double value = 0.0;
    int parity = 0, cheapest = 0;
    for (int i = 0; i < n; ++i) {
      if (s[i] > 0.0) {
        config.y[i] = 1;
        value += s[i];
        parity ^= 1;
      }
      if (std::fabs(s[i]) < std::fabs(s[cheapest])) cheapest = i;
    }
    if (parity) {
      config.y[cheapest] ^= 1;
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
    for (const auto& c : configurations_) {
      double v = 0.0;
      for (int i = 0; i < degree(); ++i) v += c[i] ? s[i] : 0.0;
      if (v > best) {
        best = v;
        config.y = c;
      }
    }
    config.extra = -1;
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

std::unique_ptr<LocalFactor> make_dense_factor(const std::vector<int>& num_states) {
  return std::make_unique<DenseFactor>(num_states);
}
std::unique_ptr<LocalFactor> make_pair_factor() { return std::make_unique<PairFactor>(); }
std::unique_ptr<LocalFactor> make_xor_out_factor(int n) { return std::make_unique<XorOutFactor>(n); }

std::vector<int> factor_units(const FactorGraph& graph, const FactorSpec& spec) {
  if (spec.type != FactorType::kDense) return spec.links;
  std::vector<int> units;
  for (int v : spec.links) {
    for (int t = 0; t < graph.unit_count(v); ++t) units.push_back(graph.unit_begin(v) + t);
  }
  return units;
}

std::unique_ptr<LocalFactor> make_local_factor(const FactorGraph& graph, const FactorSpec& spec) {
  if (spec.type == FactorType::kDense) {
    std::vector<int> states;
    for (int v : spec.links) states.push_back(graph.num_states(v));
    return make_dense_factor(states);
  }
  if (spec.type == FactorType::kPair) return make_pair_factor();
  return make_logic_factor(spec);
}

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
