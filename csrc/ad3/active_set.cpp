// The active-set method's generic configurations: sparse 0/1 link vectors (active_set.h).
#include "ad3/active_set.h"

namespace ccnn {
namespace ad3 {
namespace detail {

double ActiveSetFactor::map(const double* s, const double* a, double* y, double* u) {
  const double value = best_config(s, a, scratch_);
  std::fill(y, y + degree(), 0.0);
  for (int i : scratch_.on) y[i] = 1.0;
  std::fill(u, u + num_additional(), 0.0);
  for (int k : scratch_.extras) u[k] += 1.0;
  return value;
}

double ActiveSetFactor::oracle(const double* s, const double* a) {
  const double value = best_config(s, a, scratch_);
  if (marked_ == 1) {
    for (int i : candidate_.on) mark_[i] = 0;
  }
  marked_ = 0;
  candidate_.on.assign(scratch_.on.begin(), scratch_.on.end());
  std::sort(candidate_.on.begin(), candidate_.on.end());
  candidate_.extras.assign(scratch_.extras.begin(), scratch_.extras.end());
  return value;
}

double ActiveSetFactor::score(int c, const double* x, const double* a) const {
  double v = 0.0;
  for (int i : active_[c].on) v += x[i];
  for (int e : active_[c].extras) v += a[e];
  return v;
}

double ActiveSetFactor::overlap(int c) {
  if (marked_ != 1) {
    mark_.resize(degree());
    for (int i : candidate_.on) mark_[i] = 1;
    marked_ = 1;
  }
  int count = 0;
  for (int i : active_[c].on) count += mark_[i];
  return count;
}

bool ActiveSetFactor::candidate_is_active(int k) const {
  for (int c = 0; c < k; ++c) {
    if (active_[c].on == candidate_.on && active_[c].extras == candidate_.extras) return true;
  }
  return false;
}

void ActiveSetFactor::store_candidate(int c) {
  if (static_cast<int>(active_.size()) <= c) active_.resize(c + 1);
  active_[c].on.assign(candidate_.on.begin(), candidate_.on.end());
  active_[c].extras.assign(candidate_.extras.begin(), candidate_.extras.end());
}

void ActiveSetFactor::link_marginals(const double* w, int k, double* q) const {
  std::fill(q, q + degree(), 0.0);
  for (int c = 0; c < k; ++c) {
    for (int i : active_[c].on) q[i] += w[c];
  }
}

void ActiveSetFactor::additional_marginals(const double* w, int k, double* u) const {
  for (int c = 0; c < k; ++c) {
    for (int e : active_[c].extras) u[e] += w[c];
  }
}

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
