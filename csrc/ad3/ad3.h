// ccnn AD3 decoder: MAP inference in pairwise factor graphs of multi-valued variables.
//
// Plain C++17 (no torch, no Python, no OpenMP): embeddable anywhere. Three solvers:
//   solve_ad3         AD3 (Martins et al., "AD3: Alternating Directions Dual Decomposition for MAP
//                     Inference in Graphical Models", JMLR 2015): the LP-MAP relaxation by an
//                     augmented Lagrangian with one quadratic subproblem per edge, solved exactly
//                     by an active-set method warm-started across iterations.
//   solve_exact       depth-first branch-and-bound with valid bounds (cheap static bounds, then
//                     AD3's dual bound through a reparameterisation where those do not prune
//                     enough); returns a labelling whose optimality is certified (score == bound
//                     within the gap tolerance). Worst-case time is exponential.
//   solve_exhaustive  enumerates every labelling (tiny graphs only; the test oracle).
// and solve_batch, which solves B problems that share one Graph in parallel on std::threads with
// a result that does not depend on the number of threads.
//
// The problem. Variables i = 0..N-1 with num_states(i) = K_i >= 2 states each; edges e = (a, b).
// A labelling y (y_i in 0..K_i-1) scores
//     S(y) = sum_i unary_i[y_i] + sum_e pairwise_e[y_a * K_b + y_b]
// and every solver maximises S. Scores are laid out flat, in double precision:
//     unary     graph.unary_size() values, variable i at unary_offset(i), K_i of them;
//     pairwise  graph.pairwise_size() values, edge e = (a, b) at pairwise_offset(e), a dense
//               K_a x K_b table in row-major order (row = state of a, column = state of b).
//
// Errors: bad arguments (graph shape, non-finite scores, scores so large that a sum could overflow,
// size mismatch, option out of range) throw std::invalid_argument with a message naming the
// argument, before the problem is solved. A problem passes when its largest possible |S(y)|,
// sum_i max_s |unary_i[s]| + sum_e max |pairwise_e|, is at most kMaxScoreMagnitude = 1e300: every
// score, bound and intermediate sum of the solvers then stays finite (no +-inf reported as optimal).
//
// Stopping: ExactOptions::max_nodes and ExactOptions::time_limit bound each exact search (status
// kIterationLimit / kTimeLimit, with the best labelling found and a valid bound); solve_batch also
// takes an Interrupt (an atomic flag set from another thread, or a callback polled on the calling
// thread, e.g. a check for Ctrl-C) and then throws Cancelled.
//
// Example (see examples/decode_example.cpp):
//     ccnn::ad3::Graph graph({3, 2, 2}, {{0, 1}, {1, 2}, {0, 2}});
//     std::vector<double> unary(graph.unary_size()), pairwise(graph.pairwise_size());
//     ... fill the scores ...
//     ccnn::ad3::Solution s = ccnn::ad3::solve_exact(graph, unary, pairwise);
//     // s.labels, s.score, s.bound, s.status == ccnn::ad3::Status::kOptimal
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <vector>

namespace ccnn {
namespace ad3 {

// Structure of a pairwise factor graph: the number of states of each variable and the edge list.
// Immutable after construction; shared (read-only) by all problems of a batch and all threads.
class Graph {
 public:
  // num_states: K_i >= 2 for each variable. edges: pairs (a, b) of distinct variable indices in
  // [0, N); an unordered pair may appear once (neither a duplicate nor its reverse).
  // Throws std::invalid_argument otherwise.
  Graph(std::vector<int> num_states, std::vector<std::array<int, 2>> edges);

  int num_variables() const { return static_cast<int>(num_states_.size()); }
  int num_edges() const { return static_cast<int>(edges_.size()); }
  int num_states(int variable) const { return num_states_[variable]; }
  const std::array<int, 2>& edge(int e) const { return edges_[e]; }
  int max_states() const { return max_states_; }

  // Sizes and offsets of the flat score arrays (see the layout above).
  std::size_t unary_size() const { return unary_offset_.back(); }
  std::size_t pairwise_size() const { return pairwise_offset_.back(); }
  std::size_t unary_offset(int variable) const { return unary_offset_[variable]; }
  std::size_t pairwise_offset(int e) const { return pairwise_offset_[e]; }

  // Edges touching a variable: incident(i)[k] for k < degree(i); side 0 when the variable is the
  // edge's first endpoint (rows of the table), 1 when it is the second (columns).
  struct Incidence {
    int edge;
    int side;
  };
  int degree(int variable) const { return incidence_offset_[variable + 1] - incidence_offset_[variable]; }
  const Incidence* incident(int variable) const { return incidence_.data() + incidence_offset_[variable]; }

 private:
  std::vector<int> num_states_;
  std::vector<std::array<int, 2>> edges_;
  std::vector<std::size_t> unary_offset_;     // N + 1
  std::vector<std::size_t> pairwise_offset_;  // E + 1
  std::vector<int> incidence_offset_;         // N + 1
  std::vector<Incidence> incidence_;          // 2E
  int max_states_ = 0;
};

enum class Status : std::int32_t {
  // The labelling is certified optimal: bound - score <= gap_tolerance * max(1, |score|).
  // For AD3 this means its relaxation was tight (integral) at the returned labelling.
  kOptimal = 0,
  // AD3 converged (primal and dual residuals below tolerance) to a fractional solution of the
  // relaxation; the labelling is a rounding (argmax + ICM) and is not certified.
  kFractional = 1,
  // Stopped by the iteration limit (AD3, PSDD: max_iterations; exact: max_nodes) before either of
  // the above.
  kIterationLimit = 2,
  // The exact search ran out of ExactOptions::time_limit before it could certify its labelling:
  // the labelling is the best found so far, not certified; the bound is still valid.
  kTimeLimit = 3,
  // General factor graphs only (factor_graph.h): the exact or exhaustive search proved that no
  // labelling satisfies the hard factors.
  kInfeasible = 4,
};

// Scores whose largest possible |S(y)| exceeds this are rejected (see "Errors" above).
constexpr double kMaxScoreMagnitude = 1e300;

// "optimal", "fractional", "iteration_limit", "time_limit" or "infeasible".
const char* status_name(Status status);

struct Ad3Options {
  int max_iterations = 1000;
  // Initial penalty of the augmented Lagrangian, in the convention of the reference AD3: the
  // penalty term is eta * sum ||q - p||^2 (the paper writes (eta'/2) ||q - p||^2, eta' = 2 eta).
  // In the units of the scores; adapted within [1e-3, 100].
  double eta = 0.1;
  // Doubles / halves eta every 10 iterations when the primal and dual residuals are unbalanced.
  bool adapt_eta = true;
  // Convergence: stop when the primal and dual residuals (root mean square over all
  // variable-state links) are both below this.
  double tolerance = 1e-6;
  // Certificate: stop as soon as the best rounded labelling scores within
  // gap_tolerance * max(1, |score|) of the best dual bound; it is then optimal up to that gap.
  double gap_tolerance = 1e-9;
  // General graphs: a factor solved by the active-set method (dense factors, the structured
  // factors) takes at most this many active-set steps (a solve over the active set, or an oracle
  // call) per iteration, warm-started at the next, as the reference's generic factors do (10);
  // 0 solves every local problem exactly; 1 is refused (it would never call the oracle). Early
  // iterations then cost a few oracle calls instead of dozens. Pairwise graphs (solve_ad3 on a
  // Graph) always solve their edges exactly.
  int max_qp_steps = 10;
};

struct ExactOptions {
  // Subtrees whose bound exceeds the incumbent by at most gap_tolerance * max(1, |incumbent|) are
  // pruned, so the result is optimal up to that gap (and bound - score is at most that gap).
  double gap_tolerance = 1e-9;
  // Stop after this many search nodes with status kIterationLimit (0: no limit).
  std::int64_t max_nodes = 0;
  // Stop after this many seconds of wall-clock time per problem with status kTimeLimit (0: no
  // limit). The clock is read every 1,024 search nodes (and every few iterations of the AD3 run
  // inside the search), so the overrun is a millisecond or so for graphs of tens of variables.
  // A problem stopped by time depends on the machine's speed: results are then no longer
  // reproducible run to run; max_nodes is the reproducible bound.
  double time_limit = 0.0;
};

struct Solution {
  std::vector<int> labels;         // num_variables() labels, the decoded labelling
  double score = 0.0;              // S(labels)
  double bound = 0.0;              // a valid upper bound on max_y S(y); >= score up to rounding
  Status status = Status::kIterationLimit;
  std::int64_t iterations = 0;     // AD3 iterations, branch-and-bound search nodes, or (exhaustive)
                                   // labellings enumerated
  std::vector<double> posteriors;  // unary_size() values: AD3's variable marginals p (one-hot for
                                   // the exact and exhaustive solvers)
};

// Single problems. unary.size() must be graph.unary_size(), pairwise.size() graph.pairwise_size().
// A graph without variables has one (empty) labelling: score 0, status kOptimal.
Solution solve_ad3(const Graph& graph, const std::vector<double>& unary,
                   const std::vector<double>& pairwise, const Ad3Options& options = {});
Solution solve_exact(const Graph& graph, const std::vector<double>& unary,
                     const std::vector<double>& pairwise, const ExactOptions& options = {});
// Throws std::invalid_argument when the graph has more than 2^30 labellings.
Solution solve_exhaustive(const Graph& graph, const std::vector<double>& unary,
                          const std::vector<double>& pairwise);

// S(labels) for one problem (labels checked against the numbers of states).
double score_labelling(const Graph& graph, const std::vector<double>& unary,
                       const std::vector<double>& pairwise, const std::vector<int>& labels);

// ---- Batches: B problems sharing one graph ----

// kPsdd (projected subgradient dual decomposition) decodes general factor graphs only
// (factor_graph.h: solve_psdd, PsddOptions).
enum class Method { kAd3, kExact, kExhaustive, kPsdd };

// Caller-owned score arrays of a batch.
//   unary:    batch_size * graph.unary_size() values, problem b at b * graph.unary_size().
//   pairwise: graph.pairwise_size() values shared by every problem, or
//             batch_size * graph.pairwise_size() values, problem b at b * graph.pairwise_size().
// unary_count / pairwise_count are the numbers of values behind the pointers (checked).
struct BatchScores {
  std::size_t batch_size = 0;
  const double* unary = nullptr;
  std::size_t unary_count = 0;
  const double* pairwise = nullptr;
  std::size_t pairwise_count = 0;
};

// Caller-owned outputs, batch_size entries each (labels and posteriors: per problem
// num_variables() and unary_size() values, problem-major). posteriors may be null, and so may
// labels for a graph without variables.
struct BatchOutput {
  std::int64_t* labels = nullptr;
  double* score = nullptr;
  double* bound = nullptr;
  std::int32_t* status = nullptr;      // static_cast<std::int32_t>(Status)
  std::int64_t* iterations = nullptr;
  double* posteriors = nullptr;
};

// Cancelling a batch while it runs. Either way the workers stop within about 1,024 search nodes,
// a few AD3 iterations or one problem (whichever comes first) and solve_batch throws Cancelled
// (or, when `poll` threw, that exception) after every thread has finished; the outputs are then
// incomplete.
struct Interrupt {
  // Set to true from any thread to cancel.
  const std::atomic<bool>* cancel = nullptr;
  // Called on the thread that called solve_batch about every poll_interval seconds while the batch
  // runs (also while it waits for the other threads); returning true cancels. Bindings use it to
  // check for Ctrl-C (pybind11: PyErr_CheckSignals with the GIL re-acquired).
  std::function<bool()> poll;
  double poll_interval = 0.05;
};

// Thrown by solve_batch when it was cancelled through its Interrupt.
class Cancelled : public std::runtime_error {
 public:
  Cancelled() : std::runtime_error("decoding cancelled") {}
};

// Solves every problem of the batch with `method` on num_threads std::threads (0: all hardware
// threads; never more threads than problems, fewer when the system refuses to start one). Each
// problem's result is the same as its solve_* call alone, whatever the number of threads (unless a
// time_limit stops it). Throws std::invalid_argument on bad input (for a non-finite or too large
// score, naming the first offending problem), Cancelled when cancelled through `interrupt`, and
// any other exception of a worker thread (std::bad_alloc) once every thread has stopped.
void solve_batch(const Graph& graph, Method method, const BatchScores& scores,
                 const BatchOutput& output, const Ad3Options& ad3_options = {},
                 const ExactOptions& exact_options = {}, int num_threads = 0,
                 const Interrupt& interrupt = {});

}  // namespace ad3
}  // namespace ccnn
