// ccnn_ext._decoder: the AD3 / exact MAP decoder (csrc/ad3) as a plain pybind11 module (no torch).
// Thin: converts arrays, releases the GIL around the solve; std::invalid_argument -> ValueError.
// While it solves, the calling thread re-acquires the GIL every 50 ms to run PyErr_CheckSignals:
// a pending signal whose handler raises (Ctrl-C: KeyboardInterrupt) cancels the batch and the
// exception is raised once every worker thread has stopped (within a few milliseconds).
// The Python API with its argument checks is ccnn_ext/decode.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ad3/ad3.h"
#include "ad3/factor_graph.h"
#include "bindings/ad3_compat.h"

namespace py = pybind11;
namespace ad3 = ccnn::ad3;

namespace {

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

ad3::Method parse_method(const std::string& method) {
  if (method == "ad3") return ad3::Method::kAd3;
  if (method == "exact") return ad3::Method::kExact;
  if (method == "exhaustive") return ad3::Method::kExhaustive;
  if (method == "psdd") return ad3::Method::kPsdd;
  throw std::invalid_argument("method: expected 'ad3', 'exact', 'exhaustive' or 'psdd', got '" + method + "'");
}

// An integer option as int64 within [lo, hi]; anything else (a float, a huge int) is a ValueError
// naming the option and its range (not pybind11's signature dump).
std::int64_t int_option(const py::handle& value, const char* name, std::int64_t lo, std::int64_t hi) {
  auto bad = [&] {
    return std::invalid_argument(std::string(name) + ": expected an int in [" + std::to_string(lo) + ", " +
                                 std::to_string(hi) + "], got " + py::repr(value).cast<std::string>());
  };
  if (!PyIndex_Check(value.ptr()) || PyBool_Check(value.ptr())) throw bad();  // ints and numpy integers
  const py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(value.ptr()));
  if (!index) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow != 0 || v < lo || v > hi) throw bad();
  return static_cast<std::int64_t>(v);
}

// The solver options from the bindings' arguments (max_iterations, max_nodes: Python ints,
// checked).
ad3::Ad3Options ad3_options_of(const py::handle& max_iterations, double eta, bool adapt_eta, double tolerance,
                               double gap_tolerance,
                               const py::handle& max_qp_steps = py::int_(ad3::Ad3Options().max_qp_steps)) {
  ad3::Ad3Options options;
  options.max_qp_steps =
      static_cast<int>(int_option(max_qp_steps, "max_qp_steps", 0, std::numeric_limits<int>::max()));
  options.max_iterations =
      static_cast<int>(int_option(max_iterations, "max_iterations", 1, std::numeric_limits<int>::max()));
  options.eta = eta;
  options.adapt_eta = adapt_eta;
  options.tolerance = tolerance;
  options.gap_tolerance = gap_tolerance;
  return options;
}

// PSDD takes AD3's max_iterations, eta and gap tolerance arguments.
ad3::PsddOptions psdd_options_of(const ad3::Ad3Options& ad3_options) {
  ad3::PsddOptions options;
  options.max_iterations = ad3_options.max_iterations;
  options.eta = ad3_options.eta;
  options.gap_tolerance = ad3_options.gap_tolerance;
  return options;
}

ad3::ExactOptions exact_options_of(double gap_tolerance, const py::handle& max_nodes, double time_limit) {
  ad3::ExactOptions options;
  options.gap_tolerance = gap_tolerance;
  options.max_nodes = int_option(max_nodes, "max_nodes", 0, std::numeric_limits<std::int64_t>::max());
  options.time_limit = time_limit;
  return options;
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

// Runs solve(interrupt) with the GIL released; the interrupt's poll, on this thread every 50 ms,
// re-acquires the GIL for PyErr_CheckSignals, and the exception of a signal handler
// (KeyboardInterrupt) is raised here (it wins over whatever else went wrong meanwhile).
template <class Solve>
auto with_signals(Solve&& solve) {
  std::unique_ptr<py::error_already_set> pending;
  ad3::Interrupt interrupt;
  interrupt.poll_interval = 0.05;
  interrupt.poll = [&pending] {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() == 0) return false;
    pending = std::make_unique<py::error_already_set>();
    return true;
  };
  decltype(solve(interrupt)) result{};
  try {
    py::gil_scoped_release release;
    result = solve(interrupt);
  } catch (...) {
    if (pending) throw *pending;
    throw;
  }
  if (pending) throw *pending;  // (the signal came as the last problem finished)
  return result;
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
  const ad3::Ad3Options ad3_options = ad3_options_of(max_iterations, eta, adapt_eta, tolerance, ad3_gap_tolerance);
  const ad3::ExactOptions exact_options = exact_options_of(exact_gap_tolerance, max_nodes, time_limit);
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
  const ad3::BatchScores scores{batch, unary.data(), static_cast<std::size_t>(unary.size()),
                                pairwise.data(), static_cast<std::size_t>(pairwise.size())};
  const ad3::BatchOutput output{labels.mutable_data(), score.mutable_data(), bound.mutable_data(),
                                status.mutable_data(), iterations.mutable_data(), posteriors_data};
  with_signals([&](const ad3::Interrupt& interrupt) {
    ad3::solve_batch(graph, method, scores, output, ad3_options, exact_options,
                     static_cast<int>(num_threads_value), interrupt);
    return 0;
  });
  return py::make_tuple(labels, score, bound, status, iterations, posteriors);
}

// ---- General factor graphs (ad3/factor_graph.h) ----

// Fast conversions of Python lists and tuples of ints / floats / int pairs (the general graph's
// specs, built by ccnn_decoder's Python code), falling back to pybind11's casters for other
// sequences (numpy arrays, ...). Values out of range of int become out-of-range ints that the
// graph's checks reject.
int narrow(long long v) {
  return v < std::numeric_limits<int>::min() ? std::numeric_limits<int>::min()
         : v > std::numeric_limits<int>::max() ? std::numeric_limits<int>::max() : static_cast<int>(v);
}

bool fast_int(PyObject* x, int& out) {
  if (!PyLong_CheckExact(x)) return false;
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(x, &overflow);
  out = overflow > 0 ? std::numeric_limits<int>::max() : overflow < 0 ? std::numeric_limits<int>::min() : narrow(v);
  return true;
}

// The number of items of a list or tuple (-1 for other objects), and read(i, item) on each until
// one returns false; true when every item was read (else the caller falls back to pybind11's
// casters).
Py_ssize_t fast_size(const py::handle& obj) {
  PyObject* o = obj.ptr();
  return PyList_CheckExact(o) || PyTuple_CheckExact(o) ? PySequence_Fast_GET_SIZE(o) : -1;
}

template <class Read>
bool read_fast(const py::handle& obj, Read&& read) {
  const Py_ssize_t n = fast_size(obj);
  if (n < 0) return false;
  PyObject** items = PySequence_Fast_ITEMS(obj.ptr());
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (!read(static_cast<std::size_t>(i), items[i])) return false;
  }
  return true;
}

void read_ints(const py::handle& obj, std::vector<int>& out) {
  out.resize(std::max<Py_ssize_t>(0, fast_size(obj)));
  if (!read_fast(obj, [&](std::size_t i, PyObject* x) { return fast_int(x, out[i]); })) {
    out = obj.cast<std::vector<int>>();
  }
}

void read_flags(const py::handle& obj, std::vector<char>& out) {
  out.clear();
  if (obj.is_none()) return;
  out.resize(std::max<Py_ssize_t>(0, fast_size(obj)));
  if (!read_fast(obj, [&](std::size_t i, PyObject* x) {
        out[i] = x == Py_True ? 1 : 0;
        return PyBool_Check(x);
      })) {
    const auto flags = obj.cast<std::vector<bool>>();
    out.assign(flags.begin(), flags.end());
  }
}

// Appends the values of a sequence of floats to out.
void append_doubles(const py::handle& obj, std::vector<double>& out) {
  const std::size_t begin = out.size();
  out.resize(begin + std::max<Py_ssize_t>(0, fast_size(obj)));
  if (read_fast(obj, [&](std::size_t i, PyObject* x) {
        if (!PyFloat_CheckExact(x)) return false;
        out[begin + i] = PyFloat_AS_DOUBLE(x);
        return true;
      })) {
    return;
  }
  out.resize(begin);
  const DoubleArray values = DoubleArray::ensure(obj);
  if (!values) throw py::error_already_set();
  out.insert(out.end(), values.data(), values.data() + values.size());
}

// Fixed-size int tuples (tree arcs, sibling triples) from a sequence of sequences, or from bytes
// of packed native ints (what tree_arcs and head_automaton_pairs return); TypeError when an item
// is not a sequence of N ints.
template <std::size_t N>
std::vector<std::array<int, N>> read_tuples(const py::handle& obj, const char* what) {
  if (PyBytes_CheckExact(obj.ptr())) {
    const std::size_t size = static_cast<std::size_t>(PyBytes_GET_SIZE(obj.ptr()));
    if (size % sizeof(std::array<int, N>) != 0) {
      throw py::type_error(std::string(what) + ": bytes of packed " + std::to_string(N) + "-tuples of ints expected");
    }
    std::vector<std::array<int, N>> out(size / sizeof(std::array<int, N>));
    if (size > 0) std::memcpy(out.data(), PyBytes_AS_STRING(obj.ptr()), size);
    return out;
  }
  std::vector<std::array<int, N>> out(std::max<Py_ssize_t>(0, fast_size(obj)));
  if (read_fast(obj, [&](std::size_t i, PyObject* item) {
        if (fast_size(item) != static_cast<Py_ssize_t>(N)) return false;
        return read_fast(item, [&](std::size_t j, PyObject* x) { return fast_int(x, out[i][j]); });
      })) {
    return out;
  }
  try {
    return obj.cast<std::vector<std::array<int, N>>>();
  } catch (const py::cast_error&) {
    throw py::type_error(std::string(what) + ": expected a list of " + std::to_string(N) + "-tuples of ints");
  }
}

std::vector<std::array<int, 2>> read_pairs(const py::handle& obj) { return read_tuples<2>(obj, "pairs"); }


// A factor's MAP oracle written in Python (FactorGraph.add_oracle): maximize(s, a) -> (on, extras)
// and evaluate(y) -> extras, or None when y is not allowed, on numpy copies of the solver's
// arrays. The solvers run without the GIL: each call takes it.
class PythonOracle : public ad3::MapOracle {
 public:
  PythonOracle(py::object maximize, py::object evaluate, int degree, int num_additional)
      : maximize_(std::move(maximize)), evaluate_(std::move(evaluate)), n_(degree), m_(num_additional) {}
  ~PythonOracle() override {
    py::gil_scoped_acquire gil;  // (the last owner may be a solver thread)
    maximize_ = py::object();
    evaluate_ = py::object();
  }

  void maximize(const double* s, const double* a, std::vector<int>& on, std::vector<int>& extras) const override {
    py::gil_scoped_acquire gil;
    const py::object result = maximize_(DoubleArray(n_, s), DoubleArray(m_, a));
    if (fast_size(result) != 2) {
      throw py::type_error("oracle factor: maximize must return (on, extras), two sequences of indices, got " +
                           py::repr(result).cast<std::string>());
    }
    read_indices(py::reinterpret_borrow<py::sequence>(result)[0], on, "maximize's on");
    read_indices(py::reinterpret_borrow<py::sequence>(result)[1], extras, "maximize's extras");
  }

  bool evaluate(const int* y, std::vector<int>& extras) const override {
    py::gil_scoped_acquire gil;
    py::array_t<std::int64_t> labels(n_);
    std::copy(y, y + n_, labels.mutable_data());
    const py::object result = evaluate_(labels);
    if (result.is_none()) return false;
    read_indices(result, extras, "evaluate's extras", " (None: not allowed)");
    return true;
  }

 private:
  // Indices, not a 0/1 mask: bools (Python's, numpy's) would pass as the indices 0 and 1.
  static void read_indices(const py::handle& obj, std::vector<int>& out, const char* what, const char* hint = "") {
    if (holds_bools(obj)) {
      throw py::type_error(std::string("oracle factor: ") + what + ": expected indices (ints), got booleans " +
                           py::repr(obj).cast<std::string>() + "; for a mask, return np.flatnonzero(mask)");
    }
    try {
      read_ints(obj, out);
    } catch (const py::cast_error&) {
      throw py::type_error(std::string("oracle factor: ") + what + ": expected a sequence of ints, got " +
                           py::repr(obj).cast<std::string>() + hint);
    }
  }

  static bool is_bool(PyObject* x) {
    return PyBool_Check(x) || std::strcmp(Py_TYPE(x)->tp_name, "numpy.bool") == 0 ||
           std::strcmp(Py_TYPE(x)->tp_name, "numpy.bool_") == 0;
  }

  static bool holds_bools(const py::handle& obj) {
    if (py::isinstance<py::array>(obj)) return py::reinterpret_borrow<py::array>(obj).dtype().kind() == 'b';
    if (fast_size(obj) < 0) return false;  // (other iterables: pybind11's caster reads them)
    PyObject** items = PySequence_Fast_ITEMS(obj.ptr());
    return std::any_of(items, items + fast_size(obj), is_bool);
  }

  py::object maximize_, evaluate_;
  int n_, m_;
};

// Int pairs as bytes of packed native ints, read back by read_tuples<2> without a Python object
// per pair (a tree or head automaton factor's arcs, made at initialize and read at every solve).
py::bytes packed(const std::vector<std::array<int, 2>>& pairs) {
  return py::bytes(reinterpret_cast<const char*>(pairs.data()), pairs.size() * sizeof(pairs[0]));
}

// PFactorTree.initialize: the (head, modifier) arcs, checked (heads in [0, n), modifiers in
// [1, n), no self-loops or duplicates, every node reachable from the root 0).
py::bytes tree_arcs(int num_nodes, const py::handle& arcs) {
  if (!PyList_Check(arcs.ptr()) && !PyTuple_Check(arcs.ptr())) {
    throw py::type_error("arcs: expected a list of (head, modifier) pairs");
  }
  if (num_nodes < 2 || num_nodes > ad3::kMaxTreeNodes) {
    throw std::invalid_argument("n_nodes: expected 2 to " + std::to_string(ad3::kMaxTreeNodes) + " nodes, got " +
                                std::to_string(num_nodes));
  }
  const auto pairs = read_tuples<2>(arcs, "arcs");
  const std::size_t n = static_cast<std::size_t>(num_nodes);
  std::vector<char> seen(n * n, 0);
  std::vector<std::vector<int>> children(n);
  for (std::size_t k = 0; k < pairs.size(); ++k) {
    const int h = pairs[k][0], m = pairs[k][1];
    if (!(h >= 0 && h < num_nodes && m >= 1 && m < num_nodes && h != m)) {
      throw std::invalid_argument("arcs: (" + std::to_string(h) + ", " + std::to_string(m) +
                                  ") is not an arc between nodes 0.." + std::to_string(num_nodes - 1) +
                                  " (modifiers >= 1, no self-loops)");
    }
    if (seen[h * n + m]) throw std::invalid_argument("arcs: an arc appears twice");
    seen[h * n + m] = 1;
    children[h].push_back(m);
  }
  std::vector<char> reached(n, 0);
  std::vector<int> frontier;
  if (n > 0) {
    reached[0] = 1;
    frontier.push_back(0);
  }
  std::size_t count = n > 0 ? 1 : 0;
  while (!frontier.empty()) {
    const int v = frontier.back();
    frontier.pop_back();
    for (int m : children[v]) {
      if (!reached[m]) {
        reached[m] = 1;
        ++count;
        frontier.push_back(m);
      }
    }
  }
  if (count != n) throw std::invalid_argument("arcs: some node cannot be reached from the root 0");
  return packed(pairs);
}

// PFactorHeadAutomaton.initialize: the (head, modifier, sibling) triples as (m, s) distances from
// the head on its side, checked: every pair 0 <= m < s <= length exactly once.
py::bytes head_automaton_pairs(int length, const py::handle& siblings) {
  if (!PyList_Check(siblings.ptr()) && !PyTuple_Check(siblings.ptr())) {
    throw py::type_error("siblings: expected a list of (head, modifier, sibling) triples");
  }
  const auto triples = read_tuples<3>(siblings, "siblings");
  if (length < 2) throw std::invalid_argument("length: expected at least 2 (one arc), got " + std::to_string(length));
  const std::size_t size = static_cast<std::size_t>(length) + 1;
  const std::string bad = "siblings: expected every (previous, next) pair of distances 0 <= m < s <= " +
                          std::to_string(length) + " once";
  if (triples.size() != static_cast<std::size_t>(length) * (length + 1) / 2) throw std::invalid_argument(bad);
  std::vector<char> seen(size * size, 0);
  std::vector<std::array<int, 2>> pairs(triples.size());
  for (std::size_t k = 0; k < triples.size(); ++k) {
    const int h = triples[k][0], m = triples[k][1], s = triples[k][2];
    const bool right = s > h;
    const long long dm = right ? static_cast<long long>(m) - h : static_cast<long long>(h) - m;
    const long long ds = right ? static_cast<long long>(s) - h : static_cast<long long>(h) - s;
    if (!(0 <= dm && dm < ds && ds <= length) || seen[dm * size + ds]) throw std::invalid_argument(bad);
    seen[dm * size + ds] = 1;
    pairs[k] = {static_cast<int>(dm), static_cast<int>(ds)};
  }
  return packed(pairs);
}

ad3::FactorType parse_factor_type(const py::handle& value) {
  static const std::array<ad3::FactorType, 21> kTypes = {
      ad3::FactorType::kDense, ad3::FactorType::kXor, ad3::FactorType::kAtMostOne, ad3::FactorType::kOr,
      ad3::FactorType::kXorOut, ad3::FactorType::kOrOut, ad3::FactorType::kAndOut,
      ad3::FactorType::kImply, ad3::FactorType::kBudget, ad3::FactorType::kKnapsack,
      ad3::FactorType::kPair, ad3::FactorType::kSequence, ad3::FactorType::kTree,
      ad3::FactorType::kHeadAutomaton, ad3::FactorType::kBinaryTree, ad3::FactorType::kGeneralTree,
      ad3::FactorType::kSequenceCompressor, ad3::FactorType::kCompressionBudget,
      ad3::FactorType::kGeneralTreeCounts, ad3::FactorType::kBinaryTreeCounts, ad3::FactorType::kOracle};
  int code = -1;
  if (fast_int(value.ptr(), code)) {  // the enum's value (factor_graph.h)
    for (auto t : kTypes) {
      if (static_cast<int>(t) == code) return t;
    }
    throw std::invalid_argument("factor type: unknown type code " + std::to_string(code));
  }
  const std::string name = value.cast<std::string>();
  for (auto t : kTypes) {
    if (name == ad3::factor_type_name(t)) return t;
  }
  throw std::invalid_argument("factor type: unknown type '" + name + "'");
}

// A factor's int parameter: a Python int in [0, INT_MAX] (the factor checks its own range).
int spec_int(const py::handle& value, const char* name) {
  return static_cast<int>(int_option(value, name, 0, std::numeric_limits<int>::max()));
}

// variables: one int per variable, 0 for a binary variable, K >= 1 for a multi-valued one.
// factors: (type, links[, negated, budget, costs, num_states, num_nodes, arcs, parents,
// counts_for_budget, bigram_positions, has_count_scores, oracle]) tuples; type: its name or its FactorType
// value; links are units (variables for dense); negated: flags or None; num_states for sequences
// and general trees, num_nodes and (head, modifier) arcs for trees, (m, s) sibling pairs (in `arcs`)
// for head automata (pairs: a list of 2-sequences, or bytes as tree_arcs returns), parents for
// binary and general trees; the length (in num_nodes), budget, counts and bigram positions for
// compression budgets; parents, num_states, counts and has_count_scores for the tree factors with
// counts (a binary one's max_num_bins in budget); for an oracle factor, its number of additional
// scores (in budget) and the pair (maximize, evaluate) of PythonOracle. Trailing items a type does
// not use may be left out.
ad3::FactorGraph make_factor_graph(const py::handle& variables, const py::handle& factors) {
  ad3::FactorGraph graph;
  std::vector<int> kinds, links, ints;
  std::vector<char> negated, flags, more_flags;
  read_ints(variables, kinds);
  graph.reserve(kinds.size(), static_cast<std::size_t>(std::max<Py_ssize_t>(0, PyObject_Length(factors.ptr()))));
  PyErr_Clear();  // (an iterable without a length: no reservation)
  for (int k : kinds) {
    if (k == 0) graph.add_binary_variable(); else graph.add_multi_variable(k);
  }
  auto need = [](const py::tuple& t, std::size_t size, const char* message) {
    if (t.size() < size) throw std::invalid_argument(message);
  };
  for (const py::handle& item : factors) {
    const auto t = py::reinterpret_borrow<py::tuple>(item);
    if (!PyTuple_Check(item.ptr()) || t.size() < 2) {
      throw std::invalid_argument("factors: expected (type, links, ...) tuples");
    }
    const ad3::FactorType type = parse_factor_type(t[0]);
    read_ints(t[1], links);
    read_flags(t.size() > 2 ? py::handle(t[2]) : py::handle(Py_None), negated);
    switch (type) {
      case ad3::FactorType::kDense: graph.add_dense(links); break;
      case ad3::FactorType::kPair:
        if (links.size() != 2) throw std::invalid_argument("units: a pair factor links exactly two units");
        graph.add_pair(links[0], links[1]);
        break;
      case ad3::FactorType::kBudget:
        need(t, 4, "budget: a budget factor needs its budget");
        graph.add_budget(links, spec_int(t[3], "budget"), negated);
        break;
      case ad3::FactorType::kKnapsack:
        need(t, 5, "costs: a knapsack factor needs its budget and costs");
        graph.add_knapsack(links, t[4].cast<std::vector<double>>(), t[3].cast<double>(), negated);
        break;
      case ad3::FactorType::kSequence:
        need(t, 6, "num_states: a sequence factor needs its states per position");
        read_ints(t[5], ints);
        graph.add_sequence(links, ints);
        break;
      case ad3::FactorType::kTree:
        need(t, 8, "arcs: a tree factor needs num_nodes and its arcs");
        graph.add_tree(links, spec_int(t[6], "num_nodes"), read_pairs(t[7]));
        break;
      case ad3::FactorType::kHeadAutomaton:
        need(t, 8, "siblings: a head automaton needs its sibling pairs");
        graph.add_head_automaton(links, read_pairs(t[7]));
        break;
      case ad3::FactorType::kSequenceCompressor:
        need(t, 8, "siblings: a sequence compressor needs its sibling pairs");
        graph.add_sequence_compressor(links, read_pairs(t[7]));
        break;
      case ad3::FactorType::kBinaryTree:
        need(t, 9, "parents: a binary tree factor needs its parents");
        read_ints(t[8], ints);
        graph.add_binary_tree(links, ints);
        break;
      case ad3::FactorType::kGeneralTree: {
        need(t, 9, "parents: a general tree factor needs its parents");
        std::vector<int> states;
        read_ints(t[8], ints);
        read_ints(t[5], states);
        graph.add_general_tree(links, ints, states);
        break;
      }
      case ad3::FactorType::kCompressionBudget:
        need(t, 11, "counts_for_budget: a compression budget needs its counts and bigrams");
        read_flags(t[9], flags);
        read_ints(t[10], ints);
        graph.add_compression_budget(links, spec_int(t[6], "length"), spec_int(t[3], "budget"), flags, ints);
        break;
      case ad3::FactorType::kGeneralTreeCounts:
      case ad3::FactorType::kBinaryTreeCounts: {
        need(t, 12, "counts_for_budget: a tree factor with counts needs its flags");
        read_flags(t[9], flags);
        read_flags(t[11], more_flags);
        read_ints(t[8], ints);
        if (type == ad3::FactorType::kGeneralTreeCounts) {
          std::vector<int> states;
          read_ints(t[5], states);
          graph.add_general_tree_counts(links, ints, states, flags);
        } else {
          const int bins = t[3].is_none() ? 0 : spec_int(t[3], "max_num_bins");  // (in the budget slot)
          graph.add_binary_tree_counts(links, ints, flags, more_flags, bins);
        }
        break;
      }
      case ad3::FactorType::kOracle: {
        need(t, 13, "oracle: an oracle factor needs its number of additional scores and (maximize, evaluate)");
        const int num_additional = spec_int(t[3], "num_additional");  // (in the budget slot)
        const auto callables = py::reinterpret_borrow<py::tuple>(t[12]);
        if (!PyTuple_Check(callables.ptr()) || callables.size() != 2) {
          throw std::invalid_argument("oracle: expected the pair (maximize, evaluate)");
        }
        graph.add_oracle(links, static_cast<std::size_t>(num_additional),
                         std::make_shared<PythonOracle>(callables[0], callables[1], static_cast<int>(links.size()),
                                                        num_additional),
                         negated);
        break;
      }
      default: graph.add_logic(type, links, negated);
    }
  }
  return graph;
}

// solve_batch on general graphs, with_signals.
std::vector<ad3::FactorSolution> run_general(const ad3::FactorGraph& graph, ad3::Method method,
                                             const ad3::FactorBatchScores& scores,
                                             const ad3::Ad3Options& ad3_options,
                                             const ad3::ExactOptions& exact_options, int threads) {
  return with_signals([&](const ad3::Interrupt& interrupt) {
    return ad3::solve_batch(graph, method, scores, ad3_options, exact_options, psdd_options_of(ad3_options), threads,
                            interrupt);
  });
}

// Solves B problems sharing one general graph: unit_scores (B, U), factor_scores (F,) shared or
// (B, F). Returns (labels (B, N), posteriors (B, U), additional_posteriors (B, F), value (B,),
// score (B,), bound (B,), status (B,), iterations (B,), dual_variables and local_posteriors: lists
// of B arrays). Signals (Ctrl-C) are checked every 50 ms while it solves.
py::tuple solve_factor_graph(const std::string& method_name, const py::object& variables,
                             const py::object& factors, const DoubleArray& unit_scores,
                             const DoubleArray& factor_scores, const py::object& max_iterations,
                             double eta, bool adapt_eta, double tolerance, double ad3_gap_tolerance,
                             double exact_gap_tolerance, const py::object& max_nodes, double time_limit,
                             const py::object& num_threads, const py::object& max_qp_steps) {
  const ad3::Method method = parse_method(method_name);
  constexpr std::int64_t kIntMax = std::numeric_limits<int>::max();
  const ad3::Ad3Options ad3_options =
      ad3_options_of(max_iterations, eta, adapt_eta, tolerance, ad3_gap_tolerance, max_qp_steps);
  const ad3::ExactOptions exact_options = exact_options_of(exact_gap_tolerance, max_nodes, time_limit);
  const int threads = static_cast<int>(int_option(num_threads, "num_threads", 0, kIntMax));
  const ad3::FactorGraph graph = make_factor_graph(variables, factors);
  if (unit_scores.ndim() != 2) throw std::invalid_argument("unit_scores: expected a 2-d array (B, U)");
  if (factor_scores.ndim() != 1 && factor_scores.ndim() != 2) {
    throw std::invalid_argument("factor_scores: expected a 1-d (shared) or 2-d (B, F) array");
  }
  const std::size_t batch = unit_scores.shape(0);
  const ad3::FactorBatchScores scores{batch, unit_scores.data(), static_cast<std::size_t>(unit_scores.size()),
                                      factor_scores.data(), static_cast<std::size_t>(factor_scores.size())};
  const std::vector<ad3::FactorSolution> results =
      run_general(graph, method, scores, ad3_options, exact_options, threads);
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

py::bytes as_bytes(const std::vector<double>& values) {
  return py::bytes(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(double));
}

py::list to_list(const std::vector<double>& values) {
  PyObject* list = ccnn::bindings::float_list(values);
  if (list == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::list>(list);
}

// One problem of the compatibility layer (ccnn_decoder.ad3): variables and factors as for
// make_factor_graph, unit_scores a sequence of floats, factor_scores one sequence of floats per
// factor (its additional scores, concatenated in factor order). Returns (value, score, bound,
// status, iterations, posteriors (list), additional_posteriors (list), dual_variables,
// local_posteriors, posteriors again), the last three as bytes of native float64s (numpy.frombuffer
// reads them).
py::tuple solve_general_graph(const std::string& method_name, const py::object& variables,
                              const py::object& factors, const py::object& unit_scores,
                              const py::object& factor_scores, const py::object& max_iterations, double eta,
                              bool adapt_eta, double tolerance, double ad3_gap_tolerance,
                              double exact_gap_tolerance) {
  const ad3::Method method = parse_method(method_name);
  const ad3::Ad3Options ad3_options = ad3_options_of(max_iterations, eta, adapt_eta, tolerance, ad3_gap_tolerance);
  const ad3::ExactOptions exact_options = exact_options_of(exact_gap_tolerance, py::int_(0), 0.0);
  const ad3::FactorGraph graph = make_factor_graph(variables, factors);
  std::vector<double> units, extras;
  extras.reserve(graph.additional_size());
  append_doubles(unit_scores, units);
  for (const py::handle& item : factor_scores) append_doubles(item, extras);
  const ad3::FactorBatchScores scores{1, units.data(), units.size(), extras.data(), extras.size()};
  std::vector<ad3::FactorSolution> results = run_general(graph, method, scores, ad3_options, exact_options, 1);
  const ad3::FactorSolution r = std::move(results.at(0));
  return py::make_tuple(r.value, r.score, r.bound, static_cast<int>(r.status), r.iterations, to_list(r.posteriors),
                        to_list(r.additional_posteriors), as_bytes(r.dual_variables), as_bytes(r.local_posteriors),
                        as_bytes(r.posteriors));
}

// Solves the graph of multi-valued variables (their numbers of states) and two-variable dense
// factors (pairs of variable indices; the graph rejects indices out of range) that PFactorGraph
// makes of the same create_multi_variable and create_factor_dense calls, in the same order, so
// the solution is the same bit for bit, without the Python objects. unit_scores and tables (each
// factor's K_a x K_b table, row-major, concatenated) hold unit_count and table_count values.
ad3::FactorSolution solve_dense(const std::string& method_name, const std::vector<int>& states,
                                const std::vector<std::array<int, 2>>& pairs, const double* unit_scores,
                                std::size_t unit_count, const double* tables, std::size_t table_count,
                                const py::object& max_iterations, double eta, bool adapt_eta, double tolerance,
                                double ad3_gap_tolerance, double exact_gap_tolerance) {
  const ad3::Method method = parse_method(method_name);
  const ad3::Ad3Options ad3_options = ad3_options_of(max_iterations, eta, adapt_eta, tolerance, ad3_gap_tolerance);
  const ad3::ExactOptions exact_options = exact_options_of(exact_gap_tolerance, py::int_(0), 0.0);
  ad3::FactorGraph graph;
  graph.reserve(states.size(), pairs.size());
  for (int k : states) graph.add_multi_variable(k);
  std::vector<int> variables(2);
  for (const auto& pair : pairs) {
    variables[0] = pair[0];
    variables[1] = pair[1];
    graph.add_dense(variables);
  }
  const ad3::FactorBatchScores scores{1, unit_scores, unit_count, tables, table_count};
  return std::move(run_general(graph, method, scores, ad3_options, exact_options, 1).at(0));
}

// The graph's error for a number of states out of range, raised before a variable exists (a
// (0, K) array has no variable to reject K, and K * K would overflow).
void check_state_count(py::ssize_t k) {
  if (k < 0 || k > ad3::kMaxStates) {
    throw std::invalid_argument("num_states: expected 1 to 2^20 states, got " + std::to_string(k));
  }
}

// general_graph's plain form (and simple_grid's graph) from its arrays: unaries (N, L), edges
// (E, 2), edge_weights (E, L, L). Returns None when any shape or edge is not what general_graph
// accepts (its own checks then name the problem), before reading the options; else (value, score,
// bound, status, iterations, marginals (N, L), edge marginals (E, L * L)). A number of states out
// of range is the graph's error.
py::object solve_pairwise_arrays(const std::string& method_name, const DoubleArray& unaries, const IndexArray& edges,
                                 const DoubleArray& edge_weights, const py::object& max_iterations, double eta,
                                 bool adapt_eta, double tolerance, double ad3_gap_tolerance,
                                 double exact_gap_tolerance) {
  if (unaries.ndim() != 2 || edges.ndim() != 2 || edge_weights.ndim() != 3) return py::none();
  const py::ssize_t n = unaries.shape(0), k = unaries.shape(1), num_edges = edges.shape(0);
  if (edges.shape(1) != 2 || edge_weights.shape(0) != num_edges || edge_weights.shape(1) != k ||
      edge_weights.shape(2) != k) {
    return py::none();
  }
  check_state_count(k);
  std::vector<std::array<int, 2>> pairs(num_edges);
  for (py::ssize_t e = 0; e < num_edges; ++e) {
    const std::int64_t a = edges.at(e, 0), b = edges.at(e, 1);
    if (a < 0 || a >= n || b < 0 || b >= n || a == b) return py::none();
    pairs[e] = {static_cast<int>(a), static_cast<int>(b)};
  }
  const ad3::FactorSolution r = solve_dense(method_name, std::vector<int>(n, static_cast<int>(k)), pairs,
                                            unaries.data(), unaries.size(), edge_weights.data(), edge_weights.size(),
                                            max_iterations, eta, adapt_eta, tolerance, ad3_gap_tolerance,
                                            exact_gap_tolerance);
  return py::make_tuple(r.value, r.score, r.bound, static_cast<int>(r.status), r.iterations,
                        py::array_t<double>({n, k}, r.posteriors.data()),
                        py::array_t<double>({num_edges, k * k}, r.additional_posteriors.data()));
}

// general_graph's typed form straight from its lists: per type t, unaries (N_t, L_t) float64; per
// pair of types k = T * ti + tj, edges (E_k, 2) integers (any empty array: none) and, when there
// are edges, edge_weights (E_k, L_ti, L_tj) float64. Variables are numbered type by type, factors
// list by list. Returns None when an input is not exactly that (general_graph's own checks then
// name the problem, or convert it), before reading the options; else (value, score, bound, status,
// iterations, marginals per type (N_t, L_t), edge marginals per list (E_k, L_ti * L_tj)).
py::object solve_typed_arrays(const std::string& method_name, const py::object& l_unaries, const py::object& l_edges,
                              const py::object& l_edge_weights, const py::object& max_iterations, double eta,
                              bool adapt_eta, double tolerance, double ad3_gap_tolerance,
                              double exact_gap_tolerance) {
  auto is_sequence = [](const py::object& o) { return PyList_Check(o.ptr()) || PyTuple_Check(o.ptr()); };
  auto array_of_kind = [](const py::handle& item, const char* kinds) {
    return py::isinstance<py::array>(item) &&
           std::strchr(kinds, py::reinterpret_borrow<py::array>(item).dtype().kind()) != nullptr &&
           py::reinterpret_borrow<py::array>(item).itemsize() == 8;
  };
  if (!is_sequence(l_unaries) || !is_sequence(l_edges) || !is_sequence(l_edge_weights)) return py::none();
  const auto unary_items = py::reinterpret_borrow<py::sequence>(l_unaries);
  const std::size_t types = unary_items.size();
  const auto edge_items = py::reinterpret_borrow<py::sequence>(l_edges);
  const auto weight_items = py::reinterpret_borrow<py::sequence>(l_edge_weights);
  if (edge_items.size() != types * types || weight_items.size() != types * types) return py::none();
  std::vector<int> states;
  std::vector<double> unit_scores, tables;
  std::vector<py::ssize_t> first(types + 1, 0), width(types);  // each type's first variable, states
  for (std::size_t t = 0; t < types; ++t) {
    if (!array_of_kind(unary_items[t], "f")) return py::none();
    const DoubleArray u = DoubleArray::ensure(unary_items[t]);
    if (!u || u.ndim() != 2) return py::none();
    check_state_count(u.shape(1));
    first[t + 1] = first[t] + u.shape(0);
    width[t] = u.shape(1);
    states.insert(states.end(), u.shape(0), static_cast<int>(u.shape(1)));
    unit_scores.insert(unit_scores.end(), u.data(), u.data() + u.size());
  }
  std::vector<std::array<int, 2>> pairs;
  std::vector<py::ssize_t> list_edges(types * types, 0);
  for (std::size_t k = 0; k < types * types; ++k) {
    const std::size_t ti = k / types, tj = k % types;  // (types > 0: there is a k)
    if (!py::isinstance<py::array>(edge_items[k])) return py::none();
    if (py::reinterpret_borrow<py::array>(edge_items[k]).size() == 0) continue;  // (any dtype, any shape)
    if (!array_of_kind(edge_items[k], "iu")) return py::none();
    const IndexArray e = IndexArray::ensure(edge_items[k]);
    if (!e || e.ndim() != 2 || e.shape(1) != 2 || !array_of_kind(weight_items[k], "f")) return py::none();
    const DoubleArray w = DoubleArray::ensure(weight_items[k]);
    const py::ssize_t count = e.shape(0), ni = first[ti + 1] - first[ti], nj = first[tj + 1] - first[tj];
    if (!w || w.ndim() != 3 || w.shape(0) != count || w.shape(1) != width[ti] || w.shape(2) != width[tj]) {
      return py::none();
    }
    for (py::ssize_t i = 0; i < count; ++i) {
      const std::int64_t a = e.at(i, 0), b = e.at(i, 1);
      if (a < 0 || a >= ni || b < 0 || b >= nj || (ti == tj && a == b)) return py::none();
      pairs.push_back({static_cast<int>(first[ti] + a), static_cast<int>(first[tj] + b)});
    }
    list_edges[k] = count;
    tables.insert(tables.end(), w.data(), w.data() + w.size());
  }
  const ad3::FactorSolution r = solve_dense(method_name, states, pairs, unit_scores.data(), unit_scores.size(),
                                            tables.data(), tables.size(), max_iterations, eta, adapt_eta, tolerance,
                                            ad3_gap_tolerance, exact_gap_tolerance);
  py::list node_out, edge_out;
  const double* p = r.posteriors.data();
  for (std::size_t t = 0; t < types; ++t) {
    node_out.append(py::array_t<double>({first[t + 1] - first[t], width[t]}, p));
    p += (first[t + 1] - first[t]) * width[t];
  }
  const double* a = r.additional_posteriors.data();
  for (std::size_t k = 0; k < types * types; ++k) {
    const py::ssize_t size = width[k / types] * width[k % types];
    edge_out.append(py::array_t<double>({list_edges[k], size}, a));
    a += list_edges[k] * size;
  }
  return py::make_tuple(r.value, r.score, r.bound, static_cast<int>(r.status), r.iterations, node_out, edge_out);
}

double score_factor_graph(const py::object& variables, const py::object& factors,
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
        py::arg("max_qp_steps") = ad3::Ad3Options().max_qp_steps,
        "Solves B problems sharing one general factor graph; returns (labels, posteriors, "
        "additional_posteriors, value, score, bound, status, iterations, dual_variables, local_posteriors).");
  m.def("solve_general_graph", &solve_general_graph, py::arg("method"), py::arg("variables"), py::arg("factors"),
        py::arg("unit_scores"), py::arg("factor_scores"), py::arg("max_iterations"), py::arg("eta"),
        py::arg("adapt_eta"), py::arg("tolerance"), py::arg("ad3_gap_tolerance"), py::arg("exact_gap_tolerance"),
        "Solves one general factor graph (factor_scores: one sequence per factor); returns (value, score, "
        "bound, status, iterations, posteriors, additional_posteriors, dual_variables, local_posteriors, "
        "posteriors as bytes).");
  m.def("solve_pairwise_arrays", &solve_pairwise_arrays, py::arg("method"), py::arg("unaries"), py::arg("edges"),
        py::arg("edge_weights"), py::arg("max_iterations"), py::arg("eta"), py::arg("adapt_eta"),
        py::arg("tolerance"), py::arg("ad3_gap_tolerance"), py::arg("exact_gap_tolerance"),
        "general_graph's plain form (and simple_grid's graph) on arrays; None when an input is not what it accepts, else (value, score, "
        "bound, status, iterations, marginals (N, L), edge_marginals (E, L * L)).");
  m.def("solve_typed_arrays", &solve_typed_arrays, py::arg("method"), py::arg("l_unaries"), py::arg("l_edges"),
        py::arg("l_edge_weights"), py::arg("max_iterations"), py::arg("eta"), py::arg("adapt_eta"),
        py::arg("tolerance"), py::arg("ad3_gap_tolerance"), py::arg("exact_gap_tolerance"),
        "general_graph's typed form on lists of arrays; None when an input is not what it accepts, else (value, "
        "score, bound, status, iterations, marginals per type, edge marginals per list).");
  m.def("tree_arcs", &tree_arcs, py::arg("num_nodes"), py::arg("arcs"),
        "PFactorTree.initialize's arcs, checked, as bytes of packed native int (head, modifier) pairs.");
  m.def("head_automaton_pairs", &head_automaton_pairs, py::arg("length"), py::arg("siblings"),
        "PFactorHeadAutomaton.initialize's sibling triples, checked, as bytes of packed native int (m, s) "
        "distance pairs.");
  m.def("score_factor_graph", &score_factor_graph, py::arg("variables"), py::arg("factors"),
        py::arg("unit_scores"), py::arg("factor_scores"), py::arg("labels"),
        "S(labels) of a general factor graph (-inf when a factor forbids it).");
  py::list names;
  for (auto s : {ad3::Status::kOptimal, ad3::Status::kFractional, ad3::Status::kIterationLimit,
                 ad3::Status::kTimeLimit, ad3::Status::kInfeasible}) {
    names.append(ad3::status_name(s));
  }
  m.attr("STATUS_NAMES") = py::tuple(names);
  m.attr("MAX_STATES") = ad3::kMaxStates;
  m.attr("MAX_TREE_NODES") = ad3::kMaxTreeNodes;
  m.attr("MAX_ADDITIONAL") = ad3::kMaxAdditional;
  if (!ccnn::bindings::add_ad3_compat_types(m.ptr())) throw py::error_already_set();
}
