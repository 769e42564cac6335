// The CUDA kernels of csrc/copula run on the host through tests/cuda_emulation (see
// cuda_runtime.h there), on buffers of exactly the documented sizes, so that the sanitizer build
// (`make sanitize`) checks every memory access and every integer operation of the kernels. Besides
// staying clean, the kernels must agree with each other where they assemble the same quantity
// differently: a table cell with the pair log-likelihood at that label pair, the table backward's
// theta gradient with the sum of the pair kernel's per-cell partials, the ordinal levels with a
// distribution (they sum to 1), the copula with its margins. Bad indices give NaN, never an access
// out of bounds; the validation kernels report the first offender of each kind. Built twice: with
// the kernels a call picks and with CCNN_CUDA_INDEX64 (every call on the 64-bit index kernels).
// tests/test_cuda_emulation.py compares the same kernels with the CPU ops numerically.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "check.h"
#include "entry.h"
#include "copula/input_checks.h"


namespace {

using ccnn::copula::kNoError;

// The entry points of one dtype.
template <typename T>
struct Kernels;

#define CCNN_EMU_KERNELS(T, suffix)                                       \
  template <>                                                             \
  struct Kernels<T> {                                                     \
    static constexpr auto frank = frank_copula_##suffix;                  \
    static constexpr auto frank_backward = frank_copula_backward_##suffix; \
    static constexpr auto logprob = ordinal_logprob_##suffix;             \
    static constexpr auto logprob_backward = ordinal_logprob_backward_##suffix; \
    static constexpr auto loglik = pairwise_loglik_##suffix;              \
    static constexpr auto loglik_bwd = pairwise_loglik_bwd_##suffix;      \
    static constexpr auto logtable = pairwise_logtable_##suffix;          \
    static constexpr auto logtable_backward = pairwise_logtable_backward_##suffix; \
    static constexpr auto validate_pairwise = validate_pairwise_##suffix; \
    static constexpr auto validate_frank = validate_frank_##suffix;       \
  };

CCNN_EMU_KERNELS(float, f32)
CCNN_EMU_KERNELS(double, f64)

template <typename T>
struct Problem {
  int64_t B, Q, L, E;
  int per_sample;
  std::vector<T> z, theta;
  std::vector<int64_t> edges, labels;
};

// Increasing thresholds, every pair of AUs, theta in [-40, 40] (beyond the float range too),
// labels in [-1, L-1] (-1: missing).
template <typename T>
Problem<T> make_problem(int64_t B, int64_t Q, int64_t L, int per_sample, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  Problem<T> p{B, Q, L, Q * (Q - 1) / 2, per_sample, {}, {}, {}, {}};
  for (int64_t row = 0; row < B * Q; ++row) {
    double z = -2.5 + unit(rng);
    for (int64_t k = 0; k < L - 1; ++k) {
      p.z.push_back(T(z));
      z += 0.2 + 4.0 * unit(rng) / double(L);
    }
  }
  for (int64_t r = 0; r < Q; ++r) {
    for (int64_t s = r + 1; s < Q; ++s) p.edges.insert(p.edges.end(), {r, s});
  }
  p.theta.resize(per_sample ? B * p.E : p.E);
  for (T& t : p.theta) t = T(80.0 * unit(rng) - 40.0);
  std::uniform_int_distribution<int64_t> label(-1, L - 1);
  p.labels.resize(B * Q);
  for (int64_t& l : p.labels) l = label(rng);
  return p;
}

template <typename T>
double tolerance() {
  return std::is_same<T, float>::value ? 2e-4 : 1e-10;
}

template <typename T>
void check_pairwise(int64_t L, int per_sample, int link, unsigned seed) {
  using K = Kernels<T>;
  Problem<T> p = make_problem<T>(3, 4, L, per_sample, seed);
  const int64_t B = p.B, Q = p.Q, E = p.E, cells = L * L;
  std::vector<T> table(B * E * cells), loglik(B * E), partials(B * E * 5);
  CHECK(K::logtable(p.z.data(), p.theta.data(), p.edges.data(), table.data(), B, Q, L, E, per_sample, link) == 0);
  CHECK(K::loglik(p.z.data(), p.theta.data(), p.edges.data(), p.labels.data(), loglik.data(), partials.data(), B,
                  Q, L, E, per_sample, link) == 0);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t e = 0; e < E; ++e) {
      const int64_t a = p.labels[b * Q + p.edges[2 * e]], c = p.labels[b * Q + p.edges[2 * e + 1]];
      if (a < 0 || c < 0) {
        CHECK(loglik[b * E + e] == T(0));
        continue;
      }
      CHECK_CLOSE(table[(b * E + e) * cells + a * L + c], loglik[b * E + e], tolerance<T>(), tolerance<T>());
    }
  }
  for (T v : table) CHECK(std::isfinite(v) && v <= T(1e-6));
  // backward passes: finite everywhere
  std::vector<T> grad_table(table.size()), grad_z(p.z.size()), grad_theta(B * E);
  std::mt19937 rng(seed + 1);
  std::normal_distribution<double> normal;
  for (T& g : grad_table) g = T(normal(rng));
  CHECK(K::logtable_backward(grad_table.data(), p.z.data(), p.theta.data(), p.edges.data(), grad_z.data(),
                             grad_theta.data(), B, Q, L, E, per_sample, link) == 0);
  for (T v : grad_z) CHECK(std::isfinite(v));
  for (T v : grad_theta) CHECK(std::isfinite(v));
  std::vector<T> grad_loglik(B * E);
  for (T& g : grad_loglik) g = T(normal(rng));
  CHECK(K::loglik_bwd(grad_loglik.data(), partials.data(), p.edges.data(), p.labels.data(), grad_z.data(),
                      grad_theta.data(), B, Q, L, E, per_sample) == 0);
  for (T v : grad_z) CHECK(std::isfinite(v));
  for (T v : grad_theta) CHECK(std::isfinite(v));
}

// One edge: the table backward's theta gradient is the sum over cells (a, c) of the upstream
// gradient times the pair kernel's d log P / d theta at labels (a, c).
template <typename T>
void check_table_theta_gradient(int64_t L, int link, unsigned seed) {
  using K = Kernels<T>;
  Problem<T> p = make_problem<T>(2, 2, L, 1, seed);
  const int64_t B = 2, Q = 2, E = 1, cells = L * L;
  std::vector<T> grad(B * cells), grad_z(p.z.size()), grad_theta(B);
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  for (T& g : grad) g = T(normal(rng));
  CHECK(K::logtable_backward(grad.data(), p.z.data(), p.theta.data(), p.edges.data(), grad_z.data(),
                             grad_theta.data(), B, Q, L, E, 1, link) == 0);
  std::vector<double> expected(B, 0.0);
  std::vector<T> loglik(B), partials(B * 5);
  for (int64_t a = 0; a < L; ++a) {
    for (int64_t c = 0; c < L; ++c) {
      const std::vector<int64_t> labels = {a, c, a, c};
      CHECK(K::loglik(p.z.data(), p.theta.data(), p.edges.data(), labels.data(), loglik.data(), partials.data(), B,
                      Q, L, E, 1, link) == 0);
      for (int64_t b = 0; b < B; ++b) expected[b] += double(grad[b * cells + a * L + c]) * double(partials[b * 5 + 4]);
    }
  }
  double scale = 0.0;
  for (double v : expected) scale = std::fmax(scale, std::fabs(v));
  for (int64_t b = 0; b < B; ++b) CHECK_CLOSE(grad_theta[b], expected[b], 0.0, 50 * tolerance<T>() * (1 + scale));
}

template <typename T>
void check_ordinal(int64_t L, int link) {
  using K = Kernels<T>;
  Problem<T> p = make_problem<T>(5, 3, L, 0, 7);
  const int64_t rows = p.B * p.Q;
  std::vector<T> logp(rows * L), grad(rows * L), grad_z(p.z.size());
  CHECK(K::logprob(p.z.data(), logp.data(), rows, L, link) == 0);
  for (int64_t row = 0; row < rows; ++row) {
    double total = 0.0;
    for (int64_t l = 0; l < L; ++l) total += std::exp(double(logp[row * L + l]));
    CHECK_CLOSE(total, 1.0, 0.0, 10 * tolerance<T>());
  }
  // upstream p_l on level l: sum_l p_l d log p_l = d sum_l p_l = 0
  for (std::size_t i = 0; i < grad.size(); ++i) grad[i] = std::exp(logp[i]);
  CHECK(K::logprob_backward(grad.data(), p.z.data(), logp.data(), grad_z.data(), rows, L, link) == 0);
  for (T g : grad_z) CHECK_CLOSE(g, 0.0, 0.0, 10 * tolerance<T>());
}

template <typename T>
void check_frank() {
  using K = Kernels<T>;
  const int64_t n = 300;
  std::vector<T> u(n), v(n, T(1)), theta(n), out(n), grad(n, T(1)), gu(n), gv(n), gt(n);
  for (int64_t i = 0; i < n; ++i) {
    u[i] = T((i + 0.5) / n);
    theta[i] = T(-30.0 + 60.0 * i / n);
  }
  CHECK(K::frank(u.data(), v.data(), theta.data(), out.data(), n) == 0);
  for (int64_t i = 0; i < n; ++i) CHECK_CLOSE(out[i], u[i], tolerance<T>(), tolerance<T>());  // C(u, 1) = u
  CHECK(K::frank_backward(grad.data(), u.data(), v.data(), theta.data(), gu.data(), gv.data(), gt.data(), n) == 0);
  for (int64_t i = 0; i < n; ++i) {
    CHECK_CLOSE(gu[i], 1.0, 0.0, 1e2 * tolerance<T>());
    CHECK(std::isfinite(gv[i]) && std::isfinite(gt[i]));
  }
}

template <typename T>
void check_bad_indices() {
  using K = Kernels<T>;
  Problem<T> p = make_problem<T>(3, 4, 5, 0, 11);
  const int64_t B = p.B, Q = p.Q, L = p.L, E = p.E, cells = L * L;
  p.edges[2 * 1 + 1] = 1000000000;      // edge 1 points outside
  p.edges[2 * 4] = -1000000000000LL;    // edge 4 too
  p.labels[2 * Q + 3] = 1000000000000LL;  // sample 2, AU 3: a label outside [-1, L-1]
  std::vector<T> table(B * E * cells), loglik(B * E), partials(B * E * 5), grad_z(p.z.size()), grad_theta(B * E);
  CHECK(K::logtable(p.z.data(), p.theta.data(), p.edges.data(), table.data(), B, Q, L, E, 0, 0) == 0);
  CHECK(K::loglik(p.z.data(), p.theta.data(), p.edges.data(), p.labels.data(), loglik.data(), partials.data(), B, Q,
                  L, E, 0, 0) == 0);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t e : {1, 4}) {
      CHECK(std::isnan(table[(b * E + e) * cells]));
      CHECK(std::isnan(loglik[b * E + e]));
    }
  }
  std::vector<T> ones(table.size(), T(1));
  CHECK(K::logtable_backward(ones.data(), p.z.data(), p.theta.data(), p.edges.data(), grad_z.data(),
                             grad_theta.data(), B, Q, L, E, 0, 0) == 0);
  for (int64_t b = 0; b < B; ++b) CHECK(std::isnan(grad_theta[b * E + 1]) && std::isnan(grad_theta[b * E + 4]));
  std::vector<T> grad(B * E, T(1));
  CHECK(K::loglik_bwd(grad.data(), partials.data(), p.edges.data(), p.labels.data(), grad_z.data(),
                      grad_theta.data(), B, Q, L, E, 0) == 0);
  for (int64_t k = 0; k < L - 1; ++k) CHECK(std::isnan(grad_z[(2 * Q + 3) * (L - 1) + k]));
}

template <typename T>
void check_validation() {
  using K = Kernels<T>;
  Problem<T> p = make_problem<T>(4, 4, 6, 1, 13);
  const int64_t K_ = p.L - 1;
  int64_t first[ccnn::copula::kNumInputErrors];
  CHECK(K::validate_pairwise(p.z.data(), p.theta.data(), int64_t(p.theta.size()), p.edges.data(), p.labels.data(),
                             p.B, p.Q, p.L, p.E, 1, first) == 0);
  for (int64_t f : first) CHECK(f == kNoError);
  p.z[9 * K_ + 2] = std::numeric_limits<T>::quiet_NaN();
  p.z[14 * K_ + 1] = std::numeric_limits<T>::infinity();
  p.z[5 * K_ + 3] = p.z[5 * K_ + 2];
  p.theta[17] = -std::numeric_limits<T>::infinity();
  p.labels[11] = 6;
  p.labels[3] = -2;
  p.edges[2 * 4 + 1] = 4;
  p.edges[2 * 2 + 1] = p.edges[2 * 2];
  CHECK(K::validate_pairwise(p.z.data(), p.theta.data(), int64_t(p.theta.size()), p.edges.data(), p.labels.data(),
                             p.B, p.Q, p.L, p.E, 1, first) == 0);
  CHECK(first[ccnn::copula::kZNotFinite] == 9 * K_ + 2);
  CHECK(first[ccnn::copula::kZNotIncreasing] == 5);
  CHECK(first[ccnn::copula::kThetaNotFinite] == 17);
  CHECK(first[ccnn::copula::kLabelOutOfRange] == 3);
  CHECK(first[ccnn::copula::kEdgeOutOfRange] == 4);
  CHECK(first[ccnn::copula::kEdgeSelfLoop] == 2);
  std::vector<T> u(50, T(0.5)), v(50, T(0.5)), theta(50, T(1));
  u[31] = T(-0.25);
  v[7] = T(2);
  CHECK(K::validate_frank(u.data(), v.data(), theta.data(), 50, first) == 0);
  CHECK(first[ccnn::copula::kUnitOutOfRange] == 7 && first[ccnn::copula::kThetaNotFinite] == kNoError);
}

template <typename T>
void check_empty() {
  using K = Kernels<T>;
  std::vector<T> none(1);
  std::vector<int64_t> no_index(2);
  CHECK(K::logtable(none.data(), none.data(), no_index.data(), none.data(), 0, 4, 6, 6, 0, 0) == 0);
  CHECK(K::logtable_backward(none.data(), none.data(), none.data(), no_index.data(), none.data(), none.data(), 0, 4,
                             6, 6, 0, 0) == 0);
  CHECK(K::loglik(none.data(), none.data(), no_index.data(), no_index.data(), none.data(), none.data(), 3, 1, 6, 0,
                  0, 0) == 0);
  CHECK(K::loglik_bwd(none.data(), none.data(), no_index.data(), no_index.data(), none.data(), none.data(), 0, 4, 6,
                      6, 0) == 0);
  CHECK(K::logprob(none.data(), none.data(), 0, 6, 0) == 0);
  CHECK(K::frank(none.data(), none.data(), none.data(), none.data(), 0) == 0);
}

template <typename T>
void run_all() {
  unsigned seed = 1;
  for (int64_t L : {2, 6, 9, 17}) {
    for (int per_sample : {0, 1}) {
      for (int link : {0, 1}) check_pairwise<T>(L, per_sample, link, seed++);
    }
    check_table_theta_gradient<T>(L, int(L % 2), seed++);
    check_ordinal<T>(L, int(L % 2));
  }
  check_frank<T>();
  check_bad_indices<T>();
  check_validation<T>();
  check_empty<T>();
}

}  // namespace

int main() {
  run_all<float>();
  run_all<double>();
  return TEST_MAIN_RETURN();
}
