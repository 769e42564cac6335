// frank_simd.h: the rectangle math (section 4) and the ordinal level math (section 2) of
// frank_math.h in float and double, over a few lanes at a time, for the CPU kernels. Host only,
// GCC/Clang vector extensions. It is compiled once per x86 level (pair_lanes_*_cpu.cpp: AVX-512
// with 16 float / 8 double lanes, AVX2 and AVX with 8 / 4, baseline with 4 / 2) and picked at run
// time; an includer defines CCNN_SIMD_LANES, CCNN_SIMD_NAMESPACE and CCNN_SIMD_LEVEL first, and CCNN_SIMD_SLEEF
// where PyTorch's SLEEF functions exist for its level.
//
// Each pair lane follows frank_cell exactly, with both sides of every branch evaluated and
// blended: same forms, same switch points, same series lengths per type (the ordinal rows take a
// level's log mass as the log of one mass where that is as exact); the scalar functions stay the
// reference, and the tests hold both to the same mpmath truth. The elementary functions below are branch-free float
// versions of exp, log and log1p (a few ulp), accurate to well below the rectangle forms' own
// error; the double ones are SLEEF's (1 ulp) and an erfc of about 1e-15.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "copula/frank_math.h"
#include "copula/pair_batch.h"

// The vectors are passed between always-inlined functions only; the ABI notes GCC gives for them
// do not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace ccnn {
namespace copula {
namespace CCNN_SIMD_NAMESPACE {

constexpr int kLanes = CCNN_SIMD_LANES;
typedef float vf __attribute__((vector_size(4 * kLanes)));
typedef int32_t vi __attribute__((vector_size(4 * kLanes)));
// double lanes (the ordinal op in float64): half as many in the same registers
typedef double vd __attribute__((vector_size(4 * kLanes)));
typedef int64_t vl __attribute__((vector_size(4 * kLanes)));

// The scalar type of a vector type, its integer lanes of the same width and its lane count.
template <typename V>
struct LaneTypes;
template <>
struct LaneTypes<vf> {
  using Real = float;
  using Int = vi;
};
template <>
struct LaneTypes<vd> {
  using Real = double;
  using Int = vl;
};
template <typename V>
using RealOf = typename LaneTypes<V>::Real;
template <typename V>
using IntOf = typename LaneTypes<V>::Int;  // the integer lanes: comparisons' masks, offsets
template <typename V>
constexpr int kLanesOf = int(sizeof(V) / sizeof(RealOf<V>));

#define CCNN_SIMD inline __attribute__((always_inline))

template <typename V = vf>
CCNN_SIMD V splat(RealOf<V> x) {
  return V{} + x;
}
template <typename V>
CCNN_SIMD V select(IntOf<V> mask, V a, V b) {
  return mask ? a : b;
}
template <typename V>
CCNN_SIMD V vmin(V a, V b) {
  return a < b ? a : b;
}
template <typename V>
CCNN_SIMD V vmax(V a, V b) {
  return a > b ? a : b;
}
template <typename V>
CCNN_SIMD V vabs(V a) {
  return a < RealOf<V>(0) ? -a : a;
}
CCNN_SIMD vf as_float(vi x) { return (vf)x; }  // same-size vector casts reinterpret the bits
CCNN_SIMD vi as_int(vf x) { return (vi)x; }
template <typename M>
CCNN_SIMD bool any(M mask) {
  bool out = false;
  for (unsigned i = 0; i < sizeof(M) / sizeof(mask[0]); ++i) out |= mask[i] != 0;
  return out;
}

// e^x: x = k ln 2 + r, |r| <= ln2 / 2, degree-7 Taylor polynomial (error < 3e-9 relative);
// 0 below -87.3 (no subnormal results), +inf above 88.72, NaN stays NaN.
CCNN_SIMD vf vexp(vf x) {
  const vf clamped = vmax(vmin(x, splat(88.7f)), splat(-87.3f));
  const vf magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const vf k = (clamped * 1.44269504088896341f + magic) - magic;
  const vf r = (clamped - k * 0.693359375f) - k * -2.12194440e-4f;
  vf p = splat(1.0f / 5040);
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const vi ki = __builtin_convertvector(k, vi);
  vf out = p * as_float((ki + 127) << 23);
  out = select(x > 88.72f, splat(__builtin_inff()), out);
  return select(x < -87.3f, splat(0.0f), out);
}

// log x: x = 2^e m, m in [sqrt(1/2), sqrt(2)), log(1 + f) = f - f^2 / 2 + f^3 P(f) with f = m - 1
// and Cephes' degree-8 minimax P (no division; < 1 ulp). log 0 = -inf, log of a negative or NaN =
// NaN, log inf = inf; subnormal x handled.
CCNN_SIMD vf vlog(vf x) {
  const vi tiny = x < 1.17549435e-38f;
  const vf scaled = select(tiny, x * 8388608.0f, x);  // * 2^23
  const vi bits = as_int(scaled);
  vi e = ((bits >> 23) & 0xff) - 126;  // x = 2^e m with m in [1/2, 1)
  e = tiny ? e - 23 : e;
  const vf m = as_float((bits & 0x7fffff) | 0x3f000000);
  const vi low = m < 0.70710678f;
  e = low ? e - 1 : e;
  const vf f = select(low, m + m - 1.0f, m - 1.0f);
  const vf z = f * f;
  vf p = splat(7.0376836292e-2f);
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  const vf ef = __builtin_convertvector(e, vf);
  const vf y = f * z * p + ef * -2.12194440e-4f - 0.5f * z;
  vf out = (f + y) + ef * 0.693359375f;
  out = select(x == 0.0f, splat(-__builtin_inff()), out);
  out = select(x == __builtin_inff(), splat(__builtin_inff()), out);
  return select(x < 0.0f || x != x, splat(__builtin_nanf("")), out);
}

// log1p(d) by Goldberg's trick (w = 1 + d rounded; the rounding error of w cancels).
CCNN_SIMD vf vlog1p(vf d) {
  const vf w = d + 1.0f;
  return select(w == 1.0f, d, vlog(w) * (d / (w - 1.0f)));
}

// The double exp and logs: SLEEF's vector versions (1 ulp), which PyTorch's CPU library
// exports for its own vectorized ops, where the includer names them (CCNN_SIMD_SLEEF) and the
// loaded library has them (weak references, null otherwise); else the C library lane by lane.
#ifdef CCNN_SIMD_SLEEF
extern "C" {
vd CCNN_SIMD_SLEEF(exp, u10)(vd) __attribute__((weak));
vd CCNN_SIMD_SLEEF(log, u10)(vd) __attribute__((weak));
vd CCNN_SIMD_SLEEF(log1p, u10)(vd) __attribute__((weak));
}
#define CCNN_SIMD_SLEEF_OR_NULL(fn, ulp) (&CCNN_SIMD_SLEEF(fn, ulp))
#else
#define CCNN_SIMD_SLEEF_OR_NULL(fn, ulp) nullptr
#endif
template <typename Lib>
CCNN_SIMD vd vector_or_lanes(vd (*vector_fn)(vd), vd x, Lib lane_fn) {
  if (vector_fn != nullptr) return vector_fn(x);
  for (int j = 0; j < kLanes / 2; ++j) x[j] = lane_fn(x[j]);
  return x;
}
CCNN_SIMD vd vexp(vd x) {
  return vector_or_lanes(CCNN_SIMD_SLEEF_OR_NULL(exp, u10), x, [](double v) { return std::exp(v); });
}
CCNN_SIMD vd vlog(vd x) {
  return vector_or_lanes(CCNN_SIMD_SLEEF_OR_NULL(log, u10), x, [](double v) { return std::log(v); });
}
CCNN_SIMD vd vlog1p(vd x) {
  return vector_or_lanes(CCNN_SIMD_SLEEF_OR_NULL(log1p, u10), x, [](double v) { return std::log1p(v); });
}
// Horner's scheme for c[0] x^(N-1) + ... + c[N-1], or with `monic` for x^N + c[0] x^(N-1) + ...
template <typename V, std::size_t N>
CCNN_SIMD V polynomial(V x, const RealOf<V> (&c)[N], bool monic = false) {
  V p = monic ? x + c[0] : splat<V>(c[0]);
  for (std::size_t i = 1; i < N; ++i) p = p * x + c[i];
  return p;
}

// erfc(x) for x >= 0 in double lanes, by Cephes' rational approximations (x < 1: 1 - x T(x^2) /
// U(x^2); 1 <= x < 8: e^{-x^2} P(x) / Q(x); beyond: e^{-x^2} R(x) / S(x)) with one division for
// the three, and e^{-x^2} as e^{-s} (1 - r) from the exact x^2 = s + r (FMA): no loss to the
// rounding of x^2 (|x^2| ulp otherwise). Relative error about 1e-15 (the ordinal op against
// mpmath: tests/test_ordinal_logprob.py); about 3.5 times cheaper than SLEEF's 1.5-ulp erfc (a
// one-off timing). Without FMA (the baseline build), the C library's erfc lane by lane.
CCNN_SIMD vd verfc_nonneg(vd x) {
#if CCNN_SIMD_LANES >= 8 && defined(__x86_64__)
  const vd z = x * x;
#if CCNN_SIMD_LANES == 16
  const vd z_error = (vd)_mm512_fmsub_pd((__m512d)x, (__m512d)x, (__m512d)z);
#else
  const vd z_error = (vd)_mm256_fmsub_pd((__m256d)x, (__m256d)x, (__m256d)z);
#endif
  // Cephes' coefficients, highest power first; the denominators are monic (leading 1 omitted)
  static constexpr double kT[] = {9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
                                  7.00332514112805075473e3, 5.55923013010394962768e4};
  static constexpr double kU[] = {3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
                                  2.26290000613890934246e4, 4.92673942608635921086e4};
  static constexpr double kP[] = {2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
                                  4.86371970985681366614e1,   1.96520832956077098242e2,  5.26445194995477358631e2,
                                  9.34528527171957607540e2,   1.02755188689515710272e3,  5.57535335369399327526e2};
  static constexpr double kQ[] = {1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
                                  9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
                                  1.65666309194161350182e3, 5.57535340817727675546e2};
  static constexpr double kR[] = {5.64189583547755073984e-1, 1.27536670759978104416e0, 5.01905042251180477414e0,
                                  6.16021097993053585195e0,  7.40974269950448939160e0, 2.97886665372100240670e0};
  static constexpr double kS[] = {2.26052863220117276590e0, 9.39603524938001434673e0, 1.20489539808096656605e1,
                                  1.70814450747565897222e1, 9.60896809063285878198e0, 3.36907645100081516050e0};
  const vd u = polynomial(z, kU, true);
  const vl small = x < 1.0, beyond = x >= 8.0;
  vd num = select(small, u - x * polynomial(z, kT), polynomial(x, kP));
  vd den = select(small, u, polynomial(x, kQ, true));
  if (any(beyond)) {  // (|z| > 11.3: rare)
    num = select(beyond, polynomial(x, kR), num);
    den = select(beyond, polynomial(x, kS, true), den);
  }
  const vd scale = select(small, splat<vd>(1), vexp(-z) * (1.0 - z_error));
  return select(x > 27.0, splat<vd>(0), scale * num / den);  // erfc(27) < 1e-318 (also inf)
#else
  for (int j = 0; j < kLanes / 2; ++j) x[j] = std::erfc(x[j]);
  return x;
#endif
}

// exp_neg_and_complement: x = e^{-y}, m = 1 - e^{-y} for y >= 0 (series for small y).
template <typename V>
CCNN_SIMD void exp_neg_and_complement(V y, V* x, V* m) {
  using R = RealOf<V>;
  const IntOf<V> small = y < R(kSmallExponent);
  const V e = vexp(-y);
  const V ms = y * Series<R>::ratio(y);
  *m = select(small, ms, R(1) - e);
  *x = select(small, R(1) - ms, e);
}

CCNN_SIMD vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof(vf));
  return v;
}
CCNN_SIMD vd load(const double* p) {
  vd v;
  std::memcpy(&v, p, sizeof(vd));
  return v;
}
CCNN_SIMD void store(float* p, vf v) { std::memcpy(p, &v, sizeof(vf)); }
CCNN_SIMD void store(double* p, vd v) { std::memcpy(p, &v, sizeof(vd)); }

// ---- ordinal levels (frank_math.h section 2), float and double lanes ----------------------------

// erfc(x) for x >= 0 (Numerical Recipes' Chebyshev fit of erfc(x) e^{x^2}: relative error below
// 2.2e-7, a few float ulp, over the whole range; 0 beyond 10.5, where it leaves float's range).
CCNN_SIMD vf verfc_nonneg(vf x) {
  static constexpr float kFit[] = {0.17087277f,  -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                                   -0.18628806f, 0.09678418f,  0.37409196f, 1.00002368f};
  const vf t = 1.0f / (1.0f + 0.5f * x);
  const vf p = polynomial(t, kFit);
  // e^{-x^2} as e^{-h^2} e^{(h - x)(h + x)} with h = x rounded to 12 bits (h^2 exact): rounding
  // -x^2 + p to float would cost ~|x^2| ulp of relative accuracy; the small (h - x)(h + x) joins
  // the fit's exponent
  const vf h = as_float(as_int(x) & int32_t(0xfffff000));
  const vf out = t * vexp(-h * h) * vexp((h - x) * (h + x) + (-1.26551223f + t * p));
  return select(x > 10.5f, splat(0.0f), out);  // erfc(10.5) < 1e-49: 0 in float (also for inf)
}

template <typename V>
struct Cut {
  V z, cdf, ccdf, log_pdf, lse;
};

template <typename V>
CCNN_SIMD Cut<V> probit_cut(V z) {
  using R = RealOf<V>;
  Cut<V> c;
  c.z = z;
  c.log_pdf = R(-0.5) * z * z - R(kLogSqrt2Pi);
  c.lse = splat<V>(0);
  const V small = R(0.5) * verfc_nonneg(vabs(z) * R(kSqrtHalf));
  c.cdf = select(z <= R(0), small, R(1) - small);
  c.ccdf = select(z <= R(0), R(1) - small, small);
  return c;
}

template <typename V>
CCNN_SIMD Cut<V> logit_cut(V z) {
  using R = RealOf<V>;
  Cut<V> c;
  c.z = z;
  const V e = vexp(-vabs(z));
  c.lse = vlog1p(e);
  const V near = R(1) / (R(1) + e), far = e / (R(1) + e);
  c.cdf = select(z >= R(0), near, far);
  c.ccdf = select(z >= R(0), far, near);
  c.log_pdf = -vabs(z) - R(2) * c.lse;
  return c;
}

template <typename V>
CCNN_SIMD Cut<V> make_cut(V z, bool probit) {
  return probit ? probit_cut(z) : logit_cut(z);
}

// log Phi(z) for z < Tuning::tail (asymptotic series)
template <typename V>
CCNN_SIMD V normal_log_cdf_asymptotic(V z) {
  using R = RealOf<V>;
  const V x = R(1) / (z * z);
  const V tail = -x * (R(1) - x * (R(3) - x * (R(15) - x * (R(105) - x * (R(945) - x * (R(10395) - x * R(135135)))))));
  return R(-0.5) * z * z - vlog(-z) - R(kLogSqrt2Pi) + vlog1p(tail);
}

// log(small) where `use_small`, else log1p(-tail) with w = 1 - tail (Goldberg's form); one log.
template <typename V>
CCNN_SIMD V log_or_log1m(IntOf<V> use_small, V small, V tail) {
  using R = RealOf<V>;
  const V w = R(1) - tail;
  const V l = vlog(select(use_small, small, w));
  return select(use_small, l, select(w == R(1), -tail, l * (-tail / (w - R(1)))));
}

template <typename V>
CCNN_SIMD V cut_log_cdf(const Cut<V>& c, bool probit) {
  using R = RealOf<V>;
  if (!probit) return vmin(c.z, splat<V>(0)) - c.lse;
  const V direct = log_or_log1m(c.z <= R(0), c.cdf, c.ccdf);
  const IntOf<V> tail = c.z < Tuning<R>::tail;
  return any(tail) ? select(tail, normal_log_cdf_asymptotic(c.z), direct) : direct;
}
template <typename V>
CCNN_SIMD V cut_log_ccdf(const Cut<V>& c, bool probit) {
  using R = RealOf<V>;
  if (!probit) return vmin(-c.z, splat<V>(0)) - c.lse;
  const V direct = log_or_log1m(c.z >= R(0), c.ccdf, c.cdf);
  const IntOf<V> tail = -c.z < Tuning<R>::tail;
  return any(tail) ? select(tail, normal_log_cdf_asymptotic(-c.z), direct) : direct;
}

// log(1 - e^{-x}), x >= 0
template <typename V>
CCNN_SIMD V log1mexp(V x) {
  V e, m;
  exp_neg_and_complement(x, &e, &m);
  return log_or_log1m(x <= RealOf<V>(kLn2), m, e);
}

// level_log_mass: the cases of probit_log_mass / logit_log_mass, blended.
// Whether a level between thresholds a < b is narrow (Tuning::narrow_interval), and its log mass
// there: the Hermite series Phi(b) - Phi(a) = 2 h phi(m) sum_k He_2k(m) h^2k / (2k+1)!,
// m = (a+b)/2, h = (b-a)/2 (probit_log_mass).
template <typename V>
CCNN_SIMD IntOf<V> is_narrow(V a, V b) {
  using R = RealOf<V>;
  const V h = R(0.5) * (b - a), mid = R(0.5) * a + R(0.5) * b;
  return h * vmax(vabs(mid), splat<V>(1)) < Tuning<R>::narrow_interval;
}
template <typename V>
CCNN_SIMD V hermite_series(V h, V mid) {
  using R = RealOf<V>;
  const V h2 = h * h, m2 = mid * mid;
  const V he2 = m2 - R(1);
  const V he4 = (m2 - R(6)) * m2 + R(3);
  const V he6 = ((m2 - R(15)) * m2 + R(45)) * m2 - R(15);
  const V he8 = (((m2 - R(28)) * m2 + R(210)) * m2 - R(420)) * m2 + R(105);
  return h2 * (he2 / R(6) + h2 * (he4 / R(120) + h2 * (he6 / R(5040) + h2 * (he8 / R(362880)))));
}
template <typename V>
CCNN_SIMD V narrow_log_mass(V a, V b) {
  using R = RealOf<V>;
  const V h = R(0.5) * (b - a), mid = R(0.5) * a + R(0.5) * b;
  return vlog(b - a) + (R(-0.5) * mid * mid - R(kLogSqrt2Pi)) + vlog1p(hermite_series(h, mid));
}

template <typename V>
CCNN_SIMD V level_log_mass(const Cut<V>& lo, const Cut<V>& hi, bool probit) {
  using R = RealOf<V>;
  const R inf = std::numeric_limits<R>::infinity();
  const IntOf<V> lo_open = lo.z == -inf, hi_open = hi.z == inf;
  const V lcdf_hi = cut_log_cdf(hi, probit), lccdf_lo = cut_log_ccdf(lo, probit);
  V inner;
  if (!probit) {
    inner = lcdf_hi + lccdf_lo + log1mexp(hi.z - lo.z);
  } else {
    const V lcdf_lo = cut_log_cdf(lo, probit), lccdf_hi = cut_log_ccdf(hi, probit);
    const V lower_tail = lcdf_hi + log1mexp(lcdf_hi - lcdf_lo);
    const V upper_tail = lccdf_lo + log1mexp(lccdf_lo - lccdf_hi);
    const V middle = vlog1p(-(lo.cdf + hi.ccdf));
    inner = select(hi.z <= R(0), lower_tail, select(lo.z >= R(0), upper_tail, middle));
    const IntOf<V> narrow = is_narrow(lo.z, hi.z) & ~lo_open & ~hi_open;
    if (any(narrow)) inner = select(narrow, narrow_log_mass(lo.z, hi.z), inner);
  }
  return select(lo_open, lcdf_hi, select(hi_open, lccdf_lo, inner));
}

// ---- ordinal_logprob: whole threshold rows, lane = row ------------------------------------------

// The probit log mass of a level between two thresholds as the log of one mass: a difference of
// the small tails (both ends below 0: CDFs; both above: complements), as exact as the log-space
// forms (a difference of logs carries the same relative error of the tails); log1p of minus both
// tails (across 0); or for a narrow level the Hermite series (2 h phi(m) ...). Lanes beyond the
// normal range of the tails (|z| > -Tuning::tail: 10 in float, 30 in double) or whose mass leaves
// the normal range (a subnormal width) take level_log_mass.
template <typename V>
CCNN_SIMD V probit_interior_log_mass(const Cut<V>& lo, const Cut<V>& hi) {
  using R = RealOf<V>;
  const R tail = -Tuning<R>::tail;
  const IntOf<V> lower = hi.z <= R(0), upper = ~lower & (lo.z >= R(0)), narrow = is_narrow(lo.z, hi.z);
  const V mid = R(0.5) * lo.z + R(0.5) * hi.z;
  const V tails = lo.cdf + hi.ccdf;
  V mass = select(lower, hi.cdf - lo.cdf, select(upper, lo.ccdf - hi.ccdf, R(1) - tails));
  // (float: every lane, with about half the levels of AU data narrow a branch on them
  // mispredicts; double's narrow levels, 10 times narrower, are rare)
  if (std::is_same<R, float>::value || any(narrow)) {
    const V series = hermite_series(R(0.5) * (hi.z - lo.z), mid);
    const V narrow_mass = (hi.z - lo.z) * (vexp(R(-0.5) * mid * mid) * R(0.39894228040143267794)) * (R(1) + series);
    mass = select(narrow, narrow_mass, mass);
  }
  const IntOf<V> far = (narrow & (vabs(mid) > tail)) |
                       (~narrow & ((lower & (hi.z < -tail)) | (upper & (lo.z > tail)))) |
                       ~(mass >= std::numeric_limits<R>::min());
  // (a wide level across 0 as log1p(-tails), by Goldberg's form: one log still)
  const V direct = log_or_log1m(lower | upper | narrow, mass, tails);
  if (!any(far)) return direct;
  return select(far, level_log_mass(lo, hi, true), direct);
}

// level_log_mass with probit_interior_log_mass for the levels between two thresholds (the first
// and last levels take their one tail).
template <typename V>
CCNN_SIMD V lanes_level_log_mass(const Cut<V>& lo, const Cut<V>& hi, bool probit) {
  if (!probit) return level_log_mass(lo, hi, false);
  using R = RealOf<V>;
  const R inf = std::numeric_limits<R>::infinity();
  const IntOf<V> lo_open = lo.z == -inf, hi_open = hi.z == inf;
  // the open levels' one tail as log F of one cut: hi's, or lo's mirrored (z -> -z: F <-> 1 - F)
  Cut<V> end;
  end.z = select(lo_open, hi.z, -lo.z);
  end.cdf = select(lo_open, hi.cdf, lo.ccdf), end.ccdf = select(lo_open, hi.ccdf, lo.cdf);
  end.lse = end.log_pdf = splat<V>(0);  // (unused by the probit forms)
  const V tail = cut_log_cdf(end, true);
  const IntOf<V> interior = ~lo_open & ~hi_open;
  return any(interior) ? select(interior, probit_interior_log_mass(lo, hi), tail) : tail;
}

// make_level for the lanes [first, first + lanes) of a LevelBatch.
template <typename V>
CCNN_SIMD void make_levels(LevelBatch<RealOf<V>>& b, int first, bool probit, bool with_weights) {
  using R = RealOf<V>;
  const V z_lo = load(b.z_lo + first), z_hi = load(b.z_hi + first);
  const R inf = std::numeric_limits<R>::infinity();
  const Cut<V> lo = make_cut(z_lo, probit), hi = make_cut(z_hi, probit);
  V log_mass = lanes_level_log_mass(lo, hi, probit);
  log_mass = select(log_mass > -inf, log_mass, splat<V>(-inf));  // NaN -> -inf, as make_level
  store(b.cdf_lo + first, lo.cdf);
  store(b.ccdf_lo + first, lo.ccdf);
  store(b.cdf_hi + first, hi.cdf);
  store(b.ccdf_hi + first, hi.ccdf);
  store(b.log_mass + first, log_mass);
  store(b.mass + first, vexp(log_mass));
  const V zero = splat<V>(0);
  if (!with_weights) {
    store(b.w_lo + first, zero);
    store(b.w_hi + first, zero);
    return;
  }
  const IntOf<V> live = log_mass > R(kLogProbFloor);
  const R cap = b.max_log_weight;
  store(b.w_lo + first, select(live & (z_lo != -inf), vexp(vmin(lo.log_pdf - log_mass, splat<V>(cap))), zero));
  store(b.w_hi + first, select(live & (z_hi != inf), vexp(vmin(hi.log_pdf - log_mass, splat<V>(cap))), zero));
}

// Lane j of a block of rows of `stride` values reads and writes row j: offsets j * stride (lanes
// j >= n, past the last row, repeat row 0 and are not written).
template <typename V>
CCNN_SIMD IntOf<V> row_offsets(int n, int stride) {
  IntOf<V> offsets;
  for (int j = 0; j < kLanesOf<V>; ++j) offsets[j] = (j < n ? j : 0) * stride;
  return offsets;
}
CCNN_SIMD vf gather(const float* base, vi offsets) {
#if CCNN_SIMD_LANES == 16 && defined(__x86_64__)
  return (vf)_mm512_mask_i32gather_ps(_mm512_setzero_ps(), __mmask16(0xffff), (__m512i)offsets, base, 4);
#elif defined(CCNN_SIMD_HAS_GATHER) && defined(__x86_64__)
  return (vf)_mm256_i32gather_ps(base, (__m256i)offsets, 4);
#else
  vf v;
  for (int j = 0; j < kLanes; ++j) v[j] = base[offsets[j]];
  return v;
#endif
}
CCNN_SIMD vd gather(const double* base, vl offsets) {
#if CCNN_SIMD_LANES == 16 && defined(__x86_64__)
  return (vd)_mm512_mask_i64gather_pd(_mm512_setzero_pd(), __mmask8(0xff), (__m512i)offsets, base, 8);
#elif defined(CCNN_SIMD_HAS_GATHER) && defined(__x86_64__)
  return (vd)_mm256_i64gather_pd(base, (__m256i)offsets, 8);
#else
  vd v;
  for (int j = 0; j < kLanes / 2; ++j) v[j] = base[offsets[j]];
  return v;
#endif
}
CCNN_SIMD void scatter(float* base, vi offsets, int n, vf v) {
#if CCNN_SIMD_LANES == 16 && defined(__x86_64__)
  _mm512_mask_i32scatter_ps(base, __mmask16((1u << n) - 1), (__m512i)offsets, (__m512)v, 4);
#else
  for (int j = 0; j < n; ++j) base[offsets[j]] = v[j];
#endif
}
CCNN_SIMD void scatter(double* base, vl offsets, int n, vd v) {
#if CCNN_SIMD_LANES == 16 && defined(__x86_64__)
  _mm512_mask_i64scatter_pd(base, __mmask8((1u << n) - 1), (__m512i)offsets, (__m512d)v, 8);
#else
  for (int j = 0; j < n; ++j) base[offsets[j]] = v[j];
#endif
}

// ordinal_logprob of `rows` rows of L-1 thresholds into logp (rows x L), a vector of rows at a
// time (lane = row), level after level, each threshold's cut point computed once. Returns whether
// every threshold was finite and above the previous one of its row (else logp is to be discarded).
template <typename V>
CCNN_SIMD bool ordinal_rows(const RealOf<V>* z, int64_t rows, int L, bool probit, RealOf<V>* logp) {
  using R = RealOf<V>;
  constexpr int lanes = kLanesOf<V>;
  const R floor = R(kLogProbFloor), inf = std::numeric_limits<R>::infinity();
  const int T = L - 1;  // thresholds per row
  IntOf<V> bad{};       // (lanes past the last row repeat row 0, which is checked anyway)
  for (int64_t first = 0; first < rows; first += lanes) {
    const int n = int(rows - first < lanes ? rows - first : lanes);
    const IntOf<V> z_at = row_offsets<V>(n, T), out_at = row_offsets<V>(n, L);
    const R* zb = z + first * T;
    R* out = logp + first * L;
    V z_prev = gather(zb, z_at);
    bad |= ~(z_prev - z_prev == R(0));  // not finite
    Cut<V> lo = make_cut(z_prev, probit), hi = lo;
    for (int l = 0; l < L; ++l) {
      V log_mass;
      if (l == 0) {
        log_mass = cut_log_cdf(hi, probit);
      } else if (l == L - 1) {
        log_mass = cut_log_ccdf(lo, probit);
      } else {
        const V zl = gather(zb + l, z_at);
        bad |= ~(zl - zl == R(0)) | ~(zl > z_prev);
        z_prev = zl;
        hi = make_cut(zl, probit);
        log_mass = probit ? probit_interior_log_mass(lo, hi) : level_log_mass(lo, hi, false);
        lo = hi;
      }
      log_mass = select(log_mass > -inf, log_mass, splat<V>(-inf));  // NaN -> -inf, as make_levels
      scatter(out + l, out_at, n, vmax(log_mass, splat<V>(floor)));
    }
  }
  return !any(bad);
}

// cut_log_pdf in lanes (logit_cut's and probit_cut's log_pdf).
template <typename V>
CCNN_SIMD V lanes_log_pdf(V z, bool probit) {
  using R = RealOf<V>;
  if (probit) return R(-0.5) * z * z - R(kLogSqrt2Pi);
  return -vabs(z) - R(2) * vlog1p(vexp(-vabs(z)));
}

// ordinal_logprob's backward from the forward's logp: grad_z (rows x (L-1)) from grad and logp
// (rows x L), d logp_l / d z = F'(z) / e^logp_l for the level's two thresholds (weights saturate
// at e^max_log_weight; a level at the floor passes no gradient); sums in the order
// g[k] = (0 + up_k w_hi) - up_{k+1} w_lo.
template <typename V>
CCNN_SIMD void ordinal_rows_backward(const RealOf<V>* z, const RealOf<V>* logp, const RealOf<V>* grad, int64_t rows,
                                     int L, bool probit, RealOf<V>* grad_z) {
  using R = RealOf<V>;
  constexpr int lanes = kLanesOf<V>;
  const R floor = R(kLogProbFloor), cap = Tuning<R>::max_log_weight;
  const int T = L - 1;
  const V zero = splat<V>(0);
  for (int64_t first = 0; first < rows; first += lanes) {
    const int n = int(rows - first < lanes ? rows - first : lanes);
    const IntOf<V> z_at = row_offsets<V>(n, T), level_at = row_offsets<V>(n, L);
    const R *zb = z + first * T, *lpb = logp + first * L, *upb = grad + first * L;
    R* out = grad_z + first * T;
    V pending = zero, pdf_lo = zero;  // pending: 0 + up w_hi of the level below threshold l - 1
    for (int l = 0; l < L; ++l) {
      const V lp = gather(lpb + l, level_at), up = gather(upb + l, level_at);
      const IntOf<V> live = lp > floor;
      if (l > 0) {
        const V w_lo = vexp(vmin(pdf_lo - lp, splat<V>(cap)));
        scatter(out + (l - 1), z_at, n, pending - select(live, up * w_lo, zero));
      }
      if (l < L - 1) {
        const V pdf_hi = lanes_log_pdf(gather(zb + l, z_at), probit);
        const V w_hi = vexp(vmin(pdf_hi - lp, splat<V>(cap)));
        pending = R(0) + select(live, up * w_hi, zero);
        pdf_lo = pdf_hi;
      }
    }
  }
}

// The ordinal op (forward without grad, else backward) over `rows` rows in lanes of type V; false
// if the forward met a threshold that is not finite or not increasing.
template <typename V>
bool evaluate_ordinal(const RealOf<V>* z, const RealOf<V>* logp, const RealOf<V>* grad, int64_t rows, int L,
                   bool probit, RealOf<V>* out) {
  if (grad == nullptr) return ordinal_rows<V>(z, rows, L, probit, out);
  ordinal_rows_backward<V>(z, logp, grad, rows, L, probit, out);
  return true;
}

// ---- label pairs (frank_math.h section 4), float and double lanes -------------------------------

template <typename V>
struct Frame {
  V theta, x1, m1, inv_mraw, inv_m1, lambda1;
};
template <typename V>
struct Coord {
  V c, cbar, x, r;
};
template <typename V>
struct Lvl {
  V mass, phi, expo, lambda;
};

template <typename V>
CCNN_SIMD Lvl<V> make_level(const Frame<V>& f, V mass, bool with_grad) {
  using R = RealOf<V>;
  Lvl<V> l;
  l.mass = mass;
  const V y = f.theta * mass;
  const IntOf<V> small = y < R(kSmallExponent);
  const V series = Series<R>::ratio(y);
  const V e = vexp(-y);
  const V m = R(1) - e;
  l.phi = select(small, series, m / y);
  l.expo = select(small, R(1) - y * series, e);
  if (with_grad) l.lambda = select(small, Series<R>::lambda(y), (m - e * y) / (y * m));
  return l;
}

template <typename V>
CCNN_SIMD Coord<V> make_coord(const Frame<V>& f, V c, V cbar) {
  using R = RealOf<V>;
  Coord<V> k;
  k.c = c, k.cbar = cbar;
  V x = splat<V>(1), m = splat<V>(0);
  // (the exp only where some lane has an interior coordinate: pairs of labels 0 have none)
  if (any((c > R(0)) & (c < R(1)))) exp_neg_and_complement(f.theta * c, &x, &m);
  const IntOf<V> zero_theta = f.theta == R(0);
  x = select(zero_theta, splat<V>(1), x);
  V r = select(zero_theta, c, m * f.inv_mraw);
  x = select(c <= R(0), splat<V>(1), x);
  r = select(c <= R(0), splat<V>(0), r);
  x = select(c >= R(1), f.x1, x);
  r = select(c >= R(1), splat<V>(1), r);
  k.x = x, k.r = r;
  return k;
}

template <typename V>
CCNN_SIMD Coord<V> make_coord_above(const Frame<V>& f, const Coord<V>& bottom, const Lvl<V>& level, V c, V cbar) {
  using R = RealOf<V>;
  const IntOf<V> use_direct = (c >= R(1)) | (f.theta * c < R(kSmallExponent));
  Coord<V> k;
  k.c = c, k.cbar = cbar;
  const V x = bottom.x * level.expo;
  k.x = x, k.r = (R(1) - x) * f.inv_mraw;
  if (any(use_direct)) {
    const Coord<V> direct = make_coord(f, c, cbar);
    k.x = select(use_direct, direct.x, k.x);
    k.r = select(use_direct, direct.r, k.r);
  }
  return k;
}

template <typename V>
CCNN_SIMD V frank_k(const Frame<V>& f, const Coord<V>& u, const Coord<V>& v) {
  return v.x + (u.x - f.x1) * v.r;
}

template <typename V>
CCNN_SIMD V theta_c_dtheta_times_k(const Frame<V>& f, const Coord<V>& u, const Coord<V>& v) {
  return u.c * u.x * v.r + v.c * v.x * u.r - f.x1 * u.r * v.r;
}

// q(y) = y / expm1(y) given x = e^{-y}, m = 1 - e^{-y}
template <typename V>
CCNN_SIMD V exprel_recip(V y, V x, V m) {
  return select(y < RealOf<V>(kSmallExponent), x / Series<RealOf<V>>::ratio(y), y * x / m);
}

// frank_corner_dtheta (theta > log 2 in the lanes that use it; others give finite garbage that
// the caller discards).
template <typename V>
CCNN_SIMD V corner_dtheta(const Frame<V>& f, const Coord<V>& u, const Coord<V>& v, V q_theta, V inv_theta2) {
  using R = RealOf<V>;
  const IntOf<V> interior = (u.c > R(0)) & (v.c > R(0)) & (u.c < R(1)) & (v.c < R(1));
  if (!any(interior)) return splat<V>(0);
  const IntOf<V> u_lo = u.c <= v.c;
  const V lo_c = select(u_lo, u.c, v.c), lo_cb = select(u_lo, u.cbar, v.cbar);
  const V lo_x = select(u_lo, u.x, v.x), lo_r = select(u_lo, u.r, v.r);
  const V hi_c = select(u_lo, v.c, u.c), hi_cb = select(u_lo, v.cbar, u.cbar);
  const V theta = vmax(f.theta, splat<V>(R(1e-30)));
  const V alpha = theta * select(lo_c + hi_c > R(1), lo_cb - hi_cb, hi_c - lo_c);
  V hi_xbar, hi_mbar;
  exp_neg_and_complement(theta * hi_cb, &hi_xbar, &hi_mbar);
  const V lo_m = lo_r * f.m1;
  const V delta = vexp(-alpha) * hi_mbar * lo_r;  // lo_m / m1 = lo_r
  const V q_beta = exprel_recip(theta * hi_cb, hi_xbar, hi_mbar);
  const V q_gamma = exprel_recip(theta * lo_c, lo_x, lo_m);
  const V out = (vlog1p(delta) + delta / (R(1) + delta) * (alpha - q_beta - q_gamma + q_theta)) * inv_theta2;
  return select(interior, out, splat<V>(0));
}

// The value part of frank_cell, kept for the gradient.
template <typename V>
struct CellCore {
  V k00, k01, k10, k11, inv_k01, inv_k10, ratio, d, w, psi, lp, prob, prob_far, log_prob;
  IntOf<V> near, live;
};

template <typename V>
CCNN_SIMD CellCore<V> cell_core(const Frame<V>& f, const Coord<V>& u0, const Coord<V>& u1, const Coord<V>& v0,
                                const Coord<V>& v1, const Lvl<V>& lu, const Lvl<V>& lv, V log_du, V log_dv) {
  using R = RealOf<V>;
  CellCore<V> c;
  c.k01 = frank_k(f, u0, v1), c.k10 = frank_k(f, u1, v0);
  c.k00 = frank_k(f, u0, v0), c.k11 = frank_k(f, u1, v1);
  c.inv_k01 = R(1) / c.k01, c.inv_k10 = R(1) / c.k10;
  c.ratio = (u0.x * c.inv_k01) * (v0.x * c.inv_k10) * (lu.phi * lv.phi * f.inv_m1);
  c.d = -f.theta * lu.mass * lv.mass * c.ratio;
  c.near = c.d >= R(-0.5);
  // near: psi = log1p(d) / d (series for |d| < 0.05); far: log of 1 + D = K00 K11 / (K01 K10)
  const V one_plus_d_far = (c.k00 * c.inv_k01) * (c.k11 * c.inv_k10);
  c.w = select(c.near, c.d + R(1), one_plus_d_far);  // 1 + D
  const V log_first = vlog(c.w);
  const V psi_near = select(vabs(c.d) < R(0.05), Series<R>::log1p_ratio(c.d), log_first / (c.w - R(1)));
  c.lp = select(c.near, c.d * psi_near, log_first);  // log1p(D)
  c.psi = select(c.near, psi_near, log_first / c.d);
  const V theta_safe = select(f.theta == R(0), splat<V>(1), f.theta);
  c.prob_far = -c.lp / theta_safe;
  c.prob = select(c.near, lu.mass * lv.mass * c.ratio * c.psi, c.prob_far);
  const V log_second = vlog(select(c.near, c.ratio * c.psi, c.prob_far));
  const V log_prob = select(c.near, log_du + log_dv + log_second, log_second);
  c.live = log_prob > R(kLogProbFloor);
  c.log_prob = select(c.live, log_prob, splat<V>(R(kLogProbFloor)));
  return c;
}

// The gradient part of frank_cell: mass-scaled d log P / d coordinate and d log P / d theta in
// the frame, 0 where the cell is floored.
template <typename V>
struct CellGrad {
  V s_u0, s_u1, s_v0, s_v1, dtheta;
};

template <typename V>
CCNN_SIMD CellGrad<V> cell_grad(const Frame<V>& f, const Coord<V>& u0, const Coord<V>& u1, const Coord<V>& v0,
                                const Coord<V>& v1, const Lvl<V>& lu, const Lvl<V>& lv, const CellCore<V>& c) {
  using R = RealOf<V>;
  CellGrad<V> g;
  const V scale = c.psi * lu.phi * lv.phi;
  const V inv1 = R(1) / (c.k11 * scale), inv0 = R(1) / (c.k00 * scale);
  const V zero = splat<V>(0);
  g.s_u1 = select(c.live, lu.expo * c.k01 * lv.phi * inv1, zero);
  g.s_v1 = select(c.live, lv.expo * c.k10 * lu.phi * inv1, zero);
  g.s_u0 = select(c.live, -c.k10 * lv.phi * inv0, zero);
  g.s_v0 = select(c.live, -c.k01 * lu.phi * inv0, zero);
  // near branch
  const V dlog_m = f.lambda1 - lu.mass * lu.lambda - lv.mass * lv.lambda - u0.c - v0.c +
                   theta_c_dtheta_times_k(f, u0, v1) * c.inv_k01 + theta_c_dtheta_times_k(f, u1, v0) * c.inv_k10;
  const V y = -c.lp;
  const V phi = R(1) / (c.w * c.psi);
  const V excess = select(y < Tuning<R>::ratio_series, Series<R>::excess(y), (phi - R(1)) / y);
  const V dtheta_near = phi * dlog_m + c.prob * excess;
  // far branch: corners
  V dtheta = dtheta_near;
  if (any(~c.near & c.live)) {
    const V q_theta = exprel_recip(f.theta, f.x1, f.m1);
    const V theta = vmax(f.theta, splat<V>(R(1e-30)));
    const V inv_theta2 = R(1) / (theta * theta);
    const V corners = corner_dtheta(f, u1, v1, q_theta, inv_theta2) - corner_dtheta(f, u0, v1, q_theta, inv_theta2) -
                      corner_dtheta(f, u1, v0, q_theta, inv_theta2) + corner_dtheta(f, u0, v0, q_theta, inv_theta2);
    dtheta = select(c.near, dtheta_near, corners / c.prob_far);
  }
  g.dtheta = select(c.live, dtheta, zero);
  return g;
}

// frank_cell for the lanes of `batch` from `first` (inputs -> outputs); with_grad also fills the
// gradients.
template <typename V>
CCNN_SIMD void frank_cells(PairBatch<RealOf<V>>& batch, int first, bool with_grad) {
  typename PairBatch<RealOf<V>>::Lanes p = batch.at(first);
  Frame<V> f{load(p.theta), load(p.x1), load(p.m1), load(p.inv_mraw), load(p.inv_m1), load(p.lambda1)};
  const Lvl<V> lu = make_level(f, load(p.du), with_grad), lv = make_level(f, load(p.dv), with_grad);
  const Coord<V> u0 = make_coord(f, load(p.u0), load(p.u0b));
  const Coord<V> u1 = make_coord_above(f, u0, lu, load(p.u1), load(p.u1b));
  const Coord<V> v0 = make_coord(f, load(p.v0), load(p.v0b));
  const Coord<V> v1 = make_coord_above(f, v0, lv, load(p.v1), load(p.v1b));
  const CellCore<V> c = cell_core(f, u0, u1, v0, v1, lu, lv, load(p.log_du), load(p.log_dv));
  store(p.log_prob, c.log_prob);
  if (!with_grad) return;
  const CellGrad<V> g = cell_grad(f, u0, u1, v0, v1, lu, lv, c);
  store(p.s_u0, g.s_u0), store(p.s_u1, g.s_u1), store(p.s_v0, g.s_v0), store(p.s_v1, g.s_v1);
  store(p.dtheta, g.dtheta);
}

// The log tables of one edge for the lanes [first, first + lanes) of a TableBatch: each level's
// frame quantities once (table_assembly.h's sides), then every cell.
template <typename V>
struct Side {
  Lvl<V> level;
  Coord<V> lo, hi;
  V log_mass;
};

template <typename V>
CCNN_SIMD Side<V> make_side(const Frame<V>& f, const RealOf<V>* lo, const RealOf<V>* lob, const RealOf<V>* hi,
                            const RealOf<V>* hib, const RealOf<V>* mass, const RealOf<V>* log_mass, bool with_grad) {
  Side<V> side;
  side.level = make_level(f, load(mass), with_grad);
  side.lo = make_coord(f, load(lo), load(lob));
  side.hi = make_coord_above(f, side.lo, side.level, load(hi), load(hib));
  side.log_mass = load(log_mass);
  return side;
}

template <typename V>
CCNN_SIMD Frame<V> table_frame(const TableBatch<RealOf<V>>& b, int first) {
  return {load(b.theta + first), load(b.x1 + first),     load(b.m1 + first),
          load(b.inv_mraw + first), load(b.inv_m1 + first), load(b.lambda1 + first)};
}
template <typename V>
CCNN_SIMD Side<V> table_row(const TableBatch<RealOf<V>>& b, const Frame<V>& f, int first, int a, bool with_grad) {
  const TableLevel<RealOf<V>>& l = b.level[a];
  return make_side(f, l.r_lo + first, l.r_lob + first, l.r_hi + first, l.r_hib + first, l.r_mass + first,
                   l.r_log_mass + first, with_grad);
}
template <typename V>
CCNN_SIMD Side<V> table_column(const TableBatch<RealOf<V>>& b, const Frame<V>& f, int first, int c, bool with_grad) {
  const TableLevel<RealOf<V>>& l = b.level[c];
  return make_side(f, l.c_lo + first, l.c_lob + first, l.c_hi + first, l.c_hib + first, l.c_mass + first,
                   l.c_log_mass + first, with_grad);
}

template <typename V>
CCNN_SIMD void table_cells(TableBatch<RealOf<V>>& b, int first, int L) {
  using Batch = TableBatch<RealOf<V>>;
  const Frame<V> f = table_frame<V>(b, first);
  static_assert(sizeof(Side<V>) <= Batch::kScratchPerLevel, "a level's side must fit the batch's scratch");
  Side<V>* const cols = static_cast<Side<V>*>(b.scratch);
  RealOf<V>(*const log_prob)[Batch::kLanes] = b.log_prob;  // (in a local: stores may alias b's members)
  for (int c = 0; c < L; ++c) new (cols + c) Side<V>(table_column(b, f, first, c, false));
  for (int a = 0; a < L; ++a) {
    const Side<V> row = table_row(b, f, first, a, false);
    for (int c = 0; c < L; ++c) {
      const Side<V>& col = cols[c];
      const CellCore<V> cell =
          cell_core(f, row.lo, row.hi, col.lo, col.hi, row.level, col.level, row.log_mass, col.log_mass);
      store(log_prob[a * L + c] + first, cell.log_prob);
    }
  }
}

// The backward of table_cells: from the upstream gradients `up` of the L x L cells, each lane's
// d/dz of the row AU's and the column AU's L-1 thresholds and d/dtheta (pair_from_cell's mapping
// back to the original orientation, summed over the cells in row-major order; a cell with up = 0
// adds nothing).
template <typename V>
CCNN_SIMD void table_cells_backward(TableBatch<RealOf<V>>& b, int first, int L) {
  using R = RealOf<V>;
  using Batch = TableBatch<R>;
  const Frame<V> f = table_frame<V>(b, first);
  const V zero = splat<V>(0);
  const IntOf<V> reflect = load(b.sign + first) < R(0);
  const V theta_sign = load(b.theta_sign + first);
  static_assert(sizeof(Side<V>) + 2 * sizeof(V) <= Batch::kScratchPerLevel, "a level's side and sums must fit");
  Side<V>* const cols = static_cast<Side<V>*>(b.scratch);
  V* const gz_r = reinterpret_cast<V*>(cols + L);
  V* const gz_s = gz_r + L;
  const R(*const cell_up)[Batch::kLanes] = b.up;  // (in locals: stores may alias b's members)
  const TableLevel<R>* const level = b.level;
  V dtheta = zero;
  for (int c = 0; c < L; ++c) {
    new (cols + c) Side<V>(table_column(b, f, first, c, true));
    new (gz_r + c) V(zero);
    new (gz_s + c) V(zero);
  }
  for (int a = 0; a < L; ++a) {
    const Side<V> row = table_row(b, f, first, a, true);
    const V row_w_lo = load(level[a].r_w_lo + first), row_w_hi = load(level[a].r_w_hi + first);
    for (int c = 0; c < L; ++c) {
      const V up = load(cell_up[a * L + c] + first);
      const IntOf<V> used = up != R(0);
      if (!any(used)) continue;
      const Side<V>& col = cols[c];
      const CellCore<V> cell =
          cell_core(f, row.lo, row.hi, col.lo, col.hi, row.level, col.level, row.log_mass, col.log_mass);
      const CellGrad<V> g = cell_grad(f, row.lo, row.hi, col.lo, col.hi, row.level, col.level, cell);
      const auto add = [&](V* sum, V d) { *sum += select(used, up * d, zero); };
      if (a > 0) add(&gz_r[a - 1], row_w_lo * g.s_u0);
      if (a < L - 1) add(&gz_r[a], row_w_hi * g.s_u1);
      if (c > 0) add(&gz_s[c - 1], load(level[c].c_w_lo + first) * select(reflect, -g.s_v1, g.s_v0));
      if (c < L - 1) add(&gz_s[c], load(level[c].c_w_hi + first) * select(reflect, -g.s_v0, g.s_v1));
      add(&dtheta, theta_sign * g.dtheta);
    }
  }
  for (int k = 0; k < L - 1; ++k) store(b.level[k].gz_r + first, gz_r[k]), store(b.level[k].gz_s + first, gz_s[k]);
  store(b.dtheta + first, dtheta);
}

}  // namespace CCNN_SIMD_NAMESPACE
}  // namespace copula
}  // namespace ccnn

// The entry points of one compiled version (pair_batch.h), for float and double batches.
#define CCNN_SIMD_CONCAT2(a, b) a##b
#define CCNN_SIMD_CONCAT(a, b) CCNN_SIMD_CONCAT2(a, b)
namespace ccnn {
namespace copula {
namespace CCNN_SIMD_NAMESPACE {
template <typename V>
void evaluate_pairs(PairBatch<RealOf<V>>& batch, int begin, int end, bool with_grad) {
  for (int first = begin; first < end; first += kLanesOf<V>) frank_cells<V>(batch, first, with_grad);
}
template <typename V>
void evaluate_tables(TableBatch<RealOf<V>>& batch, int L, bool backward) {
  for (int first = 0; first < TableBatch<RealOf<V>>::kLanes; first += kLanesOf<V>) {
    if (backward) {
      table_cells_backward<V>(batch, first, L);
    } else {
      table_cells<V>(batch, first, L);
    }
  }
}
template <typename V>
void evaluate_levels(LevelBatch<RealOf<V>>& batch, int count, bool probit, bool with_weights) {
  for (int first = 0; first < count; first += kLanesOf<V>) make_levels<V>(batch, first, probit, with_weights);
}
}  // namespace CCNN_SIMD_NAMESPACE

#define CCNN_SIMD_ENTRY_POINTS(T, V)                                                                     \
  template <>                                                                                            \
  void frank_pair_lanes<CCNN_SIMD_LEVEL, T>(PairBatch<T> & batch, int begin, int end, bool with_grad) {  \
    CCNN_SIMD_NAMESPACE::evaluate_pairs<CCNN_SIMD_NAMESPACE::V>(batch, begin, end, with_grad);           \
  }                                                                                                      \
  template <>                                                                                            \
  void table_lanes<CCNN_SIMD_LEVEL, T>(TableBatch<T> & batch, int L, bool backward) {                    \
    CCNN_SIMD_NAMESPACE::evaluate_tables<CCNN_SIMD_NAMESPACE::V>(batch, L, backward);                    \
  }                                                                                                      \
  template <>                                                                                            \
  void level_lanes<CCNN_SIMD_LEVEL, T>(LevelBatch<T> & batch, int count, bool probit, bool with_weights) { \
    CCNN_SIMD_NAMESPACE::evaluate_levels<CCNN_SIMD_NAMESPACE::V>(batch, count, probit, with_weights);    \
  }                                                                                                      \
  template <>                                                                                            \
  bool ordinal_lanes<CCNN_SIMD_LEVEL, T>(const T* z, const T* logp, const T* grad, int64_t rows, int L,  \
                                         bool probit, T* out) {                                          \
    return CCNN_SIMD_NAMESPACE::evaluate_ordinal<CCNN_SIMD_NAMESPACE::V>(z, logp, grad, rows, L, probit, \
                                                                          out);                          \
  }
CCNN_SIMD_ENTRY_POINTS(float, vf)
CCNN_SIMD_ENTRY_POINTS(double, vd)
#undef CCNN_SIMD_ENTRY_POINTS
}  // namespace copula
}  // namespace ccnn
