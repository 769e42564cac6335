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
  if (options.max_qp_steps < 0 || options.max_qp_steps == 1) {
    throw std::invalid_argument(
        "max_qp_steps: must be 0 (exact local solutions) or at least 2 (a solve over the active set and "
        "an oracle call), got " + std::to_string(options.max_qp_steps));
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
  // Above ~3e10 s (a millennium) a deadline would overflow the clock's 64-bit nanoseconds.
  if (!(options.time_limit >= 0.0) || !(options.time_limit <= 1e9)) {
    throw std::invalid_argument("time_limit: must be a number of seconds in [0, 1e9] (0: no limit), got " +
                                std::to_string(options.time_limit));
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
  // shared_magnitude: pairwise_magnitude of the shared pairwise scores (when shared).
  BatchWorker(const Graph& graph, Solver solver, const BatchScores& scores, const BatchOutput& output,
              bool shared_pairwise, double shared_magnitude, double time_limit, detail::StopControl stop)
      : graph_(graph), solver_(std::move(solver)), scores_(scores), output_(output),
        shared_pairwise_(shared_pairwise), shared_magnitude_(shared_magnitude), time_limit_(time_limit),
        stop_(stop) {
    solver_.set_stop(&stop_);
  }

  // Returns false (with the message in error) at the first problem with a non-finite or too large
  // score, or (error empty) when the batch is cancelled.
  bool run(std::size_t begin, std::size_t end, std::string& error, std::size_t& error_problem) {
    const std::size_t u = graph_.unary_size(), p = graph_.pairwise_size();
    const int n = graph_.num_variables();
    for (std::size_t b = begin; b < end; ++b) {
      if (stop_.cancelled()) return false;
      const double* unary = scores_.unary + b * u;
      const double* pairwise = scores_.pairwise + (shared_pairwise_ ? 0 : b * p);
      try {
        check_scores(unary, pairwise, static_cast<long>(b));
      } catch (const std::invalid_argument& e) {
        error = e.what();
        error_problem = b;
        return false;
      }
      stop_.begin_problem(time_limit_);
      const detail::RawResult raw = solver_.solve(unary, pairwise);
      if (stop_.reason() == detail::StopReason::kCancel) return false;
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
  void check_scores(const double* unary, const double* pairwise, long problem);
  void write_posteriors(double* out, const std::vector<int>& labels);

  const Graph& graph_;
  Solver solver_;
  const BatchScores& scores_;
  const BatchOutput& output_;
  bool shared_pairwise_;
  double shared_magnitude_;
  double time_limit_;
  detail::StopControl stop_;
};

// Throws std::invalid_argument for a non-finite score or one whose sums could overflow (see ad3.h).
// Fast path: one branch-free pass finds the largest |score| of the unary and of the pairwise
// scores; (N * largest unary + E * largest pairwise) <= kMaxScoreMagnitude suffices. Only
// otherwise are the exact per-variable / per-edge sums (and the error messages) computed.
template <typename Solver>
void BatchWorker<Solver>::check_scores(const double* unary, const double* pairwise, long problem) {
  const std::size_t u = graph_.unary_size(), p = graph_.pairwise_size();
  const std::uint64_t unary_bits = detail::largest_magnitude_bits(unary, u);
  if (unary_bits >= detail::kNonFiniteBits) detail::check_finite(unary, u, "unary", problem);
  double pairwise_part = shared_magnitude_;
  if (!shared_pairwise_) {
    const std::uint64_t pairwise_bits = detail::largest_magnitude_bits(pairwise, p);
    if (pairwise_bits >= detail::kNonFiniteBits) detail::check_finite(pairwise, p, "pairwise", problem);
    pairwise_part = graph_.num_edges() * detail::magnitude_from_bits(pairwise_bits);
  }
  const double quick = graph_.num_variables() * detail::magnitude_from_bits(unary_bits) + pairwise_part;
  if (quick <= kMaxScoreMagnitude) return;
  detail::check_magnitude(detail::unary_magnitude(graph_, unary) +
                              (shared_pairwise_ ? shared_magnitude_
                                                : detail::pairwise_magnitude(graph_, pairwise)),
                          problem);
}

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
               bool shared_pairwise, double shared_magnitude, double time_limit, int num_threads,
               const Interrupt& interrupt, MakeSolver make_solver) {
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
  detail::BatchCancel cancel(interrupt);
  detail::run_on_threads(threads, cancel, [&](std::size_t t) {
    BatchWorker<decltype(make_solver())> worker(graph, make_solver(), scores, output, shared_pairwise,
                                                shared_magnitude, time_limit, cancel.control(t));
    while (!failed.load()) {
      const std::size_t begin = next.fetch_add(chunk);
      if (begin >= batch) break;
      if (!worker.run(begin, std::min(batch, begin + chunk), errors[t], error_problems[t])) {
        failed.store(true);
        break;
      }
    }
  });
  cancel.rethrow_poll_error();
  if (cancel.cancelled()) {
    // Cancelled, unless every problem was solved before anyone noticed.
    bool all_solved = !failed.load();
    if (all_solved) return;
    bool input_error = false;
    for (const std::string& e : errors) input_error = input_error || !e.empty();
    if (!input_error) throw Cancelled();
  }
  if (failed.load()) {
    std::size_t worst = threads;
    for (std::size_t t = 0; t < threads; ++t) {
      if (!errors[t].empty() && (worst == threads || error_problems[t] < error_problems[worst])) worst = t;
    }
    if (worst == threads) throw Cancelled();
    throw std::invalid_argument(errors[worst]);
  }
}

}  // namespace

void solve_batch(const Graph& graph, Method method, const BatchScores& scores,
                 const BatchOutput& output, const Ad3Options& ad3_options,
                 const ExactOptions& exact_options, int num_threads, const Interrupt& interrupt) {
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
  // (A graph without variables has empty labels: their pointer may be null.)
  if ((output.labels == nullptr && graph.num_variables() > 0) || output.score == nullptr ||
      output.bound == nullptr || output.status == nullptr || output.iterations == nullptr) {
    throw std::invalid_argument("output: labels, score, bound, status and iterations must not be null");
  }
  double shared_magnitude = 0.0;
  if (shared_pairwise) {
    detail::check_finite(scores.pairwise, p, "pairwise", -1);
    shared_magnitude = detail::pairwise_magnitude(graph, scores.pairwise);
    detail::check_magnitude(shared_magnitude, -1);
  }
  switch (method) {
    case Method::kAd3:
      detail::check_options(ad3_options);
      run_batch(graph, scores, output, shared_pairwise, shared_magnitude, 0.0, num_threads, interrupt,
                [&] { return detail::Ad3Solver(graph, ad3_options); });
      break;
    case Method::kExact:
      detail::check_options(exact_options);
      run_batch(graph, scores, output, shared_pairwise, shared_magnitude, exact_options.time_limit,
                num_threads, interrupt, [&] { return detail::ExactSolver(graph, exact_options); });
      break;
    case Method::kExhaustive:
      detail::check_exhaustive_size(graph);
      run_batch(graph, scores, output, shared_pairwise, shared_magnitude, 0.0, num_threads, interrupt,
                [&] { return detail::ExhaustiveSolver(graph); });
      break;
    case Method::kPsdd:
      throw std::invalid_argument("method: PSDD decodes general factor graphs (FactorGraph), not pairwise Graphs");
    default:
      throw std::invalid_argument("method: unknown decoding method");
  }
}

}  // namespace ad3
}  // namespace ccnn
