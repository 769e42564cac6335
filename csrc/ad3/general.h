// Internal to csrc/ad3: what the general-graph solvers (general_solver.cpp, factor_graph.cpp) share.
#pragma once

#include <memory>
#include <vector>

#include "ad3/factor_graph.h"
#include "ad3/factors.h"
#include "ad3/solvers.h"

namespace ccnn {
namespace ad3 {
namespace detail {

// Throws std::invalid_argument on sizes, non-finite values or a too large magnitude.
void check_general_scores(const FactorGraph& graph, const std::vector<double>& unit_scores,
                          const std::vector<double>& factor_scores);
// The same for num_units() and additional_size() scores (their sizes checked by the caller).
void check_general_scores(const FactorGraph& graph, const double* unit_scores, const double* factor_scores);

// A graph's factors as local solvers: the declared ones (same indices), then an XOR for each
// multi-valued variable whose one-hot constraint no declared factor enforces (dense factors,
// sequence positions, general tree nodes, an XOR over exactly its units). One per solve (the solvers keep state).
// A pairwise model (see `pairwise`) makes its local solvers only when build_factors() is called:
// AD3 and scoring do without them.
struct GeneralModel {
  explicit GeneralModel(const FactorGraph& graph);
  void build_factors();  // (once; a model that is not pairwise has them from the start)
  // S(labels), -inf when a factor forbids it; writes the factors' additional posteriors of the
  // labelling to additional_out (additional_size() values) when not null.
  double score(const double* unit_scores, const double* factor_scores, const int* labels,
               double* additional_out);

  const FactorGraph& graph;
  // Links of factor f: link_begin[f] .. link_begin[f + 1] - 1 (all factors' links, flat).
  const int* units(int f) const { return link_unit.data() + link_begin[f]; }
  int num_links(int f) const { return static_cast<int>(link_begin[f + 1] - link_begin[f]); }

  std::vector<std::unique_ptr<LocalFactor>> factors;
  std::vector<int> one_hot_factor_variables;  // the variables of the internal XOR factors, in order
  std::vector<int> link_unit;              // per link: its unit
  std::vector<std::size_t> link_begin;     // per factor (+1): its first link
  std::vector<std::size_t> additional;     // per factor: offset of its additional scores
  std::vector<int> degree;                 // per unit, internal factors included
  std::vector<char> has_dense;             // per variable
  std::vector<char> one_hot;               // per variable: a factor enforces its one-hot constraint
  // At least one factor, every variable multi-valued, every factor a dense table over two of
  // them, no two on the same pair, and internal factors only over variables in no declared
  // factor: AD3 runs the pairwise solver (Ad3Solver) on it.
  bool pairwise = false;
  // scratch
  std::vector<int> unit_values, link_values;
  std::vector<double> scratch_u;
};

// Throws std::invalid_argument naming a bad option.
void check_options(const PsddOptions& options);

// One problem with `method` (scores checked by the caller). `stop` is polled every few AD3
// iterations, 1,024 search nodes or 65,536 labellings: a time stop (exact: armed here from
// exact_options.time_limit) ends the problem with status kTimeLimit, a cancel with a result to
// discard.
FactorSolution solve_general(Method method, GeneralModel& model, const double* unit_scores,
                             const double* factor_scores, const Ad3Options& ad3_options,
                             const ExactOptions& exact_options, const PsddOptions& psdd_options,
                             StopControl& stop);
FactorSolution solve_general_exhaustive(GeneralModel& model, const double* unit_scores,
                                        const double* factor_scores, StopControl& stop);
// Throws std::invalid_argument when the graph has more than 2^26 labellings.
void check_exhaustive_size(const FactorGraph& graph);

// Completes a solution from solution.labels and solution.score (-inf: infeasible): 0/1
// posteriors, additional posteriors, value = bound = score, status kOptimal or kInfeasible.
void fill_integral(GeneralModel& model, const double* unit_scores, const double* factor_scores,
                   FactorSolution& solution);

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
