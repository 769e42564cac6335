// Internal to csrc/ad3: the solver classes behind ad3.h and the helpers they share.
// A solver object owns all its working memory, sized from the Graph once, so that solving many
// problems on one thread (solve_batch) allocates nothing per problem or per iteration.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "ad3/ad3.h"

namespace ccnn {
namespace ad3 {
namespace detail {

// Throw std::invalid_argument naming the first out-of-range option.
void check_options(const Ad3Options& options);
void check_options(const ExactOptions& options);

// Throws std::invalid_argument naming `what` (and the problem, when problem >= 0) at the first
// NaN or infinite value.
void check_finite(const double* values, std::size_t count, const char* what, long problem);

// The bit pattern of max_k |values[k]|: ordered like the magnitudes, with NaN and inf at or above
// kNonFiniteBits. Cheap (no floating-point dependency chain); magnitude_from_bits turns a finite
// one back into the magnitude.
constexpr std::uint64_t kNonFiniteBits = 0x7ff0000000000000ULL;
std::uint64_t largest_magnitude_bits(const double* values, std::size_t count);
double magnitude_from_bits(std::uint64_t bits);

// sum_i max_s |unary_i[s]| and sum_e max |pairwise_e|: bounds on the unary and pairwise parts of
// |S(y)| (finite inputs; the sum may overflow to inf).
double unary_magnitude(const Graph& graph, const double* unary);
double pairwise_magnitude(const Graph& graph, const double* pairwise);
// Throws std::invalid_argument when unary + pairwise magnitude exceeds kMaxScoreMagnitude.
void check_magnitude(double magnitude, long problem);

// Cooperative stopping of one worker thread: the solvers call stop() at cheap checkpoints (every
// 1,024 search nodes, every few AD3 iterations, between problems). A default-constructed control
// never stops.
enum class StopReason { kNone = 0, kTime, kCancel };

class StopControl {
 public:
  using Clock = std::chrono::steady_clock;
  StopControl() = default;
  // external: the caller's flag (may be null); shared: the batch's own flag, set here when a poll
  // cancels; poll (may be null; only on the calling thread) with its interval, and where an
  // exception thrown by it goes.
  StopControl(const std::atomic<bool>* external, std::atomic<bool>* shared,
              const std::function<bool()>* poll, double poll_interval, std::exception_ptr* poll_error)
      : external_(external), shared_(shared), poll_(poll != nullptr && *poll ? poll : nullptr),
        poll_interval_(std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(poll_interval))),
        poll_error_(poll_error), next_poll_(Clock::now() + poll_interval_) {}

  // Starts a problem: clears the reason, arms the deadline (time_limit seconds; 0: none).
  void begin_problem(double time_limit) {
    reason_ = StopReason::kNone;  // (the caller has just checked for a cancel)
    has_deadline_ = time_limit > 0.0;
    if (has_deadline_) {
      deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(time_limit));
    }
  }
  // Why the current problem must stop (sticky until the next begin_problem).
  StopReason stop() {
    if (reason_ != StopReason::kNone) return reason_;
    if (cancelled()) {
      reason_ = StopReason::kCancel;
    } else if (has_deadline_ && Clock::now() >= deadline_) {
      reason_ = StopReason::kTime;
    }
    return reason_;
  }
  StopReason reason() const { return reason_; }
  // True once the batch is cancelled; on the polling thread, polls when it is time to.
  bool cancelled() {
    if ((external_ != nullptr && external_->load(std::memory_order_relaxed)) ||
        (shared_ != nullptr && shared_->load(std::memory_order_relaxed))) {
      return true;
    }
    if (poll_ == nullptr) return false;
    const Clock::time_point now = Clock::now();
    if (now < next_poll_) return false;
    next_poll_ = now + poll_interval_;
    bool cancel = false;
    try {
      cancel = (*poll_)();
    } catch (...) {
      *poll_error_ = std::current_exception();
      cancel = true;
    }
    if (cancel) shared_->store(true);
    return cancel;
  }

 private:
  const std::atomic<bool>* external_ = nullptr;
  std::atomic<bool>* shared_ = nullptr;
  const std::function<bool()>* poll_ = nullptr;
  Clock::duration poll_interval_{};
  std::exception_ptr* poll_error_ = nullptr;
  Clock::time_point next_poll_{};
  bool has_deadline_ = false;
  Clock::time_point deadline_{};
  StopReason reason_ = StopReason::kNone;
};

// The cancellation state of one batch, shared by its worker threads: the caller's Interrupt (which
// must outlive it), the batch's own flag (set when a poll cancels) and the exception a poll threw.
class BatchCancel {
 public:
  explicit BatchCancel(const Interrupt& interrupt)
      : external_(interrupt.cancel), poll_(interrupt.poll ? &interrupt.poll : nullptr),
        poll_interval_(interrupt.poll_interval > 0.0 && interrupt.poll_interval < 1e6 ? interrupt.poll_interval
                                                                                        : 0.05) {}
  BatchCancel(const BatchCancel&) = delete;
  BatchCancel& operator=(const BatchCancel&) = delete;

  // Worker thread t's control; only thread 0 (the calling thread) polls.
  StopControl control(std::size_t t) {
    return StopControl(external_, &cancelled_, t == 0 ? poll_ : nullptr, poll_interval_, &poll_error_);
  }
  bool polls() const { return poll_ != nullptr; }
  double poll_interval() const { return poll_interval_; }
  // Whether the batch was cancelled, by its poll or by the caller's flag.
  bool cancelled() const {
    return cancelled_.load() || (external_ != nullptr && external_->load());
  }
  // Cancels the batch (a worker that failed stops the others).
  void cancel() { cancelled_.store(true); }
  // Rethrows the exception the poll threw, if it threw.
  void rethrow_poll_error() const {
    if (poll_error_) std::rethrow_exception(poll_error_);
  }

 private:
  const std::atomic<bool>* external_;
  std::atomic<bool> cancelled_{false};
  const std::function<bool()>* poll_;
  double poll_interval_;
  std::exception_ptr poll_error_;
};

// Runs work(t) for t = 0..threads-1: work(0) on the calling thread, the others on std::threads
// (fewer when the system refuses to start more: work must share its items dynamically). While the
// others finish, the calling thread goes on polling. The first exception a work(t) throws cancels
// the batch and is rethrown once every thread has stopped.
template <class Work>
void run_on_threads(std::size_t threads, BatchCancel& cancel, Work work) {
  std::mutex mutex;
  std::condition_variable all_done;
  std::size_t finished = 0;
  std::exception_ptr error;
  auto guarded = [&](std::size_t t) {
    try {
      work(t);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!error) error = std::current_exception();
      cancel.cancel();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads > 1 ? threads - 1 : 0);
  for (std::size_t t = 1; t < threads; ++t) {
    try {
      pool.emplace_back([&, t] {
        guarded(t);
        std::lock_guard<std::mutex> lock(mutex);
        ++finished;
        all_done.notify_one();
      });
    } catch (const std::system_error&) {
      break;
    }
  }
  guarded(0);
  if (cancel.polls() && !pool.empty()) {
    StopControl waiting = cancel.control(0);
    const auto interval = std::chrono::duration<double>(cancel.poll_interval());
    std::unique_lock<std::mutex> lock(mutex);
    while (!all_done.wait_for(lock, interval, [&] { return finished == pool.size(); })) {
      lock.unlock();
      waiting.cancelled();  // (polls when its interval has passed)
      lock.lock();
    }
  }
  for (std::thread& thread : pool) thread.join();
  if (error) std::rethrow_exception(error);
}

// S(labels) of one problem.
double labelling_score(const Graph& graph, const double* unary, const double* pairwise,
                       const int* labels);

// Iterated conditional modes: sweeps the variables in order, moving each to its best state given
// the others, until no move improves the score. labels is improved in place; returns its score.
double improve_by_icm(const Graph& graph, const double* unary, const double* pairwise,
                      int* labels, std::vector<double>& scratch);

// True when bound - score <= tolerance * max(1, |score|).
bool within_gap(double score, double bound, double tolerance);

struct RawResult {
  double score = 0.0;
  double bound = 0.0;
  Status status = Status::kIterationLimit;
  std::int64_t iterations = 0;
};

// The active set of one edge's quadratic subproblem, kept between AD3 iterations (warm start):
// k configurations (state s of a, state t of b) with positive weight, their weights, and the
// inverse of the bordered Gram matrix [[0, 1'], [1, M'M]] of size (k + 1)^2, row-major. The
// values live in the solver's buffers (ActiveSetStore): at `config` room for K_a + K_b
// configurations (a forest on K_a + K_b states has fewer edges), at `inverse` for (K_a + K_b)^2.
struct ActiveSet {
  int k = 0;
  std::size_t config = 0, inverse = 0;
};

// Every edge's active set in four buffers, allocated once.
struct ActiveSetStore {
  std::vector<int> s, t;
  std::vector<double> weights, inverse;
};

// Where an edge's data lives in the flat arrays.
struct EdgeLayout {
  int a, b, ka, kb;
  std::size_t unary_a, unary_b;  // offsets of the endpoints' unary scores / marginals
  std::size_t table;             // offset of the K_a x K_b table
  std::size_t link_a, link_b;    // offsets of its local marginals / multipliers of a and of b
};

class Ad3Solver {
 public:
  Ad3Solver(const Graph& graph, const Ad3Options& options);
  // Checked every few iterations; a stop ends the run early (status kIterationLimit or, when the
  // bound was never computed, an infinite bound: callers discard such a result).
  void set_stop(StopControl* stop) { stop_ = stop; }
  RawResult solve(const double* unary, const double* pairwise);
  const std::vector<int>& labels() const { return labels_; }
  const std::vector<double>& posteriors() const { return p_; }
  // Reporting as AD3 on general graphs does (general_solver.cpp): the labelling is the best
  // rounding of an iterate unless ICM's improvement of it is certified, and a run stopped by the
  // iteration limit reports (posteriors(), edge_marginals()) the iterate of that rounding rather
  // than the last one.
  void set_report_best_rounding(bool report) { keep_best_ = report; }
  // After solve: the reported iterate's marginals of each edge's K_a x K_b configurations
  // (pairwise_size() values, the layout of the pairwise scores).
  void edge_marginals(double* out) const;
  // After solve: the final multipliers and the edges' local marginals, num_links() values each; those of
  // edge e's endpoint a start at edge_layout(e).link_a, those of b at link_b.
  const std::vector<double>& multipliers() const { return lambda_; }
  const std::vector<double>& local_marginals() const { return q_; }
  const EdgeLayout& edge_layout(int e) const { return edges_[e]; }
  // After solve(unary, pairwise): an equivalent problem built from the final multipliers,
  //   pairwise'_e(s,t) = pairwise_e(s,t) + psi_ea(s) + psi_eb(t),  psi_ei = unary_i / deg_i + lambda_ei,
  //   unary'_i = -sum_{e of i} lambda_ei (isolated variables: unary_i),
  // with S'(y) = S(y) for every labelling up to rounding.
  void reparameterize(const double* unary, const double* pairwise, double* unary_out,
                      double* pairwise_out) const;

 private:
  template <int K>
  double solve_edge_qp(const EdgeLayout& edge, ActiveSet& set, const double* xa, const double* xb,
                       double* qa, double* qb);
  double bound_edge_part() const;
  double bound_multiplier_part();
  void compute_inputs();
  void set_eta(double eta, const double* pairwise);
  double score(const double* unary, const double* pairwise, const int* labels) const;
  RawResult iterate(const double* unary, const double* pairwise, int max_iterations);

  const Graph& graph_;
  Ad3Options options_;
  StopControl* stop_ = nullptr;
  std::vector<EdgeLayout> edges_;
  // Links (one per edge end and state) are stored variable-major: variable i's degree(i) blocks
  // of K_i values start at link_begin_[i], in the order of graph.incident(i).
  std::vector<std::size_t> link_begin_;   // N + 1
  std::size_t num_links_ = 0;             // sum over edges of K_a + K_b
  double eta_ = 0.0;
  // Per problem state.
  std::vector<double> p_;                // unary_size: variable marginals
  std::vector<double> unary_share_;      // unary_size: unary / degree
  std::vector<double> scaled_pairwise_;  // pairwise_size: pairwise / (2 eta)
  std::vector<double> lambda_;           // num_links: Lagrange multipliers
  std::vector<double> q_;                // num_links: local marginals of each edge's QP solution
  std::vector<double> x_;                // num_links: the subproblems' inputs
  std::vector<ActiveSet> active_sets_;   // E
  ActiveSetStore store_;
  std::vector<char> edge_dirty_;         // E: its subproblem's inputs changed since its last solve
  std::vector<double> edge_value_;       // E: 2 eta * the subproblem's max value (for the bound)
  std::vector<double> p_rise_;           // N: largest increase of p_i in the last averaging
  double isolated_max_ = 0.0;            // sum of the isolated variables' best unary scores
  std::vector<int> labels_;              // N: best labelling so far
  std::vector<int> rounded_;             // N: argmax of p_
  bool keep_best_ = false;
  std::int64_t best_iteration_ = 0;      // iterations up to the best rounding's iterate
  // Scratch.
  std::vector<double> residual_;         // K_a + K_b
  std::vector<double> column_max_;       // max_states
  std::vector<double> z_;                // active-set solve
  std::vector<double> column_;           // bordered inverse updates
  std::vector<double> inverse_tmp_;      // (2 max_states + 1)^2: an inverse being updated
  std::vector<int> parent_;              // forest search over K_a + K_b states
  std::vector<int> parent_config_;
  std::vector<int> queue_;
  std::vector<double> icm_scratch_;
};

class ExactSolver {
 public:
  ExactSolver(const Graph& graph, const ExactOptions& options);
  // Checked every 1,024 search nodes (and by the inner AD3 run): a time stop ends the problem with
  // status kTimeLimit (unless already certified), a cancel with a result to discard.
  void set_stop(StopControl* stop) {
    stop_ = stop;
    ad3_.set_stop(stop);
  }
  RawResult solve(const double* unary, const double* pairwise);
  const std::vector<int>& labels() const { return best_; }

 private:
  struct Search {
    std::int64_t nodes = 0;
    bool complete = true;
    bool stopped = false;  // by the StopControl (time or cancel), not by a node limit
    double bound = 0.0;  // no labelling scores above this (the incumbent when complete)
  };
  void order_variables(const double* unary, const double* pairwise);
  Search search(const double* unary, const double* pairwise, double& incumbent, std::int64_t node_limit);

  const Graph& graph_;
  ExactOptions options_;
  StopControl* stop_ = nullptr;
  int n_ = 0;
  Ad3Solver ad3_;                          // for hard problems: certificate or reparameterization
  std::vector<double> reparameterized_unary_;
  std::vector<double> reparameterized_pairwise_;
  // Static search structure of the current problem.
  std::vector<int> order_;                 // search position -> variable
  std::vector<int> position_;              // variable -> search position
  std::vector<std::size_t> g_offset_;      // position -> offset into g_ (K values)
  std::vector<int> forward_begin_;         // position -> range of its forward edges
  std::vector<int> forward_to_;            // forward edge -> later position
  std::vector<std::size_t> forward_table_;  // forward edge -> offset into oriented_
  std::vector<std::size_t> save_offset_;   // position -> offset into saved_
  std::vector<double> oriented_;           // tables oriented (earlier state, later state)
  std::vector<double> future_;             // per position/state: bound of its forward edges
  // Search state.
  std::vector<double> g_;                  // per position/state: unary + assigned edges + future
  std::vector<double> saved_;              // undo log of g_ rows
  std::vector<int> label_order_;           // per position: its states, best first
  std::vector<int> next_choice_;           // per position: index into its label order
  std::vector<double> partial_;            // per depth: score of the assigned prefix
  std::vector<double> rest_;               // per depth: bound of the positions after it
  std::vector<double> node_bound_;         // per depth
  std::vector<int> current_;               // labels by position
  std::vector<int> best_;                  // labels by variable
  // Scratch of the ordering: per variable, total coupling and coupling to placed variables;
  // per edge, the spread (max - min) of its table.
  std::vector<double> strength_;
  std::vector<double> tie_;
  std::vector<double> edge_spread_;
  std::vector<double> icm_scratch_;
};

class ExhaustiveSolver {
 public:
  explicit ExhaustiveSolver(const Graph& graph);
  // Checked every 65,536 labellings; a stop ends the enumeration (a result to discard).
  void set_stop(StopControl* stop) { stop_ = stop; }
  RawResult solve(const double* unary, const double* pairwise);
  const std::vector<int>& labels() const { return best_; }

 private:
  const Graph& graph_;
  StopControl* stop_ = nullptr;
  std::vector<double> prefix_;  // N + 1 partial sums
  std::vector<int> current_;
  std::vector<int> best_;
};

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
