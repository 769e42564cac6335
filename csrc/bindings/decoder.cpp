// ccnn_ext._decoder: the AD3 / exact MAP decoder (csrc/ad3) as a plain pybind11 module (no torch).
// Thin: converts arrays, releases the GIL around the solve; std::invalid_argument -> ValueError.
// The Python API with its argument checks is ccnn_ext/decode.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ad3/ad3.h"

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
py::tuple solve(const std::string& method_name, const IndexArray& num_states, const IndexArray& edges,
                const DoubleArray& unary, const DoubleArray& pairwise, int max_iterations, double eta,
                bool adapt_eta, double tolerance, double ad3_gap_tolerance, double exact_gap_tolerance,
                std::int64_t max_nodes, int num_threads, bool return_posteriors) {
  const ad3::Method method = parse_method(method_name);
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
  ad3_options.max_iterations = max_iterations;
  ad3_options.eta = eta;
  ad3_options.adapt_eta = adapt_eta;
  ad3_options.tolerance = tolerance;
  ad3_options.gap_tolerance = ad3_gap_tolerance;
  ad3::ExactOptions exact_options;
  exact_options.gap_tolerance = exact_gap_tolerance;
  exact_options.max_nodes = max_nodes;
  const ad3::BatchScores scores{batch, unary.data(), static_cast<std::size_t>(unary.size()),
                                pairwise.data(), static_cast<std::size_t>(pairwise.size())};
  const ad3::BatchOutput output{labels.mutable_data(), score.mutable_data(), bound.mutable_data(),
                                status.mutable_data(), iterations.mutable_data(), posteriors_data};
  {
    py::gil_scoped_release release;
    ad3::solve_batch(graph, method, scores, output, ad3_options, exact_options, num_threads);
  }
  return py::make_tuple(labels, score, bound, status, iterations, posteriors);
}

}  // namespace

PYBIND11_MODULE(_decoder, m) {
  m.doc() = "ccnn MAP decoder (AD3, exact branch-and-bound, exhaustive); see ccnn_ext.decode";
  m.def("solve", &solve, py::arg("method"), py::arg("num_states"), py::arg("edges"), py::arg("unary"),
        py::arg("pairwise"), py::arg("max_iterations"), py::arg("eta"), py::arg("adapt_eta"),
        py::arg("tolerance"), py::arg("ad3_gap_tolerance"), py::arg("exact_gap_tolerance"),
        py::arg("max_nodes"), py::arg("num_threads"), py::arg("return_posteriors"),
        "Solves B problems sharing one graph; returns (labels, score, bound, status, iterations, "
        "posteriors or None).");
  py::list names;
  for (auto s : {ad3::Status::kOptimal, ad3::Status::kFractional, ad3::Status::kIterationLimit}) {
    names.append(ad3::status_name(s));
  }
  m.attr("STATUS_NAMES") = py::tuple(names);
}
