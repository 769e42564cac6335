// Unit tests of csrc/copula/frank_math.h (plain C++, no torch): values against high-precision
// references and identities of the Frank copula, the normal CDF pieces, ordinal level masses and
// rectangle probabilities with their gradients.
//
// Reference values: mpmath 1.3 at 60 significant digits, from the closed forms
//   C = -log1p(expm1(-t u) expm1(-t v) / expm1(-t)) / t,
//   dC/du = e^{-t u} g(v) / (g(1) K), g(x) = expm1(-t x), K = 1 + g(u) g(v) / g(1),
//   dC/dt = log(K) / t^2 - K_t / (t K),
//   Phi = mpmath.ncdf, rectangle P = the four-term difference of C at 60 digits,
// evaluated at the double inputs written below (tests/copula_reference.py has the same code).
#include <cmath>
#include <cstdio>
#include <vector>

#include "check.h"
#include "copula/frank_math.h"

using namespace ccnn::copula;

namespace {

struct CopulaCase {
  double u, v, theta, c, du, dv, dtheta;
};

// (u, v, theta, C, dC/du, dC/dv, dC/dtheta), mpmath
const CopulaCase kCopulaCases[] = {
    {0.3, 0.6, 5.0, 2.7189107899679458065e-1, 8.3122643481451215632e-1, 1.51636917772727501e-1,
     9.7653232872420388133e-3},
    {0.3, 0.6, -5.0, 7.4419334744076254207e-2, 3.9995425328037665183e-1, 3.2699238912712382417e-1,
     1.4211557530370300684e-2},
    {1e-08, 0.5, 50.0, 9.9999999998611207359e-9, 9.9999999998611204919e-1, 6.9439736684752828471e-18,
     6.9439735988426653446e-20},
    {0.99999999, 0.99999999, 50.0, 9.999999800000048995e-1, 9.9999950000037248735e-1,
     9.9999950000037248735e-1, 9.9999901005031600101e-17},
    {0.2, 0.9, -50.0, 1.0013340502794921118e-1, 9.9335194534934596258e-1, 9.9330684724079767463e-1,
     1.5874013643195060329e-5},
    {0.4, 0.7, 1e-06, 2.8000002519999966178e-1, 7.0000002100000303559e-1, 3.999999519999989822e-1,
     2.5199999327999072718e-2},
    {0.4, 0.7, -0.002, 2.7994959865847972559e-1, 6.9995801232119223397e-1, 4.000959958382339729e-1,
     2.520134028038445495e-2},
    {0.999, 0.001, -20.0, 9.8039152860002611785e-4, 1.9416847395444214828e-2, 9.8058315260455576816e-1,
     9.6126112912173011776e-7},
};

void test_copula_values() {
  for (const CopulaCase& k : kCopulaCases) {
    const CopulaGrad<double> g = frank_cdf_grad(k.u, k.v, k.theta);
    CHECK_CLOSE(g.value, k.c, 1e-13, 0.0);
    CHECK_CLOSE(frank_cdf(k.u, k.v, k.theta), k.c, 1e-13, 0.0);
    CHECK_CLOSE(g.du, k.du, 0.0, 1e-12);
    CHECK_CLOSE(g.dv, k.dv, 0.0, 1e-12);
    CHECK_CLOSE(g.dtheta, k.dtheta, 0.0, 1e-12);
    // float: ~1e-6 relative
    const CopulaGrad<float> gf = frank_cdf_grad(float(k.u), float(k.v), float(k.theta));
    CHECK_CLOSE(gf.du, k.du, 0.0, 2e-5);
    CHECK_CLOSE(gf.dv, k.dv, 0.0, 2e-5);
  }
  // theta = 0 is independence, exactly
  CHECK(frank_cdf(0.4, 0.7, 0.0) == 0.4 * 0.7);
  CHECK_CLOSE(frank_cdf_grad(0.4, 0.7, 0.0).dtheta, 0.4 * 0.6 * 0.7 * 0.3 / 2, 1e-15, 0.0);
}

void test_copula_identities() {
  const double units[] = {0.0, 1e-8, 0.1, 0.37, 0.5, 0.81, 1 - 1e-8, 1.0};
  const double thetas[] = {-50.0, -7.0, -0.5, -1e-4, 0.0, 2e-3, 0.9, 12.0, 50.0};
  for (double u : units) {
    for (double v : units) {
      for (double t : thetas) {
        const double c = frank_cdf(u, v, t);
        CHECK_CLOSE(c, frank_cdf(v, u, t), 1e-13, 0.0);  // symmetry (to ~|log C| ulp)
        CHECK(c >= std::fmax(u + v - 1, 0.0) - 1e-16 && c <= std::fmin(u, v) + 1e-16);  // Frechet
        CHECK_CLOSE(c, u - frank_cdf(u, 1 - v, -t), 0.0, 1e-15);  // reflection (to u's rounding)
      }
    }
    for (double t : thetas) {  // boundaries, exactly
      CHECK(frank_cdf(u, 0.0, t) == 0.0 && frank_cdf(0.0, u, t) == 0.0);
      CHECK(frank_cdf(u, 1.0, t) == u && frank_cdf(1.0, u, t) == u);
      CHECK(frank_cdf_du(u, 1.0, t) == 1.0 && frank_cdf_du(u, 0.0, t) == 0.0);
    }
  }
  // derivatives against central differences
  for (double t : {-9.0, -0.01, 0.004, 3.0, 30.0}) {
    const double u = 0.35, v = 0.62, h = 1e-6;
    const CopulaGrad<double> g = frank_cdf_grad(u, v, t);
    CHECK_CLOSE(g.du, (frank_cdf(u + h, v, t) - frank_cdf(u - h, v, t)) / (2 * h), 0.0, 1e-8);
    CHECK_CLOSE(g.dv, (frank_cdf(u, v + h, t) - frank_cdf(u, v - h, t)) / (2 * h), 0.0, 1e-8);
    CHECK_CLOSE(g.dtheta, (frank_cdf(u, v, t + h) - frank_cdf(u, v, t - h)) / (2 * h), 0.0, 1e-8);
  }
  // the series switch leaves no step
  for (double s : {3e-3, -3e-3}) {
    CHECK_CLOSE(frank_cdf(0.3, 0.8, s * (1 - 1e-12)), frank_cdf(0.3, 0.8, s * (1 + 1e-12)), 0.0, 1e-15);
    CHECK_CLOSE(frank_cdf_grad(0.3, 0.8, s * (1 - 1e-12)).dtheta,
                frank_cdf_grad(0.3, 0.8, s * (1 + 1e-12)).dtheta, 0.0, 1e-12);
  }
}

void test_normal_pieces() {
  CHECK_CLOSE(cut_log_cdf(probit_cut(-40.0), Link::Probit), -8.0460844201375378817e+2, 1e-15, 0.0);
  CHECK_CLOSE(cut_log_cdf(probit_cut(-5.0), Link::Probit), -1.5064998393988725736e+1, 1e-15, 0.0);
  CHECK_CLOSE(cut_log_cdf(probit_cut(-1.0), Link::Probit), -1.8410216450092635058, 1e-15, 0.0);
  CHECK_CLOSE(cut_log_cdf(probit_cut(3.0), Link::Probit), -1.3508099647481937988e-3, 1e-14, 0.0);
  CHECK_CLOSE(normal_cdf(-5.0), 2.8665157187919391167e-7, 1e-14, 0.0);
  CHECK_CLOSE(cut_log_cdf(probit_cut(-40.0f), Link::Probit), -804.60844f, 1e-6, 0.0);
  const CutPoint<double> c = probit_cut(-1.0);
  CHECK_CLOSE(c.cdf, 1.5865525393145705141e-1, 1e-15, 0.0);
  CHECK_CLOSE(c.cdf + c.ccdf, 1.0, 0.0, 1e-16);
  CHECK_CLOSE(cut_log_ccdf(probit_cut(38.0), Link::Probit), cut_log_cdf(probit_cut(-38.0), Link::Probit), 1e-15, 0.0);
  CHECK_CLOSE(cut_log_cdf(logit_cut(-3.0), Link::Logit), -3.0485873515737420, 1e-15, 0.0);
  // level masses (log), mpmath
  auto mass = [](double a, double b, Link link) {
    return level_log_mass(cut_point(a, link), cut_point(b, link), link);
  };
  CHECK_CLOSE(mass(-1e-7, 1e-7, Link::Probit), -1.6343887003603048932e+1, 1e-14, 0.0);
  CHECK_CLOSE(mass(-3.0, -3.0 + 1e-5, Link::Probit), -1.6931848998147516651e+1, 1e-12, 0.0);
  CHECK_CLOSE(mass(36.0, 37.0, Link::Probit), -6.5250322759379839699e+2, 1e-14, 0.0);
  CHECK_CLOSE(mass(-1.0, 2.0, Link::Probit), -2.0016629432446257995e-1, 1e-14, 0.0);
  CHECK_CLOSE(mass(0.0, 1.0, Link::Logit), -1.4650840134652500345, 1e-14, 0.0);
  // the levels of one AU sum to one
  const double z[] = {-2.0, -0.3, 0.0, 1e-6, 4.0};
  for (Link link : {Link::Probit, Link::Logit}) {
    double total = 0;
    for (int l = 0; l < 6; ++l) total += std::exp(level_of(z, 6, l, link, false).log_mass);
    CHECK_CLOSE(total, 1.0, 0.0, 1e-15);
  }
}

// A level with given cut-point CDFs (and no thresholds to differentiate).
Level<double> level(double lo, double hi) {
  Level<double> l{};
  l.cdf_lo = lo, l.ccdf_lo = 1 - lo, l.cdf_hi = hi, l.ccdf_hi = 1 - hi;
  l.mass = hi - lo, l.log_mass = std::log(hi - lo);
  return l;
}

Level<float> to_float(const Level<double>& l) {
  return {float(l.cdf_lo), float(l.ccdf_lo), float(l.cdf_hi), float(l.ccdf_hi), float(l.mass),
          float(l.log_mass), float(l.w_lo), float(l.w_hi), l.has_lo, l.has_hi};
}

void test_rectangles() {
  // log P of [0.2, 0.5] x [0.6, 0.9], mpmath
  const double thetas[] = {3.0, -3.0, 50.0, -50.0, 0.0};
  const double want[] = {-2.6555768192319208758, -2.1860930100343285746, -8.9153831725177002311,
                         -1.610772823129776477, -2.4079456086518718742};
  for (int i = 0; i < 5; ++i) {
    const PairGrad<double> g = frank_pair_at(thetas[i], level(0.2, 0.5), level(0.6, 0.9), true);
    CHECK_CLOSE(g.log_prob, want[i], 1e-14, 0.0);
    const PairGrad<float> gf =
        frank_pair_at(float(thetas[i]), to_float(level(0.2, 0.5)), to_float(level(0.6, 0.9)), false);
    CHECK_CLOSE(gf.log_prob, want[i], 2e-6, 0.0);
  }
  // against the four-term difference (good to ~1e-16 absolute), the table sums to one, and
  // d log P / d theta against central differences
  const double cuts[] = {0.0, 0.05, 0.3, 0.31, 0.7, 1.0};
  for (double t : {-20.0, -1.5, 0.0, 1e-9, 0.8, 9.0, 45.0}) {
    double total = 0;
    for (int a = 0; a < 5; ++a) {
      for (int b = 0; b < 5; ++b) {
        const Level<double> r = level(cuts[a], cuts[a + 1]), s = level(cuts[b], cuts[b + 1]);
        const PairGrad<double> g = frank_pair_at(t, r, s, true);
        const double p4 = frank_cdf(cuts[a + 1], cuts[b + 1], t) - frank_cdf(cuts[a], cuts[b + 1], t) -
                          frank_cdf(cuts[a + 1], cuts[b], t) + frank_cdf(cuts[a], cuts[b], t);
        CHECK_CLOSE(std::exp(g.log_prob), p4, 1e-12, 1e-15);
        total += std::exp(g.log_prob);
        const double h = 1e-6;
        const double fd = (frank_pair_at(t + h, r, s, false).log_prob -
                           frank_pair_at(t - h, r, s, false).log_prob) / (2 * h);
        CHECK_CLOSE(g.dtheta, fd, 0.0, 1e-6);
      }
    }
    CHECK_CLOSE(total, 1.0, 0.0, 1e-14);
  }
}

}  // namespace

int main() {
  test_copula_values();
  test_copula_identities();
  test_normal_pieces();
  test_rectangles();
  return TEST_MAIN_RETURN();
}
