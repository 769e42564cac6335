// ccnn_ext._decoder: the AD3 / exact MAP decoder (csrc/ad3) as a plain pybind11 module (no torch).
// Thin: converts arrays, releases the GIL around the solve; std::invalid_argument -> ValueError.
// While it solves, the calling thread re-acquires the GIL every 50 ms to run PyErr_CheckSignals:
// a pending signal whose handler raises (Ctrl-C: KeyboardInterrupt) cancels the batch and the
// exception is raised once every worker thread has stopped (within a few milliseconds).
// The Python API with its argument checks is ccnn_ext/decode.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ad3/ad3.h"
#include "ad3/factor_graph.h"

namespace py = pybind11;
namespace ad3 = ccnn::ad3;

namespace {

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

ad3::Method parse_method(const std::string& method) {
  if (method == "ad3") return ad3::Method::kAd3;
  if (method == "exact") return ad3::Method::kExact;
  if (method == "exhaustive") return ad3::Method::kExhaustive;
  throw std::invalid_argument("method: expected 'ad3', 'exact' or 'exhaustive', got '" + method + "'");
}

// An integer option as int64 within [lo, hi]; anything else (a float, a huge int) is a ValueError
// naming the option and its range (not pybind11's signature dump).
std::int64_t int_option(const py::handle& value, const char* name, std::int64_t lo, std::int64_t hi) {
  const std::string range = std::string(name) + ": expected an int in [" + std::to_string(lo) + ", " +
                            std::to_string(hi) + "], got ";
  if (!PyIndex_Check(value.ptr()) || PyBool_Check(value.ptr())) {  // ints and numpy integers
    throw std::invalid_argument(range + py::repr(value).cast<std::string>());
  }
  const py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(value.ptr()));
  if (!index) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow != 0 || v < lo || v > hi) throw std::invalid_argument(range + py::repr(value).cast<std::string>());
  return static_cast<std::int64_t>(v);
}

ad3::Graph make_graph(const IndexArray& num_states, const IndexArray& edges) {
  if (num_states.ndim() != 1) throw std::invalid_argument("num_states: expected a 1-d array");
  if (edges.ndim() != 2 || edges.shape(1) != 2) {
    throw std::invalid_argument("edges: expected shape (E, 2)");
  }
  std::vector<int> states(num_states.shape(0));
  for (std::size_t i = 0; i < states.size(); ++i) {
    const std::int64_t k = num_states.at(i);
    if (k < 2 || k > (1 << 20)) {
      throw std::invalid_argument("num_states: variable " + std::to_string(i) + " has " +
                                  std::to_string(k) + " states; expected 2 to 2^20");
    }
    states[i] = static_cast<int>(k);
  }
  std::vector<std::array<int, 2>> pairs(edges.shape(0));
  for (std::size_t e = 0; e < pairs.size(); ++e) {
    for (int side = 0; side < 2; ++side) {
      const std::int64_t v = edges.at(e, side);
      // Out-of-range values are reported by Graph; keep them out of range after narrowing.
      pairs[e][side] = v < 0 ? -1 : (v > INT32_MAX ? INT32_MAX : static_cast<int>(v));
    }
  }
  return ad3::Graph(std::move(states), std::move(pairs));
}

// Solves a batch. unary: (B, U) with U = sum of num_states; pairwise: (P,) shared or (B, P) with
// P = sum over edges of K_a * K_b. Returns (labels (B, N) int64, score (B,), bound (B,),
// status (B,) int32, iterations (B,) int64, posteriors (B, U) or None).
// max_iterations, max_nodes, num_threads: Python ints (validated here); time_limit: seconds per
// exact problem, 0 for none.
py::tuple solve(const std::string& method_name, const IndexArray& num_states, const IndexArray& edges,
                const DoubleArray& unary, const DoubleArray& pairwise, const py::object& max_iterations,
                double eta, bool adapt_eta, double tolerance, double ad3_gap_tolerance,
                double exact_gap_tolerance, const py::object& max_nodes, const py::object& num_threads,
                bool return_posteriors, double time_limit) {
  const ad3::Method method = parse_method(method_name);
  constexpr std::int64_t kIntMax = std::numeric_limits<int>::max();
  const std::int64_t max_iterations_value = int_option(max_iterations, "max_iterations", 1, kIntMax);
  const std::int64_t max_nodes_value =
      int_option(max_nodes, "max_nodes", 0, std::numeric_limits<std::int64_t>::max());
  const std::int64_t num_threads_value = int_option(num_threads, "num_threads", 0, kIntMax);
  const ad3::Graph graph = make_graph(num_states, edges);
  if (unary.ndim() != 2) throw std::invalid_argument("unary: expected a 2-d array (B, U)");
  if (pairwise.ndim() != 1 && pairwise.ndim() != 2) {
    throw std::invalid_argument("pairwise: expected a 1-d (shared) or 2-d (B, P) array");
  }
  const std::size_t batch = unary.shape(0);
  const int n = graph.num_variables();
  py::array_t<std::int64_t> labels({batch, static_cast<std::size_t>(n)});
  py::array_t<double> score(batch), bound(batch);
  py::array_t<std::int32_t> status(batch);
  py::array_t<std::int64_t> iterations(batch);
  py::object posteriors = py::none();
  double* posteriors_data = nullptr;
  if (return_posteriors) {
    py::array_t<double> p({batch, graph.unary_size()});
    posteriors_data = p.mutable_data();
    posteriors = p;
  }
  ad3::Ad3Options ad3_options;
  ad3_options.max_iterations = static_cast<int>(max_iterations_value);
  ad3_options.eta = eta;
  ad3_options.adapt_eta = adapt_eta;
  ad3_options.tolerance = tolerance;
  ad3_options.gap_tolerance = ad3_gap_tolerance;
  ad3::ExactOptions exact_options;
  exact_options.gap_tolerance = exact_gap_tolerance;
  exact_options.max_nodes = max_nodes_value;
  exact_options.time_limit = time_limit;
  const ad3::BatchScores scores{batch, unary.data(), static_cast<std::size_t>(unary.size()),
                                pairwise.data(), static_cast<std::size_t>(pairwise.size())};
  const ad3::BatchOutput output{labels.mutable_data(), score.mutable_data(), bound.mutable_data(),
                                status.mutable_data(), iterations.mutable_data(), posteriors_data};
  // The exception of a signal handler (KeyboardInterrupt), caught by the poll on this thread.
  std::unique_ptr<py::error_already_set> pending;
  ad3::Interrupt interrupt;
  interrupt.poll_interval = 0.05;
  interrupt.poll = [&pending] {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() == 0) return false;
    pending = std::make_unique<py::error_already_set>();
    return true;
  };
  try {
    py::gil_scoped_release release;
    ad3::solve_batch(graph, method, scores, output, ad3_options, exact_options,
                     static_cast<int>(num_threads_value), interrupt);
  } catch (...) {
    if (pending) throw *pending;  // Ctrl-C wins over whatever else went wrong meanwhile
    throw;
  }
  if (pending) throw *pending;  // the signal came as the last problem finished
  return py::make_tuple(labels, score, bound, status, iterations, posteriors);
}

// ---- General factor graphs (ad3/factor_graph.h) ----

ad3::FactorType parse_factor_type(const std::string& name) {
  for (auto t : {ad3::FactorType::kDense, ad3::FactorType::kXor, ad3::FactorType::kAtMostOne, ad3::FactorType::kOr,
                 ad3::FactorType::kXorOut, ad3::FactorType::kOrOut, ad3::FactorType::kAndOut,
                 ad3::FactorType::kImply, ad3::FactorType::kBudget, ad3::FactorType::kKnapsack,
                 ad3::FactorType::kPair, ad3::FactorType::kSequence, ad3::FactorType::kTree,
                 ad3::FactorType::kHeadAutomaton, ad3::FactorType::kBinaryTree, ad3::FactorType::kGeneralTree,
                 ad3::FactorType::kSequenceCompressor, ad3::FactorType::kCompressionBudget,
                 ad3::FactorType::kGeneralTreeCounts, ad3::FactorType::kBinaryTreeCounts}) {
    if (name == ad3::factor_type_name(t)) return t;
  }
  throw std::invalid_argument("factor type: unknown type '" + name + "'");
}

// variables: one int per variable, 0 for a binary variable, K >= 1 for a multi-valued one.
// factors: (type, links, negated, budget, costs[, num_states, num_nodes, arcs, parents,
// counts_for_budget, bigram_positions, has_count_scores]) tuples; links are units (variables for dense); num_states
// for sequences and general trees, num_nodes and (head, modifier) arcs for trees, (m, s) sibling
// pairs (in `arcs`) for head automata, parents for binary and general trees; the length (in
// num_nodes), budget, counts and bigram positions for compression budgets; parents, num_states,
// counts and has_count_scores for the tree factors with counts.
ad3::FactorGraph make_factor_graph(const std::vector<int>& variables, const py::list& factors) {
  ad3::FactorGraph graph;
  for (int k : variables) {
    if (k == 0) graph.add_binary_variable(); else graph.add_multi_variable(k);
  }
  for (const py::handle& item : factors) {
    const auto t = item.cast<py::tuple>();
    const ad3::FactorType type = parse_factor_type(t[0].cast<std::string>());
    const auto links = t[1].cast<std::vector<int>>();
    const auto negated_bools = t[2].cast<std::vector<bool>>();
    const std::vector<char> negated(negated_bools.begin(), negated_bools.end());
    switch (type) {
      case ad3::FactorType::kDense: graph.add_dense(links); break;
      case ad3::FactorType::kPair:
        if (links.size() != 2) throw std::invalid_argument("units: a pair factor links exactly two units");
        graph.add_pair(links[0], links[1]);
        break;
      case ad3::FactorType::kBudget: graph.add_budget(links, t[3].cast<int>(), negated); break;
      case ad3::FactorType::kKnapsack:
        graph.add_knapsack(links, t[4].cast<std::vector<double>>(), t[3].cast<double>(), negated);
        break;
      case ad3::FactorType::kSequence:
        if (t.size() < 6) throw std::invalid_argument("num_states: a sequence factor needs its states per position");
        graph.add_sequence(links, t[5].cast<std::vector<int>>());
        break;
      case ad3::FactorType::kTree:
        if (t.size() < 8) throw std::invalid_argument("arcs: a tree factor needs num_nodes and its arcs");
        graph.add_tree(links, t[6].cast<int>(), t[7].cast<std::vector<std::array<int, 2>>>());
        break;
      case ad3::FactorType::kHeadAutomaton:
        if (t.size() < 8) throw std::invalid_argument("siblings: a head automaton needs its sibling pairs");
        graph.add_head_automaton(links, t[7].cast<std::vector<std::array<int, 2>>>());
        break;
      case ad3::FactorType::kSequenceCompressor:
        if (t.size() < 8) throw std::invalid_argument("siblings: a sequence compressor needs its sibling pairs");
        graph.add_sequence_compressor(links, t[7].cast<std::vector<std::array<int, 2>>>());
        break;
      case ad3::FactorType::kBinaryTree:
        if (t.size() < 9) throw std::invalid_argument("parents: a binary tree factor needs its parents");
        graph.add_binary_tree(links, t[8].cast<std::vector<int>>());
        break;
      case ad3::FactorType::kGeneralTree:
        if (t.size() < 9) throw std::invalid_argument("parents: a general tree factor needs its parents");
        graph.add_general_tree(links, t[8].cast<std::vector<int>>(), t[5].cast<std::vector<int>>());
        break;
      case ad3::FactorType::kCompressionBudget: {
        if (t.size() < 11) throw std::invalid_argument("counts_for_budget: a compression budget needs its counts and bigrams");
        const auto counts = t[9].cast<std::vector<bool>>();
        graph.add_compression_budget(links, t[6].cast<int>(), t[3].cast<int>(),
                                     std::vector<char>(counts.begin(), counts.end()), t[10].cast<std::vector<int>>());
        break;
      }
      case ad3::FactorType::kGeneralTreeCounts:
      case ad3::FactorType::kBinaryTreeCounts: {
        if (t.size() < 12) throw std::invalid_argument("counts_for_budget: a tree factor with counts needs its flags");
        const auto counts = t[9].cast<std::vector<bool>>();
        const auto scored = t[11].cast<std::vector<bool>>();
        const std::vector<char> counts_flags(counts.begin(), counts.end()), scored_flags(scored.begin(), scored.end());
        if (type == ad3::FactorType::kGeneralTreeCounts) {
          graph.add_general_tree_counts(links, t[8].cast<std::vector<int>>(), t[5].cast<std::vector<int>>(),
                                        counts_flags);
        } else {
          graph.add_binary_tree_counts(links, t[8].cast<std::vector<int>>(), counts_flags, scored_flags);
        }
        break;
      }
      default: graph.add_logic(type, links, negated);
    }
  }
  return graph;
}

// Solves B problems sharing one general graph: unit_scores (B, U), factor_scores (F,) shared or
// (B, F). Returns (labels (B, N), posteriors (B, U), additional_posteriors (B, F), value (B,),
// score (B,), bound (B,), status (B,), iterations (B,), dual_variables and local_posteriors: lists
// of B arrays). Signals (Ctrl-C) are checked every 50 ms while it solves.
py::tuple solve_factor_graph(const std::string& method_name, const std::vector<int>& variables,
                             const py::list& factors, const DoubleArray& unit_scores,
                             const DoubleArray& factor_scores, const py::object& max_iterations,
                             double eta, bool adapt_eta, double tolerance, double ad3_gap_tolerance,
                             double exact_gap_tolerance, const py::object& max_nodes, double time_limit,
                             const py::object& num_threads) {
  const ad3::Method method = parse_method(method_name);
  constexpr std::int64_t kIntMax = std::numeric_limits<int>::max();
  ad3::Ad3Options ad3_options;
  ad3_options.max_iterations = static_cast<int>(int_option(max_iterations, "max_iterations", 1, kIntMax));
  ad3_options.eta = eta;
  ad3_options.adapt_eta = adapt_eta;
  ad3_options.tolerance = tolerance;
  ad3_options.gap_tolerance = ad3_gap_tolerance;
  ad3::ExactOptions exact_options;
  exact_options.gap_tolerance = exact_gap_tolerance;
  exact_options.max_nodes = int_option(max_nodes, "max_nodes", 0, std::numeric_limits<std::int64_t>::max());
  exact_options.time_limit = time_limit;
  const int threads = static_cast<int>(int_option(num_threads, "num_threads", 0, kIntMax));
  const ad3::FactorGraph graph = make_factor_graph(variables, factors);
  if (unit_scores.ndim() != 2) throw std::invalid_argument("unit_scores: expected a 2-d array (B, U)");
  if (factor_scores.ndim() != 1 && factor_scores.ndim() != 2) {
    throw std::invalid_argument("factor_scores: expected a 1-d (shared) or 2-d (B, F) array");
  }
  const std::size_t batch = unit_scores.shape(0);
  const ad3::FactorBatchScores scores{batch, unit_scores.data(), static_cast<std::size_t>(unit_scores.size()),
                                      factor_scores.data(), static_cast<std::size_t>(factor_scores.size())};
  std::unique_ptr<py::error_already_set> pending;
  ad3::Interrupt interrupt;
  interrupt.poll_interval = 0.05;
  interrupt.poll = [&pending] {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() == 0) return false;
    pending = std::make_unique<py::error_already_set>();
    return true;
  };
  std::vector<ad3::FactorSolution> results;
  try {
    py::gil_scoped_release release;
    results = ad3::solve_batch(graph, method, scores, ad3_options, exact_options, threads, interrupt);
  } catch (...) {
    if (pending) throw *pending;
    throw;
  }
  if (pending) throw *pending;
  const std::size_t n = graph.num_variables(), u = graph.num_units(), f = graph.additional_size();
  py::array_t<std::int64_t> labels({batch, n});
  py::array_t<double> posteriors({batch, u}), additional({batch, f});
  py::array_t<double> value(batch), score(batch), bound(batch);
  py::array_t<std::int32_t> status(batch);
  py::array_t<std::int64_t> iterations(batch);
  py::list dual, local;
  for (std::size_t b = 0; b < batch; ++b) {
    const ad3::FactorSolution& r = results[b];
    std::copy(r.labels.begin(), r.labels.end(), labels.mutable_data() + b * n);
    std::copy(r.posteriors.begin(), r.posteriors.end(), posteriors.mutable_data() + b * u);
    std::copy(r.additional_posteriors.begin(), r.additional_posteriors.end(), additional.mutable_data() + b * f);
    value.mutable_at(b) = r.value;
    score.mutable_at(b) = r.score;
    bound.mutable_at(b) = r.bound;
    status.mutable_at(b) = static_cast<std::int32_t>(r.status);
    iterations.mutable_at(b) = r.iterations;
    dual.append(py::array_t<double>(r.dual_variables.size(), r.dual_variables.data()));
    local.append(py::array_t<double>(r.local_posteriors.size(), r.local_posteriors.data()));
  }
  return py::make_tuple(labels, posteriors, additional, value, score, bound, status, iterations, dual, local);
}

double score_factor_graph(const std::vector<int>& variables, const py::list& factors,
                          const std::vector<double>& unit_scores, const std::vector<double>& factor_scores,
                          const std::vector<int>& labels) {
  return ad3::score_labelling(make_factor_graph(variables, factors), unit_scores, factor_scores, labels);
}

}  // namespace

PYBIND11_MODULE(_decoder, m) {
  m.doc() = "ccnn MAP decoder (AD3, exact branch-and-bound, exhaustive); see ccnn_ext.decode";
  m.def("solve", &solve, py::arg("method"), py::arg("num_states"), py::arg("edges"), py::arg("unary"),
        py::arg("pairwise"), py::arg("max_iterations"), py::arg("eta"), py::arg("adapt_eta"),
        py::arg("tolerance"), py::arg("ad3_gap_tolerance"), py::arg("exact_gap_tolerance"),
        py::arg("max_nodes"), py::arg("num_threads"), py::arg("return_posteriors"),
        py::arg("time_limit") = 0.0,
        "Solves B problems sharing one graph; returns (labels, score, bound, status, iterations, "
        "posteriors or None). Signals (Ctrl-C) are checked every 50 ms while it solves.");
  m.def("solve_factor_graph", &solve_factor_graph, py::arg("method"), py::arg("variables"),
        py::arg("factors"), py::arg("unit_scores"), py::arg("factor_scores"), py::arg("max_iterations"),
        py::arg("eta"), py::arg("adapt_eta"), py::arg("tolerance"), py::arg("ad3_gap_tolerance"),
        py::arg("exact_gap_tolerance"), py::arg("max_nodes"), py::arg("time_limit"), py::arg("num_threads") = 1,
        "Solves B problems sharing one general factor graph; returns (labels, posteriors, "
        "additional_posteriors, value, score, bound, status, iterations, dual_variables, local_posteriors).");
  m.def("score_factor_graph", &score_factor_graph, py::arg("variables"), py::arg("factors"),
        py::arg("unit_scores"), py::arg("factor_scores"), py::arg("labels"),
        "S(labels) of a general factor graph (-inf when a factor forbids it).");
  py::list names;
  for (auto s : {ad3::Status::kOptimal, ad3::Status::kFractional, ad3::Status::kIterationLimit,
                 ad3::Status::kTimeLimit, ad3::Status::kInfeasible}) {
    names.append(ad3::status_name(s));
  }
  m.attr("STATUS_NAMES") = py::tuple(names);
}
