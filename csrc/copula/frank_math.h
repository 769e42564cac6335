// frank_math.h: the numerics of the Frank copula layer of CCNN, as inline functions that compile
// for the host (plain C++17) and for CUDA devices (nvcc defines __CUDACC__). No torch, no Python.
//
// Contents (all templated on the compute type T = float or double):
//   1. stable elementary pieces:  log1mexp, softplus, sigmoid, expm1 ratios and their derivatives
//   2. links:  CutPoint (F(z), 1 - F(z), log dF/dz; log F and log(1 - F) on demand) for the
//      probit (standard normal) and logit (logistic) links; the log-probability of an ordinal
//      level between two cut points (scipy's _log_gauss_mass cases plus a narrow-interval series)
//   3. the Frank copula C(u, v; theta) and dC/du, dC/dv, dC/dtheta (docs/copula.md,
//      series for |theta| below a per-type switch)
//   4. the probability of a rectangle (a label pair) under the copula, in a product form that
//      never subtracts copula values, with its gradient; used by the pairwise kernels
//
// Numerics, in short (docs/copula.md has the long version):
//   * Probabilities are computed in log space; a log-probability is clamped below at
//     kLogProbFloor = log(1e-300) (the "floor"), where its gradient is zero. In practice it only
//     guards against -inf: the log-space forms stay finite far below 1e-300 in either type.
//   * Accuracy over theta in [-50, 50] and u, v down to 1e-8 from either boundary: C to ~1e-14
//     relative in double (at worst ~|log C| ulp) and ~|log C| * 6e-8 in float, derivatives to
//     ~1e-12 absolute in double; exact at u, v in {0, 1}. Level and pair log-probabilities: ~1e-12
//     relative in double; float within ~1e-5 of double whatever the size of P up to |theta| ~ 35
//     (dominated by about |theta| * 2.6e-7 from rounding the cut-point CDFs to float), hence
//     kFloatThetaLimit = 30.
//   * Rectangle probabilities are evaluated for |theta| <= kThetaMaxDouble; float computations
//     with |theta| > kFloatThetaLimit should be promoted to double by the caller (the kernels do).
#pragma once

#include <math.h>

#include <cmath>

#if defined(__CUDACC__)
#define CCNN_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define CCNN_HD inline __attribute__((always_inline))
#else
#define CCNN_HD inline
#endif

namespace ccnn {
namespace copula {

// ---------------------------------------------------------------------------------------------
// Overloads that pick the float or double C function on host and device alike.
// ---------------------------------------------------------------------------------------------
namespace fn {
CCNN_HD float exp(float x) { return ::expf(x); }
CCNN_HD double exp(double x) { return ::exp(x); }
CCNN_HD float log(float x) { return ::logf(x); }
CCNN_HD double log(double x) { return ::log(x); }
CCNN_HD float log1p(float x) { return ::log1pf(x); }
CCNN_HD double log1p(double x) { return ::log1p(x); }
CCNN_HD float expm1(float x) { return ::expm1f(x); }
CCNN_HD double expm1(double x) { return ::expm1(x); }
CCNN_HD float erfc(float x) { return ::erfcf(x); }
CCNN_HD double erfc(double x) { return ::erfc(x); }
CCNN_HD float abs(float x) { return ::fabsf(x); }
CCNN_HD double abs(double x) { return ::fabs(x); }
template <typename T>
CCNN_HD T max(T a, T b) { return a > b ? a : b; }
template <typename T>
CCNN_HD T min(T a, T b) { return a < b ? a : b; }
template <typename T>
CCNN_HD T inf() { return T(HUGE_VAL); }
}  // namespace fn

// log(1e-300): log-probabilities are clamped below at this value (gradient zero there).
constexpr double kLogProbFloor = -690.77552789821368;
// |theta| above which callers evaluate a float edge in double, levels included: float rectangle
// computations lose range beyond about 44 (factors reach e^{-theta}, products of two underflow),
// and the float rounding of the cut-point CDFs costs about |theta| * 2.6e-7 in log P, so 30 keeps
// every float32 log P within 1e-5 (tests/test_copula_simd.py).
constexpr double kFloatThetaLimit = 30.0;
// Rectangle computations cap |theta| here (the Frank copula is then within 2e-3 of the
// Frechet bounds); the gradient with respect to theta is zero beyond it.
constexpr double kThetaMaxDouble = 500.0;
// |theta| below which rectangle computations take theta = 0 (the relative change, ~|theta|, is far
// below either type's ulp; subnormal theta would overflow 1 / (1 - e^{-theta})).
constexpr double kThetaIndependence = 1e-30;

constexpr double kLn2 = 0.69314718055994530942;
constexpr double kLogSqrt2Pi = 0.91893853320467274178;  // log(sqrt(2 pi))
constexpr double kSqrtHalf = 0.70710678118654752440;

// Per-type switch points. Each is where a closed form's cancellation error (~eps / x) meets the
// truncation error of the series used below it.
template <typename T>
struct Tuning;
template <>
struct Tuning<float> {
  static constexpr float copula_series = 0.15f;   // |theta| below: series for C and derivatives
  static constexpr float ratio_series = 0.1f;     // |y| below: series for lambda(y), phi1(y)
  static constexpr float tail = -10.0f;           // z below: asymptotic log Phi(z)
  static constexpr float max_log_weight = 80.0f;  // level weights saturate at e^80 (finite)
  static constexpr float narrow_interval = 0.5f;  // see below
};
template <>
struct Tuning<double> {
  static constexpr double copula_series = 3e-3;
  static constexpr double ratio_series = 0.1;
  static constexpr double tail = -30.0;
  static constexpr double max_log_weight = 700.0;
  static constexpr double narrow_interval = 0.05;
};
// narrow_interval: levels whose half-width h times max(|midpoint|, 1) is below it take the
// Hermite series for the normal mass. Beyond it a difference of the two tails multiplies their
// relative error by up to (1 + r) / (1 - r), r = e^{-2 h |midpoint|} (about 20 at 0.05): fine for
// double's tails, but float's (a few 1e-7) would lose up to 5e-5 in log P; at 0.5 the factor is at
// most 2.2, and the series, to h^8, is still exact to 3e-8 there.

// ---------------------------------------------------------------------------------------------
// 1. Elementary pieces
// ---------------------------------------------------------------------------------------------

// l(x) = log(1 - e^{-x}) for x >= 0 (Maechler's switch at ln 2); l(0) = -inf, l(inf) = 0.
template <typename T>
CCNN_HD T log1mexp(T x) {
  return x <= T(kLn2) ? fn::log(-fn::expm1(-x)) : fn::log1p(-fn::exp(-x));
}

// log(1 + e^x)
template <typename T>
CCNN_HD T softplus(T x) {
  return x > T(0) ? x + fn::log1p(fn::exp(-x)) : fn::log1p(fn::exp(x));
}

template <typename T>
CCNN_HD T sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + fn::exp(-x));
  const T e = fn::exp(x);
  return e / (T(1) + e);
}

// Below this exponent y, (1 - e^{-y}) / y and lambda(-y) use their series (1 - e^{-y} would
// cancel); the series are truncated below each type's ulp there.
constexpr double kSmallExponent = 0.1;

// The series of this section, each truncated below its type's ulp where it is used, written once
// for scalars and for the SIMD vectors of frank_simd.h (V: Real or a vector of Real):
//   ratio(y)     = (1 - e^{-y}) / y = sum_k (-y)^k / (k+1)!, for 0 <= y < kSmallExponent;
//   lambda(y)    = lambda(-y) = 1/2 - y/12 + y^3/720 - ... (Bernoulli numbers), y < ratio_series;
//   excess(y)    = phi1(y) = (expm1(y) - y) / y^2 = sum_k y^k / (k + 2)!, y < ratio_series;
//   log1p_ratio(d) = psi(d) = log1p(d) / d = sum_k (-d)^k / (k+1), |d| < 0.05.
// (Always inlined, so a vector instantiation takes its caller's instruction set and never passes
// vectors in a call: GCC's -Wpsabi note about that ABI does not apply.)
#if defined(__GNUC__) && !defined(__CUDACC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
template <typename Real>
struct Series;
template <>
struct Series<float> {
  template <typename V>
  static CCNN_HD V ratio(V y) {
    const V s = -y;
    return 1.0f + s * (1.0f / 2 + s * (1.0f / 6 + s * (1.0f / 24 + s * (1.0f / 120 + s * (1.0f / 720)))));
  }
  template <typename V>
  static CCNN_HD V lambda(V y) {
    const V s = -y, s2 = s * s;
    return 0.5f + s * (1.0f / 12 + s2 * (-1.0f / 720 + s2 * (1.0f / 30240)));
  }
  template <typename V>
  static CCNN_HD V excess(V y) {
    return 1.0f / 2 + y * (1.0f / 6 + y * (1.0f / 24 + y * (1.0f / 120 + y * (1.0f / 720))));
  }
  template <typename V>
  static CCNN_HD V log1p_ratio(V d) {
    const V s = -d;
    return 1.0f + s * (1.0f / 2 + s * (1.0f / 3 + s * (1.0f / 4 + s * (1.0f / 5 + s * (1.0f / 6 + s * (1.0f / 7))))));
  }
};
template <>
struct Series<double> {
  template <typename V>
  static CCNN_HD V ratio(V y) {
    const V s = -y;
    return 1.0 + s * (1.0 / 2 + s * (1.0 / 6 + s * (1.0 / 24 + s * (1.0 / 120 + s * (1.0 / 720 +
           s * (1.0 / 5040 + s * (1.0 / 40320 + s * (1.0 / 362880 + s * (1.0 / 3628800 +
           s * (1.0 / 39916800))))))))));
  }
  template <typename V>
  static CCNN_HD V lambda(V y) {
    const V s = -y, s2 = s * s;
    return 0.5 + s * (1.0 / 12 + s2 * (-1.0 / 720 + s2 * (1.0 / 30240 + s2 * (-1.0 / 1209600 +
           s2 * (1.0 / 47900160)))));
  }
  template <typename V>
  static CCNN_HD V excess(V y) {
    return 1.0 / 2 + y * (1.0 / 6 + y * (1.0 / 24 + y * (1.0 / 120 + y * (1.0 / 720 + y * (1.0 / 5040 +
           y * (1.0 / 40320 + y * (1.0 / 362880 + y * (1.0 / 3628800 + y * (1.0 / 39916800)))))))));
  }
  template <typename V>
  static CCNN_HD V log1p_ratio(V d) {
    const V s = -d;
    return 1.0 + s * (1.0 / 2 + s * (1.0 / 3 + s * (1.0 / 4 + s * (1.0 / 5 + s * (1.0 / 6 + s * (1.0 / 7 +
           s * (1.0 / 8 + s * (1.0 / 9 + s * (1.0 / 10 + s * (1.0 / 11 + s * (1.0 / 12 + s * (1.0 / 13))))))))))));
  }
};
#if defined(__GNUC__) && !defined(__CUDACC__)
#pragma GCC diagnostic pop
#endif

// x = e^{-y} and m = 1 - e^{-y} for y >= 0, with one exp at most: m by its Taylor series for
// y < kSmallExponent (full relative precision), else 1 - x (relative error below 10 ulp).
template <typename T>
CCNN_HD void exp_neg_and_complement(T y, T* x, T* m) {
  if (y < T(kSmallExponent)) {
    *m = y * Series<T>::ratio(y);
    *x = T(1) - *m;
  } else {
    *x = fn::exp(-y);
    *m = T(1) - *x;
  }
}

// lambda(-y) = d log phi(s) / ds at s = -y, for y >= 0, given x = e^{-y}, m = 1 - e^{-y} and
// inv_y = 1/y: lambda(-y) = 1/y - x/m, or its series for small y.
template <typename T>
CCNN_HD T expm1_ratio_dlog_neg(T y, T x, T m, T inv_y) {
  if (y < Tuning<T>::ratio_series) return Series<T>::lambda(y);
  return inv_y - x / m;
}

// phi1(y) = (expm1(y) - y) / y^2 = (phi(y) - 1) / y for y >= 0, given phi = phi(y).
template <typename T>
CCNN_HD T expm1_ratio_excess(T y, T phi) {
  if (y < Tuning<T>::ratio_series) return Series<T>::excess(y);
  return (phi - T(1)) / y;
}

// psi(d) = log1p(d) / d for d > -1, psi(0) = 1: the series near 0, else log(w) / (w - 1) with
// w = 1 + d rounded (Goldberg's trick: the rounding errors of w cancel; a few ulp).
template <typename T>
CCNN_HD T log1p_ratio(T d) {
  if (fn::abs(d) < T(0.05)) return Series<T>::log1p_ratio(d);
  const T w = T(1) + d;
  return fn::log(w) / (w - T(1));
}

// ---------------------------------------------------------------------------------------------
// 2. Links: cut points and the log-probability of an ordinal level
// ---------------------------------------------------------------------------------------------
enum class Link : int { Probit = 0, Logit = 1 };

// The marginal CDF at one cut point z: F(z), 1 - F(z) and log F'(z), each to full relative
// precision (their logs, needed less often, by cut_log_cdf / cut_log_ccdf). The ends of the
// ordinal scale are z = -inf (F = 0) and z = +inf (F = 1).
template <typename T>
struct CutPoint {
  T z, cdf, ccdf, log_pdf;
  T lse;  // logit link only: log(1 + e^{-|z|})
};

template <typename T>
CCNN_HD CutPoint<T> cut_at_minus_inf() {
  return {-fn::inf<T>(), T(0), T(1), -fn::inf<T>(), T(0)};
}
template <typename T>
CCNN_HD CutPoint<T> cut_at_plus_inf() {
  return {fn::inf<T>(), T(1), T(0), -fn::inf<T>(), T(0)};
}

// log Phi(z) for z < Tuning<T>::tail, where Phi(z) would leave the normal range: the asymptotic
// series log Phi(z) = -z^2/2 - log(-z) - log sqrt(2 pi) + log(1 - 1/z^2 + 3/z^4 - 15/z^6 + ...).
template <typename T>
CCNN_HD T normal_log_cdf_asymptotic(T z) {
  const T x = T(1) / (z * z);
  const T tail =
      -x * (T(1) -
            x * (T(3) -
                 x * (T(15) - x * (T(105) - x * (T(945) - x * (T(10395) - x * T(135135)))))));
  return T(-0.5) * z * z - fn::log(-z) - T(kLogSqrt2Pi) + fn::log1p(tail);
}

// Phi(z), the standard normal CDF.
template <typename T>
CCNN_HD T normal_cdf(T z) {
  return T(0.5) * fn::erfc(-z * T(kSqrtHalf));
}

template <typename T>
CCNN_HD T normal_log_pdf(T z) {
  return T(-0.5) * z * z - T(kLogSqrt2Pi);
}

template <typename T>
CCNN_HD CutPoint<T> probit_cut(T z) {
  CutPoint<T> c;
  c.z = z;
  c.log_pdf = normal_log_pdf(z);
  c.lse = T(0);
  // Evaluate the smaller tail with erfc and take the other as its complement.
  const T small = normal_cdf(-fn::abs(z));
  c.cdf = z <= T(0) ? small : T(1) - small;
  c.ccdf = z <= T(0) ? T(1) - small : small;
  return c;
}

template <typename T>
CCNN_HD CutPoint<T> logit_cut(T z) {
  CutPoint<T> c;
  c.z = z;
  const T e = fn::exp(-fn::abs(z));  // e^{-|z|}
  c.lse = fn::log1p(e);
  const T near = T(1) / (T(1) + e), far = e / (T(1) + e);
  c.cdf = z >= T(0) ? near : far;
  c.ccdf = z >= T(0) ? far : near;
  c.log_pdf = -fn::abs(z) - T(2) * c.lse;  // log F (1 - F)
  return c;
}

template <typename T>
CCNN_HD CutPoint<T> cut_point(T z, Link link) {
  return link == Link::Probit ? probit_cut(z) : logit_cut(z);
}

// log F'(z) at a cut point: CutPoint::log_pdf without the CDFs (the same operations).
template <typename T>
CCNN_HD T cut_log_pdf(T z, Link link) {
  if (link == Link::Probit) return normal_log_pdf(z);
  const T lse = fn::log1p(fn::exp(-fn::abs(z)));
  return -fn::abs(z) - T(2) * lse;
}

// log F(z) and log(1 - F(z)) at a finite cut point, to full relative precision.
template <typename T>
CCNN_HD T cut_log_cdf(const CutPoint<T>& c, Link link) {
  if (link == Link::Logit) return fn::min(c.z, T(0)) - c.lse;
  if (c.z < Tuning<T>::tail) return normal_log_cdf_asymptotic(c.z);
  return c.z <= T(0) ? fn::log(c.cdf) : fn::log1p(-c.ccdf);
}
template <typename T>
CCNN_HD T cut_log_ccdf(const CutPoint<T>& c, Link link) {
  if (link == Link::Logit) return fn::min(-c.z, T(0)) - c.lse;
  if (-c.z < Tuning<T>::tail) return normal_log_cdf_asymptotic(-c.z);
  return c.z >= T(0) ? fn::log(c.ccdf) : fn::log1p(-c.cdf);
}

// Cut point k of an ordinal scale with thresholds z[0] < ... < z[L-2]: k = 0 is -inf, k = L is
// +inf, otherwise z[k-1].
template <typename T>
CCNN_HD CutPoint<T> cut_of_level_edge(const T* z, int num_levels, int k, Link link) {
  if (k <= 0) return cut_at_minus_inf<T>();
  if (k >= num_levels) return cut_at_plus_inf<T>();
  return cut_point(z[k - 1], link);
}

// log(Phi(hi.z) - Phi(lo.z)), lo.z < hi.z: scipy's _log_gauss_mass cases (both endpoints in the
// lower tail: difference of log CDFs; both in the upper tail: mirrored; otherwise one minus the
// two tails), and for narrow intervals, where those cancel, the Hermite series
// Phi(b) - Phi(a) = 2 h phi(m) sum_k He_2k(m) h^2k / (2k+1)!, m = (a+b)/2, h = (b-a)/2.
template <typename T>
CCNN_HD T probit_log_mass(const CutPoint<T>& lo, const CutPoint<T>& hi) {
  if (lo.z == -fn::inf<T>()) return cut_log_cdf(hi, Link::Probit);
  if (hi.z == fn::inf<T>()) return cut_log_ccdf(lo, Link::Probit);
  const T h = T(0.5) * (hi.z - lo.z), mid = T(0.5) * lo.z + T(0.5) * hi.z;
  if (h * fn::max(fn::abs(mid), T(1)) < Tuning<T>::narrow_interval) {
    const T h2 = h * h, m2 = mid * mid;
    const T he2 = m2 - T(1);
    const T he4 = (m2 - T(6)) * m2 + T(3);
    const T he6 = ((m2 - T(15)) * m2 + T(45)) * m2 - T(15);
    const T he8 = (((m2 - T(28)) * m2 + T(210)) * m2 - T(420)) * m2 + T(105);
    const T series =
        h2 * (he2 / T(6) + h2 * (he4 / T(120) + h2 * (he6 / T(5040) + h2 * (he8 / T(362880)))));
    // log of the width itself, not of 2 h: half a subnormal width can round to 0
    return fn::log(hi.z - lo.z) + normal_log_pdf(mid) + fn::log1p(series);
  }
  if (hi.z <= T(0)) {
    const T log_hi = cut_log_cdf(hi, Link::Probit), log_lo = cut_log_cdf(lo, Link::Probit);
    return log_hi + log1mexp(log_hi - log_lo);
  }
  if (lo.z >= T(0)) {
    const T log_lo = cut_log_ccdf(lo, Link::Probit), log_hi = cut_log_ccdf(hi, Link::Probit);
    return log_lo + log1mexp(log_lo - log_hi);
  }
  return fn::log1p(-(lo.cdf + hi.ccdf));
}

// log(F(hi.z) - F(lo.z)) for the logistic F: log F(b) + log(1 - F(a)) + log(1 - e^{a-b}). All
// three terms are <= 0, so nothing cancels: exact up to rounding for every a < b, even when |a|
// or |b| is so large that a + b would lose the small terms.
template <typename T>
CCNN_HD T logit_log_mass(const CutPoint<T>& lo, const CutPoint<T>& hi) {
  if (lo.z == -fn::inf<T>()) return cut_log_cdf(hi, Link::Logit);
  if (hi.z == fn::inf<T>()) return cut_log_ccdf(lo, Link::Logit);
  return cut_log_cdf(hi, Link::Logit) + cut_log_ccdf(lo, Link::Logit) + log1mexp(hi.z - lo.z);
}

template <typename T>
CCNN_HD T level_log_mass(const CutPoint<T>& lo, const CutPoint<T>& hi, Link link) {
  return link == Link::Probit ? probit_log_mass(lo, hi) : logit_log_mass(lo, hi);
}

// One ordinal level l of one AU: its cut points' CDFs, its probability, and the factors that turn
// gradients with respect to its cut-point CDFs (scaled by the mass) into gradients with respect to
// the thresholds: d/dz_lo = w_lo * (mass * d/dF_lo), w = F'(z) / mass (0 at the open ends).
template <typename T>
struct Level {
  T cdf_lo, ccdf_lo, cdf_hi, ccdf_hi;
  T mass, log_mass;
  T w_lo, w_hi;
  bool has_lo, has_hi;  // whether the lower / upper cut point is a threshold (not -inf / +inf)
};

// The weights w are only needed for gradients (with_weights = false leaves them 0).
template <typename T>
CCNN_HD Level<T> make_level(const CutPoint<T>& lo, const CutPoint<T>& hi, bool has_lo,
                            bool has_hi, Link link, bool with_weights) {
  Level<T> lev;
  lev.cdf_lo = lo.cdf, lev.ccdf_lo = lo.ccdf, lev.cdf_hi = hi.cdf, lev.ccdf_hi = hi.ccdf;
  // Thresholds beyond about 1e154 (double) or 2e19 (float) overflow z^2 in the tail forms, which
  // can give -inf - -inf: the mass is then 0 (log -inf), never NaN. Levels below the floor carry
  // no gradient (nor does any cell that contains them), so their weights are 0, not exp(huge).
  const T log_mass = level_log_mass(lo, hi, link);
  lev.log_mass = log_mass > -fn::inf<T>() ? log_mass : -fn::inf<T>();
  lev.mass = fn::exp(lev.log_mass);
  lev.has_lo = has_lo, lev.has_hi = has_hi;
  const bool live = with_weights && lev.log_mass > T(kLogProbFloor);
  // A level narrower than the type resolves (float thresholds a subnormal gap apart) has a true
  // weight beyond the type's range: it saturates at e^max_log_weight instead of becoming inf
  // (and NaN once multiplied by a zero gradient).
  const T cap = Tuning<T>::max_log_weight;
  lev.w_lo = has_lo && live ? fn::exp(fn::min(lo.log_pdf - lev.log_mass, cap)) : T(0);
  lev.w_hi = has_hi && live ? fn::exp(fn::min(hi.log_pdf - lev.log_mass, cap)) : T(0);
  return lev;
}

// Level `level` (0..L-1) of one AU whose L-1 thresholds start at z.
template <typename T>
CCNN_HD Level<T> level_of(const T* z, int num_levels, int level, Link link, bool with_weights) {
  return make_level(cut_of_level_edge(z, num_levels, level, link),
                    cut_of_level_edge(z, num_levels, level + 1, link), level > 0,
                    level < num_levels - 1, link, with_weights);
}

// Level `level` of one AU whose thresholds (of type T) start at z, computed in type C: float
// thresholds of an edge evaluated in double (|theta| > kFloatThetaLimit) get their cut-point CDFs
// in double too, whose float rounding would otherwise cost ~|theta| * 3e-7 in log P.
template <typename C, typename T>
CCNN_HD Level<C> level_of_as(const T* z, int num_levels, int level, Link link, bool with_weights) {
  const CutPoint<C> lo = level <= 0 ? cut_at_minus_inf<C>() : cut_point(C(z[level - 1]), link);
  const CutPoint<C> hi =
      level >= num_levels - 1 ? cut_at_plus_inf<C>() : cut_point(C(z[level]), link);
  Level<C> lev = make_level(lo, hi, level > 0, level < num_levels - 1, link, with_weights);
  // the weights end up in T: saturate them at T's cap (make_level's comment)
  const C cap = fn::exp(C(Tuning<T>::max_log_weight));
  lev.w_lo = fn::min(lev.w_lo, cap), lev.w_hi = fn::min(lev.w_hi, cap);
  return lev;
}

// ---------------------------------------------------------------------------------------------
// 3. The Frank copula C(u, v; theta) and its derivatives (docs/copula.md)
// ---------------------------------------------------------------------------------------------
template <typename T>
struct CopulaGrad {
  T value, du, dv, dtheta;
};

// Series in theta around 0, p = u(1-u), q = v(1-v), a = 1-2u, b = 1-2v:
// C = uv + pq S, S = theta/2 + theta^2 ab/12 + theta^3 (6pq - p - q)/24
//                    + theta^4 ab (36pq - 3p - 3q - 1)/720.
template <typename T>
CCNN_HD T frank_series_value(T u, T v, T t) {
  const T p = u * (T(1) - u), q = v * (T(1) - v), ab = (T(1) - T(2) * u) * (T(1) - T(2) * v);
  const T pq = p * q;
  const T S = t * (T(0.5) + t * (ab / T(12) + t * ((T(6) * pq - p - q) / T(24) +
                                                    t * ab * (T(36) * pq - T(3) * p - T(3) * q - T(1)) /
                                                        T(720))));
  return u * v + pq * S;
}

// dC/du of the series.
template <typename T>
CCNN_HD T frank_series_du(T u, T v, T t) {
  const T p = u * (T(1) - u), q = v * (T(1) - v), a = T(1) - T(2) * u, b = T(1) - T(2) * v;
  const T pq = p * q;
  const T S = t * (T(0.5) + t * (a * b / T(12) + t * ((T(6) * pq - p - q) / T(24) +
                                                       t * a * b * (T(36) * pq - T(3) * p - T(3) * q - T(1)) /
                                                           T(720))));
  const T dS = t * t *
               (-b / T(6) + t * ((T(6) * q - T(1)) * a / T(24) +
                                 t * (-T(2) * b * (T(36) * pq - T(3) * p - T(3) * q - T(1)) +
                                      a * a * b * (T(36) * q - T(3))) /
                                     T(720)));
  return v + q * (a * S + p * dS);
}

// dC/dtheta of the series.
template <typename T>
CCNN_HD T frank_series_dtheta(T u, T v, T t) {
  const T p = u * (T(1) - u), q = v * (T(1) - v), ab = (T(1) - T(2) * u) * (T(1) - T(2) * v);
  const T pq = p * q;
  return pq * (T(0.5) + t * (ab / T(6) + t * ((T(6) * pq - p - q) / T(8) +
                                             t * ab * (T(36) * pq - T(3) * p - T(3) * q - T(1)) /
                                                 T(180))));
}

// q(y) = y / expm1(y) = y e^{-y} / (1 - e^{-y}) for y >= 0 (q(0) = 1), given x = e^{-y} and
// m = 1 - e^{-y} as exp_neg_and_complement gives them.
template <typename T>
CCNN_HD T exprel_recip(T y, T x, T m) {
  return y < T(kSmallExponent) ? x / Series<T>::ratio(y) : y * x / m;
}

// The Frank copula for theta > 0 near the upper Frechet bound, in a form with no subtraction:
// with lo = min(u, v), hi = max(u, v), alpha = theta (hi - lo), beta = theta (1 - hi),
// gamma = theta lo,
//   C = lo - log1p(delta) / theta,  delta = e^{-alpha} (1 - e^{-beta}) (1 - e^{-gamma}) / (1 - e^{-theta}),
//   dC/dtheta = (log1p(delta) + delta / (1 + delta) (alpha - q(beta) - q(gamma) + q(theta))) / theta^2.
// Every factor is non-negative, so C <= min(u, v) always and nothing overflows for any theta. The
// derivative is accurate to a few ulp relative except for theta below ~4 with both points near
// one corner of the square (cancellation ~ 1/gamma), where frank_cdf_grad uses another form.
// FrankPoint: one coordinate c with its complement and x = e^{-theta c}, m = 1 - e^{-theta c}.
template <typename T>
struct FrankPoint {
  T c, cbar, x, m;
};

template <typename T>
CCNN_HD FrankPoint<T> make_frank_point(T theta, T c, T cbar) {
  FrankPoint<T> p;
  p.c = c, p.cbar = cbar;
  exp_neg_and_complement(theta * c, &p.x, &p.m);
  return p;
}

// delta and alpha of the form above; lo.c <= hi.c, both in (0, 1); x1, m1 = e^{-theta}, 1 - x1.
template <typename T>
CCNN_HD void frank_upper_gap(T theta, T m1, const FrankPoint<T>& lo, const FrankPoint<T>& hi,
                             T hi_mbar, T* delta, T* alpha) {
  // hi - lo from whichever pair of values is smaller (both exact to an ulp of themselves)
  *alpha = theta * (lo.c + hi.c > T(1) ? lo.cbar - hi.cbar : hi.c - lo.c);
  *delta = fn::exp(-*alpha) * hi_mbar * (lo.m / m1);
}

template <typename T>
CCNN_HD T frank_upper_dtheta(T theta, T x1, T m1, const FrankPoint<T>& lo,
                             const FrankPoint<T>& hi) {
  T hi_xbar, hi_mbar, delta, alpha;
  exp_neg_and_complement(theta * hi.cbar, &hi_xbar, &hi_mbar);
  frank_upper_gap(theta, m1, lo, hi, hi_mbar, &delta, &alpha);
  const T q_beta = exprel_recip(theta * hi.cbar, hi_xbar, hi_mbar);
  const T q_gamma = exprel_recip(theta * lo.c, lo.x, lo.m);
  const T q_theta = exprel_recip(theta, x1, m1);
  return (fn::log1p(delta) + delta / (T(1) + delta) * (alpha - q_beta - q_gamma + q_theta)) /
         (theta * theta);
}

// C(u, v; theta) for u, v in [0, 1] and any finite theta.
// theta > 0: the upper-bound form above while C >= min(u, v) / 2; below that
//   L = l(theta u) + l(theta v) - l(theta), C = -l(-L) / theta;
// theta < 0, t = -theta: L = t(u + v - 1) + l(t u) + l(t v) - l(t), C = softplus(L) / t.
template <typename T>
CCNN_HD T frank_cdf_unclamped(T u, T v, T theta) {
  if (u <= T(0) || v <= T(0)) return T(0);
  if (u >= T(1)) return v;
  if (v >= T(1)) return u;
  if (fn::abs(theta) < Tuning<T>::copula_series) return frank_series_value(u, v, theta);
  if (theta > T(0)) {
    T x1, m1, hi_xbar, hi_mbar, delta, alpha;
    exp_neg_and_complement(theta, &x1, &m1);
    const T lo_c = fn::min(u, v), hi_c = fn::max(u, v);
    const FrankPoint<T> lo = make_frank_point(theta, lo_c, T(1) - lo_c);
    const FrankPoint<T> hi = make_frank_point(theta, hi_c, T(1) - hi_c);
    exp_neg_and_complement(theta * hi.cbar, &hi_xbar, &hi_mbar);
    frank_upper_gap(theta, m1, lo, hi, hi_mbar, &delta, &alpha);
    const T gap = fn::log1p(delta) / theta;
    if (gap <= T(0.5) * lo_c) return lo_c - gap;
    const T L = log1mexp(theta * u) + log1mexp(theta * v) - log1mexp(theta);
    return -log1mexp(-L) / theta;
  }
  const T t = -theta;
  const T L = t * (u + v - T(1)) + log1mexp(t * u) + log1mexp(t * v) - log1mexp(t);
  return softplus(L) / t;
}

// The forms above stay within the Frechet bounds max(u + v - 1, 0) <= C <= min(u, v) up to
// rounding (subnormal u or v, flush-to-zero arithmetic); the clamp makes the bounds exact.
template <typename T>
CCNN_HD T frank_cdf(T u, T v, T theta) {
  const T c = frank_cdf_unclamped(u, v, theta);
  return fn::min(fn::max(c, fn::max(u + v - T(1), T(0))), fn::min(u, v));
}

// dC/du (the conditional CDF of V given U = u):
// theta > 0: sigmoid(theta (v - u) + l(theta v) - l(theta (1 - v)));
// theta < 0: sigmoid(t (u + v - 1) + l(t v) - l(t (1 - v))).
template <typename T>
CCNN_HD T frank_cdf_du(T u, T v, T theta) {
  if (v <= T(0)) return T(0);
  if (v >= T(1)) return T(1);
  if (fn::abs(theta) < Tuning<T>::copula_series) return frank_series_du(u, v, theta);
  if (theta > T(0))
    return sigmoid(theta * (v - u) + log1mexp(theta * v) - log1mexp(theta * (T(1) - v)));
  const T t = -theta;
  return sigmoid(t * (u + v - T(1)) + log1mexp(t * v) - log1mexp(t * (T(1) - v)));
}

// dC/dtheta at an interior point for theta >= Tuning<T>::copula_series. Radial symmetry
// (C(u, v) = u + v - 1 + C(1 - u, 1 - v), so dC/dtheta is the same at both points) moves the point
// to u + v <= 1. For theta < 4 with both coordinates below 1/2 (where the upper-bound form
// cancels): (u C_u + v C_v - C - R) / theta with R = expm1(theta C) / expm1(theta) in log space.
template <typename T>
CCNN_HD T frank_cdf_dtheta_positive(T u, T v, T theta) {
  if (u + v > T(1)) u = T(1) - u, v = T(1) - v;
  if (theta < T(4) && fn::max(u, v) < T(0.5)) {
    const T c = frank_cdf(u, v, theta);
    const T log_r = theta * (c - T(1)) + log1mexp(theta * c) - log1mexp(theta);
    return (u * frank_cdf_du(u, v, theta) + v * frank_cdf_du(v, u, theta) - c - fn::exp(log_r)) /
           theta;
  }
  T x1, m1;
  exp_neg_and_complement(theta, &x1, &m1);
  const T lo_c = fn::min(u, v), hi_c = fn::max(u, v);
  return frank_upper_dtheta(theta, x1, m1, make_frank_point(theta, lo_c, T(1) - lo_c),
                            make_frank_point(theta, hi_c, T(1) - hi_c));
}

// C and its three partial derivatives. For theta < 0, C_theta(u, v) = u - C_{-theta}(u, 1 - v)
// gives dC/dtheta(u, v; theta) = dC/dtheta(u, 1 - v; -theta).
template <typename T>
CCNN_HD CopulaGrad<T> frank_cdf_grad(T u, T v, T theta) {
  CopulaGrad<T> g;
  g.value = frank_cdf(u, v, theta);
  g.du = frank_cdf_du(u, v, theta);
  g.dv = frank_cdf_du(v, u, theta);
  if (u <= T(0) || v <= T(0) || u >= T(1) || v >= T(1)) {
    g.dtheta = T(0);  // C does not depend on theta on the boundary of the square
  } else if (fn::abs(theta) < Tuning<T>::copula_series) {
    g.dtheta = frank_series_dtheta(u, v, theta);
  } else {
    g.dtheta = theta > T(0) ? frank_cdf_dtheta_positive(u, v, theta)
                            : frank_cdf_dtheta_positive(u, T(1) - v, -theta);
  }
  return g;
}

// ---------------------------------------------------------------------------------------------
// 4. Rectangle probabilities P = C(u1, v1) - C(u0, v1) - C(u1, v0) + C(u0, v0)
// ---------------------------------------------------------------------------------------------
// Evaluated in a frame with theta >= 0: for theta < 0 the columns are reflected (v -> 1 - v),
// since C_theta(u, v) = u - C_{-theta}(u, 1 - v) maps the rectangle [u0,u1] x [v0,v1] under
// theta to [u0,u1] x [1-v1, 1-v0] under -theta. With x_c = e^{-theta c}, m_c = (1 - x_c)/theta
// and K(u, v) = e^{-theta C(u, v)} = x_v + (x_u - x_1) m_v / m_1 (both terms >= 0, so K has full
// relative precision), the rectangle probability is
//   P = -log1p(D) / theta = m psi(D),   D = -theta m,
//   m = du dv phi(-theta du) phi(-theta dv) x_u0 x_v0 / (m_1 K(u0, v1) K(u1, v0)),
// where du, dv are the level masses (computed directly from the link, never as u1 - u0),
// phi(y) = expm1(y)/y and psi(d) = log1p(d)/d. No copula values are subtracted, so P has full
// relative precision however small it is. When D < -1/2 (large theta, large P) log1p(D) is taken
// as log(K(u0,v0) K(u1,v1) / (K(u0,v1) K(u1,v0))), the identity 1 + D = that ratio.
// Gradients (mass-scaled, s_c = mass * d log P / d c):
//   s_u1 = e^{-theta du} K(u0,v1) / (K(u1,v1) phi(-theta du) psi),
//   s_u0 = -K(u1,v0) / (K(u0,v0) phi(-theta du) psi), and the same with u, v swapped;
//   d log P / d theta = phi(y) dlog m + P phi1(y) while y = theta P = -log1p(D) <= log 2
//   (phi(y) = 1/((1+D) psi) <= 1.45); beyond, where phi(y) ~ e^y / y would amplify the rounding of
//   dlog m, d log P / d theta = sum of +-dC/dtheta over the corners / P (frank_corner_dtheta),
//   dlog m = lambda(-theta) - du lambda(-theta du) - dv lambda(-theta dv) - u0 - v0
//            + T(u0, v1) + T(u1, v0),
//   T(u, v) = d(theta C)/d theta = (u x_u r_v + v x_v r_u - x_1 r_u r_v) / K, r_c = m_c / m_1,
//   lambda(s) = d log phi(s) / ds, phi1(y) = (e^y - 1 - y) / y^2.
// Near the diagonal of large-mass cells the theta gradient costs a few transcendental functions
// per interior corner; everything else reuses those of the value.

// The constants of one theta (one edge, or one edge of one sample).
template <typename T>
struct FrankFrame {
  T theta;       // |theta|, capped at kThetaMaxDouble
  bool reflect;  // the signed theta was negative: columns are reflected
  bool capped;   // |theta| reached the cap: no gradient with respect to theta
  T x1;          // e^{-theta}
  T m1;          // 1 - e^{-theta}
  T inv_m1;      // theta / (1 - e^{-theta}) = 1 / m_1, 1 at theta = 0
  T inv_mraw;    // 1 / (1 - e^{-theta}) (theta > 0)
  T lambda1;     // lambda(-theta)
};

template <typename T>
CCNN_HD FrankFrame<T> make_frank_frame(T signed_theta) {
  FrankFrame<T> f;
  f.reflect = signed_theta < T(0);
  f.capped = fn::abs(signed_theta) >= T(kThetaMaxDouble);
  f.theta = f.capped ? T(kThetaMaxDouble) : fn::abs(signed_theta);
  // Below kThetaIndependence the copula is independence to far below any type's ulp (and 1 / m
  // would overflow for subnormal theta).
  if (f.theta < T(kThetaIndependence)) f.theta = T(0);
  T m;
  exp_neg_and_complement(f.theta, &f.x1, &m);
  f.m1 = m;
  f.inv_mraw = f.theta > T(0) ? T(1) / m : T(0);
  f.inv_m1 = f.theta > T(0) ? f.theta * f.inv_mraw : T(1);
  f.lambda1 = expm1_ratio_dlog_neg(f.theta, f.x1, m, f.theta > T(0) ? T(1) / f.theta : T(0));
  return f;
}

// One cut-point coordinate c in [0, 1] of the frame with its complement cbar = 1 - c (as accurate
// as the link gives it): x = e^{-theta c}, r = m_c / m_1.
template <typename T>
struct FrankCoord {
  T c, cbar, x, r;
};

template <typename T>
CCNN_HD FrankCoord<T> make_frank_coord(const FrankFrame<T>& f, T c, T cbar) {
  FrankCoord<T> k;
  k.c = c, k.cbar = cbar;
  if (c <= T(0)) {
    k.x = T(1), k.r = T(0);
  } else if (c >= T(1)) {
    k.x = f.x1, k.r = T(1);
  } else if (f.theta > T(0)) {
    T m;
    exp_neg_and_complement(f.theta * c, &k.x, &m);
    k.r = m * f.inv_mraw;
  } else {
    k.x = T(1), k.r = c;
  }
  return k;
}

// One level (interval) of the frame: mass d, phi(-theta d), e^{-theta d} and, for gradients,
// lambda(-theta d).
template <typename T>
struct FrankLevel {
  T mass, log_mass, phi, expo, lambda;
};

template <typename T>
CCNN_HD FrankLevel<T> make_frank_level(const FrankFrame<T>& f, T mass, T log_mass, bool with_grad) {
  FrankLevel<T> l;
  l.mass = mass, l.log_mass = log_mass;
  const T y = f.theta * mass;
  if (y < T(kSmallExponent)) {  // phi and lambda by their series
    l.phi = Series<T>::ratio(y);
    l.expo = T(1) - y * l.phi;
    l.lambda = with_grad ? Series<T>::lambda(y) : T(0);
  } else if (with_grad) {
    l.expo = fn::exp(-y);
    const T m = T(1) - l.expo, inv_ym = T(1) / (y * m);  // one division gives 1/y and 1/m
    l.phi = m * m * inv_ym;
    l.lambda = (m - l.expo * y) * inv_ym;  // 1/y - e^{-y}/m
  } else {
    l.expo = fn::exp(-y);
    l.phi = (T(1) - l.expo) / y;
    l.lambda = T(0);
  }
  return l;
}

// The coordinate c at the top of a level, given the coordinate at its bottom: x_top = x_bottom
// e^{-theta mass}, a multiplication instead of an exp (where 1 - x would cancel, c's own series).
template <typename T>
CCNN_HD FrankCoord<T> make_frank_coord_above(const FrankFrame<T>& f, const FrankCoord<T>& bottom,
                                             const FrankLevel<T>& level, T c, T cbar) {
  if (c >= T(1) || f.theta * c < T(kSmallExponent)) return make_frank_coord(f, c, cbar);
  FrankCoord<T> k;
  k.c = c, k.cbar = cbar;
  k.x = bottom.x * level.expo;
  k.r = (T(1) - k.x) * f.inv_mraw;
  return k;
}

// K(u, v) = e^{-theta C(u, v)} in the frame.
template <typename T>
CCNN_HD T frank_k(const FrankFrame<T>& f, const FrankCoord<T>& u, const FrankCoord<T>& v) {
  return v.x + (u.x - f.x1) * v.r;
}

// K(u, v) * d(theta C(u, v)) / d theta in the frame.
template <typename T>
CCNN_HD T frank_theta_c_dtheta_times_k(const FrankFrame<T>& f, const FrankCoord<T>& u,
                                       const FrankCoord<T>& v) {
  return u.c * u.x * v.r + v.c * v.x * u.r - f.x1 * u.r * v.r;
}

// dC/dtheta at one corner of a rectangle in the frame (theta > 0); 0 on the square's boundary,
// where C does not depend on theta.
template <typename T>
CCNN_HD T frank_corner_dtheta(const FrankFrame<T>& f, const FrankCoord<T>& u,
                              const FrankCoord<T>& v) {
  if (u.c <= T(0) || v.c <= T(0) || u.c >= T(1) || v.c >= T(1)) return T(0);
  const FrankCoord<T>& lo = u.c <= v.c ? u : v;
  const FrankCoord<T>& hi = u.c <= v.c ? v : u;
  // m = 1 - x = r m_1 (r was formed without cancellation)
  const FrankPoint<T> plo{lo.c, lo.cbar, lo.x, lo.r * f.m1};
  const FrankPoint<T> phi{hi.c, hi.cbar, hi.x, hi.r * f.m1};
  return frank_upper_dtheta(f.theta, f.x1, f.m1, plo, phi);
}

// Log-probability of one rectangle in the frame and, if wanted, its gradient.
template <typename T>
struct FrankCell {
  T log_prob;
  T s_u0, s_u1, s_v0, s_v1;  // mass-scaled d log P / d coordinate (frame)
  T dtheta;                  // d log P / d theta (frame)
};

template <typename T>
CCNN_HD FrankCell<T> frank_cell(const FrankFrame<T>& f, const FrankCoord<T>& u0,
                                const FrankCoord<T>& u1, const FrankCoord<T>& v0,
                                const FrankCoord<T>& v1, const FrankLevel<T>& lu,
                                const FrankLevel<T>& lv, bool with_grad) {
  FrankCell<T> cell;
  // K >= e^{-theta} can be tiny: products of two K's would leave the range, so only ratios of a
  // K to one of x_u, x_v, K (all within [e^{-theta}, e^{theta}]) are formed.
  const T k01 = frank_k(f, u0, v1), k10 = frank_k(f, u1, v0);
  const T inv_k01 = T(1) / k01, inv_k10 = T(1) / k10;
  const T ratio = (u0.x * inv_k01) * (v0.x * inv_k10) * (lu.phi * lv.phi * f.inv_m1);
  const T d = -f.theta * lu.mass * lv.mass * ratio;
  T psi, lp, one_plus_d, prob;  // psi(D), log1p(D), 1 + D, P
  T k00 = T(1), k11 = T(1);
  const bool near = d >= T(-0.5);
  if (near) {
    psi = log1p_ratio(d);
    lp = d * psi;
    one_plus_d = T(1) + d;
    prob = lu.mass * lv.mass * ratio * psi;
    cell.log_prob = lu.log_mass + lv.log_mass + fn::log(ratio * psi);
  } else {
    k00 = frank_k(f, u0, v0), k11 = frank_k(f, u1, v1);
    one_plus_d = (k00 * inv_k01) * (k11 * inv_k10);
    lp = fn::log(one_plus_d);
    psi = lp / d;
    prob = -lp / f.theta;
    cell.log_prob = fn::log(prob);
  }
  cell.s_u0 = cell.s_u1 = cell.s_v0 = cell.s_v1 = cell.dtheta = T(0);
  if (!(cell.log_prob > T(kLogProbFloor))) {
    cell.log_prob = T(kLogProbFloor);
    return cell;
  }
  if (!with_grad) return cell;
  if (near) k00 = frank_k(f, u0, v0), k11 = frank_k(f, u1, v1);
  const T scale = psi * lu.phi * lv.phi;
  const T inv1 = T(1) / (k11 * scale), inv0 = T(1) / (k00 * scale);
  cell.s_u1 = lu.expo * k01 * lv.phi * inv1;
  cell.s_v1 = lv.expo * k10 * lu.phi * inv1;
  cell.s_u0 = -k10 * lv.phi * inv0;
  cell.s_v0 = -k01 * lu.phi * inv0;
  if (near) {
    const T dlog_m = f.lambda1 - lu.mass * lu.lambda - lv.mass * lv.lambda - u0.c - v0.c +
                     frank_theta_c_dtheta_times_k(f, u0, v1) * inv_k01 +
                     frank_theta_c_dtheta_times_k(f, u1, v0) * inv_k10;
    // y = theta P = -log1p(D) in [0, log 2], so e^y - 1 = -D / (1 + D) and
    // phi(y) = 1 / ((1 + D) psi) <= 1.45: no amplification of dlog_m's rounding.
    const T y = -lp;
    const T phi = T(1) / (one_plus_d * psi);
    cell.dtheta = phi * dlog_m + prob * expm1_ratio_excess(y, phi);
  } else {
    // theta P > log 2: the form above would multiply dlog_m (a sum of O(1) terms that nearly
    // cancel) by phi(y) ~ e^{theta P} / (theta P). Instead dP/dtheta is summed over the corners,
    // each dC/dtheta from the cancellation-free upper-bound form (theta > log 2 here).
    cell.dtheta = (frank_corner_dtheta(f, u1, v1) - frank_corner_dtheta(f, u0, v1) -
                   frank_corner_dtheta(f, u1, v0) + frank_corner_dtheta(f, u0, v0)) /
                  prob;
  }
  return cell;
}

// A label pair of one edge in the original orientation: log P, d log P / d (the four thresholds
// around the pair: lower and upper of the row AU r and of the column AU s; 0 at an open end) and
// d log P / d theta.
template <typename T>
struct PairGrad {
  T log_prob;
  T dz_r_lo, dz_r_hi, dz_s_lo, dz_s_hi;
  T dtheta;
};

// Undoes the frame (reflected columns: v0' = 1 - v_hi, v1' = 1 - v_lo, theta' = -theta) and
// turns mass-scaled coordinate gradients into threshold gradients with the levels' weights.
template <typename T, typename W>
CCNN_HD PairGrad<T> pair_from_cell(const FrankFrame<T>& f, const FrankCell<T>& c,
                                   const Level<W>& r, const Level<W>& s) {
  PairGrad<T> g;
  g.log_prob = c.log_prob;
  g.dz_r_lo = T(r.w_lo) * c.s_u0;
  g.dz_r_hi = T(r.w_hi) * c.s_u1;
  g.dz_s_lo = T(s.w_lo) * (f.reflect ? -c.s_v1 : c.s_v0);
  g.dz_s_hi = T(s.w_hi) * (f.reflect ? -c.s_v0 : c.s_v1);
  g.dtheta = f.capped ? T(0) : (f.reflect ? -c.dtheta : c.dtheta);
  return g;
}

// The frame coordinates of the column AU's cut points of level s (reflected when theta < 0).
template <typename T, typename W>
CCNN_HD T column_lo(const FrankFrame<T>& f, const Level<W>& s) {
  return T(f.reflect ? s.ccdf_hi : s.cdf_lo);
}
template <typename T, typename W>
CCNN_HD T column_hi(const FrankFrame<T>& f, const Level<W>& s) {
  return T(f.reflect ? s.ccdf_lo : s.cdf_hi);
}
// 1 - column_lo (upper = false) or 1 - column_hi (upper = true).
template <typename T, typename W>
CCNN_HD T column_hi_complement(const FrankFrame<T>& f, const Level<W>& s, bool upper) {
  if (upper) return T(f.reflect ? s.cdf_lo : s.ccdf_hi);
  return T(f.reflect ? s.cdf_hi : s.ccdf_lo);
}

// One label pair from a frame of compute type T and the two AUs' levels (of type W, converted):
// r is the row AU at its label, s the column AU at its label.
template <typename T, typename W>
CCNN_HD PairGrad<T> frank_pair(const FrankFrame<T>& f, const Level<W>& r, const Level<W>& s,
                               bool with_grad) {
  const FrankLevel<T> lu = make_frank_level(f, T(r.mass), T(r.log_mass), with_grad);
  const FrankLevel<T> lv = make_frank_level(f, T(s.mass), T(s.log_mass), with_grad);
  const FrankCoord<T> u0 = make_frank_coord(f, T(r.cdf_lo), T(r.ccdf_lo));
  const FrankCoord<T> u1 = make_frank_coord_above(f, u0, lu, T(r.cdf_hi), T(r.ccdf_hi));
  const FrankCoord<T> v0 = make_frank_coord(f, column_lo(f, s), column_hi_complement(f, s, false));
  const FrankCoord<T> v1 =
      make_frank_coord_above(f, v0, lv, column_hi(f, s), column_hi_complement(f, s, true));
  return pair_from_cell(f, frank_cell(f, u0, u1, v0, v1, lu, lv, with_grad), r, s);
}

// Whether a float computation with this theta must be promoted to double.
template <typename T>
CCNN_HD bool needs_double(T signed_theta) {
  return sizeof(T) < sizeof(double) && fn::abs(signed_theta) > T(kFloatThetaLimit);
}

// One label pair for inputs of type T given the signed theta, evaluated in double when T is
// float and |theta| is beyond float's range (kFloatThetaLimit).
template <typename T>
CCNN_HD PairGrad<T> frank_pair_at(T signed_theta, const Level<T>& r, const Level<T>& s,
                                  bool with_grad) {
  if (needs_double(signed_theta)) {
    const PairGrad<double> g =
        frank_pair(make_frank_frame(double(signed_theta)), r, s, with_grad);
    return {T(g.log_prob), T(g.dz_r_lo), T(g.dz_r_hi), T(g.dz_s_lo), T(g.dz_s_hi), T(g.dtheta)};
  }
  return frank_pair(make_frank_frame(signed_theta), r, s, with_grad);
}

}  // namespace copula
}  // namespace ccnn
