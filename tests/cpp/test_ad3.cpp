// Tests of ccnn::ad3 against exhaustive enumeration on random small graphs.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ad3/ad3.h"
#include "ad3/solvers.h"  // (internal: detail::run_on_threads)
#include "check.h"

namespace ad3 = ccnn::ad3;

namespace {

void expect_invalid(const std::function<void()>& f, const std::string& needle);

using Edges = std::vector<std::array<int, 2>>;

struct Problem {
  ad3::Graph graph;
  std::vector<double> unary, pairwise;
};

Problem random_problem(std::mt19937_64& rng, std::vector<int> states, const Edges& edges,
                       double coupling = 1.0) {
  ad3::Graph graph(std::move(states), edges);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> unary(graph.unary_size()), pairwise(graph.pairwise_size());
  for (double& v : unary) v = normal(rng);
  for (double& v : pairwise) v = coupling * normal(rng);
  return {std::move(graph), std::move(unary), std::move(pairwise)};
}

Edges complete_edges(int n) {
  Edges edges;
  for (int a = 0; a < n; ++a) {
    for (int b = a + 1; b < n; ++b) edges.push_back({a, b});
  }
  return edges;
}

// A random spanning tree with randomly oriented edges.
Edges random_tree(std::mt19937_64& rng, int n) {
  Edges edges;
  for (int v = 1; v < n; ++v) {
    const int u = std::uniform_int_distribution<int>(0, v - 1)(rng);
    if (rng() % 2) edges.push_back({u, v}); else edges.push_back({v, u});
  }
  return edges;
}

// A random graph: each pair an edge with probability 1/2, in either orientation.
Edges random_edges(std::mt19937_64& rng, int n) {
  Edges edges;
  for (int a = 0; a < n; ++a) {
    for (int b = a + 1; b < n; ++b) {
      if (rng() % 2) continue;
      if (rng() % 2) edges.push_back({a, b}); else edges.push_back({b, a});
    }
  }
  return edges;
}

std::vector<int> random_states(std::mt19937_64& rng, int n, int lo, int hi) {
  std::vector<int> states(n);
  for (int& k : states) k = std::uniform_int_distribution<int>(lo, hi)(rng);
  return states;
}

// Independent brute force: recursion over all labellings, scored by score_labelling.
double brute_force_optimum(const Problem& p) {
  std::vector<int> labels(p.graph.num_variables(), 0);
  double best = -INFINITY;
  std::function<void(int)> visit = [&](int i) {
    if (i == p.graph.num_variables()) {
      best = std::max(best, ad3::score_labelling(p.graph, p.unary, p.pairwise, labels));
      return;
    }
    for (int s = 0; s < p.graph.num_states(i); ++s) {
      labels[i] = s;
      visit(i + 1);
    }
  };
  visit(0);
  return best;
}

void check_solution_consistent(const Problem& p, const ad3::Solution& s) {
  CHECK(static_cast<int>(s.labels.size()) == p.graph.num_variables());
  CHECK_CLOSE(ad3::score_labelling(p.graph, p.unary, p.pairwise, s.labels), s.score, 0.0, 1e-9);
  CHECK(s.posteriors.size() == p.graph.unary_size());
  for (int i = 0; i < p.graph.num_variables(); ++i) {
    double total = 0.0;
    for (int k = 0; k < p.graph.num_states(i); ++k) {
      const double v = s.posteriors[p.graph.unary_offset(i) + k];
      CHECK(v >= -1e-9 && v <= 1.0 + 1e-9);
      total += v;
    }
    CHECK_CLOSE(total, 1.0, 0.0, 1e-6);
  }
}

void test_exhaustive_matches_brute_force() {
  std::mt19937_64 rng(1);
  for (int trial = 0; trial < 20; ++trial) {
    const int n = 2 + trial % 4;
    Problem p = random_problem(rng, random_states(rng, n, 2, 4), random_edges(rng, n));
    const ad3::Solution s = ad3::solve_exhaustive(p.graph, p.unary, p.pairwise);
    CHECK_CLOSE(s.score, brute_force_optimum(p), 0.0, 1e-12);
    CHECK(s.status == ad3::Status::kOptimal);
    check_solution_consistent(p, s);
  }
}

void test_exact_and_ad3_against_oracle() {
  std::mt19937_64 rng(2);
  int optimal_ad3 = 0, total = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 2 + trial % 6;
    const Edges edges = trial % 3 == 0 ? complete_edges(n) : random_edges(rng, n);
    const double coupling = trial % 2 ? 1.0 : 3.0;
    Problem p = random_problem(rng, random_states(rng, n, 2, 5), edges, coupling);
    const ad3::Solution oracle = ad3::solve_exhaustive(p.graph, p.unary, p.pairwise);
    const double opt = oracle.score, tol = 1e-9 * std::max(1.0, std::fabs(opt));

    const ad3::Solution exact = ad3::solve_exact(p.graph, p.unary, p.pairwise);
    check_solution_consistent(p, exact);
    CHECK(exact.status == ad3::Status::kOptimal);
    CHECK_CLOSE(exact.score, opt, 0.0, tol);
    CHECK(exact.bound >= opt - tol);
    CHECK(exact.bound - exact.score <= tol);

    const ad3::Solution relaxed = ad3::solve_ad3(p.graph, p.unary, p.pairwise);
    check_solution_consistent(p, relaxed);
    CHECK(relaxed.bound >= opt - tol);
    CHECK(relaxed.score <= opt + tol);
    CHECK(relaxed.iterations >= 1 && relaxed.iterations <= 1000);
    if (relaxed.status == ad3::Status::kOptimal) {
      CHECK(relaxed.score >= opt - tol);
      ++optimal_ad3;
    }
    ++total;
  }
  // Most of these small problems have a tight relaxation.
  CHECK(optimal_ad3 > total / 2);
}

void test_trees_are_integral() {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 60; ++trial) {
    const int n = 2 + trial % 8;
    Problem p = random_problem(rng, random_states(rng, n, 2, 4), random_tree(rng, n), 2.0);
    const double opt = ad3::solve_exhaustive(p.graph, p.unary, p.pairwise).score;
    const ad3::Solution relaxed = ad3::solve_ad3(p.graph, p.unary, p.pairwise);
    CHECK(relaxed.status == ad3::Status::kOptimal);
    CHECK_CLOSE(relaxed.score, opt, 0.0, 1e-9 * std::max(1.0, std::fabs(opt)));
  }
}

void test_isolated_variables_and_empty_graph() {
  std::mt19937_64 rng(4);
  Problem p = random_problem(rng, {3, 2, 4}, {{0, 2}});  // variable 1 has no edge
  const double opt = ad3::solve_exhaustive(p.graph, p.unary, p.pairwise).score;
  CHECK_CLOSE(ad3::solve_ad3(p.graph, p.unary, p.pairwise).score, opt, 0.0, 1e-9);
  CHECK_CLOSE(ad3::solve_exact(p.graph, p.unary, p.pairwise).score, opt, 0.0, 1e-9);
  Problem no_edges = random_problem(rng, {2, 5}, {});
  const ad3::Solution s = ad3::solve_ad3(no_edges.graph, no_edges.unary, no_edges.pairwise);
  CHECK(s.status == ad3::Status::kOptimal);
  CHECK_CLOSE(s.score, ad3::solve_exhaustive(no_edges.graph, no_edges.unary, no_edges.pairwise).score,
              0.0, 1e-12);
}

void test_node_limit_gives_valid_bound() {
  std::mt19937_64 rng(5);
  Problem p = random_problem(rng, std::vector<int>(7, 4), complete_edges(7), 2.0);
  const double opt = ad3::solve_exhaustive(p.graph, p.unary, p.pairwise).score;
  ad3::ExactOptions options;
  options.max_nodes = 3;
  const ad3::Solution s = ad3::solve_exact(p.graph, p.unary, p.pairwise, options);
  CHECK(s.bound >= opt - 1e-9);
  CHECK(s.score <= opt + 1e-9);
  CHECK(s.status == ad3::Status::kIterationLimit || s.score >= opt - 1e-9);
}

void test_batch_matches_single_and_is_thread_invariant() {
  std::mt19937_64 rng(6);
  const int n = 6, k = 4;
  const std::size_t batch = 37;
  const ad3::Graph graph(std::vector<int>(n, k), complete_edges(n));
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> unary(batch * graph.unary_size()), pairwise(batch * graph.pairwise_size());
  for (double& v : unary) v = normal(rng);
  for (double& v : pairwise) v = 2.0 * normal(rng);
  for (ad3::Method method : {ad3::Method::kAd3, ad3::Method::kExact, ad3::Method::kExhaustive}) {
    for (bool shared : {false, true}) {
      const std::size_t pairwise_count = shared ? graph.pairwise_size() : pairwise.size();
      std::vector<std::vector<double>> scores_by_threads;
      std::vector<std::vector<std::int64_t>> labels_by_threads;
      for (int threads : {1, 3, 0}) {
        std::vector<std::int64_t> labels(batch * n), iterations(batch);
        std::vector<double> score(batch), bound(batch), post(batch * graph.unary_size());
        std::vector<std::int32_t> status(batch);
        ad3::solve_batch(graph, method,
                         {batch, unary.data(), unary.size(), pairwise.data(), pairwise_count},
                         {labels.data(), score.data(), bound.data(), status.data(), iterations.data(),
                          post.data()},
                         {}, {}, threads);
        std::vector<double> all(score);
        all.insert(all.end(), bound.begin(), bound.end());
        all.insert(all.end(), post.begin(), post.end());
        for (std::size_t b = 0; b < batch; ++b) {
          all.push_back(status[b]);
          all.push_back(static_cast<double>(iterations[b]));
        }
        scores_by_threads.push_back(all);
        labels_by_threads.push_back(labels);
        if (threads != 1) continue;
        for (std::size_t b = 0; b < batch; b += 6) {  // matches the single-problem entry points
          std::vector<double> u(unary.begin() + b * graph.unary_size(),
                                unary.begin() + (b + 1) * graph.unary_size());
          const std::size_t at = shared ? 0 : b * graph.pairwise_size();
          std::vector<double> pw(pairwise.begin() + at, pairwise.begin() + at + graph.pairwise_size());
          const ad3::Solution s = method == ad3::Method::kAd3     ? ad3::solve_ad3(graph, u, pw)
                                  : method == ad3::Method::kExact ? ad3::solve_exact(graph, u, pw)
                                                                  : ad3::solve_exhaustive(graph, u, pw);
          CHECK(s.score == score[b]);
          CHECK(s.bound == bound[b]);
          for (int i = 0; i < n; ++i) CHECK(s.labels[i] == labels[b * n + i]);
        }
      }
      CHECK(scores_by_threads[0] == scores_by_threads[1]);
      CHECK(scores_by_threads[0] == scores_by_threads[2]);
      CHECK(labels_by_threads[0] == labels_by_threads[1]);
      CHECK(labels_by_threads[0] == labels_by_threads[2]);
    }
  }
}

// A graph without variables has one labelling, the empty one (was: "output ... must not be null").
void test_graph_without_variables() {
  const ad3::Graph graph({}, {});
  const std::vector<double> none;
  for (const ad3::Solution& s : {ad3::solve_ad3(graph, none, none), ad3::solve_exact(graph, none, none),
                                 ad3::solve_exhaustive(graph, none, none)}) {
    CHECK(s.labels.empty());
    CHECK(s.posteriors.empty());
    CHECK(s.score == 0.0);
    CHECK(s.bound == 0.0);
    CHECK(s.status == ad3::Status::kOptimal);
  }
}

// Scores whose sums could overflow are rejected (was: +-inf reported "optimal"); scores just
// inside the limit decode to finite results.
void test_scores_that_could_overflow_are_rejected() {
  const ad3::Graph graph({2, 2, 2}, {{0, 1}, {1, 2}, {0, 2}});
  const std::vector<double> zeros_u(6, 0.0), zeros_p(12, 0.0);
  std::vector<double> huge(6, 1.7e308);
  expect_invalid([&] { ad3::solve_exact(graph, huge, zeros_p); }, "too large");
  expect_invalid([&] { ad3::solve_ad3(graph, huge, zeros_p); }, "overflow");
  std::vector<double> big_negative(12, -1e300);  // 3 edges: |S| could reach 3e300
  expect_invalid([&] { ad3::solve_exhaustive(graph, zeros_u, big_negative); }, "rescale the scores");
  std::vector<double> large(6, 0.0);
  for (int i = 0; i < 3; ++i) large[2 * i] = 3e299, large[2 * i + 1] = -3e299;
  for (const ad3::Solution& s : {ad3::solve_ad3(graph, large, zeros_p), ad3::solve_exact(graph, large, zeros_p),
                                 ad3::solve_exhaustive(graph, large, zeros_p)}) {
    CHECK(std::isfinite(s.score) && std::isfinite(s.bound));
    CHECK_CLOSE(s.score, 9e299, 1e-12, 0.0);
    CHECK(s.status == ad3::Status::kOptimal);
  }
  // A batch names the problem; shared pairwise tables are checked once, without a problem.
  std::vector<double> unary(3 * 6, 0.0);
  unary[2 * 6 + 3] = -1.7e308;
  std::vector<std::int64_t> labels(9), iterations(3);
  std::vector<double> score(3), bound(3);
  std::vector<std::int32_t> status(3);
  const ad3::BatchOutput out{labels.data(), score.data(), bound.data(), status.data(), iterations.data(),
                             nullptr};
  expect_invalid([&] {
    ad3::solve_batch(graph, ad3::Method::kExact, {3, unary.data(), 18, zeros_p.data(), 12}, out);
  }, "scores of problem 2 are too large");
  std::vector<double> shared(12, 1e300);
  const std::vector<double> zeros_batch(18, 0.0);
  expect_invalid([&] {
    ad3::solve_batch(graph, ad3::Method::kAd3, {3, zeros_batch.data(), 18, shared.data(), 12}, out);
  }, "the scores are too large");
  expect_invalid([&] {
    ad3::solve_batch(graph, ad3::Method::kPsdd, {3, zeros_batch.data(), 18, zeros_p.data(), 12}, out);
  }, "PSDD decodes general factor graphs");
}

// A fully connected Gaussian problem that branch-and-bound cannot finish for minutes.
Problem hard_problem(std::uint64_t seed, int n = 40) {
  std::mt19937_64 rng(seed);
  return random_problem(rng, std::vector<int>(n, 6), complete_edges(n));
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// time_limit stops a long search with status kTimeLimit, the best labelling so far and a valid
// (not closed) bound; easy problems are not affected.
void test_time_limit() {
  const Problem p = hard_problem(11);
  ad3::ExactOptions options;
  options.time_limit = 0.3;
  const auto start = std::chrono::steady_clock::now();
  const ad3::Solution s = ad3::solve_exact(p.graph, p.unary, p.pairwise, options);
  const double elapsed = seconds_since(start);
  CHECK(elapsed >= 0.3 && elapsed < 1.3);
  CHECK(s.status == ad3::Status::kTimeLimit);
  CHECK(std::string(ad3::status_name(s.status)) == "time_limit");
  CHECK(s.bound > s.score);
  CHECK_CLOSE(ad3::score_labelling(p.graph, p.unary, p.pairwise, s.labels), s.score, 0.0, 1e-9);
  CHECK(s.iterations > 0);
  std::mt19937_64 rng(12);
  const Problem easy = random_problem(rng, std::vector<int>(6, 4), complete_edges(6));
  const ad3::Solution e = ad3::solve_exact(easy.graph, easy.unary, easy.pairwise, options);
  CHECK(e.status == ad3::Status::kOptimal);
  CHECK_CLOSE(e.score, ad3::solve_exhaustive(easy.graph, easy.unary, easy.pairwise).score, 0.0, 1e-9);
  // max_nodes still wins when it comes first, with its own status.
  options.max_nodes = 5000;
  options.time_limit = 60.0;
  const ad3::Solution n = ad3::solve_exact(p.graph, p.unary, p.pairwise, options);
  CHECK(n.status == ad3::Status::kIterationLimit);
  CHECK(n.iterations == 5000);
}

// Cancelling a batch: an atomic flag from another thread, or the calling thread's poll callback
// (also while it waits for the other threads); an exception from the poll comes back as is.
void test_cancel() {
  const int n = 40;
  const ad3::Graph graph(std::vector<int>(n, 6), complete_edges(n));
  std::vector<double> unary, pairwise;
  for (std::uint64_t b = 0; b < 4; ++b) {
    const Problem p = hard_problem(20 + b);
    unary.insert(unary.end(), p.unary.begin(), p.unary.end());
    pairwise.insert(pairwise.end(), p.pairwise.begin(), p.pairwise.end());
  }
  std::vector<std::int64_t> labels(4 * n), iterations(4);
  std::vector<double> score(4), bound(4);
  std::vector<std::int32_t> status(4);
  const ad3::BatchOutput out{labels.data(), score.data(), bound.data(), status.data(), iterations.data(),
                             nullptr};
  const ad3::BatchScores scores{4, unary.data(), unary.size(), pairwise.data(), pairwise.size()};
  auto expect_cancelled = [&](int threads, ad3::Interrupt interrupt, double within, const char* what) {
    const auto start = std::chrono::steady_clock::now();
    bool thrown = false;
    try {
      ad3::solve_batch(graph, ad3::Method::kExact, scores, out, {}, {}, threads, interrupt);
    } catch (const ad3::Cancelled&) {
      thrown = true;
    }
    const double elapsed = seconds_since(start);
    if (!thrown || elapsed > within) {
      std::fprintf(stderr, "%s: thrown %d after %.3f s\n", what, thrown, elapsed);
      ++ccnn_test::failures();
    }
  };
  for (int threads : {1, 2}) {
    std::atomic<bool> flag{false};
    std::thread setter([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      flag.store(true);
    });
    ad3::Interrupt interrupt;
    interrupt.cancel = &flag;
    expect_cancelled(threads, interrupt, 1.2, "atomic flag");
    setter.join();
    int calls = 0;
    interrupt = {};
    interrupt.poll_interval = 0.02;
    interrupt.poll = [&] { return ++calls == 10; };
    expect_cancelled(threads, interrupt, 1.2, "poll");
    CHECK(calls == 10);
  }
  // The calling thread polls while it waits: one problem for 2 threads, the caller gets none.
  {
    int calls = 0;
    ad3::Interrupt interrupt;
    interrupt.poll_interval = 0.02;
    interrupt.poll = [&] { return ++calls == 10; };
    const auto start = std::chrono::steady_clock::now();
    bool thrown = false;
    try {
      ad3::solve_batch(graph, ad3::Method::kExact, {2, unary.data(), 2 * graph.unary_size(), pairwise.data(),
                                                    2 * graph.pairwise_size()},
                       out, {}, {}, 2, interrupt);
    } catch (const ad3::Cancelled&) {
      thrown = true;
    }
    CHECK(thrown);
    CHECK(seconds_since(start) < 1.2);
  }
  ad3::Interrupt throwing;
  throwing.poll_interval = 0.01;
  throwing.poll = []() -> bool { throw std::runtime_error("from the poll"); };
  try {
    ad3::solve_batch(graph, ad3::Method::kExact, scores, out, {}, {}, 2, throwing);
    CHECK(false);
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) == "from the poll");
  }
  // AD3 and exhaustive search stop too; a poll that never cancels changes nothing.
  ad3::Interrupt soon;
  soon.poll_interval = 0.01;
  soon.poll = [] { return true; };
  bool thrown = false;
  try {
    ad3::Ad3Options many;
    many.max_iterations = 1000000;
    many.tolerance = 0.0;
    ad3::solve_batch(graph, ad3::Method::kAd3, scores, out, many, {}, 1, soon);
  } catch (const ad3::Cancelled&) {
    thrown = true;
  }
  CHECK(thrown);
  const ad3::Graph wide(std::vector<int>(29, 2), {});
  const std::vector<double> wide_unary(58, 0.5);
  thrown = false;
  try {
    ad3::solve_batch(wide, ad3::Method::kExhaustive, {1, wide_unary.data(), 58, nullptr, 0},
                     out, {}, {}, 1, soon);
  } catch (const ad3::Cancelled&) {
    thrown = true;
  }
  CHECK(thrown);
  std::mt19937_64 rng(13);
  const Problem easy = random_problem(rng, std::vector<int>(6, 4), complete_edges(6));
  ad3::Interrupt never;
  never.poll_interval = 1e-6;
  never.poll = [] { return false; };
  std::vector<std::int64_t> easy_labels(6);
  double easy_score = 0.0, easy_bound = 0.0;
  std::int32_t easy_status = -1;
  std::int64_t easy_iterations = 0;
  ad3::solve_batch(easy.graph, ad3::Method::kExact,
                   {1, easy.unary.data(), easy.unary.size(), easy.pairwise.data(), easy.pairwise.size()},
                   {easy_labels.data(), &easy_score, &easy_bound, &easy_status, &easy_iterations, nullptr},
                   {}, {}, 1, never);
  CHECK(easy_status == 0);
  CHECK(easy_score == ad3::solve_exact(easy.graph, easy.unary, easy.pairwise).score);
}

// The batches' thread runner: a worker's exception cancels the batch (the other workers see it)
// and comes back once every thread has stopped; every worker runs.
void test_worker_exception_is_rethrown() {
  namespace detail = ccnn::ad3::detail;
  const ad3::Interrupt none;
  detail::BatchCancel cancel(none);
  std::atomic<int> stopped_by_cancel{0};
  std::vector<char> ran(4, 0);
  const auto start = std::chrono::steady_clock::now();
  std::string message;
  try {
    detail::run_on_threads(4, cancel, [&](std::size_t t) {
      ran[t] = 1;
      if (t == 2) throw std::runtime_error("worker 2");
      detail::StopControl stop = cancel.control(t);
      while (!stop.cancelled() && seconds_since(start) < 10.0) std::this_thread::yield();
      if (stop.cancelled()) ++stopped_by_cancel;
    });
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  CHECK(message == "worker 2");
  CHECK(stopped_by_cancel.load() == 3);
  CHECK(std::count(ran.begin(), ran.end(), 1) == 4);
  CHECK(cancel.cancelled());
}

// Expects std::invalid_argument whose message contains `needle`.
void expect_invalid(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    if (std::string(e.what()).find(needle) == std::string::npos) {
      std::fprintf(stderr, "message '%s' lacks '%s'\n", e.what(), needle.c_str());
      ++ccnn_test::failures();
    }
    return;
  }
  std::fprintf(stderr, "expected std::invalid_argument mentioning '%s'\n", needle.c_str());
  ++ccnn_test::failures();
}

void test_invalid_input() {
  expect_invalid([] { ad3::Graph({3, 1}, {{0, 1}}); }, "at least 2");
  expect_invalid([] { ad3::Graph({3, 2}, {{0, 2}}); }, "outside [0, 2)");
  expect_invalid([] { ad3::Graph({3, 2}, {{-1, 1}}); }, "outside");
  expect_invalid([] { ad3::Graph({3, 2}, {{1, 1}}); }, "self-loop");
  expect_invalid([] { ad3::Graph({3, 2, 2}, {{0, 1}, {1, 2}, {0, 1}}); }, "more than once");
  expect_invalid([] { ad3::Graph({3, 2, 2}, {{0, 1}, {1, 0}}); }, "more than once");
  const ad3::Graph graph({3, 2}, {{0, 1}});
  const std::vector<double> unary(5, 0.0), pairwise(6, 0.0);
  expect_invalid([&] { ad3::solve_ad3(graph, std::vector<double>(4), pairwise); }, "unary: expected 5");
  expect_invalid([&] { ad3::solve_exact(graph, unary, std::vector<double>(9)); }, "pairwise: expected 6");
  std::vector<double> bad = unary;
  bad[2] = NAN;
  expect_invalid([&] { ad3::solve_ad3(graph, bad, pairwise); }, "NaN");
  std::vector<double> bad_pw = pairwise;
  bad_pw[5] = INFINITY;
  expect_invalid([&] { ad3::solve_exact(graph, unary, bad_pw); }, "infinite");
  expect_invalid([&] { ad3::solve_exhaustive(graph, unary, bad_pw); }, "pairwise");
  ad3::Ad3Options options;
  options.eta = -1.0;
  expect_invalid([&] { ad3::solve_ad3(graph, unary, pairwise, options); }, "eta");
  options = {};
  options.max_iterations = 0;
  expect_invalid([&] { ad3::solve_ad3(graph, unary, pairwise, options); }, "max_iterations");
  ad3::ExactOptions exact_options;
  exact_options.time_limit = -1.0;
  expect_invalid([&] { ad3::solve_exact(graph, unary, pairwise, exact_options); }, "time_limit");
  exact_options.time_limit = NAN;
  expect_invalid([&] { ad3::solve_exact(graph, unary, pairwise, exact_options); }, "time_limit");
  expect_invalid([&] { ad3::score_labelling(graph, unary, pairwise, {0, 2}); }, "labels");
  const ad3::Graph big(std::vector<int>(40, 2), {});
  expect_invalid([&] { ad3::solve_exhaustive(big, std::vector<double>(80), {}); }, "2^30");
  // Batch: sizes, and the first problem with a non-finite score is named.
  std::vector<double> batch_unary(4 * 5, 0.0);
  batch_unary[3 * 5 + 1] = NAN;
  batch_unary[2 * 5 + 4] = -INFINITY;
  std::vector<std::int64_t> labels(8), iterations(4);
  std::vector<double> score(4), bound(4);
  std::vector<std::int32_t> status(4);
  const ad3::BatchOutput out{labels.data(), score.data(), bound.data(), status.data(),
                             iterations.data(), nullptr};
  for (int threads : {1, 2, 4}) {
    expect_invalid([&] {
      ad3::solve_batch(graph, ad3::Method::kExact, {4, batch_unary.data(), 20, pairwise.data(), 6}, out,
                       {}, {}, threads);
    }, "value 4 of problem 2");
  }
  expect_invalid([&] {
    ad3::solve_batch(graph, ad3::Method::kAd3, {4, batch_unary.data(), 19, pairwise.data(), 6}, out);
  }, "unary");
  expect_invalid([&] {
    ad3::solve_batch(graph, ad3::Method::kAd3, {4, batch_unary.data(), 20, pairwise.data(), 12}, out);
  }, "pairwise");
}

}  // namespace

int main() {
  test_exhaustive_matches_brute_force();
  test_exact_and_ad3_against_oracle();
  test_trees_are_integral();
  test_isolated_variables_and_empty_graph();
  test_node_limit_gives_valid_bound();
  test_batch_matches_single_and_is_thread_invariant();
  test_invalid_input();
  test_graph_without_variables();
  test_scores_that_could_overflow_are_rejected();
  test_time_limit();
  test_cancel();
  test_worker_exception_is_rethrown();
  return TEST_MAIN_RETURN();
}
