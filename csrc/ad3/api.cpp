// The public entry points of ad3.h: argument checks, single problems and parallel batches.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>

#include "ad3/solvers.h"

namespace ccnn {
namespace ad3 {
namespace detail {

void check_options(const Ad3Options& options) {
  if (options.max_iterations < 1) {
    throw std::invalid_argument("max_iterations: must be at least 1, got " +
                                std::to_string(options.max_iterations));
  }
  if (!(options.eta > 0.0) || !std::isfinite(options.eta)) {
    throw std::invalid_argument("eta: must be a positive finite number, got " + std::to_string(options.eta));
  }
  if (!(options.tolerance >= 0.0) || !std::isfinite(options.tolerance)) {
    throw std::invalid_argument("tolerance: must be a finite number >= 0, got " +
                                std::to_string(options.tolerance));
  }
  if (!(options.gap_tolerance >= 0.0) || !std::isfinite(options.gap_tolerance)) {
    throw std::invalid_argument("gap_tolerance: must be a finite number >= 0, got " +
                                std::to_string(options.gap_tolerance));
  }
}

void check_options(const ExactOptions& options) {
  if (!(options.gap_tolerance >= 0.0) || !std::isfinite(options.gap_tolerance)) {
    throw std::invalid_argument("gap_tolerance: must be a finite number >= 0, got " +
                                std::to_string(options.gap_tolerance));
  }
  if (options.max_nodes < 0) {
    throw std::invalid_argument("max_nodes: must be >= 0 (0: no limit), got " +
                                std::to_string(options.max_nodes));
  }
}

namespace {

constexpr double kMaxExhaustiveLabellings = 1073741824.0;  // 2^30

void check_exhaustive_size(const Graph& graph) {
  double count = 1.0;
  for (int i = 0; i < graph.num_variables(); ++i) count *= graph.num_states(i);
  if (count > kMaxExhaustiveLabellings) {
    throw std::invalid_argument("exhaustive search: the graph has " + std::to_string(count) +
                                " labellings; at most 2^30 can be enumerated");
  }
}

void check_sizes(const Graph& graph, std::size_t unary_count, std::size_t pairwise_count) {
  if (unary_count != graph.unary_size()) {
    throw std::invalid_argument("unary: expected " + std::to_string(graph.unary_size()) +
                                " scores (the sum of the numbers of states), got " +
                                std::to_string(unary_count));
  }
  if (pairwise_count != graph.pairwise_size()) {
    throw std::invalid_argument("pairwise: expected " + std::to_string(graph.pairwise_size()) +
                                " scores (K_a * K_b per edge), got " + std::to_string(pairwise_count));
  }
}

}  // namespace
}  // namespace detail

namespace {

// A single problem is a batch of one, solved on the calling thread.
Solution solve_single(const Graph& graph, Method method, const std::vector<double>& unary,
                      const std::vector<double>& pairwise, const Ad3Options& ad3_options,
                      const ExactOptions& exact_options) {
  detail::check_sizes(graph, unary.size(), pairwise.size());
  Solution solution;
  std::vector<std::int64_t> labels(graph.num_variables());
  std::int32_t status = 0;
  solution.posteriors.resize(graph.unary_size());
  solve_batch(graph, method, {1, unary.data(), unary.size(), pairwise.data(), pairwise.size()},
              {labels.data(), &solution.score, &solution.bound, &status, &solution.iterations,
               solution.posteriors.data()},
              ad3_options, exact_options, 1);
  solution.labels.assign(labels.begin(), labels.end());
  solution.status = static_cast<Status>(status);
  return solution;
}

}  // namespace

Solution solve_ad3(const Graph& graph, const std::vector<double>& unary,
                   const std::vector<double>& pairwise, const Ad3Options& options) {
  return solve_single(graph, Method::kAd3, unary, pairwise, options, {});
}

Solution solve_exact(const Graph& graph, const std::vector<double>& unary,
                     const std::vector<double>& pairwise, const ExactOptions& options) {
  return solve_single(graph, Method::kExact, unary, pairwise, {}, options);
}

Solution solve_exhaustive(const Graph& graph, const std::vector<double>& unary,
                          const std::vector<double>& pairwise) {
  return solve_single(graph, Method::kExhaustive, unary, pairwise, {}, {});
}

double score_labelling(const Graph& graph, const std::vector<double>& unary,
                       const std::vector<double>& pairwise, const std::vector<int>& labels) {
  detail::check_sizes(graph, unary.size(), pairwise.size());
  if (labels.size() != static_cast<std::size_t>(graph.num_variables())) {
    throw std::invalid_argument("labels: expected " + std::to_string(graph.num_variables()) +
                                " labels, got " + std::to_string(labels.size()));
  }
  for (int i = 0; i < graph.num_variables(); ++i) {
    if (labels[i] < 0 || labels[i] >= graph.num_states(i)) {
      throw std::invalid_argument("labels: label " + std::to_string(labels[i]) + " of variable " +
                                  std::to_string(i) + " is outside [0, " +
                                  std::to_string(graph.num_states(i)) + ")");
    }
  }
  return detail::labelling_score(graph, unary.data(), pairwise.data(), labels.data());
}

namespace {

// Solves problems [begin, end) of a batch with one solver object (one thread).
template <typename Solver>
class BatchWorker {
 public:
  BatchWorker(const Graph& graph, Solver solver, const BatchScores& scores, const BatchOutput& output,
              bool shared_pairwise)
      : graph_(graph), solver_(std::move(solver)), scores_(scores), output_(output),
        shared_pairwise_(shared_pairwise) {}

  // Returns false (with the message in error) at the first problem with a non-finite score.
  bool run(std::size_t begin, std::size_t end, std::string& error, std::size_t& error_problem) {
    const std::size_t u = graph_.unary_size(), p = graph_.pairwise_size();
    const int n = graph_.num_variables();
    for (std::size_t b = begin; b < end; ++b) {
      const double* unary = scores_.unary + b * u;
      const double* pairwise = scores_.pairwise + (shared_pairwise_ ? 0 : b * p);
      try {
        detail::check_finite(unary, u, "unary", static_cast<long>(b));
        if (!shared_pairwise_) detail::check_finite(pairwise, p, "pairwise", static_cast<long>(b));
      } catch (const std::invalid_argument& e) {
        error = e.what();
        error_problem = b;
        return false;
      }
      const detail::RawResult raw = solver_.solve(unary, pairwise);
      const std::vector<int>& labels = solver_.labels();
      for (int i = 0; i < n; ++i) output_.labels[b * n + i] = labels[i];
      output_.score[b] = raw.score;
      output_.bound[b] = raw.bound;
      output_.status[b] = static_cast<std::int32_t>(raw.status);
      output_.iterations[b] = raw.iterations;
      if (output_.posteriors != nullptr) write_posteriors(output_.posteriors + b * u, labels);
    }
    return true;
  }

 private:
  void write_posteriors(double* out, const std::vector<int>& labels);

  const Graph& graph_;
  Solver solver_;
  const BatchScores& scores_;
  const BatchOutput& output_;
  bool shared_pairwise_;
};

template <>
void BatchWorker<detail::Ad3Solver>::write_posteriors(double* out, const std::vector<int>&) {
  std::copy(solver_.posteriors().begin(), solver_.posteriors().end(), out);
}

template <typename Solver>
void BatchWorker<Solver>::write_posteriors(double* out, const std::vector<int>& labels) {
  std::fill(out, out + graph_.unary_size(), 0.0);
  for (int i = 0; i < graph_.num_variables(); ++i) out[graph_.unary_offset(i) + labels[i]] = 1.0;
}

template <typename MakeSolver>
void run_batch(const Graph& graph, const BatchScores& scores, const BatchOutput& output,
               bool shared_pairwise, int num_threads, MakeSolver make_solver) {
  const std::size_t batch = scores.batch_size;
  std::size_t threads = num_threads > 0 ? static_cast<std::size_t>(num_threads)
                                        : std::max(1u, std::thread::hardware_concurrency());
  threads = std::min(threads, batch);
  // Dynamic scheduling in chunks handed out in increasing order; results do not depend on which
  // thread solves a problem. A failing thread stops, and no new chunk is handed out after that, so
  // the lowest failing problem is always found.
  const std::size_t chunk = std::max<std::size_t>(1, std::min<std::size_t>(32, batch / (8 * threads)));
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::string> errors(threads);
  std::vector<std::size_t> error_problems(threads, batch);
  auto work = [&](std::size_t t) {
    BatchWorker<decltype(make_solver())> worker(graph, make_solver(), scores, output, shared_pairwise);
    while (!failed.load()) {
      const std::size_t begin = next.fetch_add(chunk);
      if (begin >= batch) break;
      if (!worker.run(begin, std::min(batch, begin + chunk), errors[t], error_problems[t])) {
        failed.store(true);
        break;
      }
    }
  };
  if (threads == 1) {
    work(0);
  } else {
    std::vector<std::thread> pool;
    pool.reserve(threads - 1);
    for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work, t);
    work(0);
    for (std::thread& thread : pool) thread.join();
  }
  if (failed.load()) {
    const std::size_t worst = static_cast<std::size_t>(
        std::min_element(error_problems.begin(), error_problems.end()) - error_problems.begin());
    throw std::invalid_argument(errors[worst]);
  }
}

}  // namespace

void solve_batch(const Graph& graph, Method method, const BatchScores& scores,
                 const BatchOutput& output, const Ad3Options& ad3_options,
                 const ExactOptions& exact_options, int num_threads) {
  const std::size_t batch = scores.batch_size, u = graph.unary_size(), p = graph.pairwise_size();
  if (scores.unary_count != batch * u) {
    throw std::invalid_argument("unary: expected batch_size * " + std::to_string(u) + " = " +
                                std::to_string(batch * u) + " scores, got " +
                                std::to_string(scores.unary_count));
  }
  const bool shared_pairwise = scores.pairwise_count == p;
  if (!shared_pairwise && scores.pairwise_count != batch * p) {
    throw std::invalid_argument("pairwise: expected " + std::to_string(p) +
                                " scores (shared by the batch) or batch_size * " + std::to_string(p) +
                                " = " + std::to_string(batch * p) + ", got " +
                                std::to_string(scores.pairwise_count));
  }
  if (batch == 0) return;
  if ((u > 0 && scores.unary == nullptr) || (p > 0 && scores.pairwise == nullptr)) {
    throw std::invalid_argument("scores: null unary or pairwise pointer");
  }
  if (output.labels == nullptr || output.score == nullptr || output.bound == nullptr ||
      output.status == nullptr || output.iterations == nullptr) {
    throw std::invalid_argument("output: labels, score, bound, status and iterations must not be null");
  }
  if (shared_pairwise) detail::check_finite(scores.pairwise, p, "pairwise", -1);
  switch (method) {
    case Method::kAd3:
      detail::check_options(ad3_options);
      run_batch(graph, scores, output, shared_pairwise, num_threads,
                [&] { return detail::Ad3Solver(graph, ad3_options); });
      break;
    case Method::kExact:
      detail::check_options(exact_options);
      run_batch(graph, scores, output, shared_pairwise, num_threads,
                [&] { return detail::ExactSolver(graph, exact_options); });
      break;
    case Method::kExhaustive:
      detail::check_exhaustive_size(graph);
      run_batch(graph, scores, output, shared_pairwise, num_threads,
                [&] { return detail::ExhaustiveSolver(graph); });
      break;
    default:
      throw std::invalid_argument("method: unknown decoding method");
  }
}

}  // namespace ad3
}  // namespace ccnn
