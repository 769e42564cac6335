// Hard-logic, budget and knapsack factors on binary units, with their exact local solvers:
// the projections onto their marginal polytopes are closed form or sort based (Martins et al.,
// JMLR 2015, section 5), and so are their MAP problems. Negated links are handled by a wrapper.
//
//   XOR        {q >= 0, sum q = 1}                       projection onto the simplex
//   ATMOSTONE  {q in [0,1]^n, sum q <= 1}                clip, else the simplex
//   OR         {q in [0,1]^n, sum q >= 1}                clip, else the simplex
//   BUDGET     {q in [0,1]^n, sum q <= B}                clip, else box and sum q = B
//   KNAPSACK   {q in [0,1]^n, c . q <= B} (LP relaxation) clip, else box and c . q = B
//   ANDOUT     {q_n <= q_i, q_n >= sum_{i<n} q_i - (n-2), box}
//              clip; else the projection onto {q_n <= q_i, box} (sort); else box and
//              sum_{i<n} q_i + (1 - q_n) = n - 1 (on that hyperplane the other constraints hold).
//   OROUT = ANDOUT with every link negated; IMPLY = OR with the first n-1 links negated.
// Each "clip, else ..." is exact: when the projection onto the box violates the half-space, the
// projection onto their intersection lies on the half-space's boundary.
#include <algorithm>
#include <functional>
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

double clip01(double v) { return v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v); }

// sum_i w_i clip(x_i - tau w_i, 0, 1)
double weighted_sum(const double* x, const double* w, int n, double tau) {
  double total = 0.0;
  for (int i = 0; i < n; ++i) total += w[i] * clip01(x[i] - tau * w[i]);
  return total;
}

}  // namespace

void project_box_hyperplane(const double* x, const double* w, int n, double target, double* q) {
  // g(tau) = weighted_sum(tau) is continuous, non-increasing and piecewise linear with breakpoints
  // (x_i - 1) / w_i and x_i / w_i: find the segment holding target by bisection over the sorted
  // breakpoints, then interpolate.
  std::vector<double> points;
  points.reserve(2 * static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    if (w[i] > 0.0) {
      points.push_back((x[i] - 1.0) / w[i]);
      points.push_back(x[i] / w[i]);
    }
  }
  double tau = 0.0;
  if (!points.empty()) {
    std::sort(points.begin(), points.end());
    if (weighted_sum(x, w, n, points.front()) <= target) {
      tau = points.front();
    } else if (weighted_sum(x, w, n, points.back()) >= target) {
      tau = points.back();
    } else {
      // g(points[lo]) > target > g(points[hi])
      std::size_t lo = 0, hi = points.size() - 1;
      while (hi - lo > 1) {
        const std::size_t mid = (lo + hi) / 2;
        if (weighted_sum(x, w, n, points[mid]) > target) lo = mid; else hi = mid;
      }
      const double g_lo = weighted_sum(x, w, n, points[lo]);
      const double g_hi = weighted_sum(x, w, n, points[hi]);
      const double span = g_lo - g_hi;
      tau = span > 0.0 ? points[lo] + (g_lo - target) / span * (points[hi] - points[lo]) : points[lo];
    }
  }
  for (int i = 0; i < n; ++i) q[i] = clip01(x[i] - tau * w[i]);
}

double LocalFactor::map_clamped(const double* s, const double* a, const signed char* clamp, double* y,
                                double* u) {
  const int n = degree();
  double range = 0.0;
  for (int i = 0; i < n; ++i) range += std::fabs(s[i]);
  double largest = 0.0;
  for (int k = 0; k < num_additional(); ++k) largest = std::max(largest, std::fabs(a[k]));
  const double penalty = 1.0 + 2.0 * (range + largest);
  clamped_scores_.resize(n);
  for (int i = 0; i < n; ++i) {
    clamped_scores_[i] = s[i] + (clamp[i] == 1 ? penalty : clamp[i] == 0 ? -penalty : 0.0);
  }
  map(clamped_scores_.data(), a, y, u);
  double value = 0.0;
  for (int i = 0; i < n; ++i) {
    if (clamp[i] >= 0 && std::fabs(y[i] - clamp[i]) > 1e-9) return kNegInf;
    value += s[i] * y[i];
  }
  for (int k = 0; k < num_additional(); ++k) value += a[k] * u[k];
  return value;
}

namespace {

enum class Cardinality { kExactlyOne, kAtMostOne, kAtLeastOne };

// XOR, ATMOSTONE and OR.
class CardinalityFactor : public LocalFactor {
 public:
  CardinalityFactor(int n, Cardinality kind) : LocalFactor(n, 0), kind_(kind), sorted_(n) {}

  double map(const double* s, const double*, double* y, double*) override {
    const int n = degree();
    const int best = static_cast<int>(std::max_element(s, s + n) - s);
    double value = 0.0;
    for (int i = 0; i < n; ++i) y[i] = 0.0;
    if (kind_ == Cardinality::kExactlyOne || (kind_ == Cardinality::kAtMostOne && s[best] > 0.0)) {
      y[best] = 1.0;
      return s[best];
    }
    if (kind_ == Cardinality::kAtMostOne) return 0.0;
    bool any = false;  // OR: every positive score, else the best one
    for (int i = 0; i < n; ++i) {
      if (s[i] > 0.0) {
        y[i] = 1.0;
        value += s[i];
        any = true;
      }
    }
    if (!any) {
      y[best] = 1.0;
      value = s[best];
    }
    return value;
  }

  void solve_qp(const double* x, const double*, double* q, double*) override {
    const int n = degree();
    if (kind_ != Cardinality::kExactlyOne) {
      double total = 0.0;
      for (int i = 0; i < n; ++i) total += (q[i] = clip01(x[i]));
      if (kind_ == Cardinality::kAtMostOne ? total <= 1.0 : total >= 1.0) return;
    }
    // The projection onto {q in [0, 1]^n : sum q = 1}, i.e. onto the simplex (q <= 1 follows):
    // q = max(x - tau, 0) with tau from the sorted values (Duchi et al., 2008).
    sorted_.assign(x, x + n);
    std::sort(sorted_.begin(), sorted_.end(), std::greater<double>());
    double cumulative = 0.0, tau = sorted_[0] - 1.0;
    for (int i = 0; i < n; ++i) {
      cumulative += sorted_[i];
      const double t = (cumulative - 1.0) / (i + 1);
      if (sorted_[i] - t <= 0.0) break;
      tau = t;
    }
    for (int i = 0; i < n; ++i) q[i] = std::max(0.0, x[i] - tau);
  }

  double evaluate(const int* y, const double*, double*) const override {
    int count = 0;
    for (int i = 0; i < degree(); ++i) count += y[i];
    const bool ok = kind_ == Cardinality::kExactlyOne ? count == 1
                    : kind_ == Cardinality::kAtMostOne ? count <= 1
                                                       : count >= 1;
    return ok ? 0.0 : kNegInf;
  }

 private:
  Cardinality kind_;
  std::vector<double> sorted_;
};

// The last link is the AND of the others.
class AndOutFactor : public LocalFactor {
 public:
  explicit AndOutFactor(int n) : LocalFactor(n, 0), order_(n - 1), z_(n), ones_(n, 1.0) {}

  double map(const double* s, const double*, double* y, double*) override {
    const int m = degree() - 1;
    // Output 1: every input 1.
    double all_on = s[m];
    for (int i = 0; i < m; ++i) all_on += s[i];
    // Output 0: the positive inputs, but not all of them (switch off the cheapest one).
    double off = 0.0;
    int positives = 0, cheapest = 0;
    for (int i = 0; i < m; ++i) {
      if (s[i] > 0.0) {
        off += s[i];
        ++positives;
      }
      if (s[i] < s[cheapest]) cheapest = i;
    }
    const bool must_switch_off = positives == m;
    if (must_switch_off) off -= s[cheapest];
    if (all_on >= off) {
      for (int i = 0; i <= m; ++i) y[i] = 1.0;
      return all_on;
    }
    for (int i = 0; i < m; ++i) y[i] = s[i] > 0.0 ? 1.0 : 0.0;
    if (must_switch_off) y[cheapest] = 0.0;
    y[m] = 0.0;
    return off;
  }

  void solve_qp(const double* x, const double*, double* q, double*) override {
    const int m = degree() - 1;
    for (int i = 0; i <= m; ++i) q[i] = clip01(x[i]);
    if (feasible(q)) return;
    // Projection onto {q_m <= q_i, box}: for an output v the inputs are clip(x_i, v, 1); the best v
    // solves (v - x_m) + sum_{x_i < v} (v - x_i) = 0 (sorted inputs), then is clipped to [0, 1].
    std::iota(order_.begin(), order_.end(), 0);
    std::sort(order_.begin(), order_.end(), [x](int i, int j) { return x[i] < x[j]; });
    double total = x[m];
    double v = x[m];
    for (int k = 0; k < m; ++k) {
      if (x[order_[k]] >= v) break;
      total += x[order_[k]];
      v = total / (k + 2);
    }
    v = clip01(v);
    for (int i = 0; i < m; ++i) q[i] = std::min(1.0, std::max(v, x[i]));
    q[m] = v;
    if (feasible(q)) return;
    // On the hyperplane sum_{i<m} q_i + (1 - q_m) = m.
    for (int i = 0; i < m; ++i) z_[i] = x[i];
    z_[m] = 1.0 - x[m];
    project_box_hyperplane(z_.data(), ones_.data(), m + 1, static_cast<double>(m), q);
    q[m] = 1.0 - q[m];
  }

  double evaluate(const int* y, const double*, double*) const override {
    const int m = degree() - 1;
    int all = 1;
    for (int i = 0; i < m; ++i) all &= y[i];
    return y[m] == all ? 0.0 : kNegInf;
  }

 private:
  bool feasible(const double* q) const {
    const int m = degree() - 1;
    double total = 0.0;
    for (int i = 0; i < m; ++i) {
      if (q[m] > q[i]) return false;
      total += q[i];
    }
    return q[m] >= total - (m - 1);
  }

  std::vector<int> order_;
  std::vector<double> z_, ones_;
};

// sum_i w_i y_i <= budget: BUDGET (w = 1, integral budget) and KNAPSACK (its LP relaxation).
class KnapsackFactor : public LocalFactor {
 public:
  KnapsackFactor(std::vector<double> costs, double budget)
      : LocalFactor(static_cast<int>(costs.size()), 0), costs_(std::move(costs)), budget_(budget),
        order_(costs_.size()) {}

  double map(const double* s, const double*, double* y, double*) override {
    // The LP: free items with a positive score, then the others by score per cost, the last one
    // possibly fractional (for BUDGET with an integral budget the result is integral).
    const int n = degree();
    double value = 0.0, room = budget_;
    int count = 0;
    for (int i = 0; i < n; ++i) {
      y[i] = 0.0;
      if (s[i] > 0.0 && costs_[i] <= 0.0) {
        y[i] = 1.0;
        value += s[i];
      } else if (s[i] > 0.0) {
        order_[count++] = i;
      }
    }
    std::sort(order_.begin(), order_.begin() + count,
              [&](int i, int j) { return s[i] * costs_[j] > s[j] * costs_[i]; });
    for (int k = 0; k < count && room > 0.0; ++k) {
      const int i = order_[k];
      const double take = std::min(1.0, room / costs_[i]);
      y[i] = take;
      value += take * s[i];
      room -= take * costs_[i];
    }
    return value;
  }

  // Exact for the LP relaxation: the clamped items use their part of the budget, the LP runs on
  // the others (a penalty would not do: a fractional item frees room at any rate).
  double map_clamped(const double* s, const double* a, const signed char* clamp, double* y, double*) override {
    const int n = degree();
    double fixed_value = 0.0, fixed_cost = 0.0;
    free_scores_.resize(n);
    for (int i = 0; i < n; ++i) {
      if (clamp[i] == 1) {
        fixed_value += s[i];
        fixed_cost += costs_[i];
      }
    }
    if (fixed_cost > budget_ * (1.0 + 1e-12) + 1e-12) return kNegInf;
    const double saved = budget_;
    budget_ = std::max(0.0, budget_ - fixed_cost);
    for (int i = 0; i < n; ++i) free_scores_[i] = clamp[i] >= 0 ? -1.0 : s[i];  // clamped: never taken
    const double value = map(free_scores_.data(), a, y, nullptr);
    budget_ = saved;
    for (int i = 0; i < n; ++i) {
      if (clamp[i] >= 0) y[i] = clamp[i];
    }
    return value + fixed_value;
  }

  void solve_qp(const double* x, const double*, double* q, double*) override {
    const int n = degree();
    double total = 0.0;
    for (int i = 0; i < n; ++i) {
      q[i] = clip01(x[i]);
      total += costs_[i] * q[i];
    }
    if (total <= budget_) return;
    project_box_hyperplane(x, costs_.data(), n, budget_, q);
  }

  double evaluate(const int* y, const double*, double*) const override {
    double total = 0.0;
    for (int i = 0; i < degree(); ++i) total += costs_[i] * y[i];
    return total <= budget_ * (1.0 + 1e-12) + 1e-12 ? 0.0 : kNegInf;
  }

 private:
  std::vector<double> costs_;
  double budget_;
  std::vector<int> order_;
  std::vector<double> free_scores_;
};

class NegatedFactor : public LocalFactor {
 public:
  NegatedFactor(std::unique_ptr<LocalFactor> inner, std::vector<char> negated)
      : LocalFactor(inner->degree(), inner->num_additional()), inner_(std::move(inner)),
        negated_(std::move(negated)), buffer_(degree()), labels_(degree()) {}

  double map(const double* s, const double* a, double* y, double* u) override {
    double constant = 0.0;
    for (int i = 0; i < degree(); ++i) {
      buffer_[i] = negated_[i] ? -s[i] : s[i];
      if (negated_[i]) constant += s[i];
    }
    const double value = inner_->map(buffer_.data(), a, y, u);
    for (int i = 0; i < degree(); ++i) {
      if (negated_[i]) y[i] = 1.0 - y[i];
    }
    return value + constant;
  }

  double map_clamped(const double* s, const double* a, const signed char* clamp, double* y, double* u) override {
    double constant = 0.0;
    clamp_.resize(degree());
    for (int i = 0; i < degree(); ++i) {
      buffer_[i] = negated_[i] ? -s[i] : s[i];
      if (negated_[i]) constant += s[i];
      clamp_[i] = (negated_[i] && clamp[i] >= 0) ? static_cast<signed char>(1 - clamp[i]) : clamp[i];
    }
    const double value = inner_->map_clamped(buffer_.data(), a, clamp_.data(), y, u);
    for (int i = 0; i < degree(); ++i) {
      if (negated_[i]) y[i] = 1.0 - y[i];
    }
    return value + constant;
  }

  void solve_qp(const double* x, const double* a, double* q, double* u) override {
    for (int i = 0; i < degree(); ++i) buffer_[i] = negated_[i] ? 1.0 - x[i] : x[i];
    inner_->solve_qp(buffer_.data(), a, q, u);
    for (int i = 0; i < degree(); ++i) {
      if (negated_[i]) q[i] = 1.0 - q[i];
    }
  }

  double evaluate(const int* y, const double* a, double* u) const override {
    for (int i = 0; i < degree(); ++i) labels_[i] = negated_[i] ? 1 - y[i] : y[i];
    return inner_->evaluate(labels_.data(), a, u);
  }

  // (an iterative inner solver: an oracle factor with negated links)
  void limit_qp_steps(int steps) override { inner_->limit_qp_steps(steps); }
  bool last_qp_exact() const override { return inner_->last_qp_exact(); }
  bool defers_additional() const override { return inner_->defers_additional(); }
  void additional_posteriors(double* u) override { inner_->additional_posteriors(u); }

 private:
  std::unique_ptr<LocalFactor> inner_;
  std::vector<char> negated_;
  std::vector<double> buffer_;
  std::vector<signed char> clamp_;
  mutable std::vector<int> labels_;
};

}  // namespace

std::unique_ptr<LocalFactor> make_negated(std::unique_ptr<LocalFactor> inner, std::vector<char> negated) {
  if (std::none_of(negated.begin(), negated.end(), [](char c) { return c != 0; })) return inner;
  return std::make_unique<NegatedFactor>(std::move(inner), std::move(negated));
}

std::unique_ptr<LocalFactor> make_one_hot_factor(int n) {
  return std::make_unique<CardinalityFactor>(n, Cardinality::kExactlyOne);
}

std::unique_ptr<LocalFactor> make_logic_factor(const FactorSpec& spec) {
  const int n = static_cast<int>(spec.links.size());
  std::vector<char> negated = spec.negated;
  negated.resize(n, 0);
  std::unique_ptr<LocalFactor> plain;
  switch (spec.type) {
    case FactorType::kXor:
      plain = std::make_unique<CardinalityFactor>(n, Cardinality::kExactlyOne);
      break;
    case FactorType::kAtMostOne:
      plain = std::make_unique<CardinalityFactor>(n, Cardinality::kAtMostOne);
      break;
    case FactorType::kOr:
      plain = std::make_unique<CardinalityFactor>(n, Cardinality::kAtLeastOne);
      break;
    case FactorType::kImply:  // (y_1 and ... and y_{n-1}) -> y_n  ==  OR(!y_1, ..., !y_{n-1}, y_n)
      for (int i = 0; i + 1 < n; ++i) negated[i] = !negated[i];
      plain = std::make_unique<CardinalityFactor>(n, Cardinality::kAtLeastOne);
      break;
    case FactorType::kAndOut:
      plain = std::make_unique<AndOutFactor>(n);
      break;
    case FactorType::kOrOut:  // y_n = OR(y_i)  ==  !y_n = AND(!y_i)
      for (int i = 0; i < n; ++i) negated[i] = !negated[i];
      plain = std::make_unique<AndOutFactor>(n);
      break;
    case FactorType::kXorOut:
      plain = make_xor_out_factor(n);
      break;
    case FactorType::kBudget:
      plain = std::make_unique<KnapsackFactor>(std::vector<double>(n, 1.0), spec.budget);
      break;
    case FactorType::kKnapsack:
      plain = std::make_unique<KnapsackFactor>(spec.costs, spec.budget);
      break;
    default:
      throw std::logic_error("make_logic_factor: not a logic factor");
  }
  return make_negated(std::move(plain), std::move(negated));
}

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
