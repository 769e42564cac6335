// Graph construction and validation, and the helpers every solver uses (scores, ICM, gap test).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "ad3/solvers.h"

namespace ccnn {
namespace ad3 {

Graph::Graph(std::vector<int> num_states, std::vector<std::array<int, 2>> edges)
    : num_states_(std::move(num_states)), edges_(std::move(edges)) {
  const long n = static_cast<long>(num_states_.size());
  if (n > std::numeric_limits<int>::max() / 2) {
    throw std::invalid_argument("num_states: too many variables");
  }
  for (long i = 0; i < n; ++i) {
    if (num_states_[i] < 2) {
      throw std::invalid_argument("num_states: variable " + std::to_string(i) + " has " +
                                  std::to_string(num_states_[i]) +
                                  " states; every variable needs at least 2");
    }
  }
  if (edges_.size() > static_cast<std::size_t>(std::numeric_limits<int>::max() / 2)) {
    throw std::invalid_argument("edges: too many edges");
  }
  std::vector<std::pair<int, int>> sorted_pairs;
  sorted_pairs.reserve(edges_.size());
  for (std::size_t e = 0; e < edges_.size(); ++e) {
    const int a = edges_[e][0], b = edges_[e][1];
    if (a < 0 || a >= n || b < 0 || b >= n) {
      throw std::invalid_argument("edges: edge " + std::to_string(e) + " = (" + std::to_string(a) +
                                  ", " + std::to_string(b) + ") has a variable index outside [0, " +
                                  std::to_string(n) + ")");
    }
    if (a == b) {
      throw std::invalid_argument("edges: edge " + std::to_string(e) + " = (" + std::to_string(a) +
                                  ", " + std::to_string(b) + ") is a self-loop");
    }
    sorted_pairs.emplace_back(std::min(a, b), std::max(a, b));
  }
  std::sort(sorted_pairs.begin(), sorted_pairs.end());
  const auto dup = std::adjacent_find(sorted_pairs.begin(), sorted_pairs.end());
  if (dup != sorted_pairs.end()) {
    throw std::invalid_argument("edges: the pair (" + std::to_string(dup->first) + ", " +
                                std::to_string(dup->second) +
                                ") appears more than once (in either order)");
  }

  unary_offset_.assign(n + 1, 0);
  for (long i = 0; i < n; ++i) {
    unary_offset_[i + 1] = unary_offset_[i] + num_states_[i];
    max_states_ = std::max(max_states_, num_states_[i]);
  }
  const int num_edges = static_cast<int>(edges_.size());
  pairwise_offset_.assign(num_edges + 1, 0);
  incidence_offset_.assign(n + 1, 0);
  for (int e = 0; e < num_edges; ++e) {
    const int a = edges_[e][0], b = edges_[e][1];
    pairwise_offset_[e + 1] = pairwise_offset_[e] +
                              static_cast<std::size_t>(num_states_[a]) * num_states_[b];
    ++incidence_offset_[a + 1];
    ++incidence_offset_[b + 1];
  }
  for (long i = 0; i < n; ++i) incidence_offset_[i + 1] += incidence_offset_[i];
  incidence_.resize(2 * static_cast<std::size_t>(num_edges));
  std::vector<int> fill(incidence_offset_.begin(), incidence_offset_.end() - 1);
  for (int e = 0; e < num_edges; ++e) {
    incidence_[fill[edges_[e][0]]++] = {e, 0};
    incidence_[fill[edges_[e][1]]++] = {e, 1};
  }
}

const char* status_name(Status status) {
  switch (status) {
    case Status::kOptimal:
      return "optimal";
    case Status::kFractional:
      return "fractional";
    case Status::kIterationLimit:
      return "iteration_limit";
    case Status::kTimeLimit:
      return "time_limit";
    case Status::kInfeasible:
      return "infeasible";
  }
  return "unknown";
}

namespace detail {

void check_finite(const double* values, std::size_t count, const char* what, long problem) {
  for (std::size_t k = 0; k < count; ++k) {
    if (!std::isfinite(values[k])) {
      std::string where = problem >= 0 ? " of problem " + std::to_string(problem) : "";
      throw std::invalid_argument(std::string(what) + ": value " + std::to_string(k) + where +
                                  " is " + (std::isnan(values[k]) ? "NaN" : "infinite") +
                                  "; scores must be finite");
    }
  }
}

std::uint64_t largest_magnitude_bits(const double* values, std::size_t count) {
  // Four independent running maxima (no dependency chain through one register), branch-free.
  constexpr std::uint64_t kAbs = 0x7fffffffffffffffULL;
  std::uint64_t m0 = 0, m1 = 0, m2 = 0, m3 = 0;
  std::size_t k = 0;
  for (; k + 4 <= count; k += 4) {
    std::uint64_t b[4];
    std::memcpy(b, values + k, sizeof b);
    m0 = std::max(m0, b[0] & kAbs);
    m1 = std::max(m1, b[1] & kAbs);
    m2 = std::max(m2, b[2] & kAbs);
    m3 = std::max(m3, b[3] & kAbs);
  }
  for (; k < count; ++k) {
    std::uint64_t b;
    std::memcpy(&b, values + k, sizeof b);
    m0 = std::max(m0, b & kAbs);
  }
  return std::max(std::max(m0, m1), std::max(m2, m3));
}

double magnitude_from_bits(std::uint64_t bits) {
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

double unary_magnitude(const Graph& graph, const double* unary) {
  double total = 0.0;
  for (int i = 0; i < graph.num_variables(); ++i) {
    const double* own = unary + graph.unary_offset(i);
    double largest = 0.0;
    for (int s = 0; s < graph.num_states(i); ++s) largest = std::max(largest, std::fabs(own[s]));
    total += largest;
  }
  return total;
}

double pairwise_magnitude(const Graph& graph, const double* pairwise) {
  double total = 0.0;
  for (int e = 0; e < graph.num_edges(); ++e) {
    double largest = 0.0;
    for (std::size_t k = graph.pairwise_offset(e); k < graph.pairwise_offset(e + 1); ++k) {
      largest = std::max(largest, std::fabs(pairwise[k]));
    }
    total += largest;
  }
  return total;
}

void check_magnitude(double magnitude, long problem) {
  if (magnitude <= kMaxScoreMagnitude) return;
  char value[32];
  std::snprintf(value, sizeof value, "%.3g", magnitude);
  std::string where = problem >= 0 ? " of problem " + std::to_string(problem) : "";
  throw std::invalid_argument(
      "unary, pairwise: the scores" + where + " are too large: a labelling's score could reach " +
      (std::isinf(magnitude) ? std::string("beyond the largest double (overflow)") : std::string(value)) +
      " in magnitude (sum over variables and edges of the largest |score|), at most 1e300 is allowed; "
      "rescale the scores");
}

double labelling_score(const Graph& graph, const double* unary, const double* pairwise,
                       const int* labels) {
  double total = 0.0;
  for (int i = 0; i < graph.num_variables(); ++i) total += unary[graph.unary_offset(i) + labels[i]];
  for (int e = 0; e < graph.num_edges(); ++e) {
    const int a = graph.edge(e)[0], b = graph.edge(e)[1];
    total += pairwise[graph.pairwise_offset(e) +
                      static_cast<std::size_t>(labels[a]) * graph.num_states(b) + labels[b]];
  }
  return total;
}

double improve_by_icm(const Graph& graph, const double* unary, const double* pairwise,
                      int* labels, std::vector<double>& scratch) {
  scratch.resize(graph.max_states());
  const int n = graph.num_variables();
  // Every move strictly increases the score, so this terminates; the cap only bounds the work.
  for (int sweep = 0; sweep < 100; ++sweep) {
    bool moved = false;
    for (int i = 0; i < n; ++i) {
      const int k = graph.num_states(i);
      const double* own = unary + graph.unary_offset(i);
      std::copy(own, own + k, scratch.begin());
      const Graph::Incidence* inc = graph.incident(i);
      for (int d = 0; d < graph.degree(i); ++d) {
        const int e = inc[d].edge;
        const int a = graph.edge(e)[0], b = graph.edge(e)[1];
        const double* table = pairwise + graph.pairwise_offset(e);
        const int kb = graph.num_states(b);
        if (inc[d].side == 0) {
          for (int s = 0; s < k; ++s) scratch[s] += table[static_cast<std::size_t>(s) * kb + labels[b]];
        } else {
          const double* row = table + static_cast<std::size_t>(labels[a]) * kb;
          for (int s = 0; s < k; ++s) scratch[s] += row[s];
        }
      }
      int best = labels[i];
      for (int s = 0; s < k; ++s) {
        if (scratch[s] > scratch[best]) best = s;
      }
      if (best != labels[i]) {
        labels[i] = best;
        moved = true;
      }
    }
    if (!moved) break;
  }
  return labelling_score(graph, unary, pairwise, labels);
}

bool within_gap(double score, double bound, double tolerance) {
  return bound - score <= tolerance * std::max(1.0, std::fabs(score));
}

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
