// The active-set method for factors given by a MAP oracle (active_set.h).
#include "ad3/active_set.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace ccnn {
namespace ad3 {
namespace detail {

namespace {

constexpr double kDependent = 1e-9;   // squared distance of a configuration to the active set's affine hull
constexpr int kRefreshInterval = 32;  // rank-one updates between two recomputations of the inverse

}  // namespace

void ActiveSetFactor::sparsify(const Config& config, Sparse& out) const {
  out.on.clear();
  for (int i = 0; i < degree(); ++i) {
    if (config.y[i]) out.on.push_back(i);
  }
  out.extras.assign(config.extras.begin(), config.extras.end());
}

bool ActiveSetFactor::is_active(const Sparse& c) const {
  for (int j = 0; j < k_; ++j) {
    if (active_[j].on == c.on && active_[j].extras == c.extras) return true;
  }
  return false;
}

double ActiveSetFactor::map(const double* s, const double* a, double* y, double* u) {
  const double value = best_config(s, a, scratch_);
  for (int i = 0; i < degree(); ++i) y[i] = scratch_.y[i];
  std::fill(u, u + num_additional(), 0.0);
  for (int k : scratch_.extras) u[k] += 1.0;
  return value;
}

void ActiveSetFactor::reserve(int k) {
  if (static_cast<int>(active_.size()) < k) active_.resize(k);
  if (static_cast<int>(weights_.size()) < k) weights_.resize(k);
  if (stride_ >= k + 1) return;
  const int stride = std::max(k + 1, 2 * stride_);
  std::vector<double> gram(static_cast<std::size_t>(stride) * stride, 0.0), inverse(gram.size(), 0.0);
  for (int r = 0; stride_ > 0 && r <= k_; ++r) {
    for (int c = 0; c <= k_; ++c) {
      if (r < k_ && c < k_) gram[static_cast<std::size_t>(r) * stride + c] = g(r, c);
      inverse[static_cast<std::size_t>(r) * stride + c] = h(r, c);
    }
  }
  gram_.swap(gram);
  inverse_.swap(inverse);
  stride_ = stride;
  const std::size_t size = static_cast<std::size_t>(stride) + 1;
  rhs_.resize(size);
  z_.resize(size);
  direction_.resize(size);
  overlap_.resize(size);
  work_.resize(static_cast<std::size_t>(stride) * 2 * stride);
}

bool ActiveSetFactor::insert(double weight) {
  const int k = k_;
  reserve(k + 1);
  // Overlaps with the active configurations; u = [1; overlaps], w = H u, s = |y| - u . w (the
  // squared distance of the candidate to the affine hull of the active set).
  mark_.resize(degree());
  for (int i : candidate_.on) mark_[i] = 1;
  for (int c = 0; c < k; ++c) {
    int count = 0;
    for (int i : active_[c].on) count += mark_[i];
    overlap_[c] = count;
  }
  for (int i : candidate_.on) mark_[i] = 0;
  const double self = static_cast<double>(candidate_.on.size());
  double s = self;
  if (k == 0) {
    // K = [0 1; 1 self]: its inverse directly.
    h(0, 0) = -self;
    h(0, 1) = h(1, 0) = 1.0;
    h(1, 1) = 0.0;
  } else {
    for (int r = 0; r <= k; ++r) {
      double v = h(r, 0);
      for (int c = 0; c < k; ++c) v += h(r, c + 1) * overlap_[c];
      z_[r] = v;
    }
    s -= z_[0];
    for (int c = 0; c < k; ++c) s -= overlap_[c] * z_[c + 1];
    if (s <= kDependent) {
      for (int c = 0; c < k; ++c) direction_[c] = -z_[c + 1];
      return false;
    }
    const double inv_s = 1.0 / s;
    for (int r = 0; r <= k; ++r) {
      const double zr = z_[r] * inv_s;
      for (int c = 0; c <= k; ++c) h(r, c) += zr * z_[c];
      h(r, k + 1) = h(k + 1, r) = -zr;
    }
    h(k + 1, k + 1) = inv_s;
  }
  for (int c = 0; c < k; ++c) g(c, k) = g(k, c) = overlap_[c];
  g(k, k) = self;
  active_[k].on.assign(candidate_.on.begin(), candidate_.on.end());
  active_[k].extras.assign(candidate_.extras.begin(), candidate_.extras.end());
  weights_[k] = weight;
  ++k_;
  ++updates_;
  return true;
}

void ActiveSetFactor::remove(int c) {
  const int last = k_ - 1;
  if (c != last) {
    std::swap(active_[c], active_[last]);
    std::swap(weights_[c], weights_[last]);
    for (int r = 0; r < k_; ++r) std::swap(g(r, c), g(r, last));
    for (int r = 0; r < k_; ++r) std::swap(g(c, r), g(last, r));
    for (int r = 0; r <= k_; ++r) std::swap(h(r, c + 1), h(r, last + 1));
    for (int r = 0; r <= k_; ++r) std::swap(h(c + 1, r), h(last + 1, r));
  }
  // Drop index k_ of H: H' = H_11 - H_12 H_21 / H_22.
  const int k = k_;
  const double inv_p = 1.0 / h(k, k);
  for (int r = 0; r < k; ++r) {
    const double f = h(r, k) * inv_p;
    for (int col = 0; col < k; ++col) h(r, col) -= f * h(k, col);
  }
  --k_;
  ++updates_;
}

bool ActiveSetFactor::refresh_inverse() {
  const int n = k_ + 1, w = 2 * n;
  // [K | I] -> [I | K^{-1}] by Gauss-Jordan with partial pivoting (work_ holds n x 2n).
  double* m = work_.data();
  for (int r = 0; r < n; ++r) {
    for (int c = 0; c < n; ++c) {
      m[r * w + c] = r == 0 && c == 0 ? 0.0 : r == 0 || c == 0 ? 1.0 : g(r - 1, c - 1);
      m[r * w + n + c] = r == c ? 1.0 : 0.0;
    }
  }
  for (int col = 0; col < n; ++col) {
    int pivot = col;
    for (int r = col + 1; r < n; ++r) {
      if (std::fabs(m[r * w + col]) > std::fabs(m[pivot * w + col])) pivot = r;
    }
    if (std::fabs(m[pivot * w + col]) < 1e-12) return false;
    if (pivot != col) {
      for (int c = 0; c < w; ++c) std::swap(m[col * w + c], m[pivot * w + c]);
    }
    const double inv = 1.0 / m[col * w + col];
    for (int c = 0; c < w; ++c) m[col * w + c] *= inv;
    for (int r = 0; r < n; ++r) {
      const double f = m[r * w + col];
      if (r == col || f == 0.0) continue;
      for (int c = 0; c < w; ++c) m[r * w + c] -= f * m[col * w + c];
    }
  }
  for (int r = 0; r < n; ++r) {
    for (int c = 0; c < n; ++c) h(r, c) = m[r * w + n + c];
  }
  updates_ = 0;
  return true;
}

void ActiveSetFactor::marginals(double* q) const {
  std::fill(q, q + degree(), 0.0);
  for (int c = 0; c < k_; ++c) {
    const double w = weights_[c];
    for (int i : active_[c].on) q[i] += w;
  }
}

void ActiveSetFactor::solve_qp(const double* x, const double* a, double* q, double* u) {
  const int n = degree();
  residual_.resize(n);
  if (k_ > 0 && updates_ >= kRefreshInterval && !refresh_inverse()) k_ = 0;
  if (k_ == 0) {
    best_config(x, a, scratch_);
    sparsify(scratch_, candidate_);
    insert(1.0);
  }
  for (int step = 0; step < 200; ++step) {
    const int k = k_;
    // Equality-constrained minimiser over the active set: K [sigma; w] = [1; M'x + A'a].
    rhs_[0] = 1.0;
    for (int c = 0; c < k; ++c) {
      double v = 0.0;
      for (int i : active_[c].on) v += x[i];
      for (int e : active_[c].extras) v += a[e];
      rhs_[c + 1] = v;
    }
    for (int r = 0; r <= k; ++r) {
      double v = 0.0;
      for (int c = 0; c <= k; ++c) v += h(r, c) * rhs_[c];
      z_[r] = v;
    }
    const double sigma = z_[0];
    // Blocked by a weight turning negative: move to the boundary and drop that configuration.
    double step_length = 1.0;
    int blocking = -1;
    for (int c = 0; c < k; ++c) {
      const double target = z_[c + 1];
      if (target < 0.0) {
        const double t = weights_[c] / (weights_[c] - target);
        if (t < step_length) {
          step_length = t;
          blocking = c;
        }
      }
    }
    for (int c = 0; c < k; ++c) weights_[c] += step_length * (z_[c + 1] - weights_[c]);
    if (blocking >= 0) {
      remove(blocking);
      continue;
    }
    // Optimal for this set; optimal overall unless a configuration scores above sigma.
    marginals(q);
    for (int i = 0; i < n; ++i) residual_[i] = x[i] - q[i];
    const double best = best_config(residual_.data(), a, scratch_);
    if (best <= sigma + 1e-12 * (1.0 + std::fabs(sigma))) break;
    sparsify(scratch_, candidate_);
    if (is_active(candidate_)) break;  // numerical noise
    add_candidate();
  }
  marginals(q);
  std::fill(u, u + num_additional(), 0.0);
  for (int c = 0; c < k_; ++c) {
    for (int e : active_[c].extras) u[e] += weights_[c];
  }
}

// Adds candidate_ with weight 0. When it is an affine combination of the active configurations
// (M d = 0, sum d = 0 with d = 1 on it), the objective is linear along d with slope
// score(candidate) - sigma > 0: move along d until an active weight reaches zero and drop it.
void ActiveSetFactor::add_candidate() {
  if (insert(0.0)) return;
  const int k = k_;
  double t = std::numeric_limits<double>::infinity();
  int blocking = -1;
  for (int c = 0; c < k; ++c) {
    if (direction_[c] < -1e-12 && weights_[c] / -direction_[c] < t) {
      t = weights_[c] / -direction_[c];
      blocking = c;
    }
  }
  if (blocking < 0) return;  // (cannot happen: sum d over the active set is -1)
  for (int c = 0; c < k; ++c) weights_[c] += t * direction_[c];
  remove(blocking);
  if (insert(t)) return;
  if (refresh_inverse() && insert(t)) return;
  // (numerically degenerate: start again from the candidate alone)
  k_ = 0;
  insert(1.0);
}

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
