// solve_batch for general factor graphs (factor_graph.h): problems handed out one at a time to
// std::threads, each with its own GeneralModel (the local solvers keep state) and StopControl.
#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>

#include "ad3/general.h"

namespace ccnn {
namespace ad3 {

std::vector<FactorSolution> solve_batch(const FactorGraph& graph, Method method, const FactorBatchScores& scores,
                                        const Ad3Options& ad3_options, const ExactOptions& exact_options,
                                        const PsddOptions& psdd_options, int num_threads,
                                        const Interrupt& interrupt) {
  const std::size_t batch = scores.batch_size, u = graph.num_units(), f = graph.additional_size();
  if (scores.unit_count != batch * u) {
    throw std::invalid_argument("unit_scores: expected batch_size * " + std::to_string(u) + " = " +
                                std::to_string(batch * u) + " scores, got " + std::to_string(scores.unit_count));
  }
  const bool shared = scores.factor_count == f;
  if (!shared && scores.factor_count != batch * f) {
    throw std::invalid_argument("factor_scores: expected " + std::to_string(f) +
                                " scores (shared by the batch) or batch_size * " + std::to_string(f) + " = " +
                                std::to_string(batch * f) + ", got " + std::to_string(scores.factor_count));
  }
  if ((u > 0 && batch > 0 && scores.unit_scores == nullptr) || (f > 0 && scores.factor_scores == nullptr)) {
    throw std::invalid_argument("scores: null unit or factor score pointer");
  }
  switch (method) {
    case Method::kAd3: detail::check_options(ad3_options); break;
    case Method::kExact: detail::check_options(exact_options); break;
    case Method::kExhaustive: detail::check_exhaustive_size(graph); break;
    case Method::kPsdd: detail::check_options(psdd_options); break;
    default: throw std::invalid_argument("method: unknown decoding method");
  }
  // Scores: checked here, before any thread starts, naming the problem.
  for (std::size_t b = 0; b < batch; ++b) {
    const double* fs = scores.factor_scores == nullptr ? nullptr : scores.factor_scores + (shared ? 0 : b * f);
    try {
      detail::check_general_scores(graph, scores.unit_scores + b * u, fs);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string(e.what()) + " (problem " + std::to_string(b) + ")");
    }
  }
  std::vector<FactorSolution> results(batch);
  if (batch == 0) return results;
  std::size_t threads = num_threads > 0 ? static_cast<std::size_t>(num_threads)
                                        : std::max(1u, std::thread::hardware_concurrency());
  threads = std::min(threads, batch);
  std::atomic<std::size_t> next{0};
  std::vector<char> done(batch, 0);  // solved, not cut short by a cancel
  detail::BatchCancel cancel(interrupt);
  detail::run_on_threads(threads, cancel, [&](std::size_t t) {
    detail::StopControl stop = cancel.control(t);
    for (;;) {
      if (stop.cancelled()) break;
      const std::size_t b = next.fetch_add(1);
      if (b >= batch) break;
      const double* us = scores.unit_scores + b * u;
      const double* fs = scores.factor_scores == nullptr ? nullptr : scores.factor_scores + (shared ? 0 : b * f);
      // A fresh model per problem: active sets must not carry over (the same result as alone).
      detail::GeneralModel model(graph);
      results[b] = detail::solve_general(method, model, us, fs, ad3_options, exact_options, psdd_options, stop);
      if (stop.reason() == detail::StopReason::kCancel) break;
      done[b] = 1;
    }
  });
  if (std::find(done.begin(), done.end(), 0) != done.end()) {  // cancelled before the end
    cancel.rethrow_poll_error();
    throw Cancelled();
  }
  return results;  // (a cancel that came after the last problem changes nothing)
}

}  // namespace ad3
}  // namespace ccnn
