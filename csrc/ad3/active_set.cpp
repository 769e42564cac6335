// The active-set method for factors given by a MAP oracle (active_set.h).
#include "ad3/active_set.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ccnn {
namespace ad3 {
namespace detail {

namespace {

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

double overlap(const Config& a, const Config& b) {
  int count = 0;
  for (std::size_t i = 0; i < a.y.size(); ++i) count += a.y[i] & b.y[i];
  return count;
}

double dot_x(const Config& c, const double* x) {
  double v = 0.0;
  for (std::size_t i = 0; i < c.y.size(); ++i) {
    if (c.y[i]) v += x[i];
  }
  return v;
}

double extra_score(const Config& c, const double* a) {
  double v = 0.0;
  for (int k : c.extras) v += a[k];
  return v;
}

}  // namespace

double ActiveSetFactor::map(const double* s, const double* a, double* y, double* u) {
  const double value = best_config(s, a, scratch_);
  for (int i = 0; i < degree(); ++i) y[i] = scratch_.y[i];
  std::fill(u, u + num_additional(), 0.0);
  for (int k : scratch_.extras) u[k] += 1.0;
  return value;
}

void ActiveSetFactor::solve_qp(const double* x, const double* a, double* q, double* u) {
  const int n = degree();
  residual_.resize(n);
  if (active_.empty()) {
    best_config(x, a, candidate_);
    gram_.clear();
    weights_.clear();
    append(candidate_, 1.0);
  }
  for (int step = 0; step < 200; ++step) {
    const int k = static_cast<int>(active_.size());
    // Equality-constrained minimiser over the active set: [G 1; 1' 0] [w; sigma] = [M'x + A'a; 1].
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
          return c.extras == candidate_.extras && c.y == candidate_.y;
        })) {
      break;  // numerical noise
    }
    add_candidate();
  }
  marginals(q);
  std::fill(u, u + num_additional(), 0.0);
  for (std::size_t c = 0; c < active_.size(); ++c) {
    for (int e : active_[c].extras) u[e] += weights_[c];
  }
}

void ActiveSetFactor::build_kkt() {
  const int k = static_cast<int>(active_.size());
  kkt_.assign(static_cast<std::size_t>(k + 1) * (k + 1), 1.0);
  for (int r = 0; r < k; ++r) {
    for (int c = 0; c < k; ++c) kkt_[r * (k + 1) + c] = gram_[r * k + c];
  }
  kkt_[k * (k + 1) + k] = 0.0;
}

void ActiveSetFactor::append(const Config& config, double weight) {
  const int k = static_cast<int>(active_.size());
  std::vector<double> grown(static_cast<std::size_t>(k + 1) * (k + 1));
  for (int r = 0; r < k; ++r) {
    for (int c = 0; c < k; ++c) grown[r * (k + 1) + c] = gram_[r * k + c];
    grown[r * (k + 1) + k] = grown[k * (k + 1) + r] = overlap(active_[r], config);
  }
  grown[k * (k + 1) + k] = overlap(config, config);
  gram_.swap(grown);
  active_.push_back(config);
  weights_.push_back(weight);
}

void ActiveSetFactor::marginals(double* q) const {
  std::fill(q, q + degree(), 0.0);
  for (std::size_t c = 0; c < active_.size(); ++c) {
    for (int i = 0; i < degree(); ++i) {
      if (active_[c].y[i]) q[i] += weights_[c];
    }
  }
}

void ActiveSetFactor::remove(int c) {
  const int k = static_cast<int>(active_.size());
  std::size_t out = 0;
  for (int r = 0; r < k; ++r) {
    if (r == c) continue;
    for (int col = 0; col < k; ++col) {
      if (col != c) gram_[out++] = gram_[r * k + col];
    }
  }
  gram_.resize(out);
  active_.erase(active_.begin() + c);
  weights_.erase(weights_.begin() + c);
}

// Adds candidate_ with weight 0. When it is an affine combination of the active configurations
// (M d = 0, sum d = 0 with d = 1 on it), the objective is linear along d with slope
// score(candidate) - sigma > 0: move along d until an active weight reaches zero and drop it.
void ActiveSetFactor::add_candidate() {
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
    append(candidate_, 0.0);
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
  append(candidate_, t);
  remove(blocking);
}

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
