// AD3 (Martins et al., JMLR 2015) for pairwise factor graphs of multi-valued variables.
//
// LP-MAP relaxation: maximise sum_i unary_i . p_i + sum_e pairwise_e . mu_e over variable marginals
// p_i and edge marginals mu_e that agree. Each edge e = (a, b) keeps local copies q_ea, q_eb of the
// marginals of its endpoints (the marginals of mu_e); the augmented Lagrangian
//   sum_e [pairwise_e . mu_e + sum_{i in e} (unary_i / deg_i + lambda_ei) . q_ei]
//     - sum_{e, i} lambda_ei . p_i - eta * sum_{e, i} ||q_ei - p_i||^2
// is maximised by alternating directions, each iteration:
//   1. per edge, a quadratic subproblem over the simplex of its K_a K_b configurations (exact
//      active-set method below, warm-started from the previous iteration's active set);
//   2. p_i = average of q_ei over the edges e of i;
//   3. lambda_ei -= 2 eta (q_ei - p_i)   (so sum_e lambda_ei stays 0).
// Stops when the rounded labelling is certified by the dual bound, when the primal and dual
// residuals fall below tolerance, or at the iteration limit. eta adapts to the residuals as in the
// reference implementation. Edges whose inputs did not change bitwise since their last solve keep
// their previous solution (exact caching: the subproblem would return the same result).
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "ad3/kernels.h"
#include "ad3/solvers.h"

namespace ccnn {
namespace ad3 {
namespace detail {
namespace {

constexpr int kMaxQpIterations = 200;
constexpr int kSmallSet = 4;  // (see the KKT solve in solve_edge_qp)
constexpr int kEtaAdaptPeriod = 10;
constexpr double kEtaMin = 1e-3, kEtaMax = 100.0;
constexpr double kResidualRatioPrimal = 100.0, kResidualRatioDual = 10.0;

// The arrays of one active set.
struct SetView {
  int& k;
  int* s;
  int* t;
  double* weights;
  double* inverse;

  // One configuration, weight 1; the inverse of its bordered Gram matrix [[0, 1], [1, 2]].
  void reset_to_single(int state_a, int state_b) {
    k = 1;
    s[0] = state_a;
    t[0] = state_b;
    weights[0] = 1.0;
    inverse[0] = -2.0;
    inverse[1] = inverse[2] = 1.0;
    inverse[3] = 0.0;
  }
};

}  // namespace

Ad3Solver::Ad3Solver(const Graph& graph, const Ad3Options& options)
    : graph_(graph), options_(options) {
  const int n = graph.num_variables(), num_edges = graph.num_edges();
  link_begin_.assign(n + 1, 0);
  for (int i = 0; i < n; ++i) {
    link_begin_[i + 1] = link_begin_[i] + static_cast<std::size_t>(graph.degree(i)) * graph.num_states(i);
  }
  num_links_ = link_begin_[n];
  edges_.resize(num_edges);
  for (int e = 0; e < num_edges; ++e) {
    EdgeLayout& edge = edges_[e];
    edge.a = graph.edge(e)[0];
    edge.b = graph.edge(e)[1];
    edge.ka = graph.num_states(edge.a);
    edge.kb = graph.num_states(edge.b);
    edge.unary_a = graph.unary_offset(edge.a);
    edge.unary_b = graph.unary_offset(edge.b);
    edge.table = graph.pairwise_offset(e);
  }
  for (int i = 0; i < n; ++i) {
    const Graph::Incidence* inc = graph.incident(i);
    for (int d = 0; d < graph.degree(i); ++d) {
      const std::size_t link = link_begin_[i] + static_cast<std::size_t>(d) * graph.num_states(i);
      (inc[d].side == 0 ? edges_[inc[d].edge].link_a : edges_[inc[d].edge].link_b) = link;
    }
  }
  p_.resize(graph.unary_size());
  unary_share_.resize(graph.unary_size());
  scaled_pairwise_.resize(graph.pairwise_size());
  lambda_.resize(num_links_);
  q_.resize(num_links_);
  x_.resize(num_links_);
  active_sets_.resize(num_edges);
  std::size_t configs = 0, inverses = 0;
  for (int e = 0; e < num_edges; ++e) {
    const std::size_t room = static_cast<std::size_t>(edges_[e].ka) + edges_[e].kb;
    active_sets_[e].config = configs;
    active_sets_[e].inverse = inverses;
    configs += room;
    inverses += room * room;
  }
  store_.s.resize(configs);
  store_.t.resize(configs);
  store_.weights.resize(configs);
  store_.inverse.resize(inverses);
  edge_dirty_.resize(num_edges);
  edge_value_.resize(num_edges);
  p_rise_.assign(n, 0.0);
  labels_.resize(n);
  rounded_.resize(n);
  const int two_k = 2 * graph.max_states();
  residual_.resize(two_k);
  column_max_.resize(graph.max_states());
  z_.resize(two_k + 1);
  column_.resize(two_k + 1);
  parent_.resize(two_k);
  parent_config_.resize(two_k);
  queue_.resize(two_k);
  inverse_tmp_.resize(static_cast<std::size_t>(two_k + 1) * (two_k + 1));
}

void Ad3Solver::set_eta(double eta, const double* pairwise) {
  eta_ = eta;
  const double scale = 0.5 / eta;
  for (std::size_t k = 0; k < scaled_pairwise_.size(); ++k) scaled_pairwise_[k] = pairwise[k] * scale;
}

double Ad3Solver::score(const double* unary, const double* pairwise, const int* labels) const {
  double total = 0.0;
  for (int i = 0; i < graph_.num_variables(); ++i) total += unary[graph_.unary_offset(i) + labels[i]];
  for (const EdgeLayout& edge : edges_) {
    total += pairwise[edge.table + static_cast<std::size_t>(labels[edge.a]) * edge.kb + labels[edge.b]];
  }
  return total;
}

// The subproblem of edge e = (a, b), divided by 2 eta: over distributions mu on the K_a K_b
// configurations with marginals q = (q_a, q_b),
//     maximise  w . mu - 1/2 ||q - x||^2,   w = pairwise_e / (2 eta), x = p + (share + lambda) / (2 eta)
// (x holds x_a then x_b; w is scaled_pairwise_). Primal active-set method (Martins et al. 2015,
// section 6): on the support S, the KKT system [[0, 1'], [1, M'M]] [tau; z] = [1; M'x + w] gives
// the best distribution z with that support (M: the 0/1 marginalisation columns of the
// configurations in S); negative entries are removed by a ratio test; otherwise the configuration
// maximising w_st + (x - q)_s + (x - q)_t is added while it exceeds tau. For a pairwise factor,
// M'M is nonsingular exactly when S, seen as edges between the states of a and of b, is a forest;
// a configuration that would close a cycle is brought in by moving weight around the cycle (which
// leaves q unchanged and raises the objective) until one configuration of the cycle drops out.
// Returns max over (s, t) of w_st + (x - q)_s + (x - q)_t at the solution (tau, at optimality).
template <int K>
double Ad3Solver::solve_edge_qp(const EdgeLayout& edge, ActiveSet& active, const double* xa,
                                const double* xb, double* qa, double* qb) {
  // K > 0: both endpoints have K states, known at compile time (see kernels.h).
  const int ka = K > 0 ? K : edge.ka, kb = K > 0 ? K : edge.kb;
  const double* __restrict w = scaled_pairwise_.data() + edge.table;
  double* __restrict r = residual_.data();  // x - q, the gradient of the quadratic term
  double* __restrict value = column_.data();
  double* __restrict z = z_.data();
  SetView set{active.k, store_.s.data() + active.config, store_.t.data() + active.config,
              store_.weights.data() + active.config, store_.inverse.data() + active.inverse};
  double* const scratch = inverse_tmp_.data();
  if (set.k == 0) {  // cold start: the best configuration for the linear part
    int s, t;
    table_argmax(w, ka, kb, xa, xb, s, t);
    set.reset_to_single(s, t);
  }
  // Removes configuration j, updating the inverse by the bordering formula.
  auto remove = [&](int j) {
    const int m = set.k + 1, p = j + 1;
    const double pivot = set.inverse[p * m + p];
    std::copy(set.s + j + 1, set.s + set.k, set.s + j);
    std::copy(set.t + j + 1, set.t + set.k, set.t + j);
    std::copy(set.weights + j + 1, set.weights + set.k, set.weights + j);
    --set.k;
    if (set.k == 1 || std::fabs(pivot) < 1e-12) {
      // One configuration left (its inverse is known exactly), or ill-conditioned: restart from
      // the heaviest configuration.
      const int keep = static_cast<int>(std::max_element(set.weights, set.weights + set.k) - set.weights);
      set.reset_to_single(set.s[keep], set.t[keep]);
      return;
    }
    for (int row = 0, row2 = 0; row < m; ++row) {
      if (row == p) continue;
      const double factor = set.inverse[row * m + p] / pivot;
      for (int c = 0, c2 = 0; c < m; ++c) {
        if (c == p) continue;
        scratch[row2 * (m - 1) + c2] = set.inverse[row * m + c] - factor * set.inverse[p * m + c];
        ++c2;
      }
      ++row2;
    }
    std::copy(scratch, scratch + (m - 1) * (m - 1), set.inverse);
  };
  // Appends configuration (s, t) with the given weight.
  auto insert = [&](int s, int t, double weight) {
    const int k = set.k, m = k + 1;
    value[0] = 1.0;  // the new row of the bordered Gram matrix: 1, then shared states
    for (int j = 0; j < k; ++j) value[j + 1] = static_cast<double>((set.s[j] == s) + (set.t[j] == t));
    double schur = 2.0;
    for (int row = 0; row < m; ++row) {
      double h = 0.0;
      for (int c = 0; c < m; ++c) h += set.inverse[row * m + c] * value[c];
      z[row] = h;
      schur -= value[row] * h;
    }
    if (std::fabs(schur) < 1e-9 || k + 1 >= ka + kb) {  // cannot happen for a forest: restart
      set.reset_to_single(s, t);
      return;
    }
    const int m2 = m + 1;
    for (int row = 0; row < m; ++row) {
      for (int c = 0; c < m; ++c) scratch[row * m2 + c] = set.inverse[row * m + c] + z[row] * z[c] / schur;
      scratch[row * m2 + m] = scratch[m * m2 + row] = -z[row] / schur;
    }
    scratch[m * m2 + m] = 1.0 / schur;
    std::copy(scratch, scratch + m2 * m2, set.inverse);
    set.s[k] = s;
    set.t[k] = t;
    set.weights[k] = weight;
    set.k = k + 1;
  };

  double best_value = 0.0;
  for (int iteration = 0;; ++iteration) {
    const int k = set.k, m = k + 1;
    const int* __restrict S = set.s;
    const int* __restrict T = set.t;
    double* __restrict weights = set.weights;
    const double* __restrict inverse = set.inverse;
    if (iteration == kMaxQpIterations) {  // give up: keep the current feasible distribution
      concatenate<K>(ka, kb, xa, xb, r);
      for (int j = 0; j < k; ++j) r[S[j]] -= weights[j], r[ka + T[j]] -= weights[j];
      best_value = table_max<K>(w, ka, kb, r, r + ka, column_max_.data());
      break;
    }
    double tau;
    if (k == 1) {  // a single configuration: weight 1, inverse [[-2, 1], [1, 0]]
      tau = xa[S[0]] + xb[T[0]] + w[static_cast<std::size_t>(S[0]) * kb + T[0]] - 2.0;
      weights[0] = 1.0;
    } else {
      // KKT solve: [tau; z] = inverse [1; values of S]. A small set column by column as the values
      // come (reading fresh values back as pairs would stall on store-to-load forwarding), a
      // larger one by rows (contiguous); the same sums in the same order.
      tau = inverse[0];
      if (k <= kSmallSet) {
        for (int i = 0; i < k; ++i) z[i] = inverse[(i + 1) * m];
        for (int j = 0; j < k; ++j) {
          const double v = xa[S[j]] + xb[T[j]] + w[static_cast<std::size_t>(S[j]) * kb + T[j]];
          tau += inverse[j + 1] * v;
          for (int i = 0; i < k; ++i) z[i] += inverse[(i + 1) * m + j + 1] * v;
        }
      } else {
        for (int j = 0; j < k; ++j) {
          value[j] = xa[S[j]] + xb[T[j]] + w[static_cast<std::size_t>(S[j]) * kb + T[j]];
        }
        for (int j = 0; j < k; ++j) tau += inverse[j + 1] * value[j];
        for (int i = 0; i < k; ++i) {
          const double* row = inverse + (i + 1) * m;
          double zi = row[0];
          for (int j = 0; j < k; ++j) zi += row[j + 1] * value[j];
          z[i] = zi;
        }
      }
      int blocking = -1;
      double alpha = 1.0;
      for (int i = 0; i < k; ++i) {
        const double zi = z[i];
        if (zi < 0.0) {
          const double ratio = weights[i] / (weights[i] - zi);
          if (blocking < 0 || ratio < alpha) alpha = ratio, blocking = i;
        }
      }
      if (blocking >= 0) {  // step towards z until the blocking weight reaches 0, then drop it
        for (int i = 0; i < k; ++i) weights[i] = std::max(0.0, weights[i] + alpha * (z[i] - weights[i]));
        remove(blocking);
        continue;
      }
      for (int i = 0; i < k; ++i) weights[i] = z[i];
    }
    // Most violated configuration: max over (s, t) of w_st + (x - q)_s + (x - q)_t.
    concatenate<K>(ka, kb, xa, xb, r);
    for (int i = 0; i < k; ++i) {
      r[S[i]] -= weights[i];
      r[ka + T[i]] -= weights[i];
    }
    best_value = K > 0 ? table_max<K>(w, ka, kb, r, r + ka, nullptr)
                       : dispatch_states(kb, [&](auto columns) {  // (kb != ka: compiled for kb alone)
                           return table_max<decltype(columns)::value>(w, ka, kb, r, r + ka, column_max_.data());
                         });
    if (best_value <= tau + 1e-10 * std::max(1.0, std::fabs(tau))) break;
    int bs, bt;
    table_argmax(w, ka, kb, r, r + ka, bs, bt);
    bool present = false;
    for (int j = 0; j < k; ++j) present |= S[j] == bs && T[j] == bt;
    if (present) break;  // already in S: optimal up to rounding

    // Does (bs, bt) close a cycle? Search the forest from state bs of a to state bt of b
    // (nodes 0..ka-1 are the states of a, ka..ka+kb-1 those of b).
    const int source = bs, target = ka + bt;
    std::fill(parent_.begin(), parent_.begin() + ka + kb, -1);
    parent_[source] = source;
    int head = 0, tail = 0;
    queue_[tail++] = source;
    while (head < tail && parent_[target] < 0) {
      const int node = queue_[head++];
      for (int j = 0; j < k; ++j) {
        const int u = S[j], v = ka + T[j];
        const int other = node == u ? v : (node == v ? u : -1);
        if (other < 0 || parent_[other] >= 0) continue;
        parent_[other] = node;
        parent_config_[other] = j;
        queue_[tail++] = other;
      }
    }
    double entering_weight = 0.0;
    if (parent_[target] >= 0) {
      // Path configurations alternate -1, +1, ... starting from the target; the entering
      // configuration gets +1. Move the largest feasible amount of weight around the cycle.
      int leaving = -1;
      double step = 0.0;
      bool minus = true;
      for (int node = target; node != source; node = parent_[node], minus = !minus) {
        const int j = parent_config_[node];
        if (minus && (leaving < 0 || weights[j] < step)) step = weights[j], leaving = j;
      }
      minus = true;
      for (int node = target; node != source; node = parent_[node], minus = !minus) {
        weights[parent_config_[node]] += minus ? -step : step;
      }
      weights[leaving] = 0.0;
      entering_weight = step;
      remove(leaving);
    }
    insert(bs, bt, entering_weight);
  }
  for (int j = 0; j < ka; ++j) qa[j] = 0.0;
  for (int j = 0; j < kb; ++j) qb[j] = 0.0;
  for (int j = 0; j < set.k; ++j) {
    qa[set.s[j]] += set.weights[j];
    qb[set.t[j]] += set.weights[j];
  }
  return best_value;
}

// The Lagrangian dual of the relaxation at the updated multipliers lambda':
//   max_y S(y) <= sum_e max_{s,t} [pairwise_e(s,t) + psi_ea(s) + psi_eb(t)]
//                 + sum_i max_s (-sum_{e of i} lambda'_ei(s)) + sum_{isolated i} max_s unary_i(s),
// psi_ei = unary_i / deg_i + lambda'_ei (the middle sum is 0 in exact arithmetic and keeps the
// bound valid under rounding). The edge maxima come almost free from the subproblems: with
// lambda' = lambda - 2 eta (q - p') and x = p + (unary / deg + lambda) / (2 eta), each entry
// pairwise(s,t) + psi_a(s) + psi_b(t) equals 2 eta [w_st + (x - q)_s + (x - q)_t]
// + 2 eta [(p' - p)_a(s) + (p' - p)_b(t)], so the edge maximum is at most
// edge_value_ + 2 eta (largest rise of p_a + largest rise of p_b), exactly it once p settles.
// edge_part: the sum of these edge terms and of the isolated variables' maxima.
double Ad3Solver::bound_edge_part() const {
  double bound = isolated_max_;
  for (std::size_t e = 0; e < edges_.size(); ++e) {
    bound += edge_value_[e] + 2.0 * eta_ * (p_rise_[edges_[e].a] + p_rise_[edges_[e].b]);
  }
  return bound;
}

double Ad3Solver::bound_multiplier_part() {
  double bound = 0.0;
  for (int i = 0; i < graph_.num_variables(); ++i) {
    const int k = graph_.num_states(i), deg = graph_.degree(i);
    if (deg == 0) continue;
    double* sum = residual_.data();
    const double* l = lambda_.data() + link_begin_[i];
    std::copy(l, l + k, sum);
    for (int d = 1; d < deg; ++d) {
      for (int s = 0; s < k; ++s) sum[s] += l[d * k + s];
    }
    bound -= *std::min_element(sum, sum + k);
  }
  return bound;
}

void Ad3Solver::reparameterize(const double* unary, const double* pairwise, double* unary_out,
                               double* pairwise_out) const {
  for (int i = 0; i < graph_.num_variables(); ++i) {
    const int k = graph_.num_states(i), deg = graph_.degree(i);
    const std::size_t off = graph_.unary_offset(i);
    if (deg == 0) {
      std::copy(unary + off, unary + off + k, unary_out + off);
      continue;
    }
    const double* l = lambda_.data() + link_begin_[i];
    for (int s = 0; s < k; ++s) {
      double sum = 0.0;
      for (int d = 0; d < deg; ++d) sum += l[d * k + s];
      unary_out[off + s] = -sum;
    }
  }
  for (const EdgeLayout& edge : edges_) {
    const double* la = lambda_.data() + edge.link_a;
    const double* lb = lambda_.data() + edge.link_b;
    const double* sa = unary_share_.data() + edge.unary_a;
    const double* sb = unary_share_.data() + edge.unary_b;
    for (int s = 0; s < edge.ka; ++s) {
      const std::size_t row = edge.table + static_cast<std::size_t>(s) * edge.kb;
      for (int t = 0; t < edge.kb; ++t) {
        pairwise_out[row + t] = pairwise[row + t] + (sa[s] + la[s]) + (sb[t] + lb[t]);
      }
    }
  }
}

// x = p + (unary / deg + lambda) / (2 eta) for every link: the subproblems' inputs.
void Ad3Solver::compute_inputs() {
  const double scale = 0.5 / eta_;
  for (int i = 0; i < graph_.num_variables(); ++i) {
    const int k = graph_.num_states(i), deg = graph_.degree(i);
    const double* pi = p_.data() + graph_.unary_offset(i);
    const double* share = unary_share_.data() + graph_.unary_offset(i);
    const double* l = lambda_.data() + link_begin_[i];
    double* x = x_.data() + link_begin_[i];
    for (int d = 0; d < deg; ++d) {
      for (int s = 0; s < k; ++s) x[d * k + s] = pi[s] + (share[s] + l[d * k + s]) * scale;
    }
  }
}

RawResult Ad3Solver::solve(const double* unary, const double* pairwise) {
  const RawResult result = iterate(unary, pairwise, options_.max_iterations);
  if (keep_best_ && result.status == Status::kIterationLimit && best_iteration_ < result.iterations &&
      (stop_ == nullptr || stop_->reason() == StopReason::kNone)) {
    // The iterations are deterministic: replaying them up to the best rounding's iterate gives its
    // marginals (rather than keeping a copy of every improving iterate). The labelling and the
    // final multipliers and local marginals stay those of the whole run.
    std::vector<int> labels = labels_;
    std::vector<double> lambda = lambda_, q = q_;
    iterate(unary, pairwise, static_cast<int>(best_iteration_));
    labels_.swap(labels);
    lambda_.swap(lambda);
    q_.swap(q);
  }
  return result;
}

RawResult Ad3Solver::iterate(const double* unary, const double* pairwise, int max_iterations) {
  const int n = graph_.num_variables();
  isolated_max_ = 0.0;
  for (int i = 0; i < n; ++i) {
    const int k = graph_.num_states(i), deg = graph_.degree(i);
    const std::size_t off = graph_.unary_offset(i);
    if (deg == 0) {  // isolated: its best state, fixed
      const int best = static_cast<int>(std::max_element(unary + off, unary + off + k) - (unary + off));
      std::fill(p_.begin() + off, p_.begin() + off + k, 0.0);
      p_[off + best] = 1.0;
      labels_[i] = rounded_[i] = best;
      isolated_max_ += unary[off + best];
      continue;
    }
    std::fill(p_.begin() + off, p_.begin() + off + k, 1.0 / k);
    for (int s = 0; s < k; ++s) unary_share_[off + s] = unary[off + s] / deg;
  }
  std::fill(lambda_.begin(), lambda_.end(), 0.0);
  best_iteration_ = 0;
  for (ActiveSet& set : active_sets_) set.k = 0;
  std::fill(edge_dirty_.begin(), edge_dirty_.end(), 1);
  set_eta(options_.eta, pairwise);
  compute_inputs();

  double best_score = -std::numeric_limits<double>::infinity();
  double best_bound = std::numeric_limits<double>::infinity();
  bool certified = false, converged = false;
  int t = 0;
  while (t < max_iterations) {
    if ((t & 7) == 7 && stop_ != nullptr && stop_->stop() != StopReason::kNone) break;
    // 1. Edge subproblems (those whose inputs changed).
    for (std::size_t e = 0; e < edges_.size(); ++e) {
      if (!edge_dirty_[e]) continue;
      const EdgeLayout& edge = edges_[e];
      const double* xa = x_.data() + edge.link_a;
      const double* xb = x_.data() + edge.link_b;
      double* qa = q_.data() + edge.link_a;
      double* qb = q_.data() + edge.link_b;
      ActiveSet& set = active_sets_[e];
      const double value = dispatch_states(edge.ka == edge.kb ? edge.ka : 0, [&](auto states) {
        return solve_edge_qp<decltype(states)::value>(edge, set, xa, xb, qa, qb);
      });
      edge_value_[e] = 2.0 * eta_ * value;
    }
    // 2. Averaging: p_i = mean of its edges' local marginals.
    double dual_residual = 0.0;
    for (int i = 0; i < n; ++i) {
      const int k = graph_.num_states(i), deg = graph_.degree(i);
      if (deg == 0) continue;
      const double* q = q_.data() + link_begin_[i];
      double* pi = p_.data() + graph_.unary_offset(i);
      dual_residual += deg * dispatch_states(k, [&](auto states) {
        return average_blocks<decltype(states)::value>(k, deg, q, pi, residual_.data(), p_rise_[i]);
      });
    }
    // 3. Dual update, and the next subproblems' inputs. An edge must be solved again exactly when
    // one of its inputs x changed.
    std::fill(edge_dirty_.begin(), edge_dirty_.end(), 0);
    double primal_residual = 0.0;
    const double step = 2.0 * eta_, scale = 0.5 / eta_;
    for (int i = 0; i < n; ++i) {
      const int k = graph_.num_states(i), deg = graph_.degree(i);
      if (deg == 0) continue;
      const double* pi = p_.data() + graph_.unary_offset(i);
      const double* share = unary_share_.data() + graph_.unary_offset(i);
      const double* q = q_.data() + link_begin_[i];
      double* l = lambda_.data() + link_begin_[i];
      double* x = x_.data() + link_begin_[i];
      const Graph::Incidence* inc = graph_.incident(i);
      char* dirty = edge_dirty_.data();
      primal_residual += dispatch_states(k, [&](auto states) {
        return update_blocks<decltype(states)::value>(k, deg, pi, share, q, step, scale, l, x, inc, dirty);
      });
    }
    primal_residual = std::sqrt(primal_residual / std::max<std::size_t>(num_links_, 1));
    dual_residual = std::sqrt(dual_residual / std::max<std::size_t>(num_links_, 1));

    // 4. Rounding, and the bound: certified as soon as the best labelling meets the best bound.
    bool rounding_changed = t == 0;
    for (int i = 0; i < n; ++i) {
      if (graph_.degree(i) == 0) continue;
      const double* pi = p_.data() + graph_.unary_offset(i);
      const int label = static_cast<int>(std::max_element(pi, pi + graph_.num_states(i)) - pi);
      rounding_changed |= label != rounded_[i];
      rounded_[i] = label;
    }
    // (a rounding equal to the last one was scored then: it cannot improve on the best)
    const double rounded_score = rounding_changed ? score(unary, pairwise, rounded_.data()) : best_score;
    if (rounded_score > best_score) {
      best_score = rounded_score;
      labels_ = rounded_;
      best_iteration_ = t + 1;
    }
    // The multiplier part of the bound is rounding noise; it is only worth adding (and the bound
    // only worth recording) when the edge part is close to certifying.
    const double edge_part = bound_edge_part();
    const bool last = t + 1 == max_iterations;
    ++t;
    if (last || within_gap(best_score, edge_part, options_.gap_tolerance + 1e-9)) {
      best_bound = std::min(best_bound, edge_part + bound_multiplier_part());
      if (within_gap(best_score, best_bound, options_.gap_tolerance)) {
        certified = true;
        break;
      }
    }
    if (primal_residual < options_.tolerance && dual_residual < options_.tolerance) {
      converged = true;
      best_bound = std::min(best_bound, edge_part + bound_multiplier_part());
      break;
    }
    // 5. Penalty adaptation (residual balancing, as in the reference implementation).
    if (options_.adapt_eta && (t - 1) % kEtaAdaptPeriod == 0) {
      double eta = eta_;
      if (primal_residual > kResidualRatioPrimal * dual_residual && eta_ < kEtaMax) {
        eta = eta_ * 2.0;
      } else if (dual_residual > kResidualRatioDual * primal_residual && eta_ > kEtaMin) {
        eta = eta_ * 0.5;
      }
      if (eta != eta_) {
        set_eta(eta, pairwise);
        compute_inputs();
        std::fill(edge_dirty_.begin(), edge_dirty_.end(), 1);
      }
    }
  }

  if (!certified) {
    // Local improvement of the rounded solutions: the best labelling so far and the last rounding.
    const std::vector<int> best_rounding = keep_best_ ? labels_ : std::vector<int>();
    const double best_rounding_score = best_score;
    best_score = improve_by_icm(graph_, unary, pairwise, labels_.data(), icm_scratch_);
    const double last = improve_by_icm(graph_, unary, pairwise, rounded_.data(), icm_scratch_);
    if (last > best_score) {
      best_score = last;
      labels_ = rounded_;
    }
    certified = within_gap(best_score, best_bound, options_.gap_tolerance);
    if (!certified && keep_best_) {
      labels_ = best_rounding;
      best_score = best_rounding_score;
    }
  }
  RawResult result;
  result.score = best_score;
  result.bound = best_bound;
  result.iterations = t;
  result.status = certified ? Status::kOptimal
                            : (converged ? Status::kFractional : Status::kIterationLimit);
  return result;
}

void Ad3Solver::edge_marginals(double* out) const {
  std::fill(out, out + graph_.pairwise_size(), 0.0);
  for (std::size_t e = 0; e < edges_.size(); ++e) {
    const ActiveSet& set = active_sets_[e];
    double* table = out + edges_[e].table;
    const int* s = store_.s.data() + set.config;
    const int* t = store_.t.data() + set.config;
    const double* weights = store_.weights.data() + set.config;
    for (int j = 0; j < set.k; ++j) table[s[j] * edges_[e].kb + t[j]] += weights[j];
  }
}

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
