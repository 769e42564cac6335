// Decodes a small pairwise factor graph with ccnn::ad3 three ways (AD3, certified exact
// branch-and-bound, exhaustive enumeration), a general factor graph (a dense factor over three
// variables with logic and budget constraints and a factor given by its own MAP oracle), then a
// batch of problems that share one graph.
// Exits with status 1 if the exact and exhaustive optima disagree.
//
// Build: part of the ccnn CMake project (target decode_example), or on its own:
//   cmake -S examples -B build-examples && cmake --build build-examples && build-examples/decode_example
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <vector>

#include "ad3/ad3.h"
#include "ad3/factor_graph.h"

namespace ad3 = ccnn::ad3;

namespace {

void print(const char* name, const ad3::Solution& s) {
  std::printf("%-10s labels = [", name);
  for (std::size_t i = 0; i < s.labels.size(); ++i) std::printf(i ? ", %d" : "%d", s.labels[i]);
  std::printf("]  score = %.6f  bound = %.6f  status = %s  iterations = %lld\n", s.score, s.bound,
              ad3::status_name(s.status), static_cast<long long>(s.iterations));
}

// A factor of your own, given by its MAP oracle (as the reference's GenericFactor subclasses): at
// most one of its n units is on, and one that is collects its additional score 0.
class AtMostOneScored : public ad3::MapOracle {
 public:
  explicit AtMostOneScored(int n) : n_(n) {}
  void maximize(const double* s, const double* a, std::vector<int>& on, std::vector<int>& extras) const override {
    const int best = static_cast<int>(std::max_element(s, s + n_) - s);
    if (s[best] + a[0] > 0.0) {  // (else: all off, value 0)
      on.push_back(best);
      extras.push_back(0);
    }
  }
  bool evaluate(const int* y, std::vector<int>& extras) const override {
    int count = 0;
    for (int i = 0; i < n_; ++i) count += y[i];
    if (count == 1) extras.push_back(0);
    return count <= 1;
  }

 private:
  int n_;
};

}  // namespace

int main() {
  // Four variables with 3, 2, 4 and 2 states; a 4-cycle with one chord.
  const ad3::Graph graph({3, 2, 4, 2}, {{0, 1}, {1, 2}, {2, 3}, {3, 0}, {0, 2}});
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal(0.0, 1.0);
  // Flat score layout: variable i's K_i scores at graph.unary_offset(i); edge e = (a, b) holds a
  // K_a x K_b row-major table at graph.pairwise_offset(e).
  std::vector<double> unary(graph.unary_size()), pairwise(graph.pairwise_size());
  for (double& v : unary) v = normal(rng);
  for (double& v : pairwise) v = normal(rng);

  ad3::Ad3Options options;  // defaults: max_iterations 1000, eta 0.1, adaptive eta, tolerance 1e-6
  const ad3::Solution relaxed = ad3::solve_ad3(graph, unary, pairwise, options);
  const ad3::Solution exact = ad3::solve_exact(graph, unary, pairwise);
  const ad3::Solution oracle = ad3::solve_exhaustive(graph, unary, pairwise);
  print("ad3", relaxed);
  print("exact", exact);
  print("exhaustive", oracle);
  std::printf("AD3 posteriors of variable 2:");
  for (int s = 0; s < graph.num_states(2); ++s) {
    std::printf(" %.3f", relaxed.posteriors[graph.unary_offset(2) + s]);
  }
  std::printf("\n");
  if (std::fabs(exact.score - oracle.score) > 1e-9 || exact.status != ad3::Status::kOptimal) {
    std::fprintf(stderr, "exact and exhaustive disagree\n");
    return 1;
  }

  // A general factor graph: three 3-state tags with a dense factor over all three, four binary
  // labels of which exactly one is on (XOR), "tag 0 in state 2 implies label 1" (IMPLY on
  // units), at most two of tags 1, 2 in state 0 and label 3 (BUDGET), and at most one of tags 1, 2
  // in state 1 and label 2, scored when one is (our own oracle).
  ad3::FactorGraph general;
  const int t0 = general.add_multi_variable(3), t1 = general.add_multi_variable(3), t2 = general.add_multi_variable(3);
  std::vector<int> label_units;
  for (int i = 0; i < 4; ++i) label_units.push_back(general.unit(general.add_binary_variable()));
  general.add_dense({t0, t1, t2});  // 27 joint-state scores, row-major
  general.add_logic(ad3::FactorType::kXor, label_units);
  general.add_logic(ad3::FactorType::kImply, {general.unit(t0, 2), label_units[1]});
  general.add_budget({general.unit(t1, 0), general.unit(t2, 0), label_units[3]}, 2);
  general.add_oracle({general.unit(t1, 1), general.unit(t2, 1), label_units[2]}, 1, std::make_shared<AtMostOneScored>(3));
  std::vector<double> unit_scores(general.num_units()), factor_scores(general.additional_size());
  for (double& v : unit_scores) v = normal(rng);
  for (double& v : factor_scores) v = normal(rng);
  const ad3::FactorSolution general_exact = ad3::solve_exact(general, unit_scores, factor_scores);
  const ad3::FactorSolution general_oracle = ad3::solve_exhaustive(general, unit_scores, factor_scores);
  std::printf("general graph: exact score = %.6f (%s), exhaustive %.6f, labels = [", general_exact.score,
              ad3::status_name(general_exact.status), general_oracle.score);
  for (std::size_t i = 0; i < general_exact.labels.size(); ++i) std::printf(i ? ", %d" : "%d", general_exact.labels[i]);
  std::printf("]\n");
  if (std::fabs(general_exact.score - general_oracle.score) > 1e-9 || general_exact.status != ad3::Status::kOptimal) {
    std::fprintf(stderr, "general graph: exact and exhaustive disagree\n");
    return 1;
  }

  // A batch: 1000 fully connected problems with 8 variables of 6 states, solved on all cores.
  const int n = 8, k = 6;
  std::vector<std::array<int, 2>> edges;
  for (int a = 0; a < n; ++a) {
    for (int b = a + 1; b < n; ++b) edges.push_back({a, b});
  }
  const ad3::Graph complete(std::vector<int>(n, k), edges);
  const std::size_t batch = 1000;
  std::vector<double> batch_unary(batch * complete.unary_size());
  std::vector<double> batch_pairwise(batch * complete.pairwise_size());
  for (double& v : batch_unary) v = normal(rng);
  for (double& v : batch_pairwise) v = normal(rng);
  std::vector<std::int64_t> labels(batch * n), iterations(batch);
  std::vector<double> score(batch), bound(batch);
  std::vector<std::int32_t> status(batch);
  ad3::BatchScores scores{batch, batch_unary.data(), batch_unary.size(), batch_pairwise.data(),
                          batch_pairwise.size()};
  ad3::BatchOutput output{labels.data(), score.data(), bound.data(), status.data(), iterations.data(),
                          nullptr};
  ad3::solve_batch(complete, ad3::Method::kExact, scores, output, {}, {}, /*num_threads=*/0);
  int certified = 0;
  for (std::size_t b = 0; b < batch; ++b) certified += status[b] == 0;
  std::printf("batch of %zu problems (N = %d, K = %d, complete graph): %d certified optimal\n", batch, n,
              k, certified);
  return certified == static_cast<int>(batch) ? 0 : 1;
}
