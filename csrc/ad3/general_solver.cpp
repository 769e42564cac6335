// AD3, PSDD and the certified branch-and-bound on general factor graphs (factor_graph.h).
//
// AD3 (Martins et al., JMLR 2015, Algorithm 2) on binary units: global marginals p_u, one local
// copy q_fi per factor link with multiplier lambda_fi (sum over the factors of a unit: 0). Each
// iteration solves every factor's local problem
//     min 1/2 ||q_f - x_f||^2 - (a_f / eta) . w_f,   x_fi = p_u + (theta_u / deg_u + lambda_fi) / eta,
// averages the copies into p and moves the multipliers, lambda_fi -= eta (q_fi - p_u). The dual
// value sum_f max_{M_f} [(theta_u / deg_u + lambda_fi) . y + a_f . w] (+ the free units' best
// values) bounds every labelling's score from above; rounding p gives labellings, and one that
// meets the bound is certified optimal, as is the labelling of the dual's factor configurations
// when they agree on every unit (checked at every dual value, the first one before iterating).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "ad3/general.h"

namespace ccnn {
namespace ad3 {
namespace detail {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
constexpr double kInf = std::numeric_limits<double>::infinity();

struct Ad3Run {
  std::vector<double> p;           // per unit
  std::vector<double> additional;  // additional_size()
  std::vector<double> lambda;      // per link
  std::vector<double> q;           // per link: the local marginals of the last iteration
  std::vector<int> labels;         // best rounded labelling
  double score = kNegInf;
  double bound = kInf;
  double value = 0.0;
  Status status = Status::kIterationLimit;
  std::int64_t iterations = 0;
};

// Rounds p to a labelling: a binary variable is 1 when p > 1/2, a multi-valued one takes its most
// probable state.
void round_labels(const FactorGraph& graph, const double* p, int* labels) {
  const int n = graph.num_variables();
  if (graph.all_binary()) {
    for (int v = 0; v < n; ++v) labels[v] = p[v] > 0.5 ? 1 : 0;
    return;
  }
  for (int v = 0; v < n; ++v) {
    const int begin = graph.unit_begin(v);
    if (graph.is_binary(v)) {
      labels[v] = p[begin] > 0.5 ? 1 : 0;
    } else {
      const int k = graph.unit_count(v);
      labels[v] = static_cast<int>(std::max_element(p + begin, p + begin + k) - (p + begin));
    }
  }
}

// The last kSize labellings scored, found by hash then compared: a rounding among them cannot improve
// on the best labelling, so it is not scored again (the roundings of fractional iterates oscillate).
class RecentLabellings {
 public:
  explicit RecentLabellings(int num_variables)
      : n_(num_variables), labels_(static_cast<std::size_t>(kSize) * num_variables, -1), hash_(kSize, 0) {}

  // Whether `labels` is among the last kSize recorded; if not, records it.
  bool seen_or_record(const int* labels) {
    if (std::equal(labels, labels + n_, slot(last_))) return true;  // (the common case: unchanged)
    std::uint64_t hash = 14695981039346656037ull;  // FNV-1a over the labels
    for (int v = 0; v < n_; ++v) hash = (hash ^ static_cast<std::uint64_t>(labels[v])) * 1099511628211ull;
    for (int r = 0; r < kSize; ++r) {
      if (hash_[r] == hash && std::equal(labels, labels + n_, slot(r))) {
        last_ = r;
        return true;
      }
    }
    hash_[next_] = hash;
    std::copy(labels, labels + n_, slot(next_));
    last_ = next_;
    next_ = (next_ + 1) % kSize;
    return false;
  }

 private:
  static constexpr int kSize = 16;
  int* slot(int r) { return labels_.data() + static_cast<std::size_t>(r) * n_; }

  int n_;
  std::vector<int> labels_;
  std::vector<std::uint64_t> hash_;
  int next_ = 0;  // the slot recorded next
  int last_ = 0;  // the slot of the last labelling seen
};

Ad3Run run_ad3(GeneralModel& model, const double* theta, const double* factor_scores, const Ad3Options& options,
               StopControl& stop) {
  const FactorGraph& graph = model.graph;
  const int num_units = graph.num_units();
  const int num_factors = static_cast<int>(model.factors.size());
  Ad3Run run;
  const std::vector<int>& link_unit = model.link_unit;
  const std::vector<std::size_t>& link_begin = model.link_begin;
  const std::size_t num_links = link_unit.size();
  const std::size_t num_additional = graph.additional_size();
  for (auto& factor : model.factors) factor->limit_qp_steps(options.max_qp_steps);
  run.lambda.assign(num_links, 0.0);
  run.q.assign(num_links, 0.0);
  run.additional.assign(num_additional, 0.0);
  run.labels.assign(graph.num_variables(), 0);
  std::size_t scratch_size = 1;
  for (int f = 0; f < num_factors; ++f) scratch_size = std::max<std::size_t>(scratch_size, model.factors[f]->num_additional());
  // The scratch vectors, in one buffer: per unit share and the agreed configurations' values; per
  // link its unit's share, x, s and y; the scaled additional scores; one factor's additional
  // posteriors that nobody keeps.
  std::vector<double> buffer(2 * num_units + 4 * num_links + num_additional + scratch_size, 0.0);
  double* const share = buffer.data();
  double* const agreed = share + num_units;
  double* const link_share = agreed + num_units;
  double* const x = link_share + num_links;
  double* const s = x + num_links;
  double* const y = s + num_links;
  double* const scaled = y + num_links;
  double* const w_scratch = scaled + num_additional;
  double* const q = run.q.data();
  // Initial marginals: 1/2 for binary variables, uniform over the states of multi-valued ones; a
  // unit without factors takes its best value once and for all.
  run.p.assign(num_units, 0.5);
  double free_max = 0.0;
  for (int v = 0; v < graph.num_variables(); ++v) {
    for (int t = 0; t < graph.unit_count(v); ++t) {
      const int u = graph.unit_begin(v) + t;
      if (!graph.is_binary(v)) run.p[u] = 1.0 / graph.unit_count(v);
      if (model.degree[u] == 0) {
        run.p[u] = theta[u] > 0.0 ? 1.0 : 0.0;
        free_max += std::max(theta[u], 0.0);
      } else {
        share[u] = theta[u] / model.degree[u];
      }
    }
  }
  for (std::size_t l = 0; l < num_links; ++l) link_share[l] = share[link_unit[l]];
  // Per factor: its additional scores, scaled ones, and where solve_qp writes its additional
  // posteriors (null: it defers them).
  struct FactorIo {
    const double* a;
    const double* scaled;
    double* w;
  };
  std::vector<FactorIo> io(num_factors);
  std::vector<int> deferred;  // declared factors whose additional posteriors solve_qp defers
  static const double kNoScores = 0.0;
  for (int f = 0; f < num_factors; ++f) {
    const bool own = model.factors[f]->num_additional() > 0;
    io[f].a = own ? factor_scores + model.additional[f] : &kNoScores;
    io[f].scaled = own ? scaled + model.additional[f] : &kNoScores;
    const bool kept = own && f < graph.num_factors();  // (internal factors have none to keep)
    if (model.factors[f]->defers_additional()) {
      io[f].w = nullptr;
      if (kept) deferred.push_back(f);
    } else {
      io[f].w = kept ? run.additional.data() + model.additional[f] : w_scratch;
    }
  }
  // The additional posteriors of the factors that defer them, for an iterate that is kept.
  auto collect_additional = [&]() {
    for (int f : deferred) model.factors[f]->additional_posteriors(run.additional.data() + model.additional[f]);
  };
  // Per unit: its first link (-1 without one), and its links in increasing order at
  // unit_links[unit_link_begin[u]..unit_link_begin[u + 1]] (the averaging sums each unit's copies
  // in a register, in link order, rather than adding them into memory link by link).
  std::vector<int> unit_link_begin(num_units + 1, 0), unit_links(num_links);
  for (int u = 0; u < num_units; ++u) unit_link_begin[u + 1] = unit_link_begin[u] + model.degree[u];
  std::vector<int> first_link(unit_link_begin.begin(), unit_link_begin.end() - 1);  // (a fill cursor, then the first link)
  for (std::size_t l = 0; l < num_links; ++l) unit_links[first_link[link_unit[l]]++] = static_cast<int>(l);
  for (int u = 0; u < num_units; ++u) first_link[u] = model.degree[u] > 0 ? unit_links[unit_link_begin[u]] : -1;
  // This iteration's rounded labelling, and the last ones scored.
  std::vector<int> rounding(graph.num_variables());
  int* const rounded = rounding.data();
  RecentLabellings recent(graph.num_variables());
  // The reference's penalty is eta ||q - p||^2, i.e. 2 eta in the form above: eta and its range
  // [1e-3, 100] are doubled so that `eta` means what it means there.
  double eta = 2.0 * options.eta;
  const double total_links = std::max<double>(1.0, static_cast<double>(num_links));

  // Savings that leave the iterates unchanged: a factor whose inputs x (and eta) are bitwise
  // those of its last solve keeps its solution, and one whose dual scores are those of its last
  // MAP call keeps that call's value; the dual value (one MAP call per factor) is computed every
  // kDualInterval iterations, when the rounding finds a better labelling, and when the residuals
  // have converged, rather than every iteration.
  constexpr int kDualInterval = 10;
  // The marginals (and additional posteriors) of the iterate whose rounding is the best labelling:
  // what a run stopped by the iteration limit reports (see below).
  std::vector<double> best_p, best_additional;
  bool eta_changed = true;
  bool converged = false, certified = false;
  // Per factor, the value of its last MAP call (at the scores left in s, its configuration in y).
  std::vector<double> factor_dual(num_factors);
  bool have_dual = false;
  // The dual value at the current multipliers, from each factor's best configuration y. When those
  // configurations agree on every unit, their labelling scores the dual value: it is optimal (the
  // certificate of dual decomposition), taken as the best labelling (it ends the run).
  auto compute_dual = [&]() {
    double dual = free_max;
    for (int f = 0; f < num_factors; ++f) {
      const std::size_t lb = link_begin[f], le = link_begin[f + 1];
      bool same = have_dual;
      for (std::size_t l = lb; l < le; ++l) {
        const double v = link_share[l] + run.lambda[l];
        same = same && v == s[l];
        s[l] = v;
      }
      if (!same) factor_dual[f] = model.factors[f]->map(s + lb, io[f].a, y + lb, w_scratch);
      dual += factor_dual[f];
    }
    have_dual = true;
    run.bound = std::min(run.bound, dual);
    for (std::size_t l = 0; l < num_links; ++l) {
      if (y[l] != y[first_link[link_unit[l]]]) return;
    }
    for (int u = 0; u < num_units; ++u) agreed[u] = first_link[u] >= 0 ? y[first_link[u]] : run.p[u];
    round_labels(graph, agreed, rounded);
    const double score = model.score(theta, factor_scores, rounded, nullptr);  // (rounded: scratch)
    if (score > run.score && within_gap(score, run.bound, options.gap_tolerance)) {
      run.score = score;
      run.labels.assign(rounded, rounded + graph.num_variables());
    }
  };
  // Before the first iteration: the factors' best configurations at zero multipliers may already
  // agree (always, when no unit is shared between factors, as with a single sequence factor).
  compute_dual();
  if (run.score > kNegInf && within_gap(run.score, run.bound, options.gap_tolerance)) {
    certified = true;
    std::copy(y, y + num_links, q);  // (the local copies: the labelling)
  }
  int last_dual = -1;
  // The factors' inputs x at the current p, multipliers and eta; changed[f]: whether factor f's
  // differ from those of its last solve (the iteration's last loop refreshes them in passing).
  std::vector<char> changed(num_factors, 1);
  // With small factors (under 4 links on average) one pass over the links, each marking its
  // factor in changed, costs less than a loop per factor (8% less time on 20 binary labels with
  // pair and logic factors); with large factors a loop per factor keeps the flag in a register
  // (marking in memory chains each link's store to the last one's: 2% more time on the parser).
  const bool small_factors = num_links < 4 * static_cast<std::size_t>(num_factors);
  std::vector<int> link_factor(small_factors ? num_links : 0);
  for (int f = 0; small_factors && f < num_factors; ++f) {
    std::fill(link_factor.begin() + link_begin[f], link_factor.begin() + link_begin[f + 1], f);
  }
  auto refresh_inputs = [&]() {
    const double inv_eta = 1.0 / eta;
    for (std::size_t l = 0; l < num_links; ++l) x[l] = run.p[link_unit[l]] + (link_share[l] + run.lambda[l]) * inv_eta;
    std::fill(changed.begin(), changed.end(), 1);
  };
  refresh_inputs();
  for (int t = 0; t < options.max_iterations && !certified; ++t) {
    if ((t & 7) == 7 && stop.stop() != StopReason::kNone) break;
    run.iterations = t + 1;
    if (eta_changed) {
      for (std::size_t k = 0; k < num_additional; ++k) scaled[k] = factor_scores[k] / eta;
      refresh_inputs();
    }
    for (int f = 0; f < num_factors; ++f) {
      if (changed[f] || !model.factors[f]->last_qp_exact()) {  // (else its last solution holds)
        const std::size_t lb = link_begin[f];
        model.factors[f]->solve_qp(x + lb, io[f].scaled, q + lb, io[f].w);
      }
    }
    eta_changed = false;
    double dual_residual = 0.0;
    for (int u = 0; u < num_units; ++u) {  // average the copies
      if (model.degree[u] == 0) continue;
      double sum = 0.0;
      for (int i = unit_link_begin[u]; i < unit_link_begin[u + 1]; ++i) sum += q[unit_links[i]];
      const double average = sum / model.degree[u];
      const double d = average - run.p[u];
      dual_residual += model.degree[u] * d * d;
      run.p[u] = average;
    }
    // Move the multipliers; with them, the next iteration's inputs (at this eta: an adapted eta
    // refreshes them all).
    double primal_residual = 0.0;
    const double inv_eta = 1.0 / eta;
    double* const lambda = run.lambda.data();
    const double* const p = run.p.data();
    // Moves link l's multiplier; whether its next input differs from the last one.
#define CCNN_AD3_MOVE_LINK(l, differs)                                 \
  do {                                                                 \
    const double pu = p[link_unit[l]];                                 \
    const double d = q[l] - pu;                                        \
    primal_residual += d * d;                                          \
    lambda[l] -= eta * d;                                              \
    const double v = pu + (link_share[l] + lambda[l]) * inv_eta;       \
    differs = v != x[l];                                               \
    x[l] = v;                                                          \
  } while (false)
    if (small_factors) {
      std::fill(changed.begin(), changed.end(), 0);
      for (std::size_t l = 0; l < num_links; ++l) {
        bool differs;
        CCNN_AD3_MOVE_LINK(l, differs);
        changed[link_factor[l]] |= static_cast<char>(differs);
      }
    } else {
      for (int f = 0; f < num_factors; ++f) {
        bool any = false;
        for (std::size_t l = link_begin[f]; l < link_begin[f + 1]; ++l) {
          bool differs;
          CCNN_AD3_MOVE_LINK(l, differs);
          any |= differs;
        }
        changed[f] = any;
      }
    }
#undef CCNN_AD3_MOVE_LINK
    primal_residual = std::sqrt(primal_residual / total_links);
    dual_residual = std::sqrt(dual_residual / total_links);
    const bool residuals_small = primal_residual < options.tolerance && dual_residual < options.tolerance;
    // Rounding (scored only when it is not one of the last ones scored).
    bool improved = false;
    round_labels(graph, run.p.data(), rounded);
    if (!recent.seen_or_record(rounded)) {
      const double score = model.score(theta, factor_scores, rounded, nullptr);
      if (score > run.score) {
        run.score = score;
        run.labels.assign(rounded, rounded + graph.num_variables());
        improved = true;
        best_p = run.p;
        collect_additional();
        best_additional = run.additional;
      }
    }
    if (improved || residuals_small || t % kDualInterval == 0 || t + 1 == options.max_iterations) {
      compute_dual();  // at the new multipliers
      last_dual = t;
    }
    if (run.score > kNegInf && within_gap(run.score, run.bound, options.gap_tolerance)) {
      certified = true;
      break;
    }
    if (residuals_small) {
      converged = true;
      break;
    }
    if (options.adapt_eta && t % 10 == 0) {  // (factors 100 and 10, as in the reference)
      if (primal_residual > 100.0 * dual_residual) {
        eta = std::min(2.0 * eta, 200.0);
        eta_changed = true;
      } else if (dual_residual > 10.0 * primal_residual) {
        eta = std::max(0.5 * eta, 2e-3);
        eta_changed = true;
      }
    }
  }
  if (!certified && last_dual != run.iterations - 1) {  // stopped: the bound at the last multipliers
    compute_dual();
    if (run.score > kNegInf && within_gap(run.score, run.bound, options.gap_tolerance)) certified = true;
  }
  collect_additional();
  run.status = certified ? Status::kOptimal : converged ? Status::kFractional : Status::kIterationLimit;
  if (run.status == Status::kIterationLimit && !best_p.empty()) {
    // Not converged: report the iterate whose rounding is the best labelling found (its score is
    // the returned score), rather than the last one, whose rounding may be worse (the reference
    // likewise reports an earlier iterate, the one of its best dual value).
    run.p.swap(best_p);
    run.additional.swap(best_additional);
  }
  if (run.status != Status::kOptimal) {  // (a certified run reports its labelling's score: from_run)
    double value = 0.0;
    for (int u = 0; u < num_units; ++u) value += theta[u] * run.p[u];
    for (std::size_t k = 0; k < num_additional; ++k) value += factor_scores[k] * run.additional[k];
    run.value = value;
  }
  return run;
}

// AD3 on a pairwise graph (GeneralModel::pairwise) by the pairwise solver (ad3_solver.cpp): the
// same iterations with a local solver specialised to two-variable tables; it also certifies the
// labelling ICM makes of its best rounding when that meets the bound. Its state in run_ad3's layout.
Ad3Run run_pairwise_ad3(GeneralModel& model, const double* theta, const double* factor_scores,
                        const Ad3Options& options, StopControl& stop) {
  const FactorGraph& graph = model.graph;
  std::vector<int> num_states(graph.num_variables());
  for (int v = 0; v < graph.num_variables(); ++v) num_states[v] = graph.unit_count(v);
  std::vector<std::array<int, 2>> edges(graph.num_factors());
  for (int f = 0; f < graph.num_factors(); ++f) edges[f] = {graph.factor(f).links[0], graph.factor(f).links[1]};
  const Graph pairwise(std::move(num_states), std::move(edges));  // (units and tables: the same layout)
  Ad3Solver solver(pairwise, options);
  solver.set_stop(&stop);
  solver.set_report_best_rounding(true);
  const RawResult raw = solver.solve(theta, factor_scores);
  Ad3Run run;
  run.labels = solver.labels();
  run.score = raw.score;
  run.bound = raw.bound;
  run.status = raw.status;
  run.iterations = raw.iterations;
  run.p = solver.posteriors();
  run.additional.resize(graph.additional_size());
  solver.edge_marginals(run.additional.data());
  run.lambda.resize(model.link_unit.size());
  run.q.resize(model.link_unit.size());
  const std::vector<double>& lambda = solver.multipliers();
  const std::vector<double>& q = solver.local_marginals();
  for (int f = 0; f < graph.num_factors(); ++f) {  // (factor f: table e = f, links of a then of b)
    const EdgeLayout& edge = solver.edge_layout(f);
    const std::size_t first = model.link_begin[f], second = first + edge.ka;
    std::copy(lambda.begin() + edge.link_a, lambda.begin() + edge.link_a + edge.ka, run.lambda.begin() + first);
    std::copy(lambda.begin() + edge.link_b, lambda.begin() + edge.link_b + edge.kb, run.lambda.begin() + second);
    std::copy(q.begin() + edge.link_a, q.begin() + edge.link_a + edge.ka, run.q.begin() + first);
    std::copy(q.begin() + edge.link_b, q.begin() + edge.link_b + edge.kb, run.q.begin() + second);
  }
  // internal XORs over isolated variables: their one link per unit copies p (lambda stays 0)
  for (std::size_t l = model.link_begin[graph.num_factors()]; l < model.link_unit.size(); ++l) {
    run.q[l] = run.p[model.link_unit[l]];
  }
  if (run.status != Status::kOptimal) {
    double value = 0.0;
    for (int u = 0; u < graph.num_units(); ++u) value += theta[u] * run.p[u];
    for (std::size_t k = 0; k < run.additional.size(); ++k) value += factor_scores[k] * run.additional[k];
    run.value = value;
  }
  return run;
}

Ad3Run run_model_ad3(GeneralModel& model, const double* theta, const double* factor_scores,
                     const Ad3Options& options, StopControl& stop) {
  return model.pairwise ? run_pairwise_ad3(model, theta, factor_scores, options, stop)
                        : run_ad3(model, theta, factor_scores, options, stop);
}

// PSDD (factor_graph.h) in run_ad3's layout: multipliers mu (run.lambda, score units; their sum
// over a unit's links stays 0, so the dual needs no correction term), the factors' last
// configurations (run.q), and the mean p of each unit's copies.
Ad3Run run_psdd(GeneralModel& model, const double* theta, const double* factor_scores, const PsddOptions& options,
                StopControl& stop) {
  model.build_factors();  // (a pairwise model makes them on demand)
  const FactorGraph& graph = model.graph;
  const int num_units = graph.num_units();
  const int num_variables = graph.num_variables();
  const int num_factors = static_cast<int>(model.factors.size());
  const std::vector<int>& link_unit = model.link_unit;
  const std::vector<std::size_t>& link_begin = model.link_begin;
  const std::size_t num_links = link_unit.size();
  Ad3Run run;
  run.lambda.assign(num_links, 0.0);
  run.q.assign(num_links, 0.0);
  run.additional.assign(graph.additional_size(), 0.0);
  run.labels.assign(num_variables, 0);
  run.p.assign(num_units, 0.0);
  // Per link: its unit's share of the unit score; a unit without factors takes its best value.
  std::vector<double> link_share(num_links), s(num_links);
  double free_max = 0.0;
  for (int u = 0; u < num_units; ++u) {
    if (model.degree[u] == 0) {
      run.p[u] = theta[u] > 0.0 ? 1.0 : 0.0;
      free_max += std::max(theta[u], 0.0);
    }
  }
  for (std::size_t l = 0; l < num_links; ++l) link_share[l] = theta[link_unit[l]] / model.degree[link_unit[l]];
  // Where each factor's map writes its additional posteriors (internal factors have none).
  std::size_t scratch_size = 1;
  for (const auto& factor : model.factors) scratch_size = std::max<std::size_t>(scratch_size, factor->num_additional());
  std::vector<double> w_scratch(scratch_size);
  static const double kNoScores = 0.0;
  auto scores_of = [&](int f) {
    return model.factors[f]->num_additional() > 0 ? factor_scores + model.additional[f] : &kNoScores;
  };
  auto additional_of = [&](int f) {
    return model.factors[f]->num_additional() > 0 && f < graph.num_factors()
               ? run.additional.data() + model.additional[f]
               : w_scratch.data();
  };
  std::vector<int> rounded(num_variables);
  RecentLabellings recent(num_variables);
  std::vector<double> best_p, best_additional;
  // A factor whose multipliers did not move keeps its last configuration and value (as the
  // reference's caching of inactive factors).
  std::vector<double> factor_value(num_factors, 0.0);
  std::vector<char> moved(num_factors, 1);
  bool certified = false;
  for (int t = 0; t < options.max_iterations; ++t) {
    if ((t & 7) == 7 && stop.stop() != StopReason::kNone) break;
    run.iterations = t + 1;
    double dual = free_max;
    for (int f = 0; f < num_factors; ++f) {
      if (moved[f]) {
        const std::size_t lb = link_begin[f], le = link_begin[f + 1];
        for (std::size_t l = lb; l < le; ++l) s[l] = link_share[l] + run.lambda[l];
        factor_value[f] = model.factors[f]->map(s.data() + lb, scores_of(f), run.q.data() + lb, additional_of(f));
        moved[f] = 0;
      }
      dual += factor_value[f];
    }
    run.bound = std::min(run.bound, dual);
    for (int u = 0; u < num_units; ++u) {
      if (model.degree[u] > 0) run.p[u] = 0.0;
    }
    for (std::size_t l = 0; l < num_links; ++l) run.p[link_unit[l]] += run.q[l];
    for (int u = 0; u < num_units; ++u) {
      if (model.degree[u] > 0) run.p[u] /= model.degree[u];
    }
    // The rounding of p, scored unless recently seen; when the copies agree it is their labelling,
    // which scores the dual value.
    round_labels(graph, run.p.data(), rounded.data());
    if (!recent.seen_or_record(rounded.data())) {
      const double score = model.score(theta, factor_scores, rounded.data(), nullptr);
      if (score > run.score) {
        run.score = score;
        run.labels = rounded;
        best_p = run.p;
        best_additional = run.additional;
      }
    }
    if (run.score > kNegInf && within_gap(run.score, run.bound, options.gap_tolerance)) {
      certified = true;
      break;
    }
    const double step = 2.0 * options.eta / std::sqrt(static_cast<double>(t + 1));
    for (int f = 0; f < num_factors; ++f) {
      for (std::size_t l = link_begin[f]; l < link_begin[f + 1]; ++l) {
        const double d = run.q[l] - run.p[link_unit[l]];
        if (d != 0.0) {
          run.lambda[l] -= step * d;
          moved[f] = 1;
        }
      }
    }
  }
  run.status = certified ? Status::kOptimal : Status::kIterationLimit;
  if (!certified) {
    if (!best_p.empty()) {  // (the iterate of the best labelling, as AD3 reports when not converged)
      run.p.swap(best_p);
      run.additional.swap(best_additional);
    }
    double value = 0.0;
    for (int u = 0; u < num_units; ++u) value += theta[u] * run.p[u];
    for (std::size_t k = 0; k < run.additional.size(); ++k) value += factor_scores[k] * run.additional[k];
    run.value = value;
  }
  return run;
}

FactorSolution from_run(GeneralModel& model, const double* theta, const double* factor_scores, Ad3Run& run) {
  FactorSolution solution;
  solution.labels = run.labels;
  solution.score = run.score;
  if (run.status == Status::kOptimal) {
    fill_integral(model, theta, factor_scores, solution);
    solution.bound = std::max(run.bound, solution.score);
  } else {
    solution.posteriors = std::move(run.p);
    solution.additional_posteriors = std::move(run.additional);
    solution.value = run.value;
    solution.bound = run.bound;
    solution.status = run.status;
  }
  solution.iterations = run.iterations;
  solution.dual_variables = std::move(run.lambda);
  solution.local_posteriors = std::move(run.q);
  return solution;
}

// Depth-first branch-and-bound over the variables (creation order, states by AD3's marginals).
// The bound of a node is sum_f max over f's configurations consistent with the labelled
// variables of sum_i s_fi y_i + a_f . w, with s_fi = theta_u / deg_u + lambda_fi (lambda centred
// per unit, so that sum_f s_fi = theta_u and the sum is a valid upper bound), plus the free units.
class BranchAndBound {
 public:
  BranchAndBound(GeneralModel& model, const double* theta, const double* factor_scores, const Ad3Run& run,
                 const ExactOptions& options, StopControl& stop)
      : model_(model), graph_(model.graph), theta_(theta), factor_scores_(factor_scores), run_(run),
        options_(options), stop_(stop) {
    const int num_factors = static_cast<int>(model.factors.size());
    const int num_units = graph_.num_units();
    share_.assign(model.link_unit.size(), 0.0);
    std::vector<double> mean(num_units, 0.0);
    for (int f = 0; f < num_factors; ++f) {
      for (std::size_t l = model.link_begin[f]; l < model.link_begin[f + 1]; ++l) mean[model.link_unit[l]] += run.lambda[l];
    }
    for (int u = 0; u < num_units; ++u) {
      if (model.degree[u] > 0) mean[u] /= model.degree[u];
    }
    unit_factors_.assign(graph_.num_variables(), {});
    for (int f = 0; f < num_factors; ++f) {
      for (std::size_t l = model.link_begin[f]; l < model.link_begin[f + 1]; ++l) {
        const int u = model.link_unit[l];
        share_[l] = theta[u] / model.degree[u] + run.lambda[l] - mean[u];
        std::vector<int>& list = unit_factors_[graph_.unit_variable(u)];
        if (list.empty() || list.back() != f) list.push_back(f);
      }
    }
    clamp_.assign(model.link_unit.size(), -1);
    factor_bound_.assign(num_factors, 0.0);
    y_.resize(std::max<std::size_t>(1, model.link_unit.size()));
    labels_.assign(graph_.num_variables(), 0);
    best_ = run.labels;
    incumbent_ = run.score;
    for (int f = 0; f < num_factors; ++f) factor_bound_[f] = factor_value(f);
    free_bound_ = 0.0;
    for (int u = 0; u < num_units; ++u) {
      if (model.degree[u] == 0) free_bound_ += std::max(theta[u], 0.0);
    }
  }

  FactorSolution solve() {
    double root = free_bound_;
    for (double b : factor_bound_) root += b;
    root_bound_ = root;
    search(0, root);
    FactorSolution solution;
    solution.labels = best_;
    solution.score = incumbent_;
    solution.iterations = nodes_;
    fill_integral(model_, theta_, factor_scores_, solution);  // (kInfeasible without an incumbent)
    if (stopped_ != Status::kOptimal) {
      solution.status = stopped_;
      solution.bound = std::max(std::min(root_bound_, run_.bound), incumbent_);
    } else if (incumbent_ > kNegInf) {
      solution.bound = std::max(incumbent_, pruned_bound_);
    }
    return solution;
  }

 private:
  // The factor's best value consistent with the clamps.
  double factor_value(int f) {
    LocalFactor& factor = *model_.factors[f];
    const std::size_t lb = model_.link_begin[f];
    w_.resize(std::max(1, factor.num_additional()));
    static const double kNoScores = 0.0;
    const double* a = factor.num_additional() > 0 ? factor_scores_ + model_.additional[f] : &kNoScores;
    return factor.map_clamped(share_.data() + lb, a, clamp_.data() + lb, y_.data() + lb, w_.data());
  }

  void set_clamps(int v, int label) {
    for (int f : unit_factors_[v]) {
      for (std::size_t l = model_.link_begin[f]; l < model_.link_begin[f + 1]; ++l) {
        const int u = model_.link_unit[l];
        if (graph_.unit_variable(u) != v) continue;
        const int state = graph_.is_binary(v) ? 1 : u - graph_.unit_begin(v);
        clamp_[l] = label < 0 ? -1 : static_cast<signed char>(label == state ? 1 : 0);
      }
    }
  }

  bool out_of_time() {
    if (options_.max_nodes > 0 && nodes_ >= options_.max_nodes) {
      stopped_ = Status::kIterationLimit;
      return true;
    }
    if ((nodes_ & 1023) == 0 && stop_.stop() != StopReason::kNone) {
      stopped_ = Status::kTimeLimit;  // (a cancelled result is discarded)
      return true;
    }
    return false;
  }

  bool prunable(double bound) {
    if (bound == kNegInf) return true;
    if (incumbent_ > kNegInf && within_gap(incumbent_, bound, options_.gap_tolerance)) {
      pruned_bound_ = std::max(pruned_bound_, bound);
      return true;
    }
    return false;
  }

  void search(int depth, double bound) {
    if (stopped_ != Status::kOptimal) return;
    ++nodes_;
    if (out_of_time()) return;
    if (prunable(bound)) return;
    const int n = graph_.num_variables();
    if (depth == n) {
      const double score = model_.score(theta_, factor_scores_, labels_.data(), nullptr);
      if (score > incumbent_) {
        incumbent_ = score;
        best_ = labels_;
      }
      return;
    }
    const int v = depth;
    const int k = graph_.num_states(v);
    // States by AD3's marginals, most probable first.
    std::vector<int> order(k);
    for (int t = 0; t < k; ++t) order[t] = t;
    auto marginal = [&](int t) {
      const int begin = graph_.unit_begin(v);
      return graph_.is_binary(v) ? (t == 1 ? run_.p[begin] : 1.0 - run_.p[begin]) : run_.p[begin + t];
    };
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return marginal(a) > marginal(b); });
    std::vector<double> saved;
    for (int f : unit_factors_[v]) saved.push_back(factor_bound_[f]);
    for (int label : order) {
      labels_[v] = label;
      set_clamps(v, label);
      double child = bound;
      for (std::size_t j = 0; j < unit_factors_[v].size(); ++j) {
        const int f = unit_factors_[v][j];
        factor_bound_[f] = factor_value(f);
        child += factor_bound_[f] - saved[j];
      }
      if (graph_.is_binary(v) && model_.degree[graph_.unit_begin(v)] == 0) {
        const double th = theta_[graph_.unit_begin(v)];
        child += label * th - std::max(th, 0.0);
      }
      search(depth + 1, child);
      for (std::size_t j = 0; j < unit_factors_[v].size(); ++j) factor_bound_[unit_factors_[v][j]] = saved[j];
      if (stopped_ != Status::kOptimal) break;
    }
    set_clamps(v, -1);
  }

  GeneralModel& model_;
  const FactorGraph& graph_;
  const double* theta_;
  const double* factor_scores_;
  const Ad3Run& run_;
  ExactOptions options_;
  std::vector<double> share_;               // per link
  std::vector<std::vector<int>> unit_factors_;  // per variable: factors linked to its units
  std::vector<signed char> clamp_;          // per link
  std::vector<double> factor_bound_;        // per factor, at the current node
  std::vector<double> y_, w_;
  std::vector<int> labels_, best_;
  double incumbent_ = kNegInf;
  double free_bound_ = 0.0;
  double root_bound_ = kInf;
  double pruned_bound_ = kNegInf;
  std::int64_t nodes_ = 0;
  Status stopped_ = Status::kOptimal;  // kOptimal: not stopped
  StopControl& stop_;
};

}  // namespace

void fill_integral(GeneralModel& model, const double* unit_scores, const double* factor_scores,
                   FactorSolution& solution) {
  const FactorGraph& graph = model.graph;
  solution.posteriors.assign(graph.num_units(), 0.0);
  solution.additional_posteriors.assign(graph.additional_size(), 0.0);
  if (solution.score == kNegInf) {
    solution.value = solution.bound = kNegInf;
    solution.status = Status::kInfeasible;
    return;
  }
  solution.score = model.score(unit_scores, factor_scores, solution.labels.data(), solution.additional_posteriors.data());
  for (int v = 0; v < graph.num_variables(); ++v) {
    if (graph.is_binary(v)) {
      solution.posteriors[graph.unit_begin(v)] = solution.labels[v];
    } else {
      solution.posteriors[graph.unit_begin(v) + solution.labels[v]] = 1.0;
    }
  }
  solution.value = solution.bound = solution.score;
  solution.status = Status::kOptimal;
}

}  // namespace detail

namespace detail {

void check_options(const PsddOptions& options) {
  if (options.max_iterations < 1) {
    throw std::invalid_argument("max_iterations: must be at least 1, got " +
                                std::to_string(options.max_iterations));
  }
  if (!(options.eta > 0.0) || !std::isfinite(options.eta)) {
    throw std::invalid_argument("eta: must be a positive finite number, got " + std::to_string(options.eta));
  }
  if (!(options.gap_tolerance >= 0.0) || !std::isfinite(options.gap_tolerance)) {
    throw std::invalid_argument("gap_tolerance: must be a finite number >= 0, got " +
                                std::to_string(options.gap_tolerance));
  }
}

FactorSolution solve_general(Method method, GeneralModel& model, const double* unit_scores,
                             const double* factor_scores, const Ad3Options& ad3_options,
                             const ExactOptions& exact_options, const PsddOptions& psdd_options,
                             StopControl& stop) {
  stop.begin_problem(method == Method::kExact ? exact_options.time_limit : 0.0);
  if (method == Method::kExhaustive) return solve_general_exhaustive(model, unit_scores, factor_scores, stop);
  if (method == Method::kPsdd) {
    Ad3Run run = run_psdd(model, unit_scores, factor_scores, psdd_options, stop);
    return from_run(model, unit_scores, factor_scores, run);
  }
  if (method == Method::kAd3) {
    Ad3Run run = run_model_ad3(model, unit_scores, factor_scores, ad3_options, stop);
    return from_run(model, unit_scores, factor_scores, run);
  }
  Ad3Options options;
  options.gap_tolerance = exact_options.gap_tolerance;
  Ad3Run run = run_model_ad3(model, unit_scores, factor_scores, options, stop);
  if (run.status == Status::kOptimal) return from_run(model, unit_scores, factor_scores, run);
  model.build_factors();  // (the search uses the local solvers)
  BranchAndBound search(model, unit_scores, factor_scores, run, exact_options, stop);
  FactorSolution solution = search.solve();
  solution.iterations += run.iterations;
  solution.dual_variables = run.lambda;
  solution.local_posteriors = run.q;
  return solution;
}

}  // namespace detail

namespace {

// One problem of a public solve_*: its scores checked, its own model, no stop.
FactorSolution solve_one(Method method, const FactorGraph& graph, const std::vector<double>& unit_scores,
                         const std::vector<double>& factor_scores, const Ad3Options& ad3_options,
                         const ExactOptions& exact_options, const PsddOptions& psdd_options) {
  detail::check_general_scores(graph, unit_scores, factor_scores);
  detail::GeneralModel model(graph);
  detail::StopControl stop;
  return detail::solve_general(method, model, unit_scores.data(), factor_scores.data(), ad3_options, exact_options,
                               psdd_options, stop);
}

}  // namespace

FactorSolution solve_ad3(const FactorGraph& graph, const std::vector<double>& unit_scores,
                         const std::vector<double>& factor_scores, const Ad3Options& options) {
  detail::check_options(options);
  return solve_one(Method::kAd3, graph, unit_scores, factor_scores, options, {}, {});
}

FactorSolution solve_exact(const FactorGraph& graph, const std::vector<double>& unit_scores,
                           const std::vector<double>& factor_scores, const ExactOptions& options) {
  detail::check_options(options);
  return solve_one(Method::kExact, graph, unit_scores, factor_scores, {}, options, {});
}

FactorSolution solve_psdd(const FactorGraph& graph, const std::vector<double>& unit_scores,
                          const std::vector<double>& factor_scores, const PsddOptions& options) {
  detail::check_options(options);
  return solve_one(Method::kPsdd, graph, unit_scores, factor_scores, {}, {}, options);
}

}  // namespace ad3
}  // namespace ccnn
