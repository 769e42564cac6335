// General factor graphs (csrc/ad3/factor_graph.h): every factor type's local solvers against
// independent references, and the AD3 / exact solvers against exhaustive enumeration on small
// random graphs.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ad3/factor_graph.h"
#include "ad3/factors.h"
#include "ad3/general.h"
#include "check.h"

namespace ad3 = ccnn::ad3;
using ad3::FactorType;

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// The allowed 0/1 configurations of a factor (by brute force over evaluate()).
std::vector<std::vector<char>> allowed(const ad3::detail::LocalFactor& factor, const std::vector<double>& a) {
  std::vector<std::vector<char>> out;
  const int n = factor.degree();
  std::vector<int> y(n);
  std::vector<double> u(std::max(1, factor.num_additional()));
  for (int mask = 0; mask < (1 << n); ++mask) {
    for (int i = 0; i < n; ++i) y[i] = (mask >> i) & 1;
    if (factor.evaluate(y.data(), a.data(), u.data()) > kNegInf) {
      out.emplace_back(y.begin(), y.end());
    }
  }
  return out;
}

struct LogicCase {
  FactorType type;
  int n;
  std::vector<char> negated;
  double budget;
  std::vector<double> costs;
};

ad3::FactorSpec spec_of(const LogicCase& c) {
  ad3::FactorSpec spec;
  spec.type = c.type;
  for (int i = 0; i < c.n; ++i) spec.links.push_back(i);
  spec.negated = c.negated;
  spec.budget = c.budget;
  spec.costs = c.costs;
  return spec;
}

// Logic factors: the closed-form projection is the projection onto the convex hull of the allowed
// configurations ((x - q) . (v - q) <= 0 for every vertex v, q in the hull: equal to the active-set
// reference over the enumerated configurations), the MAP is the best allowed configuration, and
// the clamped MAP the best allowed one that matches the clamps.
void test_logic_factors() {
  std::mt19937 rng(7);
  std::normal_distribution<double> normal(0.5, 1.0);
  std::uniform_int_distribution<int> coin(0, 1);
  const std::vector<FactorType> types = {FactorType::kXor,    FactorType::kAtMostOne, FactorType::kOr,
                                         FactorType::kXorOut, FactorType::kOrOut,     FactorType::kAndOut,
                                         FactorType::kImply,  FactorType::kBudget};
  std::vector<LogicCase> cases;
  for (FactorType type : types) {
    for (int n : {1, 2, 3, 5}) {
      if (n < 2 && type != FactorType::kXor && type != FactorType::kAtMostOne && type != FactorType::kOr &&
          type != FactorType::kBudget) {
        continue;
      }
      for (int neg = 0; neg < 2; ++neg) {
        LogicCase c{type, n, {}, static_cast<double>(n / 2), {}};
        if (neg) {
          for (int i = 0; i < n; ++i) c.negated.push_back(static_cast<char>(coin(rng)));
        }
        cases.push_back(c);
      }
    }
  }
  // Knapsack with integral extreme points of its relaxation: equal costs (a budget in disguise);
  // its general relaxation is checked against the hull of {c . q <= B} vertices below.
  cases.push_back({FactorType::kKnapsack, 4, {}, 2.0, {1.0, 1.0, 1.0, 1.0}});
  cases.push_back({FactorType::kKnapsack, 4, {1, 0, 0, 1}, 4.0, {2.0, 2.0, 2.0, 2.0}});
  const std::vector<double> none;
  for (const LogicCase& c : cases) {
    const std::string name = ad3::factor_type_name(c.type);
    auto factor = ad3::detail::make_logic_factor(spec_of(c));
    const auto vertices = allowed(*factor, none);
    CHECK(!vertices.empty());
    auto reference = ad3::detail::make_enumerated_factor(vertices);
    const int n = c.n;
    std::vector<double> x(n), q(n), q_ref(n), y(n), s(n);
    for (int trial = 0; trial < 200; ++trial) {
      for (int i = 0; i < n; ++i) x[i] = normal(rng);
      factor->solve_qp(x.data(), nullptr, q.data(), nullptr);
      reference->solve_qp(x.data(), nullptr, q_ref.data(), nullptr);
      double worst = 0.0;
      for (const auto& v : vertices) {
        double ip = 0.0;
        for (int i = 0; i < n; ++i) ip += (x[i] - q[i]) * (v[i] - q[i]);
        worst = std::max(worst, ip);
      }
      if (worst > 1e-9) std::fprintf(stderr, "projection of %s (n=%d) not optimal: %g\n", name.c_str(), n, worst);
      CHECK(worst <= 1e-9);
      for (int i = 0; i < n; ++i) CHECK_CLOSE(q[i], q_ref[i], 0.0, 1e-7);
      // MAP
      for (int i = 0; i < n; ++i) s[i] = normal(rng) - 0.5;
      const double value = factor->map(s.data(), nullptr, y.data(), nullptr);
      double best = kNegInf;
      for (const auto& v : vertices) {
        double val = 0.0;
        for (int i = 0; i < n; ++i) val += v[i] * s[i];
        best = std::max(best, val);
      }
      CHECK_CLOSE(value, best, 1e-12, 1e-12);
      // clamped MAP
      std::vector<signed char> clamp(n, -1);
      for (int i = 0; i < n; ++i) {
        const int r = coin(rng) + coin(rng);
        if (r == 2) clamp[i] = static_cast<signed char>(coin(rng));
      }
      double best_clamped = kNegInf;
      for (const auto& v : vertices) {
        bool ok = true;
        double val = 0.0;
        for (int i = 0; i < n; ++i) {
          ok = ok && (clamp[i] < 0 || clamp[i] == v[i]);
          val += v[i] * s[i];
        }
        if (ok) best_clamped = std::max(best_clamped, val);
      }
      const double clamped = factor->map_clamped(s.data(), nullptr, clamp.data(), y.data(), nullptr);
      if (best_clamped == kNegInf) {
        CHECK(clamped == kNegInf);
      } else {
        CHECK_CLOSE(clamped, best_clamped, 1e-12, 1e-12);
      }
    }
  }
  // Knapsack with unequal costs: the local polytope is the LP relaxation {q in [0,1]^n, c.q <= B};
  // check the projection's optimality conditions against that polyhedron's description:
  // q = clip(x - tau c) with tau >= 0, tau > 0 only when c . q = B.
  {
    const std::vector<double> costs = {3, 5, 5, 5, 2};
    LogicCase c{FactorType::kKnapsack, 5, {}, 5.0, costs};
    auto factor = ad3::detail::make_logic_factor(spec_of(c));
    std::vector<double> x(5), q(5);
    for (int trial = 0; trial < 200; ++trial) {
      for (double& v : x) v = normal(rng);
      factor->solve_qp(x.data(), nullptr, q.data(), nullptr);
      double used = 0.0;
      for (int i = 0; i < 5; ++i) used += costs[i] * q[i];
      CHECK(used <= 5.0 + 1e-9);
      // Reference: q = clip(x - tau c) with the smallest tau >= 0 such that c . q <= B (bisection).
      auto clipped = [&](double tau, int i) { return std::min(1.0, std::max(0.0, x[i] - tau * costs[i])); };
      auto load = [&](double tau) {
        double total = 0.0;
        for (int i = 0; i < 5; ++i) total += costs[i] * clipped(tau, i);
        return total;
      };
      double lo = 0.0, hi = 10.0;
      if (load(0.0) > 5.0) {
        for (int it = 0; it < 200; ++it) {
          const double mid = 0.5 * (lo + hi);
          (load(mid) > 5.0 ? lo : hi) = mid;
        }
      } else {
        hi = 0.0;
      }
      for (int i = 0; i < 5; ++i) CHECK_CLOSE(q[i], clipped(hi, i), 0.0, 1e-9);
    }
  }
}

// Dense and pair factors: the active-set solution is optimal (no configuration scores above the
// weighted average: max_c (x - q) . y_c + a_c <= sum_c w_c [(x - q) . y_c + a_c]).
void test_active_set_factors() {
  std::mt19937 rng(11);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (const std::vector<int>& states : std::vector<std::vector<int>>{{2}, {3, 2}, {2, 2, 2}, {4, 3}, {3, 3, 2}}) {
    auto factor = ad3::detail::make_dense_factor(states);
    const int n = factor->degree(), m = factor->num_additional();
    std::vector<double> x(n), q(n), a(m), w(m), y(n);
    for (int trial = 0; trial < 100; ++trial) {
      for (double& v : x) v = normal(rng);
      for (double& v : a) v = normal(rng);
      factor->solve_qp(x.data(), a.data(), q.data(), w.data());
      double total = 0.0;
      for (double v : w) {
        CHECK(v >= -1e-12);
        total += v;
      }
      CHECK_CLOSE(total, 1.0, 0.0, 1e-9);
      std::vector<double> residual(n);
      for (int i = 0; i < n; ++i) residual[i] = x[i] - q[i];
      // scores of every configuration
      double average = 0.0, best = kNegInf;
      std::vector<int> state(states.size(), 0);
      std::vector<double> q_check(n, 0.0);
      for (int index = 0; index < m; ++index) {
        double v = a[index];
        int offset = 0;
        for (std::size_t j = 0; j < states.size(); ++j) {
          v += residual[offset + state[j]];
          q_check[offset + state[j]] += w[index];
          offset += states[j];
        }
        average += w[index] * v;
        best = std::max(best, v);
        for (int j = static_cast<int>(states.size()) - 1; j >= 0; --j) {
          if (++state[j] < states[j]) break;
          state[j] = 0;
        }
      }
      CHECK(best <= average + 1e-8);
      for (int i = 0; i < n; ++i) CHECK_CLOSE(q[i], q_check[i], 0.0, 1e-9);  // q = M w
    }
  }
  // Two-variable dense factors: the specialised solver (state pairs) against the generic one, call
  // after call (both warm-started), and its MAP against the generic MAP.
  for (const std::vector<int>& states : std::vector<std::vector<int>>{{2, 2}, {3, 3}, {4, 3}, {2, 5}, {1, 4}}) {
    auto fast = ad3::detail::make_dense_factor(states);
    auto generic = ad3::detail::make_dense_factor(states, true);
    const int n = fast->degree(), m = fast->num_additional();
    std::vector<double> x(n), a(m), q1(n), q2(n), u1(m), u2(m), y1(n), y2(n);
    for (int trial = 0; trial < 300; ++trial) {
      for (double& v : x) v = (trial % 7 == 0 ? 0.01 : 1.0) * normal(rng);  // (small steps: warm starts)
      if (trial % 25 == 0) {
        for (double& v : a) v = normal(rng);
      }
      fast->solve_qp(x.data(), a.data(), q1.data(), u1.data());
      generic->solve_qp(x.data(), a.data(), q2.data(), u2.data());
      for (int i = 0; i < n; ++i) CHECK_CLOSE(q1[i], q2[i], 0.0, 1e-9);
      double total = 0.0;
      for (int k = 0; k < m; ++k) total += u1[k];
      CHECK_CLOSE(total, 1.0, 0.0, 1e-9);
      // the additional posteriors may differ where the optimum is not unique; the objective may not
      double objective1 = 0.0, objective2 = 0.0;
      for (int i = 0; i < n; ++i) objective1 += 0.5 * (q1[i] - x[i]) * (q1[i] - x[i]);
      objective2 = objective1;
      for (int k = 0; k < m; ++k) {
        objective1 -= a[k] * u1[k];
        objective2 -= a[k] * u2[k];
      }
      CHECK_CLOSE(objective1, objective2, 0.0, 1e-9);
      CHECK_CLOSE(fast->map(x.data(), a.data(), y1.data(), u1.data()),
                  generic->map(x.data(), a.data(), y2.data(), u2.data()), 0.0, 1e-12);
      for (int i = 0; i < n; ++i) CHECK(y1[i] == y2[i]);
    }
  }
  // pair: against the dense factor over two 2-state variables restricted to "state 1" units
  auto pair = ad3::detail::make_pair_factor();
  std::vector<double> x(2), q(2), w(1);
  for (int trial = 0; trial < 100; ++trial) {
    x = {normal(rng), normal(rng)};
    std::vector<double> a = {2.0 * normal(rng)};
    pair->solve_qp(x.data(), a.data(), q.data(), w.data());
    // Optimality over the 4 vertices (y0, y1, y0*y1) of the pair polytope.
    const double configs[4][3] = {{0, 0, 0}, {1, 0, 0}, {0, 1, 0}, {1, 1, 1}};
    double worst = 0.0;
    for (const auto& v : configs) {
      const double ip = (x[0] - q[0]) * (v[0] - q[0]) + (x[1] - q[1]) * (v[1] - q[1]) + a[0] * (v[2] - w[0]);
      worst = std::max(worst, ip);
    }
    CHECK(worst <= 1e-9);
    CHECK(w[0] <= std::min(q[0], q[1]) + 1e-9 && w[0] >= q[0] + q[1] - 1 - 1e-9 && w[0] >= -1e-9);
  }
}

// Sequence and tree factors: the MAP oracle against brute force over the allowed configurations,
// and the local solution's optimality over every vertex (y_v, u_v) of the factor's polytope:
// (x - q) . (y_v - q) + a . (u_v - u) <= 0.
void check_oracle_factor(ad3::detail::LocalFactor& factor, std::mt19937& rng, const char* name) {
  std::normal_distribution<double> normal(0.3, 1.0);
  const int n = factor.degree(), m = factor.num_additional();
  std::vector<double> a(std::max(1, m)), x(n), q(n), u(std::max(1, m)), y(n), uy(std::max(1, m));
  // allowed configurations with their additional indicators
  std::vector<std::vector<int>> configs;
  std::vector<std::vector<double>> extras;
  std::vector<int> labels(n);
  for (long mask = 0; mask < (1L << n); ++mask) {
    for (int i = 0; i < n; ++i) labels[i] = (mask >> i) & 1;
    if (factor.evaluate(labels.data(), a.data(), uy.data()) > kNegInf) {
      configs.push_back(labels);
      extras.emplace_back(uy.begin(), uy.begin() + m);
    }
  }
  CHECK(!configs.empty());
  for (int trial = 0; trial < 60; ++trial) {
    for (double& v : a) v = normal(rng);
    for (double& v : x) v = normal(rng);
    // MAP
    double best = kNegInf;
    for (std::size_t c = 0; c < configs.size(); ++c) {
      double v = 0.0;
      for (int i = 0; i < n; ++i) v += configs[c][i] * x[i];
      for (int k = 0; k < m; ++k) v += extras[c][k] * a[k];
      best = std::max(best, v);
    }
    const double value = factor.map(x.data(), a.data(), y.data(), uy.data());
    if (std::fabs(value - best) > 1e-9) std::fprintf(stderr, "%s: MAP %g, brute force %g\n", name, value, best);
    CHECK_CLOSE(value, best, 1e-12, 1e-9);
    // QP
    factor.solve_qp(x.data(), a.data(), q.data(), u.data());
    double worst = 0.0;
    for (std::size_t c = 0; c < configs.size(); ++c) {
      double ip = 0.0;
      for (int i = 0; i < n; ++i) ip += (x[i] - q[i]) * (configs[c][i] - q[i]);
      for (int k = 0; k < m; ++k) ip += a[k] * (extras[c][k] - u[k]);
      worst = std::max(worst, ip);
    }
    if (worst > 1e-8) std::fprintf(stderr, "%s: local solution not optimal (%g)\n", name, worst);
    CHECK(worst <= 1e-8);
  }
}

// The compression budget's allowed configurations and additional indicators against an
// independent enumeration of the kept positions (transition indices counted here afresh), then its
// oracle and local solver (check_oracle_factor).
void check_compression_budget(int length, int budget, const std::vector<char>& counts,
                              const std::vector<int>& bigrams, std::mt19937& rng) {
  auto factor = ad3::detail::make_compression_budget_factor(length, budget, counts, bigrams);
  const int n = length + static_cast<int>(bigrams.size()), m = 4 * length - static_cast<int>(bigrams.size());
  CHECK(factor->degree() == n && factor->num_additional() == m);
  std::vector<double> a(m), u(m);
  std::vector<int> y(n);
  int allowed = 0;
  for (long mask = 0; mask < (1L << n); ++mask) {
    for (int i = 0; i < n; ++i) y[i] = (mask >> i) & 1;
    // expected: positions kept by the mask's first `length` bits; bigram links follow from them
    bool consistent = true;
    int kept = 0;
    for (int i = 0; i < length; ++i) kept += y[i] && counts[i];
    for (std::size_t k = 0; k < bigrams.size(); ++k) {
      const int p = bigrams[k];
      const int both = (p < 0 || y[p]) && (p + 1 >= length || y[p + 1]);
      consistent = consistent && y[length + k] == both;
    }
    const bool expect_allowed = consistent && kept <= budget;
    std::vector<double> expect_u(m, 0.0);
    int index = 0;
    for (int i = 0; i <= length; ++i) {
      for (int j = 0; j < (i > 0 ? 2 : 1); ++j) {
        for (int k = 0; k < (i < length ? 2 : 1); ++k) {
          const bool last = j == (i > 0 ? 1 : 0) && k == (i < length ? 1 : 0);
          if (last && std::find(bigrams.begin(), bigrams.end(), i - 1) != bigrams.end()) continue;
          const bool taken = (i == 0 || y[i - 1] == j) && (i == length || y[i] == k);
          expect_u[index++] = taken ? 1.0 : 0.0;
        }
      }
    }
    CHECK(index == m);
    const double value = factor->evaluate(y.data(), a.data(), u.data());
    CHECK((value > kNegInf) == expect_allowed);
    if (expect_allowed) {
      ++allowed;
      for (int k = 0; k < m; ++k) CHECK(u[k] == expect_u[k]);
    }
  }
  CHECK(allowed > 0);
  check_oracle_factor(*factor, rng, "compression budget");
}

void test_structured_factors() {
  std::mt19937 rng(23);
  for (const std::vector<int>& states : std::vector<std::vector<int>>{{2}, {2, 3}, {3, 2, 2}, {2, 2, 2, 2}}) {
    auto factor = ad3::detail::make_sequence_factor(states);
    check_oracle_factor(*factor, rng, "sequence");
  }
  for (int nodes : {2, 3, 4}) {
    std::vector<std::array<int, 2>> arcs;
    for (int m = 1; m < nodes; ++m) {
      for (int h = 0; h < nodes; ++h) {
        if (h != m) arcs.push_back({h, m});
      }
    }
    auto factor = ad3::detail::make_tree_factor(nodes, arcs);
    check_oracle_factor(*factor, rng, "tree");
  }
  // Tree-structured chains: general (multi-state nodes) and binary, on a few shapes.
  for (const std::vector<int>& parents : std::vector<std::vector<int>>{{-1}, {-1, 0}, {-1, 0, 0}, {-1, 0, 1, 1}, {-1, 2, 0, 2}}) {
    auto binary = ad3::detail::make_tree_chain_factor(parents, std::vector<int>(parents.size(), 2), true);
    check_oracle_factor(*binary, rng, "binary tree");
    std::vector<int> states;
    for (std::size_t i = 0; i < parents.size(); ++i) states.push_back(1 + static_cast<int>((i * 7 + 1) % 3));
    auto general = ad3::detail::make_tree_chain_factor(parents, states, false);
    check_oracle_factor(*general, rng, "general tree");
  }
  for (int positions : {1, 2, 3, 4}) {
    std::vector<std::array<int, 2>> siblings;
    for (int sib = positions + 1; sib >= 1; --sib) {  // any order of the pairs
      for (int m = 0; m < sib; ++m) siblings.push_back({m, sib});
    }
    auto automaton = ad3::detail::make_head_automaton_factor(positions, siblings);
    check_oracle_factor(*automaton, rng, "head automaton");
    auto compressor = ad3::detail::make_head_automaton_factor(positions, siblings, true);
    check_oracle_factor(*compressor, rng, "sequence compressor");
  }
  // Tree factors with counts: the oracle against brute force over evaluate()'s configurations
  // (tests/test_ad3_extensions.py checks the scores against an independent brute force).
  for (const std::vector<int>& parents : std::vector<std::vector<int>>{{-1}, {-1, 0}, {-1, 0, 0}, {-1, 2, 0, 2}}) {
    const std::size_t n = parents.size();
    std::vector<char> counts(n), scored(n);
    for (std::size_t i = 0; i < n; ++i) {
      counts[i] = static_cast<char>(i % 3 != 2);
      scored[i] = static_cast<char>(i == 0 || i % 2 == 1);
    }
    auto binary = ad3::detail::make_tree_counts_factor(parents, std::vector<int>(n, 2), true, counts, scored, 0);
    check_oracle_factor(*binary, rng, "binary tree counts");
    for (int bins : {1, 2}) {  // counts of bins - 1 or more share a score
      auto truncated =
          ad3::detail::make_tree_counts_factor(parents, std::vector<int>(n, 2), true, counts, scored, bins);
      check_oracle_factor(*truncated, rng, "binary tree counts, max_num_bins");
    }
    std::vector<int> states;
    for (std::size_t i = 0; i < n; ++i) states.push_back(1 + static_cast<int>((i * 5 + 1) % 3));
    auto general = ad3::detail::make_tree_counts_factor(parents, states, false, std::vector<char>(n, 1), {}, 0);
    check_oracle_factor(*general, rng, "general tree counts");
  }
  check_compression_budget(1, 0, {1}, {}, rng);
  check_compression_budget(1, 1, {1}, {-1, 0}, rng);
  check_compression_budget(3, 1, {1, 0, 1}, {0}, rng);
  check_compression_budget(3, 2, {1, 1, 1}, {-1, 1, 2}, rng);
  check_compression_budget(4, 2, {1, 1, 0, 1}, {2, 0}, rng);  // bigram links in any order
  check_compression_budget(4, 4, {1, 1, 1, 1}, {}, rng);
  // A sparser arc set (not every arc present) with a forced chain 0 -> 2 -> 1 -> 3 possible.
  auto sparse = ad3::detail::make_tree_factor(4, {{0, 2}, {2, 1}, {1, 3}, {0, 3}, {3, 1}, {1, 2}});
  check_oracle_factor(*sparse, rng, "sparse tree");
  // Maximum spanning arborescences on random complete graphs of 6 nodes: Chu-Liu-Edmonds against
  // enumeration of every head assignment. Three kinds of scores: normal; arcs from the root
  // penalised, so that the best heads form cycles, contracted again and again (nested); small
  // integers, full of ties. The MAP's configuration must be a tree scoring its value.
  const int n = 6;
  std::vector<std::array<int, 2>> arcs;
  std::vector<int> arc_index(n * n, -1);
  for (int m = 1; m < n; ++m) {
    for (int h = 0; h < n; ++h) {
      if (h != m) {
        arc_index[h * n + m] = static_cast<int>(arcs.size());
        arcs.push_back({h, m});
      }
    }
  }
  auto tree = ad3::detail::make_tree_factor(n, arcs);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_int_distribution<int> small(0, 2);
  std::vector<double> s(arcs.size()), y(arcs.size());
  std::vector<int> labels(arcs.size());
  for (int trial = 0; trial < 240; ++trial) {
    const int kind = trial % 3;
    for (std::size_t k = 0; k < arcs.size(); ++k) {
      s[k] = kind == 0 ? normal(rng) : kind == 1 ? normal(rng) - (arcs[k][0] == 0 ? 3.0 : 0.0) : small(rng);
    }
    double best = kNegInf;
    std::vector<int> head(n, 0);
    for (long code = 0; code < 7776; ++code) {  // 6^5 head assignments of nodes 1..5
      long rest = code;
      bool ok = true;
      double v = 0.0;
      std::fill(labels.begin(), labels.end(), 0);
      for (int m = 1; m < n; ++m) {
        head[m] = static_cast<int>(rest % n);
        rest /= n;
        if (head[m] == m) {
          ok = false;
          break;
        }
        const int k = arc_index[head[m] * n + m];
        labels[k] = 1;
        v += s[k];
      }
      if (ok && tree->evaluate(labels.data(), nullptr, nullptr) > kNegInf) best = std::max(best, v);
    }
    const double value = tree->map(s.data(), nullptr, y.data(), nullptr);
    CHECK_CLOSE(value, best, 1e-12, 1e-12);
    double scored = 0.0;
    for (std::size_t k = 0; k < arcs.size(); ++k) {
      labels[k] = static_cast<int>(y[k]);
      scored += y[k] * s[k];
    }
    CHECK(tree->evaluate(labels.data(), nullptr, nullptr) > kNegInf);
    CHECK_CLOSE(scored, value, 1e-12, 1e-12);
  }
}

// A random small graph: binary and multi-valued variables, a few factors of random types.
struct Problem {
  ad3::FactorGraph graph;
  std::vector<double> units, extra;
};

Problem random_problem(std::mt19937& rng, const std::vector<FactorType>& types, int num_factors, double coupling) {
  Problem p;
  std::uniform_int_distribution<int> kind(0, 2);
  std::normal_distribution<double> normal(0.0, 1.0);
  const int n = 3 + static_cast<int>(rng() % 4);
  std::vector<int> multi;
  for (int v = 0; v < n; ++v) {
    const int k = kind(rng);
    if (k == 0) {
      p.graph.add_binary_variable();
    } else {
      multi.push_back(p.graph.add_multi_variable(k + 1));
    }
  }
  auto random_units = [&](int count) {
    std::vector<int> all(p.graph.num_units());
    for (int u = 0; u < p.graph.num_units(); ++u) all[u] = u;
    std::shuffle(all.begin(), all.end(), rng);
    all.resize(std::min<int>(count, p.graph.num_units()));
    return all;
  };
  auto random_negated = [&](std::size_t count) {
    std::vector<char> neg;
    if (rng() % 2) {
      for (std::size_t i = 0; i < count; ++i) neg.push_back(static_cast<char>(rng() % 2));
    }
    return neg;
  };
  for (int f = 0; f < num_factors; ++f) {
    const FactorType type = types[rng() % types.size()];
    const int size = 2 + static_cast<int>(rng() % 3);
    switch (type) {
      case FactorType::kDense: {
        if (multi.size() < 2) break;
        std::vector<int> vars = multi;
        std::shuffle(vars.begin(), vars.end(), rng);
        vars.resize(std::min<std::size_t>(vars.size(), 1 + rng() % 3));
        p.graph.add_dense(vars);
        break;
      }
      case FactorType::kPair: {
        const auto us = random_units(2);
        p.graph.add_pair(us[0], us[1]);
        break;
      }
      case FactorType::kBudget: {
        const auto us = random_units(size + 1);
        p.graph.add_budget(us, static_cast<int>(rng() % 3), random_negated(us.size()));
        break;
      }
      case FactorType::kKnapsack: {
        const auto us = random_units(size + 1);
        std::vector<double> costs;
        for (std::size_t i = 0; i < us.size(); ++i) costs.push_back(1.0 + static_cast<double>(rng() % 4));
        p.graph.add_knapsack(us, costs, 1.0 + static_cast<double>(rng() % 5), random_negated(us.size()));
        break;
      }
      default: {
        const auto us = random_units(size);
        p.graph.add_logic(type, us, random_negated(us.size()));
      }
    }
  }
  p.units.resize(p.graph.num_units());
  for (double& v : p.units) v = normal(rng);
  p.extra.resize(p.graph.additional_size());
  for (double& v : p.extra) v = coupling * normal(rng);
  return p;
}

// Problems PSDD certified in check_against_exhaustive (reported by test_random_graphs).
int psdd_certified = 0;

// PSDD against the truth and against AD3's LP value: its dual bounds both; a labelling it returns
// scores what it claims; a certified one is optimal.
void check_psdd(const Problem& p, const ad3::FactorSolution& truth, const ad3::FactorSolution& relaxed) {
  const ad3::FactorSolution psdd = ad3::solve_psdd(p.graph, p.units, p.extra);
  CHECK(psdd.status == ad3::Status::kOptimal || psdd.status == ad3::Status::kIterationLimit);
  CHECK(psdd.iterations >= 1 && psdd.iterations <= 1000);
  if (truth.status == ad3::Status::kInfeasible) {
    CHECK(psdd.status != ad3::Status::kOptimal);
    CHECK(psdd.score == kNegInf);
    return;
  }
  const double tol = 1e-6 * std::max(1.0, std::fabs(truth.score));
  CHECK(psdd.bound >= truth.score - tol);
  if (relaxed.status == ad3::Status::kFractional) {  // (AD3 converged: its value is the LP's)
    CHECK(psdd.bound >= relaxed.value - 1e-4 * std::max(1.0, std::fabs(relaxed.value)));
  }
  if (psdd.score > kNegInf) {
    CHECK(psdd.score <= truth.score + tol);
    CHECK_CLOSE(ad3::score_labelling(p.graph, p.units, p.extra, psdd.labels), psdd.score, 1e-12, 1e-12);
  }
  CHECK(psdd.dual_variables.size() == psdd.local_posteriors.size());
  if (psdd.status == ad3::Status::kOptimal) {
    ++psdd_certified;
    CHECK_CLOSE(psdd.score, truth.score, 1e-9, 1e-9);
    CHECK_CLOSE(psdd.value, truth.score, 1e-9, 1e-9);
    for (double v : psdd.posteriors) CHECK(v == 0.0 || v == 1.0);
  } else {
    double value = 0.0;  // the objective at the returned posteriors
    for (std::size_t u = 0; u < p.units.size(); ++u) value += p.units[u] * psdd.posteriors[u];
    for (std::size_t k = 0; k < p.extra.size(); ++k) value += p.extra[k] * psdd.additional_posteriors[k];
    CHECK_CLOSE(psdd.value, value, 1e-12, 1e-12);
  }
}

void check_against_exhaustive(const Problem& p, int& ad3_certified, int& infeasible) {
  const ad3::FactorSolution truth = ad3::solve_exhaustive(p.graph, p.units, p.extra);
  const ad3::FactorSolution exact = ad3::solve_exact(p.graph, p.units, p.extra);
  const ad3::FactorSolution relaxed = ad3::solve_ad3(p.graph, p.units, p.extra);
  check_psdd(p, truth, relaxed);
  if (truth.status == ad3::Status::kInfeasible) {
    ++infeasible;
    CHECK(exact.status == ad3::Status::kInfeasible);
    CHECK(exact.score == kNegInf);
    CHECK(relaxed.status != ad3::Status::kOptimal);
    return;
  }
  CHECK(truth.status == ad3::Status::kOptimal);
  CHECK(exact.status == ad3::Status::kOptimal);
  CHECK_CLOSE(exact.score, truth.score, 1e-9, 1e-9);
  CHECK_CLOSE(ad3::score_labelling(p.graph, p.units, p.extra, exact.labels), exact.score, 1e-12, 1e-12);
  CHECK(exact.bound >= truth.score - 1e-9);
  CHECK_CLOSE(exact.value, exact.score, 1e-12, 1e-12);
  // The relaxation bounds the optimum; a certified AD3 solution is optimal.
  CHECK(relaxed.bound >= truth.score - 1e-6 * std::max(1.0, std::fabs(truth.score)));
  if (relaxed.status == ad3::Status::kOptimal) {
    ++ad3_certified;
    CHECK_CLOSE(relaxed.score, truth.score, 1e-9, 1e-9);
    CHECK_CLOSE(relaxed.value, truth.score, 1e-9, 1e-9);
    for (double v : relaxed.posteriors) CHECK(v == 0.0 || v == 1.0);
  } else if (relaxed.status == ad3::Status::kFractional) {
    // converged: the primal value at the posteriors is the LP value, within the bound
    CHECK(relaxed.value <= relaxed.bound + 1e-4 * std::max(1.0, std::fabs(relaxed.bound)));
  }
  // posteriors of the exact solution are its labelling; additional posteriors one-hot per dense factor
  for (int f = 0; f < p.graph.num_factors(); ++f) {
    if (p.graph.factor(f).type != FactorType::kDense) continue;
    double total = 0.0;
    for (std::size_t k = 0; k < p.graph.additional_count(f); ++k) {
      total += exact.additional_posteriors[p.graph.additional_offset(f) + k];
    }
    CHECK_CLOSE(total, 1.0, 0.0, 1e-12);
  }
}

// Graphs with a tree factor over 9 arc variables (4 nodes) or a sequence factor over multi-valued
// variables, plus logic / dense factors: AD3 and exact against exhaustive.
void test_structured_graphs(int& certified, int& infeasible, int& total) {
  std::mt19937 rng(29);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int trial = 0; trial < 40; ++trial) {
    Problem p;
    std::vector<std::array<int, 2>> arcs;
    for (int m = 1; m < 4; ++m) {
      for (int h = 0; h < 4; ++h) {
        if (h != m) arcs.push_back({h, m});
      }
    }
    std::vector<int> units;
    for (std::size_t k = 0; k < arcs.size(); ++k) units.push_back(p.graph.unit(p.graph.add_binary_variable()));
    p.graph.add_tree(units, 4, arcs);
    if (trial % 2) {
      p.graph.add_budget({units[0], units[1], units[2]}, 1, {0, 1, 0});
    } else {
      p.graph.add_logic(FactorType::kImply, {units[0], units[4]});
    }
    p.units.resize(p.graph.num_units());
    for (double& v : p.units) v = normal(rng);
    check_against_exhaustive(p, certified, infeasible);
    ++total;
  }
  // A second-order parser: a tree over 4 nodes with head automata for the right modifiers of
  // node 0 and the left and right ones of node 2.
  for (int trial = 0; trial < 30; ++trial) {
    Problem p;
    std::vector<std::array<int, 2>> arcs;
    std::vector<int> units;
    for (int m = 1; m < 4; ++m) {
      for (int h = 0; h < 4; ++h) {
        if (h != m) {
          arcs.push_back({h, m});
          units.push_back(p.graph.unit(p.graph.add_binary_variable()));
        }
      }
    }
    p.graph.add_tree(units, 4, arcs);
    auto arc_unit = [&](int h, int m) {
      for (std::size_t k = 0; k < arcs.size(); ++k) {
        if (arcs[k][0] == h && arcs[k][1] == m) return units[k];
      }
      return -1;
    };
    auto siblings = [](int positions) {
      std::vector<std::array<int, 2>> out;
      for (int sib = 1; sib <= positions + 1; ++sib) {
        for (int m = 0; m < sib; ++m) out.push_back({m, sib});
      }
      return out;
    };
    p.graph.add_head_automaton({arc_unit(0, 1), arc_unit(0, 2), arc_unit(0, 3)}, siblings(3));
    p.graph.add_head_automaton({arc_unit(2, 1)}, siblings(1));  // left of 2: distance 1
    p.graph.add_head_automaton({arc_unit(2, 3)}, siblings(1));  // right of 2
    if (trial % 3 == 0) {  // a sequence compressor over the root's arcs, its indicator a new unit
      p.graph.add_sequence_compressor({arc_unit(0, 1), arc_unit(0, 2), p.graph.unit(p.graph.add_binary_variable())},
                                      siblings(2));
    }
    p.units.resize(p.graph.num_units());
    for (double& v : p.units) v = normal(rng);
    p.extra.resize(p.graph.additional_size());
    for (double& v : p.extra) v = normal(rng);
    check_against_exhaustive(p, certified, infeasible);
    ++total;
  }
  // Binary and general tree factors with logic / dense factors on top.
  for (int trial = 0; trial < 30; ++trial) {
    Problem p;
    const std::vector<int> parents = {-1, 0, 0, 1};
    std::vector<int> bin_units, multi_units, states, vars;
    for (int i = 0; i < 4; ++i) bin_units.push_back(p.graph.unit(p.graph.add_binary_variable()));
    p.graph.add_binary_tree(bin_units, parents);
    for (int i = 0; i < 4; ++i) {
      const int k = 2 + static_cast<int>(rng() % 2);
      vars.push_back(p.graph.add_multi_variable(k));
      states.push_back(k);
      for (int t = 0; t < k; ++t) multi_units.push_back(p.graph.unit(vars.back(), t));
    }
    p.graph.add_general_tree(multi_units, parents, states);
    p.graph.add_logic(FactorType::kImply, {bin_units[3], p.graph.unit(vars[3], 0)});
    if (trial % 2) p.graph.add_dense({vars[2], vars[3]});
    p.units.resize(p.graph.num_units());
    for (double& v : p.units) v = normal(rng);
    p.extra.resize(p.graph.additional_size());
    for (double& v : p.extra) v = 1.5 * normal(rng);
    check_against_exhaustive(p, certified, infeasible);
    ++total;
  }
  for (int trial = 0; trial < 40; ++trial) {
    Problem p;
    std::vector<int> vars, units, states;
    for (int i = 0; i < 4; ++i) {
      const int k = 2 + static_cast<int>(rng() % 2);
      vars.push_back(p.graph.add_multi_variable(k));
      states.push_back(k);
      for (int t = 0; t < k; ++t) units.push_back(p.graph.unit(vars.back(), t));
    }
    p.graph.add_sequence(units, states);
    if (trial % 2) p.graph.add_dense({vars[0], vars[3]});
    p.graph.add_logic(FactorType::kAtMostOne, {p.graph.unit(vars[1], 0), p.graph.unit(vars[2], 0)});
    p.units.resize(p.graph.num_units());
    for (double& v : p.units) v = normal(rng);
    p.extra.resize(p.graph.additional_size());
    for (double& v : p.extra) v = 1.5 * normal(rng);
    check_against_exhaustive(p, certified, infeasible);
    ++total;
  }
}

// Compression budgets in small graphs (with an OR, a binary tree with counts or a general tree with
// counts on top), AD3 and exact against exhaustive enumeration.
void test_compression_graphs(int& certified, int& infeasible, int& total) {
  std::mt19937 rng(31);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int trial = 0; trial < 40; ++trial) {
    Problem p;
    const int length = 3 + trial % 3, budget = trial % 3;
    std::vector<int> units;
    std::vector<char> counts;
    for (int i = 0; i < length; ++i) {
      units.push_back(p.graph.unit(p.graph.add_binary_variable()));
      counts.push_back(static_cast<char>(rng() % 4 != 0));
    }
    std::vector<int> bigrams;
    for (int b = -1; b < length; ++b) {
      if (rng() % 3 == 0) bigrams.push_back(b);
    }
    for (std::size_t k = 0; k < bigrams.size(); ++k) units.push_back(p.graph.unit(p.graph.add_binary_variable()));
    p.graph.add_compression_budget(units, length, budget, counts, bigrams);
    if (trial % 2) p.graph.add_logic(FactorType::kOr, {units[0], units[length - 1]});
    if (trial % 4 == 1) {  // a binary tree with counts over the kept positions
      std::vector<int> parents(length, 0);
      parents[0] = -1;
      p.graph.add_binary_tree_counts(std::vector<int>(units.begin(), units.begin() + length), parents,
                                     counts, std::vector<char>(length, 1), trial % 8 == 1 ? 0 : 2);
    }
    if (trial % 4 == 2) {  // a general tree with counts over two new multi-valued variables
      const int a = p.graph.add_multi_variable(2), b = p.graph.add_multi_variable(3);
      std::vector<int> tree_units = {p.graph.unit(a, 0), p.graph.unit(a, 1), p.graph.unit(b, 0), p.graph.unit(b, 1),
                                     p.graph.unit(b, 2)};
      for (int c = 0; c < 3; ++c) tree_units.push_back(p.graph.unit(p.graph.add_binary_variable()));
      p.graph.add_general_tree_counts(tree_units, {-1, 0}, {2, 3}, {1, 1});
      p.graph.add_logic(FactorType::kImply, {units[0], p.graph.unit(a, 0)});
    }
    p.units.resize(p.graph.num_units());
    for (double& v : p.units) v = normal(rng);
    p.extra.resize(p.graph.additional_size());
    for (double& v : p.extra) v = normal(rng);
    check_against_exhaustive(p, certified, infeasible);
    ++total;
  }
}

void test_random_graphs() {
  const std::vector<FactorType> all = {FactorType::kDense, FactorType::kXor,   FactorType::kAtMostOne,
                                       FactorType::kOr,    FactorType::kXorOut, FactorType::kOrOut,
                                       FactorType::kAndOut, FactorType::kImply, FactorType::kBudget,
                                       FactorType::kKnapsack, FactorType::kPair};
  std::mt19937 rng(3);
  int certified = 0, infeasible = 0, total = 0;
  // Each factor type alone (with dense factors for coupling), then mixtures.
  for (FactorType type : all) {
    for (int trial = 0; trial < 25; ++trial) {
      Problem p = random_problem(rng, {type, FactorType::kDense}, 3, 1.0);
      check_against_exhaustive(p, certified, infeasible);
      ++total;
    }
  }
  for (int trial = 0; trial < 150; ++trial) {
    Problem p = random_problem(rng, all, 2 + trial % 5, trial % 2 ? 0.3 : 2.0);
    check_against_exhaustive(p, certified, infeasible);
    ++total;
  }
  test_structured_graphs(certified, infeasible, total);
  test_compression_graphs(certified, infeasible, total);
  std::printf("random general graphs: %d, AD3 certified %d, PSDD certified %d, infeasible %d\n", total, certified,
              psdd_certified, infeasible);
  CHECK(certified > total / 3);
  CHECK(psdd_certified > total / 4);
}

// Pairwise graphs (multi-valued variables, dense tables on distinct pairs) run AD3 through the
// pairwise solver: against exhaustive enumeration, and against the general path on a twin graph
// (the same plus an all-zero table on an existing pair, which is not pairwise; same relaxation).
void test_pairwise_graphs() {
  std::mt19937 rng(17);
  std::normal_distribution<double> normal(0.0, 1.0);
  int certified = 0, infeasible = 0, compared = 0, fractional = 0;
  ad3::Ad3Options tight;
  tight.max_iterations = 20000;
  tight.tolerance = 1e-10;
  for (int trial = 0; trial < 60; ++trial) {
    Problem p, twin;
    const int n = 3 + trial % 4;
    std::vector<int> states(n);
    for (int v = 0; v < n; ++v) {
      states[v] = 2 + static_cast<int>(rng() % 3);
      p.graph.add_multi_variable(states[v]);
      twin.graph.add_multi_variable(states[v]);
      for (int t = 0; t < states[v]; ++t) p.units.push_back(normal(rng));
    }
    std::vector<std::array<int, 2>> pairs;
    for (int v = 0; v + 1 < n; ++v) pairs.push_back({v, v + 1});
    for (int a = 0; a < n; ++a) {
      for (int b = a + 2; b < n; ++b) {
        if (rng() % 2) pairs.push_back(rng() % 2 ? std::array<int, 2>{a, b} : std::array<int, 2>{b, a});
      }
    }
    const double coupling = trial % 2 ? 0.5 : 2.5;
    for (const auto& pair : pairs) {
      p.graph.add_dense({pair[0], pair[1]});
      twin.graph.add_dense({pair[0], pair[1]});
      for (int k = 0; k < states[pair[0]] * states[pair[1]]; ++k) p.extra.push_back(coupling * normal(rng));
    }
    twin.units = p.units;
    twin.extra = p.extra;
    twin.graph.add_dense({pairs[0][1], pairs[0][0]});
    twin.extra.resize(p.extra.size() + states[pairs[0][0]] * states[pairs[0][1]], 0.0);
    CHECK(ad3::detail::GeneralModel(p.graph).pairwise);
    CHECK(!ad3::detail::GeneralModel(twin.graph).pairwise);
    check_against_exhaustive(p, certified, infeasible);

    const ad3::FactorSolution routed = ad3::solve_ad3(p.graph, p.units, p.extra, tight);
    const ad3::FactorSolution general = ad3::solve_ad3(twin.graph, twin.units, twin.extra, tight);
    const double scale = std::max(1.0, std::fabs(general.bound));
    if (routed.status != ad3::Status::kIterationLimit && general.status != ad3::Status::kIterationLimit) {
      CHECK_CLOSE(routed.value, general.value, 0.0, 1e-6 * scale);  // the LP value, both ways
      CHECK_CLOSE(routed.bound, general.bound, 0.0, 1e-6 * scale);
      ++compared;
    }
    if (routed.status != ad3::Status::kFractional) continue;
    ++fractional;
    // The reported state: value at (posteriors, additional posteriors); each table's marginals are
    // its endpoints' posteriors (converged) and its links' local marginals; multipliers sum to 0.
    double value = 0.0;
    for (std::size_t u = 0; u < p.units.size(); ++u) value += p.units[u] * routed.posteriors[u];
    for (std::size_t k = 0; k < p.extra.size(); ++k) value += p.extra[k] * routed.additional_posteriors[k];
    CHECK_CLOSE(routed.value, value, 1e-12, 1e-12);
    std::vector<double> multiplier_sum(p.units.size(), 0.0);
    std::size_t link = 0;
    for (int f = 0; f < p.graph.num_factors(); ++f) {
      const int a = pairs[f][0], b = pairs[f][1], ka = states[a], kb = states[b];
      const double* mu = routed.additional_posteriors.data() + p.graph.additional_offset(f);
      for (int side = 0; side < 2; ++side) {
        const int v = side == 0 ? a : b, k = side == 0 ? ka : kb;
        for (int t = 0; t < k; ++t, ++link) {
          double marginal = 0.0;
          for (int o = 0; o < (side == 0 ? kb : ka); ++o) marginal += side == 0 ? mu[t * kb + o] : mu[o * kb + t];
          const int unit = p.graph.unit_begin(v) + t;
          CHECK_CLOSE(marginal, routed.posteriors[unit], 0.0, 1e-6);
          CHECK_CLOSE(marginal, routed.local_posteriors[link], 0.0, 1e-12);
          multiplier_sum[unit] += routed.dual_variables[link];
        }
      }
    }
    CHECK(link == routed.dual_variables.size());
    for (double sum : multiplier_sum) CHECK_CLOSE(sum, 0.0, 0.0, 1e-9);
  }
  std::printf("pairwise general graphs: 60, AD3 certified %d, fractional %d, compared with the general path %d\n",
              certified, fractional, compared);
  CHECK(infeasible == 0);
  CHECK(compared >= 50);
  CHECK(fractional >= 3);
}

void test_simple_cases() {
  // The reference package's dense one-of-K example: the one-hot constraint is enforced.
  ad3::FactorGraph g;
  const int a = g.add_multi_variable(3), b = g.add_multi_variable(3);
  g.add_dense({a, b});
  std::vector<double> units = {-100, -100, -100, 1, 1, 1};
  std::vector<double> table(9, 0.0);
  table[0] = 1;
  table[1 * 3 + 2] = 10;
  for (auto solve : {0, 1, 2}) {
    const ad3::FactorSolution s = solve == 0   ? ad3::solve_ad3(g, units, table)
                                  : solve == 1 ? ad3::solve_exact(g, units, table)
                                               : ad3::solve_exhaustive(g, units, table);
    CHECK(s.status == ad3::Status::kOptimal);
    CHECK(s.labels == std::vector<int>({1, 2}));
    CHECK(s.posteriors == std::vector<double>({0, 1, 0, 0, 0, 1}));
    CHECK_CLOSE(s.score, -100 + 1 + 10, 0, 1e-12);
    CHECK(s.additional_posteriors[5] == 1.0);
  }
  // Infeasible: x and not x.
  ad3::FactorGraph h;
  const int x = h.add_binary_variable();
  h.add_logic(FactorType::kOr, {h.unit(x)});
  h.add_logic(FactorType::kOr, {h.unit(x)}, {1});
  const ad3::FactorSolution e = ad3::solve_exact(h, {0.5}, {});
  CHECK(e.status == ad3::Status::kInfeasible);
  CHECK(ad3::solve_exhaustive(h, {0.5}, {}).status == ad3::Status::kInfeasible);
  // A free binary variable and an empty graph.
  ad3::FactorGraph free_graph;
  free_graph.add_binary_variable();
  free_graph.add_binary_variable();
  const ad3::FactorSolution f = ad3::solve_ad3(free_graph, {1.5, -2.0}, {});
  CHECK(f.status == ad3::Status::kOptimal && f.labels == std::vector<int>({1, 0}) && f.score == 1.5);
  ad3::FactorGraph empty;
  CHECK(ad3::solve_exact(empty, {}, {}).status == ad3::Status::kOptimal);
  // The knapsack example of the reference: relaxation fractional, exact search certifies.
  ad3::FactorGraph k;
  std::vector<int> us;
  for (int i = 0; i < 5; ++i) us.push_back(k.unit(k.add_binary_variable()));
  k.add_knapsack(us, {3, 5, 5, 5, 2}, 5.0);
  const ad3::FactorSolution ks = ad3::solve_exact(k, {100, 1, 100, 1, 100}, {});
  CHECK(ks.status == ad3::Status::kOptimal);
  CHECK(ks.labels == std::vector<int>({1, 0, 0, 0, 1}));
  // A node limit stops the search with a valid bound.
  ad3::ExactOptions few;
  few.max_nodes = 1;
  const ad3::FactorSolution stopped = ad3::solve_exact(k, {100, 1, 100, 1, 100}, {}, few);
  CHECK(stopped.status == ad3::Status::kIterationLimit || stopped.status == ad3::Status::kOptimal);
  CHECK(stopped.bound >= 200 - 1e-9);
}

template <typename F>
bool throws_naming(F&& f, const std::string& name);

// Batches: each result equals the single solve, whatever the number of threads; shared or
// per-problem factor scores; a cancel throws Cancelled; bad scores name the problem.
void test_batches() {
  std::mt19937 rng(31);
  std::normal_distribution<double> normal(0.0, 1.0);
  Problem p = random_problem(rng, {FactorType::kDense, FactorType::kXor, FactorType::kBudget, FactorType::kPair}, 5, 2.0);
  while (p.graph.additional_size() == 0) {
    p = random_problem(rng, {FactorType::kDense, FactorType::kPair}, 5, 2.0);
  }
  const std::size_t batch = 23, u = p.graph.num_units(), f = p.graph.additional_size();
  std::vector<double> units(batch * u), extra(batch * f);
  for (double& v : units) v = normal(rng);
  for (double& v : extra) v = 2.0 * normal(rng);
  for (ad3::Method method :
       {ad3::Method::kAd3, ad3::Method::kExact, ad3::Method::kExhaustive, ad3::Method::kPsdd}) {
    for (bool shared : {false, true}) {
      ad3::FactorBatchScores scores{batch, units.data(), units.size(), extra.data(), shared ? f : batch * f};
      const auto one = ad3::solve_batch(p.graph, method, scores, {}, {}, {}, 1);
      const auto three = ad3::solve_batch(p.graph, method, scores, {}, {}, {}, 3);
      CHECK(one.size() == batch && three.size() == batch);
      for (std::size_t b = 0; b < batch; ++b) {
        const std::vector<double> us(units.begin() + b * u, units.begin() + (b + 1) * u);
        const std::vector<double> fs(extra.begin() + (shared ? 0 : b * f), extra.begin() + (shared ? f : (b + 1) * f));
        const ad3::FactorSolution alone = method == ad3::Method::kAd3     ? ad3::solve_ad3(p.graph, us, fs)
                                          : method == ad3::Method::kExact   ? ad3::solve_exact(p.graph, us, fs)
                                          : method == ad3::Method::kPsdd    ? ad3::solve_psdd(p.graph, us, fs)
                                                                            : ad3::solve_exhaustive(p.graph, us, fs);
        for (const auto* r : {&one[b], &three[b]}) {
          CHECK(r->labels == alone.labels);
          CHECK(r->status == alone.status);
          CHECK(r->score == alone.score || (std::isinf(r->score) && std::isinf(alone.score)));
          CHECK(r->bound == alone.bound || (std::isinf(r->bound) && std::isinf(alone.bound)));
          CHECK(r->posteriors == alone.posteriors);
          CHECK(r->iterations == alone.iterations);
        }
      }
    }
  }
  std::atomic<bool> cancel{true};
  ad3::Interrupt interrupt;
  interrupt.cancel = &cancel;
  ad3::FactorBatchScores scores{batch, units.data(), units.size(), extra.data(), batch * f};
  bool thrown = false;
  try {
    ad3::solve_batch(p.graph, ad3::Method::kExact, scores, {}, {}, {}, 2, interrupt);
  } catch (const ad3::Cancelled&) {
    thrown = true;
  }
  CHECK(thrown);
  units[5 * u] = std::nan("");
  CHECK(throws_naming([&] { ad3::solve_batch(p.graph, ad3::Method::kAd3, scores); }, "problem 5"));
  CHECK(throws_naming([&] {
    ad3::solve_batch(p.graph, ad3::Method::kAd3, {batch, units.data(), units.size() - 1, extra.data(), f});
  }, "unit_scores"));
}

template <typename F>
bool throws_naming(F&& f, const std::string& name) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return std::string(e.what()).find(name) != std::string::npos;
  }
  return false;
}

void test_errors() {
  ad3::FactorGraph g;
  const int a = g.add_binary_variable(), b = g.add_multi_variable(3);
  CHECK(throws_naming([&] { g.add_multi_variable(0); }, "num_states"));
  CHECK(throws_naming([&] { g.add_logic(FactorType::kXor, {0, 0}); }, "units"));
  CHECK(throws_naming([&] { g.add_logic(FactorType::kXor, {0, 9}); }, "units"));
  CHECK(throws_naming([&] { g.add_logic(FactorType::kAndOut, {0}); }, "units"));
  CHECK(throws_naming([&] { g.add_logic(FactorType::kBudget, {0, 1}); }, "type"));
  CHECK(throws_naming([&] { g.add_logic(FactorType::kOr, {0, 1}, {1}); }, "negated"));
  CHECK(throws_naming([&] { g.add_budget({0, 1}, -1); }, "budget"));
  CHECK(throws_naming([&] { g.add_knapsack({0, 1}, {1.0}, 1.0); }, "costs"));
  CHECK(throws_naming([&] { g.add_knapsack({0, 1}, {1.0, -1.0}, 1.0); }, "costs"));
  CHECK(throws_naming([&] { g.add_dense({a}); }, "variables"));
  CHECK(throws_naming([&] { g.add_dense({b, b}); }, "variables"));
  CHECK(throws_naming([&] { g.unit(b, 3); }, "state"));
  CHECK(throws_naming([&] { g.add_sequence({1, 2, 3}, {2, 2}); }, "units"));
  CHECK(throws_naming([&] { g.add_sequence({1, 2, 3}, {3, 0}); }, "num_states"));
  CHECK(throws_naming([&] { g.add_tree({0, 1}, 3, {{0, 1}}); }, "arcs"));
  CHECK(throws_naming([&] { g.add_tree({0, 1}, 3, {{0, 1}, {0, 1}}); }, "arcs"));
  CHECK(throws_naming([&] { g.add_tree({0, 1}, 3, {{0, 1}, {1, 0}}); }, "arcs"));
  CHECK(throws_naming([&] { g.add_tree({0, 1}, 3, {{0, 1}, {3, 2}}); }, "arcs"));
  CHECK(throws_naming([&] { g.add_tree({0, 1}, 3, {{0, 1}, {2, 1}}); }, "reached"));
  CHECK(throws_naming([&] { g.add_tree({0, 1, 2}, 4, {{0, 1}, {2, 3}, {3, 2}}); }, "reached"));
  CHECK(throws_naming([&] { g.add_tree({0, 1}, ad3::kMaxTreeNodes + 1, {{0, 1}, {0, 2}}); }, "num_nodes"));
  CHECK(throws_naming([&] { g.add_multi_variable(ad3::kMaxStates + 1); }, "num_states"));
  {  // a chain listed leaf first is reachable (the search follows arcs, not their order)
    ad3::FactorGraph chain;
    for (int i = 0; i < 3; ++i) chain.add_binary_variable();
    CHECK(chain.add_tree({0, 1, 2}, 4, {{2, 3}, {1, 2}, {0, 1}}) == 0);
  }
  CHECK(throws_naming([&] { g.add_head_automaton({0}, {{0, 1}, {0, 2}}); }, "siblings"));
  CHECK(throws_naming([&] { g.add_sequence_compressor({0}, {{0, 1}}); }, "units"));
  CHECK(throws_naming([&] { g.add_sequence_compressor({0, 1}, {{0, 1}}); }, "siblings"));
  CHECK(throws_naming([&] { g.add_compression_budget({0, 1}, 2, -1, {1, 1}, {}); }, "budget"));
  CHECK(throws_naming([&] { g.add_compression_budget({0, 1}, 2, 1, {1}, {}); }, "counts_for_budget"));
  CHECK(throws_naming([&] { g.add_compression_budget({0, 1}, 2, 1, {1, 1}, {2}); }, "bigram_positions"));
  CHECK(throws_naming([&] { g.add_compression_budget({0, 1, 2, 3}, 2, 1, {1, 1}, {0, 0}); }, "bigram_positions"));
  CHECK(throws_naming([&] { g.add_compression_budget({0, 1}, 2, 1, {1, 1}, {0}); }, "units"));
  CHECK(throws_naming([&] { g.add_compression_budget({}, 0, 1, {}, {}); }, "length"));
  CHECK(throws_naming([&] { g.add_binary_tree_counts({0, 1}, {-1, 0}, {1}, {1, 1}); }, "counts_for_budget"));
  CHECK(throws_naming([&] { g.add_binary_tree_counts({0, 1}, {-1, 0}, {1, 1}, {1}); }, "has_count_scores"));
  CHECK(throws_naming([&] { g.add_binary_tree_counts({0, 1}, {0, 0}, {1, 1}, {1, 1}); }, "parents"));
  CHECK(throws_naming([&] { g.add_binary_tree_counts({0, 1}, {-1, 0}, {1, 1}, {1, 1}, -1); }, "max_num_bins"));
  CHECK(throws_naming([&] { g.add_general_tree_counts({1, 2, 3}, {-1}, {3}, {1}); }, "units"));
  CHECK(throws_naming([&] { g.add_general_tree_counts({1, 2, 3, 0, 9}, {-1}, {3}, {1}); }, "units"));
  CHECK(throws_naming([&] { g.add_general_tree_counts({1, 2, 3, 0}, {-1}, {2}, {}); }, "counts_for_budget"));
  CHECK(throws_naming([&] { g.add_binary_tree({0, 1}, {0, 0}); }, "parents"));
  CHECK(throws_naming([&] { g.add_binary_tree({0, 1, 2}, {-1, 2, 1}); }, "parents"));
  CHECK(throws_naming([&] { g.add_binary_tree({0, 1}, {-1, 0, 0}); }, "units"));
  CHECK(throws_naming([&] { g.add_general_tree({1, 2, 3}, {-1, 0}, {2, 2}); }, "units"));
  CHECK(throws_naming([&] { g.add_general_tree({1, 2, 3}, {-1, 0}, {3}); }, "num_states"));
  CHECK(throws_naming([&] { g.add_head_automaton({0}, {{0, 1}, {0, 2}, {0, 2}}); }, "siblings"));
  CHECK(throws_naming([&] { g.add_head_automaton({0}, {{0, 1}, {0, 2}, {2, 1}}); }, "siblings"));
  g.add_dense({b});
  CHECK(throws_naming([&] { ad3::solve_ad3(g, {0, 0, 0}, std::vector<double>(3)); }, "unit_scores"));
  CHECK(throws_naming([&] { ad3::solve_ad3(g, {0, 0, 0, 0}, std::vector<double>(2)); }, "factor_scores"));
  CHECK(throws_naming([&] { ad3::solve_exact(g, {0, 0, std::nan(""), 0}, std::vector<double>(3)); }, "unit_scores"));
  CHECK(throws_naming([&] { ad3::score_labelling(g, {0, 0, 0, 0}, std::vector<double>(3), {0, 3}); }, "labels"));
  ad3::FactorGraph wide;  // factors of more than 16 units: the repeated-unit check by marks
  std::vector<int> all(20);
  for (int i = 0; i < 20; ++i) all[i] = wide.add_binary_variable();
  wide.add_logic(FactorType::kAtMostOne, all);
  wide.add_logic(FactorType::kOr, all);  // (the same units again, in another factor: fine)
  std::vector<int> twice = all;
  twice[19] = 3;
  CHECK(throws_naming([&] { wide.add_logic(FactorType::kXor, twice); }, "unit 3 appears twice"));
  for (int steps : {-1, 1}) {
    ad3::Ad3Options options;
    options.max_qp_steps = steps;
    CHECK(throws_naming([&] { ad3::solve_ad3(g, {0, 0, 0, 0}, std::vector<double>(3), options); }, "max_qp_steps"));
  }
  auto psdd_with = [&](int max_iterations, double eta, double gap) {
    ad3::PsddOptions options;
    options.max_iterations = max_iterations;
    options.eta = eta;
    options.gap_tolerance = gap;
    return [=] { ad3::solve_psdd(g, {0, 0, 0, 0}, std::vector<double>(3), options); };
  };
  CHECK(throws_naming(psdd_with(0, 1.0, 0.0), "max_iterations"));
  CHECK(throws_naming(psdd_with(10, 0.0, 0.0), "eta"));
  CHECK(throws_naming(psdd_with(10, std::nan(""), 0.0), "eta"));
  CHECK(throws_naming(psdd_with(10, 1.0, -1.0), "gap_tolerance"));
  CHECK(throws_naming([&] { ad3::solve_psdd(g, {0, 0, 0}, std::vector<double>(3)); }, "unit_scores"));
  const std::vector<double> zero_units(4), zero_extra(3);
  const ad3::FactorBatchScores batch{1, zero_units.data(), 4, zero_extra.data(), 3};
  ad3::PsddOptions no_steps;
  no_steps.eta = -1.0;
  CHECK(throws_naming([&] { ad3::solve_batch(g, ad3::Method::kPsdd, batch, {}, {}, no_steps); }, "eta"));
}

}  // namespace

// A caller's oracle (MapOracle): at most `cap` of the n links on, one additional score per count
// 0..cap. Its answers list the links by decreasing score (not in index order), and the count's
// score index once.
// order: scratch for n indices.
static void count_map(int n, int cap, const double* s, const double* a, std::vector<int>& order, std::vector<int>& on,
                      std::vector<int>& extras) {
  order.resize(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int i, int j) { return s[i] > s[j]; });
  double best = a[0], sum = 0.0;
  int count = 0;
  for (int k = 1; k <= cap; ++k) {
    sum += s[order[k - 1]];
    if (sum + a[k] > best) {
      best = sum + a[k];
      count = k;
    }
  }
  on.assign(order.begin(), order.begin() + count);
  extras.push_back(count);
}

class CountOracle : public ad3::MapOracle {
 public:
  explicit CountOracle(int n, int cap) : n_(n), cap_(cap) {}
  void maximize(const double* s, const double* a, std::vector<int>& on, std::vector<int>& extras) const override {
    std::vector<int> order;
    count_map(n_, cap_, s, a, order, on, extras);
  }
  bool evaluate(const int* y, std::vector<int>& extras) const override {
    int count = 0;
    for (int i = 0; i < n_; ++i) count += y[i];
    if (count > cap_) return false;
    extras.push_back(count);
    return true;
  }

 private:
  int n_, cap_;
};

// CountOracle with a scratch buffer kept between calls, safe through clone(). Counts its copies,
// the calls into the shared object, and calls into a copy from a thread other than its first.
struct OracleCounters {
  std::atomic<int> copies{0}, shared_calls{0}, foreign_calls{0};
};
class ScratchCountOracle : public ad3::MapOracle {
 public:
  ScratchCountOracle(int n, int cap, OracleCounters* counters) : n_(n), cap_(cap), counters_(counters) {}
  std::unique_ptr<ad3::MapOracle> clone() const override {
    ++counters_->copies;
    auto copy = std::make_unique<ScratchCountOracle>(n_, cap_, counters_);
    copy->is_copy_ = true;
    return copy;
  }
  void maximize(const double* s, const double* a, std::vector<int>& on, std::vector<int>& extras) const override {
    claim();
    count_map(n_, cap_, s, a, order_, on, extras);
  }
  bool evaluate(const int* y, std::vector<int>& extras) const override {
    claim();
    return CountOracle(n_, cap_).evaluate(y, extras);
  }

 private:
  void claim() const {
    if (!is_copy_) {
      ++counters_->shared_calls;
      return;
    }
    if (owner_ == std::thread::id()) owner_ = std::this_thread::get_id();
    if (owner_ != std::this_thread::get_id()) ++counters_->foreign_calls;
  }

  int n_, cap_;
  OracleCounters* counters_;
  bool is_copy_ = false;
  mutable std::vector<int> order_;
  mutable std::thread::id owner_;
};

// XOR over n links, as a caller would write it (no additional scores).
class XorOracle : public ad3::MapOracle {
 public:
  explicit XorOracle(int n) : n_(n) {}
  void maximize(const double* s, const double*, std::vector<int>& on, std::vector<int>&) const override {
    on.push_back(static_cast<int>(std::max_element(s, s + n_) - s));
  }
  bool evaluate(const int* y, std::vector<int>&) const override {
    int count = 0;
    for (int i = 0; i < n_; ++i) count += y[i];
    return count == 1;
  }

 private:
  int n_;
};

// An oracle whose answers break the contract, to check the solver's checks.
class BadOracle : public ad3::MapOracle {
 public:
  explicit BadOracle(int mode) : mode_(mode) {}
  void maximize(const double*, const double*, std::vector<int>& on, std::vector<int>& extras) const override {
    if (mode_ == 0) on = {0, 5};      // link out of range (2 links)
    if (mode_ == 1) on = {1, 1};      // repeated link
    if (mode_ == 2) extras = {3};     // additional score out of range (1 score)
  }
  bool evaluate(const int*, std::vector<int>& extras) const override {
    if (mode_ == 3) extras = {-1};
    return true;
  }

 private:
  int mode_;
};

// Factors given by a caller's MAP oracle: the local solver against brute force, graphs with them
// against exhaustive enumeration, a caller's XOR against the built-in one, threads, and the checks
// of the oracle's answers.
void test_oracle_factors() {
  std::mt19937 rng(37);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int n = 1; n <= 6; ++n) {
    for (int cap = 0; cap <= n; cap += 2) {
      ad3::FactorSpec spec;
      spec.type = FactorType::kOracle;
      spec.links.resize(n);
      spec.oracle = std::make_shared<CountOracle>(n, cap);
      spec.num_additional = cap + 1;
      auto factor = ad3::detail::make_oracle_factor(spec);
      check_oracle_factor(*factor, rng, "count oracle");
    }
  }
  int certified = 0, infeasible = 0;
  for (int trial = 0; trial < 40; ++trial) {
    Problem p = random_problem(rng, {FactorType::kDense, FactorType::kXor, FactorType::kImply, FactorType::kPair},
                               1 + trial % 3, trial % 2 ? 0.5 : 2.0);
    std::vector<int> units;
    for (int u = 0; u < p.graph.num_units(); ++u) {
      if (rng() % 2 == 0 || units.empty()) units.push_back(u);
    }
    const int cap = static_cast<int>(rng() % (units.size() + 1));
    std::vector<char> negated;  // (odd trials: literals negated at random)
    for (std::size_t i = 0; trial % 2 && i < units.size(); ++i) negated.push_back(static_cast<char>(rng() % 2));
    p.graph.add_oracle(units, cap + 1, std::make_shared<CountOracle>(static_cast<int>(units.size()), cap), negated);
    p.units.resize(p.graph.num_units());
    for (double& v : p.units) v = normal(rng);
    p.extra.resize(p.graph.additional_size());
    for (double& v : p.extra) v = normal(rng);
    check_against_exhaustive(p, certified, infeasible);
  }
  std::printf("graphs with an oracle factor: 40, AD3 certified %d, infeasible %d\n", certified, infeasible);
  CHECK(certified > 10);
  // A caller's XOR and the built-in one: the same relaxation (odd trials: two literals negated).
  for (int trial = 0; trial < 20; ++trial) {
    ad3::FactorGraph builtin, own;
    std::vector<int> units;
    for (int v = 0; v < 6; ++v) units.push_back(builtin.unit(builtin.add_binary_variable()));
    for (int v = 0; v < 6; ++v) own.add_binary_variable();
    const std::vector<char> negated = trial % 2 ? std::vector<char>{1, 0, 0, 1} : std::vector<char>{};
    builtin.add_logic(FactorType::kXor, {units[0], units[1], units[2], units[3]}, negated);
    own.add_oracle({units[0], units[1], units[2], units[3]}, 0, std::make_shared<XorOracle>(4), negated);
    for (ad3::FactorGraph* g : {&builtin, &own}) {
      g->add_logic(FactorType::kXor, {units[2], units[4], units[5]});
      g->add_pair(units[0], units[5]);
      g->add_pair(units[1], units[4]);
    }
    std::vector<double> scores(6), extra(2);
    for (double& v : scores) v = normal(rng);
    for (double& v : extra) v = 2.0 * normal(rng);
    const ad3::FactorSolution a = ad3::solve_ad3(builtin, scores, extra), b = ad3::solve_ad3(own, scores, extra);
    CHECK(a.status == b.status);
    CHECK_CLOSE(b.bound, a.bound, 1e-5, 1e-5);
    CHECK_CLOSE(b.value, a.value, 1e-5, 1e-5);
    CHECK(ad3::solve_exact(own, scores, extra).labels == ad3::solve_exhaustive(builtin, scores, extra).labels);
  }
  // Threads share the oracle object: the same results as one thread.
  Problem p = random_problem(rng, {FactorType::kDense, FactorType::kPair}, 3, 1.0);
  std::vector<int> all(p.graph.num_units());
  for (int u = 0; u < p.graph.num_units(); ++u) all[u] = u;
  p.graph.add_oracle(all, 3, std::make_shared<CountOracle>(p.graph.num_units(), 2));
  const std::size_t batch = 16, u = p.graph.num_units(), f = p.graph.additional_size();
  std::vector<double> units(batch * u), extra(batch * f);
  for (double& v : units) v = normal(rng);
  for (double& v : extra) v = normal(rng);
  const ad3::FactorBatchScores scores{batch, units.data(), units.size(), extra.data(), extra.size()};
  for (ad3::Method method : {ad3::Method::kAd3, ad3::Method::kExact}) {
    const auto one = ad3::solve_batch(p.graph, method, scores, {}, {}, {}, 1);
    const auto four = ad3::solve_batch(p.graph, method, scores, {}, {}, {}, 4);
    for (std::size_t b = 0; b < batch; ++b) {
      CHECK(one[b].labels == four[b].labels && one[b].posteriors == four[b].posteriors);
      CHECK(one[b].bound == four[b].bound);
    }
  }
  // An oracle with scratch buffers and clone(): each solve calls its own copy, from one thread;
  // the same results as the shared CountOracle above.
  OracleCounters counters;
  ad3::FactorGraph q = random_problem(rng, {FactorType::kDense, FactorType::kPair}, 3, 1.0).graph;
  ad3::FactorGraph q_shared = q;
  std::vector<int> q_units(q.num_units());
  for (int i = 0; i < q.num_units(); ++i) q_units[i] = i;
  q.add_oracle(q_units, 3, std::make_shared<ScratchCountOracle>(q.num_units(), 2, &counters));
  q_shared.add_oracle(q_units, 3, std::make_shared<CountOracle>(q.num_units(), 2));
  std::vector<double> q_scores(batch * q.num_units()), q_extra(batch * q.additional_size());
  for (double& v : q_scores) v = normal(rng);
  for (double& v : q_extra) v = normal(rng);
  const ad3::FactorBatchScores q_batch{batch, q_scores.data(), q_scores.size(), q_extra.data(), q_extra.size()};
  for (ad3::Method method : {ad3::Method::kAd3, ad3::Method::kExact}) {
    const int before = counters.copies;
    const auto mine = ad3::solve_batch(q, method, q_batch, {}, {}, {}, 4);
    const auto theirs = ad3::solve_batch(q_shared, method, q_batch, {}, {}, {}, 1);
    CHECK(counters.copies - before == static_cast<int>(batch));  // (one per problem: each solve its own)
    for (std::size_t b = 0; b < batch; ++b) {
      CHECK(mine[b].labels == theirs[b].labels && mine[b].posteriors == theirs[b].posteriors);
      CHECK(mine[b].bound == theirs[b].bound);
    }
  }
  CHECK(counters.shared_calls == 0 && counters.foreign_calls == 0);
  // The checks of the oracle's answers.
  ad3::FactorGraph g;
  const int x = g.add_binary_variable(), y = g.add_binary_variable();
  CHECK(throws_naming([&] { g.add_oracle({x, y}, 0, nullptr); }, "oracle"));
  CHECK(throws_naming([&] { g.add_oracle({x, x}, 0, std::make_shared<XorOracle>(2)); }, "units"));
  CHECK(throws_naming([&] { g.add_oracle({x, y}, 0, std::make_shared<XorOracle>(2), {1}); }, "negated"));
  const char* expected[] = {"gave link 5, expected indices in [0, 2)", "gave link 1 twice",
                            "gave additional score 3, expected indices in [0, 1)",
                            "evaluate gave additional score -1"};
  for (int mode = 0; mode < 4; ++mode) {
    ad3::FactorGraph bad;
    bad.add_binary_variable();
    bad.add_binary_variable();
    bad.add_oracle({0, 1}, 1, std::make_shared<BadOracle>(mode));
    const std::vector<double> us = {0.5, -0.2}, fs = {0.1};
    CHECK(throws_naming([&] {
      if (mode == 3) {
        ad3::score_labelling(bad, us, fs, {1, 0});
      } else {
        ad3::solve_ad3(bad, us, fs);
      }
    }, expected[mode]));
  }
}

int main() {
  test_logic_factors();
  test_active_set_factors();
  test_structured_factors();
  test_simple_cases();
  test_random_graphs();
  test_pairwise_graphs();
  test_errors();
  test_batches();
  test_oracle_factors();
  return TEST_MAIN_RETURN();
}
