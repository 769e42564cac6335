// Exact MAP: depth-first branch-and-bound, and exhaustive enumeration (the test oracle).
//
// Branch-and-bound. Variables are assigned in a static order (strongly coupled variables first,
// each next one the most strongly tied to those already placed). Every edge is charged to its
// endpoint placed first ("earlier"); for a partial assignment of the first d positions,
//     bound = partial + sum_{j >= d} max_s g_j(s),
//     g_j(s) = unary_j(s) + sum_{assigned earlier neighbours i} pairwise(y_i, s)
//                         + sum_{later neighbours v} max_t pairwise(s, t),
// where partial scores the edges among assigned variables and their unaries. Each edge is counted
// once, by its exact value or by a maximum over its unassigned endpoint(s), so the bound is valid.
// The row maxima are precomputed once per problem ("future" tables). States are tried best g
// first; the incumbent starts from ICM on the unary argmax. A subtree is pruned when its bound is
// within the gap tolerance of the incumbent; the reported bound is the largest pruned bound (or
// the score), so bound - score <= tolerance certifies the result.
//
// These plain bounds ignore how the edges of a variable pull together, which is enough for most
// small problems (the CCNN ones need tens to hundreds of nodes) but not for long chains or
// frustrated graphs. So the search first runs with a small node budget; if that does not settle
// the problem, a short AD3 run either certifies its own labelling or provides multipliers that
// turn the problem into an equivalent one (the same score for every labelling, up to rounding)
// whose plain bounds are at most AD3's dual bound, and the search finishes on that one.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "ad3/solvers.h"

namespace ccnn {
namespace ad3 {
namespace detail {

namespace {

// Search nodes with the plain bounds before AD3 is called in, and AD3 iterations then (a
// compromise measured on random Gaussian problems; CCNN problems rarely need more nodes).
constexpr std::int64_t kPlainSearchNodes = 1000;
// The StopControl (time limit, cancellation) is consulted every this many search nodes: one integer
// comparison per node, a clock read per 1,024 nodes (about a millisecond for tens of variables).
constexpr std::int64_t kStopCheckNodes = 1024;

// The relaxation certifies a node only within the exact solver's own gap tolerance.
Ad3Options relaxation_options(double gap_tolerance) {
  Ad3Options options;
  options.max_iterations = 30;
  options.gap_tolerance = gap_tolerance;
  return options;
}

}  // namespace

ExactSolver::ExactSolver(const Graph& graph, const ExactOptions& options)
    : graph_(graph), options_(options), n_(graph.num_variables()),
      ad3_(graph, relaxation_options(options.gap_tolerance)) {
  const std::size_t u = graph.unary_size();
  order_.resize(n_);
  position_.resize(n_);
  g_offset_.resize(n_ + 1);
  forward_begin_.resize(n_ + 1);
  forward_to_.resize(graph.num_edges());
  forward_table_.resize(graph.num_edges());
  save_offset_.resize(n_ + 1);
  oriented_.resize(graph.pairwise_size());
  future_.resize(u);
  g_.resize(u);
  saved_.resize(static_cast<std::size_t>(graph.num_edges()) * graph.max_states());
  label_order_.resize(u);
  next_choice_.resize(n_);
  partial_.resize(n_ + 1);
  rest_.resize(n_ + 1);
  node_bound_.resize(n_ + 1);
  current_.resize(n_);
  best_.resize(n_);
  strength_.resize(n_);
  tie_.resize(n_);
  edge_spread_.resize(graph.num_edges());
  reparameterized_unary_.resize(u);
  reparameterized_pairwise_.resize(graph.pairwise_size());
}

// Static variable order and the oriented tables, future maxima and offsets that follow from it.
void ExactSolver::order_variables(const double* unary, const double* pairwise) {
  const int num_edges = graph_.num_edges();
  // Coupling strength of an edge: the spread of its table.
  std::vector<double>& spread = edge_spread_;
  std::fill(strength_.begin(), strength_.end(), 0.0);
  for (int e = 0; e < num_edges; ++e) {
    const double* t = pairwise + graph_.pairwise_offset(e);
    const std::size_t size = graph_.pairwise_offset(e + 1) - graph_.pairwise_offset(e);
    const auto mm = std::minmax_element(t, t + size);
    spread[e] = *mm.second - *mm.first;
    strength_[graph_.edge(e)[0]] += spread[e];
    strength_[graph_.edge(e)[1]] += spread[e];
  }
  // Greedy order: next = the unplaced variable most tied to the placed ones (then the strongest).
  std::vector<double>& tie = tie_;
  std::fill(tie.begin(), tie.end(), 0.0);
  std::fill(position_.begin(), position_.end(), -1);
  for (int pos = 0; pos < n_; ++pos) {
    int pick = -1;
    for (int i = 0; i < n_; ++i) {
      if (position_[i] >= 0) continue;
      if (pick < 0 || tie[i] > tie[pick] || (tie[i] == tie[pick] && strength_[i] > strength_[pick])) {
        pick = i;
      }
    }
    order_[pos] = pick;
    position_[pick] = pos;
    const Graph::Incidence* inc = graph_.incident(pick);
    for (int d = 0; d < graph_.degree(pick); ++d) {
      const int e = inc[d].edge;
      tie[graph_.edge(e)[1 - inc[d].side]] += spread[e];
    }
  }
  // Offsets, oriented tables (rows: the earlier endpoint's state) and future maxima.
  g_offset_[0] = 0;
  for (int pos = 0; pos < n_; ++pos) g_offset_[pos + 1] = g_offset_[pos] + graph_.num_states(order_[pos]);
  std::fill(future_.begin(), future_.begin() + graph_.unary_size(), 0.0);
  std::size_t table_at = 0, save_at = 0;
  int f = 0;
  for (int pos = 0; pos < n_; ++pos) {
    const int u = order_[pos], ku = graph_.num_states(u);
    forward_begin_[pos] = f;
    save_offset_[pos] = save_at;
    const Graph::Incidence* inc = graph_.incident(u);
    for (int d = 0; d < graph_.degree(u); ++d) {
      const int e = inc[d].edge;
      const int v = graph_.edge(e)[1 - inc[d].side];
      if (position_[v] < pos) continue;
      const int kv = graph_.num_states(v);
      const double* t = pairwise + graph_.pairwise_offset(e);
      double* o = oriented_.data() + table_at;
      double* fut = future_.data() + g_offset_[pos];
      for (int s = 0; s < ku; ++s) {
        double row_max = -std::numeric_limits<double>::infinity();
        for (int r = 0; r < kv; ++r) {
          const double value = inc[d].side == 0 ? t[static_cast<std::size_t>(s) * kv + r]
                                                : t[static_cast<std::size_t>(r) * ku + s];
          o[static_cast<std::size_t>(s) * kv + r] = value;
          row_max = std::max(row_max, value);
        }
        fut[s] += row_max;
      }
      forward_to_[f] = position_[v];
      forward_table_[f] = table_at;
      table_at += static_cast<std::size_t>(ku) * kv;
      save_at += kv;
      ++f;
    }
  }
  forward_begin_[n_] = f;
  save_offset_[n_] = save_at;
  for (int pos = 0; pos < n_; ++pos) {
    const double* own = unary + graph_.unary_offset(order_[pos]);
    for (std::size_t s = g_offset_[pos]; s < g_offset_[pos + 1]; ++s) {
      g_[s] = own[s - g_offset_[pos]] + future_[s];
    }
  }
}

// Depth-first search for labellings scoring more than `incumbent` under (unary, pairwise), for at
// most node_limit nodes (0: no limit). Improves best_ and incumbent in place.
ExactSolver::Search ExactSolver::search(const double* unary, const double* pairwise, double& incumbent,
                                        std::int64_t node_limit) {
  order_variables(unary, pairwise);
  auto max_g = [&](int pos) {
    return *std::max_element(g_.begin() + g_offset_[pos], g_.begin() + g_offset_[pos + 1]);
  };
  // A node is pruned when it cannot beat the current incumbent by more than the promised gap
  // (gap_tolerance * max(1, |score|)), so a completed search certifies exactly that gap.
  auto beaten = [&](double bound) {
    return bound <= incumbent + options_.gap_tolerance * std::max(1.0, std::fabs(incumbent));
  };
  double max_pruned = -std::numeric_limits<double>::infinity();
  Search outcome;
  // Next node count at which the node limit or the StopControl is checked.
  const std::int64_t no_limit = std::numeric_limits<std::int64_t>::max();
  const std::int64_t limit = node_limit > 0 ? node_limit : no_limit;
  std::int64_t check_at = std::min(limit, kStopCheckNodes);

  // Entering position d: its bound (partial_[d] + max g_d + rest_[d]) decides pruning; otherwise
  // sort its states and save the g rows its forward edges will overwrite.
  auto enter = [&](int d) {
    ++outcome.nodes;
    double rest = 0.0;
    for (int pos = d + 1; pos < n_; ++pos) rest += max_g(pos);
    rest_[d] = rest;
    node_bound_[d] = partial_[d] + max_g(d) + rest;
    if (beaten(node_bound_[d])) {
      max_pruned = std::max(max_pruned, node_bound_[d]);
      return false;
    }
    const int k = static_cast<int>(g_offset_[d + 1] - g_offset_[d]);
    const double* g = g_.data() + g_offset_[d];
    int* labels = label_order_.data() + g_offset_[d];
    for (int s = 0; s < k; ++s) {  // insertion sort, best first, stable
      int j = s;
      while (j > 0 && g[labels[j - 1]] < g[s]) labels[j] = labels[j - 1], --j;
      labels[j] = s;
    }
    double* save = saved_.data() + save_offset_[d];
    for (int f = forward_begin_[d]; f < forward_begin_[d + 1]; ++f) {
      const int to = forward_to_[f];
      std::copy(g_.begin() + g_offset_[to], g_.begin() + g_offset_[to + 1], save);
      save += g_offset_[to + 1] - g_offset_[to];
    }
    next_choice_[d] = 0;
    return true;
  };
  auto restore = [&](int d) {
    const double* save = saved_.data() + save_offset_[d];
    for (int f = forward_begin_[d]; f < forward_begin_[d + 1]; ++f) {
      const int to = forward_to_[f];
      const std::size_t kv = g_offset_[to + 1] - g_offset_[to];
      std::copy(save, save + kv, g_.begin() + g_offset_[to]);
      save += kv;
    }
  };

  partial_[0] = 0.0;
  int d = 0;
  if (!enter(0)) d = -1;
  while (d >= 0) {
    const int k = static_cast<int>(g_offset_[d + 1] - g_offset_[d]);
    if (next_choice_[d] == k) {  // all states of this position done
      restore(d);
      --d;
      continue;
    }
    const int s = label_order_[g_offset_[d] + next_choice_[d]++];
    const double g = g_[g_offset_[d] + s];
    const double quick = partial_[d] + g + rest_[d];
    if (beaten(quick)) {  // states are sorted: the rest are no better
      max_pruned = std::max(max_pruned, quick);
      next_choice_[d] = k;
      continue;
    }
    current_[d] = s;
    const double partial = partial_[d] + g - future_[g_offset_[d] + s];
    if (d == n_ - 1) {
      if (partial > incumbent) {
        incumbent = partial;
        for (int pos = 0; pos < n_; ++pos) best_[order_[pos]] = current_[pos];
      }
      continue;
    }
    if (outcome.nodes >= check_at) {
      const bool stopped = outcome.nodes < limit && stop_ != nullptr && stop_->stop() != StopReason::kNone;
      if (outcome.nodes >= limit || stopped) {
        // Stopped: the unexplored labellings lie below the open nodes of the current path.
        for (int depth = 0; depth <= d; ++depth) max_pruned = std::max(max_pruned, node_bound_[depth]);
        outcome.complete = false;
        outcome.stopped = stopped;
        break;
      }
      check_at = std::min(limit, outcome.nodes + kStopCheckNodes);
    }
    const double* save = saved_.data() + save_offset_[d];
    for (int f = forward_begin_[d]; f < forward_begin_[d + 1]; ++f) {
      const int to = forward_to_[f];
      const int kv = static_cast<int>(g_offset_[to + 1] - g_offset_[to]);
      const double* row = oriented_.data() + forward_table_[f] + static_cast<std::size_t>(s) * kv;
      double* target = g_.data() + g_offset_[to];
      for (int r = 0; r < kv; ++r) target[r] = save[r] + row[r];
      save += kv;
    }
    partial_[d + 1] = partial;
    if (enter(d + 1)) ++d;
  }
  outcome.bound = std::max(incumbent, max_pruned);
  return outcome;
}

RawResult ExactSolver::solve(const double* unary, const double* pairwise) {
  RawResult result;
  if (n_ == 0) {
    result.status = Status::kOptimal;
    return result;
  }
  auto stopped = [&] { return stop_ != nullptr && stop_->reason() != StopReason::kNone; };
  // Incumbent: ICM from the unary argmax.
  for (int i = 0; i < n_; ++i) {
    const double* own = unary + graph_.unary_offset(i);
    best_[i] = static_cast<int>(std::max_element(own, own + graph_.num_states(i)) - own);
  }
  double incumbent = improve_by_icm(graph_, unary, pairwise, best_.data(), icm_scratch_);
  const std::int64_t limit = options_.max_nodes;
  auto finish = [&](const Search& search, std::int64_t nodes) {
    result.score = labelling_score(graph_, unary, pairwise, best_.data());
    result.bound = std::max(result.score, search.bound);
    result.iterations = nodes;
    // A stop never certifies by itself: "optimal" only with a complete search or a closed gap.
    result.status = search.complete || within_gap(result.score, result.bound, options_.gap_tolerance)
                        ? Status::kOptimal
                    : stopped() ? Status::kTimeLimit  // (a cancelled result is discarded)
                                : Status::kIterationLimit;
    return result;
  };

  // 1. Plain bounds: enough for most small problems.
  const std::int64_t budget = limit > 0 ? std::min(limit, kPlainSearchNodes) : kPlainSearchNodes;
  const Search plain = search(unary, pairwise, incumbent, budget);
  if (plain.complete || plain.stopped || (limit > 0 && plain.nodes >= limit)) return finish(plain, plain.nodes);

  // 2. AD3: its certificate, or failing that its multipliers, which turn the problem into an
  // equivalent one (the same score for every labelling, up to rounding) whose plain bounds are
  // at most AD3's dual bound: much tighter where the relaxation is nearly tight.
  const RawResult relaxed = ad3_.solve(unary, pairwise);
  if (relaxed.score > incumbent) {
    incumbent = relaxed.score;
    best_ = ad3_.labels();
  }
  if (relaxed.status == Status::kOptimal) {
    Search certified;
    certified.bound = std::min(relaxed.bound, plain.bound);
    return finish(certified, plain.nodes);
  }
  if (stopped()) return finish(plain, plain.nodes);  // AD3 was cut short: its bound may be missing
  ad3_.reparameterize(unary, pairwise, reparameterized_unary_.data(), reparameterized_pairwise_.data());
  double shifted = labelling_score(graph_, reparameterized_unary_.data(), reparameterized_pairwise_.data(),
                                   best_.data());
  const Search tight = search(reparameterized_unary_.data(), reparameterized_pairwise_.data(), shifted,
                              limit > 0 ? limit - plain.nodes : 0);
  Search combined = tight;
  combined.bound = std::min(tight.bound, plain.bound);
  return finish(combined, plain.nodes + tight.nodes);
}

ExhaustiveSolver::ExhaustiveSolver(const Graph& graph)
    : graph_(graph), prefix_(graph.num_variables() + 1), current_(graph.num_variables()),
      best_(graph.num_variables()) {}

RawResult ExhaustiveSolver::solve(const double* unary, const double* pairwise) {
  const int n = graph_.num_variables();
  // prefix_[i + 1]: score of variables 0..i and the edges among them.
  auto extend = [&](int i) {
    double total = prefix_[i] + unary[graph_.unary_offset(i) + current_[i]];
    const Graph::Incidence* inc = graph_.incident(i);
    for (int d = 0; d < graph_.degree(i); ++d) {
      const int e = inc[d].edge;
      const int a = graph_.edge(e)[0], b = graph_.edge(e)[1];
      if ((inc[d].side == 0 ? b : a) > i) continue;  // counted when the later endpoint is set
      total += pairwise[graph_.pairwise_offset(e) +
                        static_cast<std::size_t>(current_[a]) * graph_.num_states(b) + current_[b]];
    }
    prefix_[i + 1] = total;
  };
  std::fill(current_.begin(), current_.end(), 0);
  prefix_[0] = 0.0;
  for (int i = 0; i < n; ++i) extend(i);
  double best = prefix_[n];
  best_ = current_;
  std::int64_t count = 1;
  while (true) {
    int i = n - 1;
    while (i >= 0 && ++current_[i] == graph_.num_states(i)) current_[i--] = 0;
    if (i < 0) break;
    for (int j = i; j < n; ++j) extend(j);
    ++count;
    if ((count & 0xffff) == 0 && stop_ != nullptr && stop_->stop() != StopReason::kNone) break;
    if (prefix_[n] > best) {
      best = prefix_[n];
      best_ = current_;
    }
  }
  RawResult result;
  result.score = result.bound = best;
  // Cut short only by a cancel (its result is discarded); never report that as optimal.
  result.status = stop_ != nullptr && stop_->reason() != StopReason::kNone ? Status::kIterationLimit
                                                                           : Status::kOptimal;
  result.iterations = count;
  return result;
}

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
