// Internal to csrc/ad3: the active-set method of the AD3 paper (Martins et al., JMLR 2015,
// section 6) for factors given by a MAP oracle over their configurations: the local problem
//     min 1/2 ||M w - x||^2 - a . (A w)   over distributions w on the configurations,
// M: the configurations' 0/1 link vectors, A: their 0/1 additional-score indicators. The active set
// is kept between AD3 iterations (warm start).
//
// ActiveSetSolver<Configs> is the method; Configs (CRTP) stores the active configurations and the
// candidate in its own form and gives the oracle. Besides the active configurations' overlaps G,
// the solver keeps the inverse H of the bordered matrix K = [0 1'; 1 G], updated in O(k^2) when a
// configuration enters or leaves (block inverse / Schur complement), as the reference's
// GenericFactor does, and recomputed from G every so often against rounding drift. No allocation
// once the buffers have grown to the largest active set.
//
// Configs provides (c, d: active slots 0..k-1):
//   double oracle(const double* s, const double* a)  the best configuration for link scores s and
//                                  additional scores a, as the candidate; returns its value
//   double score(int c, const double* x, const double* a)  x . y_c + a . u_c
//   double overlap(int c)          y_c . y_candidate
//   double candidate_size()        y_candidate . y_candidate
//   bool candidate_is_active(int k)
//   void store_candidate(int c)    (slot c may hold an old configuration: overwrite it)
//   void swap_slots(int c, int d)
//   void link_marginals(const double* w, int k, double* q)        q = M w
//   void additional_marginals(const double* w, int k, double* u)  u = A w
// and the LocalFactor's degree() and num_additional().
//
// ActiveSetLocalFactor<Configs>: a LocalFactor solved by the method. ActiveSetFactor: one with the
// configurations as sparse 0/1 link vectors, the oracle a virtual best_config of subclasses (dense
// factors of any arity, structured factors); factors_dense.cpp has a specialised one for the
// two-variable dense factor.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "ad3/factors.h"

namespace ccnn {
namespace ad3 {
namespace detail {

// A configuration as an oracle writes it: the links that are 1 (in any order) and the indices of
// the additional scores it collects.
struct Config {
  std::vector<int> on;
  std::vector<int> extras;
};

template <class Configs>
class ActiveSetSolver {
 public:
  // The exact solution of  min 1/2 ||q - x||^2 - a . u  over (q, u) in M (n = degree links), or
  // the iterate after the step budget, from which the next call goes on; u may be null (see
  // last_additional).
  void solve(int n, const double* x, const double* a, double* q, double* u, int num_additional);
  // At most `steps` active-set steps per solve (0: no limit, the exact solution); see solve.
  void set_step_budget(int steps) { step_budget_ = steps; }
  // Whether the last solve reached the exact solution (not stopped by the step budget).
  bool solved_exactly() const { return solved_exactly_; }
  // u of the last solve.
  void last_additional(double* u, int num_additional) {
    std::fill(u, u + num_additional, 0.0);
    configs().additional_marginals(weights_, k_, u);
  }

 private:
  Configs& configs() { return static_cast<Configs&>(*this); }
  bool insert(double weight);  // false: candidate dependent on the set, direction_ set
  void remove(int c);          // swaps c with the last configuration, then drops it
  bool refresh_inverse();      // H from G by Gauss-Jordan; false when singular
  void add_candidate();
  void reserve(int k, int n);  // room for k configurations and n links
  double& h(int r, int c) { return inverse_[static_cast<std::size_t>(r) * stride_ + c]; }
  double& g(int r, int c) { return gram_[static_cast<std::size_t>(r) * stride_ + c]; }

  static constexpr double kDependent = 1e-9;  // squared distance to the active set's affine hull
  static constexpr int kRefreshInterval = 32;  // rank-one updates between recomputations of H

  int k_ = 0;
  int stride_ = 0;
  std::vector<double> scores_;  // solve's scores of the active configurations, by slot    // row stride of gram_ and inverse_ (>= k_ + 1)
  int links_ = 0;     // room in residual_
  int updates_ = 0;   // rank-one updates since inverse_ was last recomputed
  int step_budget_ = 0;  // (0: no limit)
  bool solved_exactly_ = true;
  std::vector<double> buffer_;   // everything below (reserve)
  double* gram_ = nullptr;       // G (k x k)
  double* inverse_ = nullptr;    // H = K^{-1}, (k + 1) x (k + 1), index 0: the multiplier
  double *work_ = nullptr, *weights_ = nullptr, *rhs_ = nullptr, *z_ = nullptr, *direction_ = nullptr,
         *overlap_ = nullptr, *residual_ = nullptr;
};

// A LocalFactor whose local problem the active-set method solves over Configs, which derives
// from it (CRTP) and provides what ActiveSetSolver asks of it.
template <class Configs>
class ActiveSetLocalFactor : public LocalFactor, public ActiveSetSolver<Configs> {
 public:
  using LocalFactor::LocalFactor;

  void solve_qp(const double* x, const double* a, double* q, double* u) override {
    this->solve(degree(), x, a, q, u, num_additional());
  }
  bool defers_additional() const override { return true; }
  void additional_posteriors(double* u) override { this->last_additional(u, num_additional()); }
  void limit_qp_steps(int steps) override { this->set_step_budget(steps); }
  bool last_qp_exact() const override { return this->solved_exactly(); }
};

class ActiveSetFactor : public ActiveSetLocalFactor<ActiveSetFactor> {
 public:
  using ActiveSetLocalFactor::ActiveSetLocalFactor;

  // The best configuration for link scores s and additional scores a; returns its value.
  virtual double best_config(const double* s, const double* a, Config& config) = 0;

  double map(const double* s, const double* a, double* y, double* u) override;

  // Configs (see above).
  double oracle(const double* s, const double* a);
  double score(int c, const double* x, const double* a) const;
  double overlap(int c);
  double candidate_size() const { return static_cast<double>(candidate_.on.size()); }
  bool candidate_is_active(int k) const;
  void store_candidate(int c);
  void swap_slots(int c, int d) { std::swap(active_[c], active_[d]); }
  void link_marginals(const double* w, int k, double* q) const;
  void additional_marginals(const double* w, int k, double* u) const;

 protected:
  Config scratch_;

 private:
  struct Sparse {
    std::vector<int> on;      // links that are 1, increasing
    std::vector<int> extras;  // additional scores collected
  };
  std::vector<Sparse> active_;  // slots (the first k are active; the rest keep their capacity)
  Sparse candidate_;
  std::vector<char> mark_;
  int marked_ = -1;  // candidate_ is marked in mark_ (reset by oracle)
};

// ---- ActiveSetSolver ----

template <class Configs>
void ActiveSetSolver<Configs>::reserve(int k, int n) {
  if (stride_ >= k + 1 && links_ >= n) return;
  // One buffer: G and H (stride x stride each), the Gauss-Jordan work (stride x 2 stride), five
  // vectors of stride + 1 and the residual (n).
  const int stride = std::max({k + 1, 2 * stride_, std::min(n + 2, 16)});  // (affine dimension <= n)
  const int links = std::max(n, links_);
  const std::size_t ss = static_cast<std::size_t>(stride) * stride, vec = static_cast<std::size_t>(stride) + 1;
  std::vector<double> buffer(4 * ss + 5 * vec + links, 0.0);
  double* gram = buffer.data();
  double* inverse = gram + ss;
  for (int r = 0; stride_ > 0 && r <= k_; ++r) {
    for (int c = 0; c <= k_; ++c) {
      if (r < k_ && c < k_) gram[static_cast<std::size_t>(r) * stride + c] = g(r, c);
      inverse[static_cast<std::size_t>(r) * stride + c] = h(r, c);
    }
  }
  double* weights = inverse + ss + 2 * ss;
  if (stride_ > 0) std::copy(weights_, weights_ + k_, weights);
  buffer_.swap(buffer);
  stride_ = stride;
  links_ = links;
  gram_ = gram;
  inverse_ = inverse;
  work_ = inverse + ss;
  weights_ = weights;
  rhs_ = weights_ + vec;
  z_ = rhs_ + vec;
  direction_ = z_ + vec;
  overlap_ = direction_ + vec;
  residual_ = overlap_ + vec;
}

template <class Configs>
bool ActiveSetSolver<Configs>::insert(double weight) {
  const int k = k_;
  reserve(k + 1, links_);
  Configs& cs = configs();
  for (int c = 0; c < k; ++c) overlap_[c] = cs.overlap(c);
  const double self = cs.candidate_size();
  if (k == 0) {  // K = [0 1; 1 self]: its inverse directly
    h(0, 0) = -self;
    h(0, 1) = h(1, 0) = 1.0;
    h(1, 1) = 0.0;
  } else {
    // u = [1; overlaps], z = H u, s = self - u . z: the squared distance of the candidate to the
    // affine hull of the active set (the Schur complement).
    for (int r = 0; r <= k; ++r) {
      double v = h(r, 0);
      for (int c = 0; c < k; ++c) v += h(r, c + 1) * overlap_[c];
      z_[r] = v;
    }
    double s = self - z_[0];
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
  cs.store_candidate(k);
  weights_[k] = weight;
  ++k_;
  ++updates_;
  return true;
}

template <class Configs>
void ActiveSetSolver<Configs>::remove(int c) {
  const int last = k_ - 1;
  if (c != last) {
    configs().swap_slots(c, last);
    std::swap(weights_[c], weights_[last]);
    if (static_cast<int>(scores_.size()) > last) std::swap(scores_[c], scores_[last]);
    for (int r = 0; r < k_; ++r) std::swap(g(r, c), g(r, last));
    for (int r = 0; r < k_; ++r) std::swap(g(c, r), g(last, r));
    for (int r = 0; r <= k_; ++r) std::swap(h(r, c + 1), h(r, last + 1));
    for (int r = 0; r <= k_; ++r) std::swap(h(c + 1, r), h(last + 1, r));
  }
  // Drop index k of H: H' = H_11 - H_12 H_21 / H_22.
  const int k = k_;
  const double inv_p = 1.0 / h(k, k);
  for (int r = 0; r < k; ++r) {
    const double f = h(r, k) * inv_p;
    for (int col = 0; col < k; ++col) h(r, col) -= f * h(k, col);
  }
  --k_;
  ++updates_;
}

template <class Configs>
bool ActiveSetSolver<Configs>::refresh_inverse() {
  const int n = k_ + 1, w = 2 * n;
  double* m = work_;  // [K | I] -> [I | K^{-1}], Gauss-Jordan with partial pivoting
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

// Adds the candidate with weight 0. When it is an affine combination of the active configurations
// (M d = 0, sum d = 0 with d = 1 on it), the objective is linear along d with slope
// score(candidate) - sigma > 0: move along d until an active weight reaches zero and drop it.
template <class Configs>
void ActiveSetSolver<Configs>::add_candidate() {
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
  k_ = 0;  // (numerically degenerate: start again from the candidate alone)
  insert(1.0);
}

template <class Configs>
void ActiveSetSolver<Configs>::solve(int n, const double* x, const double* a, double* q, double* u,
                                     int num_additional) {
  Configs& cs = configs();
  reserve(k_ + 1, n);
  if (k_ > 0 && updates_ >= kRefreshInterval && !refresh_inverse()) k_ = 0;
  if (k_ == 0) {
    cs.oracle(x, a);
    insert(1.0);
  }
  // The active configurations' scores at (x, a), kept in their slots (remove swaps them).
  if (static_cast<int>(scores_.size()) < stride_) scores_.resize(stride_);
  for (int c = 0; c < k_; ++c) scores_[c] = cs.score(c, x, a);
  bool q_current = false;  // q = M w for the current active set and weights
  // The step budget counts as the reference's GenericFactor does: solving over the active set
  // (and dropping a blocking configuration) is one step, an oracle call another.
  int budget = step_budget_ > 0 ? step_budget_ : std::numeric_limits<int>::max();
  solved_exactly_ = false;
  for (int step = 0; step < 200 && budget > 0; ++step) {
    const int k = k_;
    // Equality-constrained minimiser over the active set: K [sigma; w] = [1; M'x + A'a].
    rhs_[0] = 1.0;
    for (int c = 0; c < k; ++c) rhs_[c + 1] = scores_[c];
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
    --budget;
    if (blocking >= 0) {
      remove(blocking);
      continue;
    }
    if (budget == 0) break;
    --budget;
    // Optimal for this set; optimal overall unless a configuration scores above sigma.
    cs.link_marginals(weights_, k, q);
    for (int i = 0; i < n; ++i) residual_[i] = x[i] - q[i];
    const double best = cs.oracle(residual_, a);
    q_current = true;
    if (best <= sigma + 1e-12 * (1.0 + std::fabs(sigma)) || cs.candidate_is_active(k)) {  // (the latter: noise)
      solved_exactly_ = true;
      break;
    }
    q_current = false;
    add_candidate();  // (the candidate goes to the last slot)
    if (static_cast<int>(scores_.size()) < stride_) scores_.resize(stride_);
    scores_[k_ - 1] = cs.score(k_ - 1, x, a);
  }
  if (!q_current) cs.link_marginals(weights_, k_, q);
  if (u != nullptr) last_additional(u, num_additional);
}

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
