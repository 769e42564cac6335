// CPU kernels of the copula ops (argument documentation in copula.h). Every op is parallel over
// samples (or elements) with at::parallel_for; each sample's gradients are accumulated by one
// thread in a fixed order, so results do not depend on the number of threads.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "copula/copula.h"
#include "copula/pair_batch.h"
#include "copula/table_assembly.h"

namespace ccnn {
namespace copula {

namespace {
std::atomic<bool> g_data_checks{true};
}  // namespace

void set_data_checks(bool enabled) { g_data_checks.store(enabled); }
bool data_checks_enabled() { return g_data_checks.load(); }

namespace {

// ---- data validation ------------------------------------------------------------------------

// Smallest i in [0, n) with bad(i), or kNoError. A plain loop: these passes are memory-bound and
// far cheaper than the kernels they guard (threads would only add start-up cost).
template <typename Pred>
int64_t first_bad(int64_t n, Pred bad) {
  for (int64_t i = 0; i < n; ++i)
    if (bad(i)) return i;
  return kNoError;
}

// The index rules (edges and labels in range). Always checked: an index out of range would read
// outside the inputs.
ErrorIndices validate_indices(const int64_t* edges, const int64_t* labels, const PairwiseSizes& n) {
  ErrorIndices first;
  first.fill(kNoError);
  if (labels != nullptr) {
    first[kLabelOutOfRange] =
        first_bad(n.B * n.Q, [&](int64_t i) { return !label_ok(labels[i], n.L); });
  }
  first[kEdgeOutOfRange] = first_bad(
      n.E, [&](int64_t e) { return check_edge(edges[2 * e], edges[2 * e + 1], n.Q) == kEdgeOutOfRange; });
  first[kEdgeSelfLoop] = first_bad(
      n.E, [&](int64_t e) { return check_edge(edges[2 * e], edges[2 * e + 1], n.Q) == kEdgeSelfLoop; });
  return first;
}

// Whether `rows` rows of K thresholds are all finite and strictly increasing: branch-free
// (vectorisable) counts; every descent of the flat array must be at a row boundary.
template <typename T>
bool thresholds_ok(const T* z, int64_t rows, int64_t K) {
  const int64_t count = rows * K;
  int64_t bad = 0, descents = 0, boundary_descents = 0;
  for (int64_t i = 0; i < count; ++i) bad += !is_finite(z[i]);
  for (int64_t i = 1; i < count; ++i) descents += !(z[i] > z[i - 1]);
  for (int64_t i = K; K > 0 && i < count; i += K) boundary_descents += !(z[i] > z[i - 1]);
  return bad == 0 && descents == boundary_descents;
}

// The value rules (finite, increasing z; finite theta), added to `first`.
template <typename T>
void validate_values(const T* z, const T* theta, int64_t theta_numel, const PairwiseSizes& n,
                     ErrorIndices& first) {
  const int64_t K = n.L - 1, count = n.B * n.Q * K;
  // the counts decide; the first offender is searched only on failure
  int64_t bad_theta = 0;
  for (int64_t i = 0; i < theta_numel; ++i) bad_theta += !is_finite(theta[i]);
  if (bad_theta == 0 && thresholds_ok(z, n.B * n.Q, K)) return;
  first[kZNotFinite] = first_bad(count, [&](int64_t i) { return !is_finite(z[i]); });
  if (first[kZNotFinite] == kNoError) {
    first[kZNotIncreasing] = first_bad(n.B * n.Q, [&](int64_t row) {
      int64_t column;
      return check_threshold_row(z + row * K, K, &column) >= 0;
    });
  }
  first[kThetaNotFinite] = first_bad(theta_numel, [&](int64_t i) { return !is_finite(theta[i]); });
}

// Checks the data of a pairwise call (after check_pairwise_args and contiguous()): indices always,
// values unless set_data_checks(false).
void check_pairwise_data(const at::Tensor& z, const at::Tensor& theta, const at::Tensor& edges,
                         const at::Tensor* labels, const PairwiseSizes& n) {
  ErrorIndices first = validate_indices(edges.data_ptr<int64_t>(),
                                        labels != nullptr ? labels->data_ptr<int64_t>() : nullptr, n);
  if (data_checks_enabled()) {
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "ccnn_check_pairwise", [&] {
      validate_values(z.data_ptr<scalar_t>(), theta.data_ptr<scalar_t>(), theta.numel(), n, first);
    });
  }
  raise_data_errors(first, n);
}

// Tasks of at::parallel_for are sized to tens of microseconds or more: smaller ones cost more in
// thread wake-ups than they save (a training step's batch of 32 runs on the calling thread).
int64_t samples_per_task(int64_t pairs_per_sample) {
  return std::max<int64_t>(1, 4096 / std::max<int64_t>(pairs_per_sample, 1));
}

// ---- frank_copula -----------------------------------------------------------------------------

at::Tensor frank_copula_cpu(const at::Tensor& u_in, const at::Tensor& v_in, const at::Tensor& theta_in) {
  auto [u, v, theta] = check_frank_args(u_in, v_in, theta_in);
  at::Tensor out = at::empty_like(u);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "ccnn_frank_copula", [&] {
    const scalar_t *pu = u.data_ptr<scalar_t>(), *pv = v.data_ptr<scalar_t>(),
                   *pt = theta.data_ptr<scalar_t>();
    if (data_checks_enabled()) {
      ErrorIndices first;
      first.fill(kNoError);
      first[kUnitOutOfRange] =
          first_bad(u.numel(), [&](int64_t i) { return !unit_ok(pu[i]) || !unit_ok(pv[i]); });
      first[kThetaNotFinite] = first_bad(u.numel(), [&](int64_t i) { return !is_finite(pt[i]); });
      raise_unit_errors(first);
    }
    scalar_t* po = out.data_ptr<scalar_t>();
    at::parallel_for(0, u.numel(), 2048, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) po[i] = frank_cdf(pu[i], pv[i], pt[i]);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> frank_copula_backward_cpu(
    const at::Tensor& grad_in, const at::Tensor& u_in, const at::Tensor& v_in,
    const at::Tensor& theta_in) {
  auto [u, v, theta] = check_frank_args(u_in, v_in, theta_in);
  check_grad(grad_in, u, u.sizes());
  const at::Tensor grad = grad_in.contiguous();
  at::Tensor gu = at::empty_like(u), gv = at::empty_like(u), gt = at::empty_like(u);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "ccnn_frank_copula_backward", [&] {
    const scalar_t *pu = u.data_ptr<scalar_t>(), *pv = v.data_ptr<scalar_t>(),
                   *pt = theta.data_ptr<scalar_t>(), *pg = grad.data_ptr<scalar_t>();
    scalar_t *pgu = gu.data_ptr<scalar_t>(), *pgv = gv.data_ptr<scalar_t>(),
             *pgt = gt.data_ptr<scalar_t>();
    at::parallel_for(0, u.numel(), 2048, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const CopulaGrad<scalar_t> d = frank_cdf_grad(pu[i], pv[i], pt[i]);
        pgu[i] = pg[i] * d.du, pgv[i] = pg[i] * d.dv, pgt[i] = pg[i] * d.dtheta;
      }
    });
  });
  return {gu, gv, gt};
}

// ordinal_logprob of a contiguous (B, Q, L-1) float or double z into out = logp (grad null), or
// its backward from the forward's logp and grad ((B, Q, L) each) into out = grad_z; rows in SIMD
// lanes. The forward also returns whether every row of z is finite and strictly increasing (the
// checks run in the kernel; false: the output is to be discarded).
template <typename T>
bool ordinal_rows(const at::Tensor& z, int64_t L, Link link, const at::Tensor* logp, const at::Tensor* grad,
                  at::Tensor& out);

// ---- ordinal_logprob --------------------------------------------------------------------------

at::Tensor ordinal_logprob_cpu(const at::Tensor& z_in, c10::string_view link_name) {
  const Link link = parse_link(std::string(link_name));
  check_thresholds(z_in);
  const at::Tensor z = z_in.contiguous();
  const int64_t B = z.size(0), Q = z.size(1), L = z.size(2) + 1;
  // the pairwise validation without theta, edges or labels checks exactly z
  auto check_data = [&] {
    const PairwiseSizes n{B, Q, L, 0, false};
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "ccnn_check_ordinal", [&] {
      ErrorIndices first;
      first.fill(kNoError);
      validate_values<scalar_t>(z.data_ptr<scalar_t>(), nullptr, 0, n, first);
      raise_data_errors(first, n);
    });
  };
  at::Tensor out = at::empty({B, Q, L}, z.options());
  // the rules are checked in the kernel, each task on its rows; only a failure rescans
  bool ok = true;
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "ccnn_ordinal_logprob", [&] {
    ok = ordinal_rows<scalar_t>(z, L, link, nullptr, nullptr, out);
  });
  if (!ok && data_checks_enabled()) check_data();
  return out;
}

at::Tensor ordinal_logprob_backward_cpu(const at::Tensor& grad_in, const at::Tensor& z_in, const at::Tensor& logp_in,
                                        c10::string_view link_name) {
  const Link link = parse_link(std::string(link_name));
  check_thresholds(z_in);
  const at::Tensor z = z_in.contiguous();
  const int64_t B = z.size(0), Q = z.size(1), L = z.size(2) + 1;
  check_grad(grad_in, z, {B, Q, L});
  check_forward_output(logp_in, "logp", z, {B, Q, L});
  const at::Tensor grad = grad_in.contiguous(), logp = logp_in.contiguous();
  at::Tensor grad_z = at::empty_like(z);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "ccnn_ordinal_logprob_backward", [&] {
    ordinal_rows<scalar_t>(z, L, link, &logp, &grad, grad_z);
  });
  return grad_z;
}

// ---- pairwise_loglik --------------------------------------------------------------------------

struct PairwiseInputs {
  at::Tensor z, theta, edges, labels;
  PairwiseSizes n;
};

PairwiseInputs prepare_pairwise(const at::Tensor& z, const at::Tensor& theta,
                                const at::Tensor& edges, const at::Tensor* labels) {
  PairwiseInputs in;
  in.n = check_pairwise_args(z, theta, edges, labels);
  in.z = z.contiguous(), in.theta = theta.contiguous(), in.edges = edges.contiguous();
  if (labels != nullptr) in.labels = labels->contiguous();
  return in;
}

template <typename T>
T theta_of(const T* theta, const PairwiseSizes& n, int64_t b, int64_t e) {
  return theta[n.theta_per_sample ? b * n.E + e : e];
}

// ---- label pairs in SIMD lanes ----------------------------------------------------------------

// The widest compiled version of the SIMD math (frank_simd.h) this processor runs.

// CCNN_SIMD=base|avx|avx2 in the environment caps the level (to test every version on one machine).
SimdLevel best_simd_level() {
  SimdLevel level = SimdLevel::kBase;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
    level = SimdLevel::kAvx512;
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    level = SimdLevel::kAvx2;
  else if (__builtin_cpu_supports("avx") && __builtin_cpu_supports("fma"))
    level = SimdLevel::kAvx;
#endif
  const char* cap_name = std::getenv("CCNN_SIMD");
  if (cap_name == nullptr) return level;
  const std::string name(cap_name);
  const SimdLevel cap = name == "base"  ? SimdLevel::kBase
                        : name == "avx"  ? SimdLevel::kAvx
                        : name == "avx2" ? SimdLevel::kAvx2
                                         : SimdLevel::kAvx512;
  return std::min(level, cap);
}

const SimdLevel kSimdLevel = best_simd_level();

template <typename Fn>
Fn pick_simd(Fn avx512, Fn avx2, Fn avx, Fn base) {
  switch (kSimdLevel) {
    case SimdLevel::kAvx512: return avx512;
    case SimdLevel::kAvx2: return avx2;
    case SimdLevel::kAvx: return avx;
    default: return base;
  }
}

// The best compiled version of an entry point of pair_batch.h for type T.
#define CCNN_PICK_SIMD(fn, T) \
  pick_simd(&fn<SimdLevel::kAvx512, T>, &fn<SimdLevel::kAvx2, T>, &fn<SimdLevel::kAvx, T>, &fn<SimdLevel::kBase, T>)
template <typename T>
const auto kPairLanes = CCNN_PICK_SIMD(frank_pair_lanes, T);
template <typename T>
const auto kLevelLanes = CCNN_PICK_SIMD(level_lanes, T);
template <typename T>
const auto kTableLanes = CCNN_PICK_SIMD(table_lanes, T);
template <typename T>
const auto kOrdinalLanes = CCNN_PICK_SIMD(ordinal_lanes, T);
#undef CCNN_PICK_SIMD

template <typename T>
bool ordinal_rows(const at::Tensor& z, int64_t L, Link link, const at::Tensor* logp, const at::Tensor* grad,
                  at::Tensor& out) {
  const int64_t rows = z.size(0) * z.size(1);
  const T* pz = z.data_ptr<T>();
  const T* plp = logp == nullptr ? nullptr : logp->data_ptr<T>();
  const T* pg = grad == nullptr ? nullptr : grad->data_ptr<T>();
  T* po = out.data_ptr<T>();
  const int64_t out_width = grad == nullptr ? L : L - 1;
  std::atomic<bool> ok{true};
  at::parallel_for(0, rows, std::max<int64_t>(16, 8192 / L), [&](int64_t begin, int64_t end) {
    const bool rows_ok = kOrdinalLanes<T>(pz + begin * (L - 1), plp == nullptr ? nullptr : plp + begin * L,
                                          pg == nullptr ? nullptr : pg + begin * L, end - begin, int(L),
                                          link == Link::Probit, po + begin * out_width);
    if (!rows_ok) ok.store(false);
  });
  return ok.load();
}

// out[i] = level levels[i] of the threshold row rows[i] (z holds rows of L-1 thresholds of type
// T), computed in SIMD lanes of type C; the same fields as level_of.
template <typename C, typename T>
void lane_levels(const T* z, int L, const int64_t* rows, const int* levels, int64_t count, Link link,
                 bool with_weights, Level<C>* out) {
  constexpr C kInf = std::numeric_limits<C>::infinity();
  LevelBatch<C> batch;
  batch.max_log_weight = C(Tuning<T>::max_log_weight);
  for (int64_t start = 0; start < count; start += LevelBatch<C>::kCapacity) {
    const int n = int(std::min<int64_t>(LevelBatch<C>::kCapacity, count - start));
    for (int k = 0; k < n; ++k) {
      const T* row = z + rows[start + k] * (L - 1);
      const int l = levels[start + k];
      batch.z_lo[k] = l > 0 ? C(row[l - 1]) : -kInf;
      batch.z_hi[k] = l < L - 1 ? C(row[l]) : kInf;
    }
    const int padded = (n + 15) / 16 * 16;
    for (int k = n; k < padded; ++k) batch.z_lo[k] = -kInf, batch.z_hi[k] = kInf;
    kLevelLanes<C>(batch, padded, link == Link::Probit, with_weights);
    for (int k = 0; k < n; ++k) {
      Level<C>& lev = out[start + k];
      const int l = levels[start + k];
      lev.cdf_lo = batch.cdf_lo[k], lev.ccdf_lo = batch.ccdf_lo[k];
      lev.cdf_hi = batch.cdf_hi[k], lev.ccdf_hi = batch.ccdf_hi[k];
      lev.mass = batch.mass[k], lev.log_mass = batch.log_mass[k];
      lev.w_lo = batch.w_lo[k], lev.w_hi = batch.w_hi[k];
      lev.has_lo = l > 0, lev.has_hi = l < L - 1;
    }
  }
}

// Each edge's frame, in T and in double, when theta is shared by the batch (empty otherwise).
template <typename T>
struct SharedFrames {
  std::vector<FrankFrame<T>> narrow;
  std::vector<FrankFrame<double>> wide;
  SharedFrames(const T* theta, const PairwiseSizes& n) {
    if (n.theta_per_sample) return;
    for (int64_t e = 0; e < n.E; ++e) {
      narrow.push_back(make_frank_frame(theta[e]));
      wide.push_back(make_frank_frame(double(theta[e])));
    }
  }
};

// The labelled levels of one block of W samples, per AU side by side (LevelBatch, lane = sample)
// in type C, computed from the thresholds (of type T) when first asked for.
template <typename T, typename C>
class BlockLevels {
 public:
  static constexpr int W = 16;
  BlockLevels(const PairwiseInputs& in, Link link, bool with_weights)
      : in_(in), link_(link), with_weights_(with_weights), aus_(in.n.Q), ready_(in.n.Q) {}
  void start_block(int64_t b0, int lanes) {
    b0_ = b0, lanes_ = lanes;
    std::fill(ready_.begin(), ready_.end(), false);
  }
  const LevelBatch<C>& operator[](int64_t q) {
    if (!ready_[q]) compute(q);
    return aus_[q];
  }

 private:
  void compute(int64_t q) {
    constexpr C kInf = std::numeric_limits<C>::infinity();
    const PairwiseSizes& n = in_.n;
    const int L = int(n.L);
    const T* z = in_.z.data_ptr<T>();
    const int64_t* labels = in_.labels.data_ptr<int64_t>();
    LevelBatch<C>& lb = aus_[q];
    lb.max_log_weight = C(Tuning<T>::max_log_weight);
    for (int k = 0; k < W; ++k) {
      const int64_t b = b0_ + std::min(k, lanes_ - 1);
      const int label = int(std::max<int64_t>(labels[b * n.Q + q], 0));  // -1: not used
      const T* row = z + (b * n.Q + q) * (L - 1);
      lb.z_lo[k] = label > 0 ? C(row[label - 1]) : -kInf;
      lb.z_hi[k] = label < L - 1 ? C(row[label]) : kInf;
    }
    kLevelLanes<C>(lb, W, link_ == Link::Probit, with_weights_);
    ready_[q] = true;
  }
  const PairwiseInputs& in_;
  Link link_;
  bool with_weights_;
  int64_t b0_ = 0;
  int lanes_ = 0;
  std::vector<LevelBatch<C>> aus_;
  std::vector<char> ready_;
};

// Label pairs of one block evaluated in lanes of type C (the inputs' type T, or double for float
// edges with |theta| > kFloatThetaLimit): each edge takes W lanes (one per sample) of the batch,
// evaluated kSlots edges at a time; the results go to out and partials in T.
template <typename T, typename C>
class PairSlots {
 public:
  static constexpr int W = 16, kSlots = PairBatch<C>::kCapacity / W;
  PairSlots(const PairwiseSizes& n, bool with_grad, T* out, T* partials)
      : n_(n), with_grad_(with_grad), out_(out), partials_(partials), batch_(std::make_unique<PairBatch<C>>()) {}
  void start_block(int64_t b0, int lanes) { b0_ = b0, lanes_ = lanes; }

  // Edge e between AUs r and s for the lanes in `scored` (their pairs are labelled), with lane k's
  // frame frames[k] (one frame for all when `shared`); results are written for the lanes in
  // `written` (0 and no gradient where not scored).
  void add(int64_t e, const LevelBatch<C>& lr, const LevelBatch<C>& ls, uint32_t scored, uint32_t written,
           const FrankFrame<C>* frames, bool shared) {
    Slot& sl = slots_[used_];
    sl.e = e, sl.lr = &lr, sl.ls = &ls, sl.scored = scored, sl.written = written;
    const int base = used_ * W;
    PairBatch<C>& g = *batch_;
    if (shared) {
      const FrankFrame<C>& f = frames[0];
      std::fill_n(sl.reflect, W, f.reflect), std::fill_n(sl.capped, W, f.capped);
      if (scored == 0) {  // no lane to evaluate: every pair has a missing label
        store(sl, used_);
        return;
      }
      std::fill_n(g.theta + base, W, f.theta), std::fill_n(g.x1 + base, W, f.x1);
      std::fill_n(g.m1 + base, W, f.m1), std::fill_n(g.inv_mraw + base, W, f.inv_mraw);
      std::fill_n(g.inv_m1 + base, W, f.inv_m1), std::fill_n(g.lambda1 + base, W, f.lambda1);
      const size_t bytes = W * sizeof(C);
      std::memcpy(g.v0 + base, f.reflect ? ls.ccdf_hi : ls.cdf_lo, bytes);
      std::memcpy(g.v0b + base, f.reflect ? ls.cdf_hi : ls.ccdf_lo, bytes);
      std::memcpy(g.v1 + base, f.reflect ? ls.ccdf_lo : ls.cdf_hi, bytes);
      std::memcpy(g.v1b + base, f.reflect ? ls.cdf_lo : ls.ccdf_hi, bytes);
    } else {
      if (scored == 0) return;
      for (int k = 0; k < W; ++k) {
        const FrankFrame<C>& f = frames[k];
        const int j = base + k;
        g.theta[j] = f.theta, g.x1[j] = f.x1, g.m1[j] = f.m1, g.inv_mraw[j] = f.inv_mraw;
        g.inv_m1[j] = f.inv_m1, g.lambda1[j] = f.lambda1;
        sl.reflect[k] = f.reflect, sl.capped[k] = f.capped;
        g.v0[j] = f.reflect ? ls.ccdf_hi[k] : ls.cdf_lo[k];
        g.v0b[j] = f.reflect ? ls.cdf_hi[k] : ls.ccdf_lo[k];
        g.v1[j] = f.reflect ? ls.ccdf_lo[k] : ls.cdf_hi[k];
        g.v1b[j] = f.reflect ? ls.cdf_lo[k] : ls.ccdf_hi[k];
      }
    }
    const size_t bytes = W * sizeof(C);
    std::memcpy(g.u0 + base, lr.cdf_lo, bytes), std::memcpy(g.u0b + base, lr.ccdf_lo, bytes);
    std::memcpy(g.u1 + base, lr.cdf_hi, bytes), std::memcpy(g.u1b + base, lr.ccdf_hi, bytes);
    std::memcpy(g.du + base, lr.mass, bytes), std::memcpy(g.log_du + base, lr.log_mass, bytes);
    std::memcpy(g.dv + base, ls.mass, bytes), std::memcpy(g.log_dv + base, ls.log_mass, bytes);
    if (++used_ == kSlots) flush();
  }

  // Evaluates the queued edges (before their levels change: at the end of each block).
  void flush() {
    if (used_ == 0) return;
    kPairLanes<C>(*batch_, 0, used_ * W, with_grad_);
    for (int slot = 0; slot < used_; ++slot) store(slots_[slot], slot);
    used_ = 0;
  }

 private:
  struct Slot {
    int64_t e;
    const LevelBatch<C>*lr, *ls;
    uint32_t scored, written;
    bool reflect[W], capped[W];
  };
  // Stores a slot's results, then 0 and no gradient where a pair is not scored (a missing label):
  // the few such lanes are visited by their bits, since a per-lane test of labels scattered at
  // random would defeat branch prediction.
  void store(const Slot& sl, int slot) {
    const PairBatch<C>& g = *batch_;
    const LevelBatch<C>&lr = *sl.lr, &ls = *sl.ls;
    for (int k = 0; k < lanes_; ++k) {
      if (!(sl.scored >> k & 1)) continue;
      const int j = slot * W + k;
      const int64_t i = (b0_ + k) * n_.E + sl.e;
      out_[i] = T(g.log_prob[j]);
      if (!with_grad_) continue;
      const bool reflect = sl.reflect[k];
      T* d = partials_ + 5 * i;
      d[0] = T(lr.w_lo[k] * g.s_u0[j]);
      d[1] = T(lr.w_hi[k] * g.s_u1[j]);
      d[2] = T(ls.w_lo[k] * (reflect ? -g.s_v1[j] : g.s_v0[j]));
      d[3] = T(ls.w_hi[k] * (reflect ? -g.s_v0[j] : g.s_v1[j]));
      d[4] = sl.capped[k] ? T(0) : T(reflect ? -g.dtheta[j] : g.dtheta[j]);
    }
    for (uint32_t unscored = sl.written & ~sl.scored; unscored != 0; unscored &= unscored - 1) {
      const int64_t i = (b0_ + __builtin_ctz(unscored)) * n_.E + sl.e;
      out_[i] = T(0);
      if (with_grad_) std::fill(partials_ + 5 * i, partials_ + 5 * i + 5, T(0));
    }
  }
  const PairwiseSizes& n_;
  bool with_grad_;
  T *out_, *partials_;
  std::unique_ptr<PairBatch<C>> batch_;
  Slot slots_[kSlots];
  int used_ = 0;
  int64_t b0_ = 0;
  int lanes_ = 0;
};

// One edge for 16 samples at a time in SIMD lanes. Each AU's labelled levels of the 16 samples are
// computed side by side (LevelBatch), so an edge's lanes are filled by contiguous copies; float
// edges with |theta| > kFloatThetaLimit are evaluated in double lanes from double levels.
template <typename T>
void pairwise_loglik_lanes(const PairwiseInputs& in, Link link, at::Tensor& out, at::Tensor* partials) {
  constexpr int W = 16;
  const PairwiseSizes& n = in.n;
  const bool with_grad = partials != nullptr;
  const T* theta = in.theta.data_ptr<T>();
  const int64_t *edges = in.edges.data_ptr<int64_t>(), *labels = in.labels.data_ptr<int64_t>();
  T* po = out.data_ptr<T>();
  T* pp = with_grad ? partials->data_ptr<T>() : nullptr;
  const SharedFrames<T> shared_frames(theta, n);
  const int64_t blocks = (n.B + W - 1) / W;
  const int64_t grain = std::max<int64_t>(1, samples_per_task(n.E) / W);
  at::parallel_for(0, blocks, grain, [&](int64_t block_begin, int64_t block_end) {
    BlockLevels<T, T> levels(in, link, with_grad);
    BlockLevels<T, double> wide_levels(in, link, with_grad);
    PairSlots<T, T> slots(n, with_grad, po, pp);
    PairSlots<T, double> wide_slots(n, with_grad, po, pp);
    std::vector<uint32_t> labelled(n.Q);  // bit k: sample k of the block has a label for AU q
    FrankFrame<T> frames[W];
    FrankFrame<double> wide_frames[W];
    const FrankFrame<T> independence = make_frank_frame(T(0));  // (for lanes the other type evaluates)
    const FrankFrame<double> wide_independence = make_frank_frame(0.0);
    for (int64_t block = block_begin; block < block_end; ++block) {
      const int64_t b0 = block * W;
      const int lanes = int(std::min<int64_t>(W, n.B - b0));
      static_assert(W < 32, "lane masks are 32-bit");
      const uint32_t in_batch = (1u << lanes) - 1;
      levels.start_block(b0, lanes), wide_levels.start_block(b0, lanes);
      slots.start_block(b0, lanes), wide_slots.start_block(b0, lanes);
      for (int64_t q = 0; q < n.Q; ++q) {
        uint32_t bits = 0;
        for (int k = 0; k < lanes; ++k) bits |= uint32_t(labels[(b0 + k) * n.Q + q] >= 0) << k;
        labelled[q] = bits;
      }
      for (int64_t e = 0; e < n.E; ++e) {
        const int64_t r = edges[2 * e], s = edges[2 * e + 1];
        const uint32_t both = labelled[r] & labelled[s];
        if (!n.theta_per_sample) {  // one frame for every lane
          if (!needs_double(theta[e])) {
            slots.add(e, levels[r], levels[s], both, in_batch, &shared_frames.narrow[e], true);
          } else {
            wide_slots.add(e, wide_levels[r], wide_levels[s], both, in_batch, &shared_frames.wide[e], true);
          }
          continue;
        }
        uint32_t wide = 0;
        for (int k = 0; k < W; ++k) {
          // every lane gets a valid frame in both types (unused lanes compute and are ignored)
          const T t = theta_of(theta, n, b0 + std::min(k, lanes - 1), e);
          wide |= uint32_t(needs_double(t)) << k;
          frames[k] = needs_double(t) ? independence : make_frank_frame(t);
          wide_frames[k] = needs_double(t) ? make_frank_frame(double(t)) : wide_independence;
        }
        for (uint32_t missing = in_batch & ~both; missing != 0; missing &= missing - 1) {
          const int64_t i = (b0 + __builtin_ctz(missing)) * n.E + e;  // a missing label: 0, no gradient
          po[i] = T(0);
          if (with_grad) std::fill(pp + 5 * i, pp + 5 * i + 5, T(0));
        }
        const uint32_t narrow_lanes = both & ~wide & in_batch, wide_lanes = both & wide & in_batch;
        if (narrow_lanes != 0) slots.add(e, levels[r], levels[s], narrow_lanes, narrow_lanes, frames, false);
        if (wide_lanes != 0)
          wide_slots.add(e, wide_levels[r], wide_levels[s], wide_lanes, wide_lanes, wide_frames, false);
      }
      slots.flush(), wide_slots.flush();
    }
  });
}

// The pair log-likelihoods and, if partials is defined, their local derivatives
// partials[b, e] = d loglik[b, e] / d (z_r_lo, z_r_hi, z_s_lo, z_s_hi, theta).
void pairwise_loglik_kernel(const PairwiseInputs& in, Link link, at::Tensor& out,
                            at::Tensor* partials) {
  AT_DISPATCH_FLOATING_TYPES(in.z.scalar_type(), "ccnn_pairwise_loglik",
                             [&] { pairwise_loglik_lanes<scalar_t>(in, link, out, partials); });
}

at::Tensor pairwise_loglik_cpu(const at::Tensor& z, const at::Tensor& theta,
                               const at::Tensor& edges, const at::Tensor& labels,
                               c10::string_view link_name) {
  const Link link = parse_link(std::string(link_name));
  const PairwiseInputs in = prepare_pairwise(z, theta, edges, &labels);
  check_pairwise_data(in.z, in.theta, in.edges, &in.labels, in.n);
  at::Tensor out = at::empty({in.n.B, in.n.E}, in.z.options());
  pairwise_loglik_kernel(in, link, out, nullptr);
  return out;
}

std::tuple<at::Tensor, at::Tensor> pairwise_loglik_fwd_cpu(const at::Tensor& z,
                                                           const at::Tensor& theta,
                                                           const at::Tensor& edges,
                                                           const at::Tensor& labels,
                                                           c10::string_view link_name) {
  const Link link = parse_link(std::string(link_name));
  const PairwiseInputs in = prepare_pairwise(z, theta, edges, &labels);
  check_pairwise_data(in.z, in.theta, in.edges, &in.labels, in.n);
  at::Tensor out = at::empty({in.n.B, in.n.E}, in.z.options());
  at::Tensor partials = at::empty({in.n.B, in.n.E, 5}, in.z.options());
  pairwise_loglik_kernel(in, link, out, &partials);
  return {out, partials};
}

std::tuple<at::Tensor, at::Tensor> pairwise_loglik_bwd_cpu(const at::Tensor& grad_in,
                                                           const at::Tensor& partials_in,
                                                           const at::Tensor& z,
                                                           const at::Tensor& edges_in,
                                                           const at::Tensor& labels_in) {
  const PairwiseSizes n = check_pairwise_bwd_args(grad_in, partials_in, z, edges_in, labels_in);
  const at::Tensor grad = grad_in.contiguous(), partials = partials_in.contiguous();
  const at::Tensor edges = edges_in.contiguous(), labels = labels_in.contiguous();
  raise_data_errors(validate_indices(edges.data_ptr<int64_t>(), labels.data_ptr<int64_t>(), n), n);
  at::Tensor grad_z = at::zeros({n.B, n.Q, n.L - 1}, z.options());
  at::Tensor grad_theta = at::empty({n.B, n.E}, z.options());
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "ccnn_pairwise_loglik_bwd", [&] {
    const scalar_t *pg = grad.data_ptr<scalar_t>(), *pp = partials.data_ptr<scalar_t>();
    const int64_t *pe = edges.data_ptr<int64_t>(), *pl = labels.data_ptr<int64_t>();
    scalar_t *pgz = grad_z.data_ptr<scalar_t>(), *pgt = grad_theta.data_ptr<scalar_t>();
    const int64_t K = n.L - 1;
    at::parallel_for(0, n.B, samples_per_task(n.E), [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        scalar_t* gz = pgz + b * n.Q * K;
        for (int64_t e = 0; e < n.E; ++e) {
          const int64_t i = b * n.E + e, r = pe[2 * e], s = pe[2 * e + 1];
          const int64_t a = pl[b * n.Q + r], c = pl[b * n.Q + s];
          const scalar_t up = pg[i];
          const scalar_t* d = pp + 5 * i;
          pgt[i] = up * d[4];
          if (a < 0 || c < 0) continue;
          if (a > 0) gz[r * K + a - 1] += up * d[0];
          if (a < K) gz[r * K + a] += up * d[1];
          if (c > 0) gz[s * K + c - 1] += up * d[2];
          if (c < K) gz[s * K + c] += up * d[3];
        }
      }
    });
  });
  return {grad_z, grad_theta};
}

// ---- pairwise_logtable ------------------------------------------------------------------------

// Lane k of a TableBatch: sample's frame f and the row / column AU's L levels; for the backward
// (up not null) also the cells' upstream gradients (L x L, row-major) and the levels' weights.
template <typename C, typename U>
void fill_table_lane(TableBatch<C>& t, int k, const FrankFrame<C>& f, const Level<C>* rows, const Level<C>* cols,
                     int L, const U* up) {
  t.theta[k] = f.theta, t.x1[k] = f.x1, t.m1[k] = f.m1, t.inv_mraw[k] = f.inv_mraw;
  t.inv_m1[k] = f.inv_m1, t.lambda1[k] = f.lambda1;
  for (int l = 0; l < L; ++l) {
    const Level<C>& r = rows[l];
    const Level<C>& c = cols[l];
    TableLevel<C>& lanes = t.level[l];
    lanes.r_lo[k] = r.cdf_lo, lanes.r_lob[k] = r.ccdf_lo, lanes.r_hi[k] = r.cdf_hi;
    lanes.r_hib[k] = r.ccdf_hi, lanes.r_mass[k] = r.mass, lanes.r_log_mass[k] = r.log_mass;
    lanes.c_lo[k] = column_lo(f, c), lanes.c_lob[k] = column_hi_complement(f, c, false);
    lanes.c_hi[k] = column_hi(f, c), lanes.c_hib[k] = column_hi_complement(f, c, true);
    lanes.c_mass[k] = c.mass, lanes.c_log_mass[k] = c.log_mass;
  }
  if (up == nullptr) return;
  t.sign[k] = f.reflect ? C(-1) : C(1);
  t.theta_sign[k] = f.capped ? C(0) : t.sign[k];
  for (int l = 0; l < L; ++l) {
    TableLevel<C>& lanes = t.level[l];
    lanes.r_w_lo[k] = rows[l].w_lo, lanes.r_w_hi[k] = rows[l].w_hi;
    lanes.c_w_lo[k] = cols[l].w_lo, lanes.c_w_hi[k] = cols[l].w_hi;
  }
  for (int j = 0; j < L * L; ++j) t.up[j][k] = C(up[j]);
}

// The tables of one block of W samples evaluated in lanes of type C (the inputs' type T, or double
// for float edges with |theta| > kFloatThetaLimit), from the block's levels in C (levels[(k * Q +
// q) * L + l]: sample k, AU q, level l): forward into out, or backward from grad into grad_z (added)
// and grad_theta.
template <typename T, typename C>
class TableLanes {
 public:
  static constexpr int W = TableBatch<C>::kLanes;
  TableLanes(const PairwiseSizes& n, T* out, const T* grad, T* grad_z, T* grad_theta)
      : n_(n), L_(int(n.L)), out_(out), grad_(grad), grad_z_(grad_z), grad_theta_(grad_theta),
        no_grad_(grad != nullptr ? L_ * L_ : 0, T(0)), batch_(std::make_unique<TableBatch<C>>(L_)) {}

  // Edge e between AUs r and s for the samples b0 + k of `mask`, sample k with frame frames[k]
  // (frames[0] for all when `shared`).
  void run(int64_t b0, int64_t e, int64_t r, int64_t s, uint32_t mask, const FrankFrame<C>* frames, bool shared,
           const Level<C>* levels) {
    if (mask == 0) return;
    const int L = L_, K = L - 1, first_lane = __builtin_ctz(mask);
    const bool backward = grad_ != nullptr;
    for (int k = 0; k < W; ++k) {
      const int lane = mask >> k & 1 ? k : first_lane;  // pad with a real sample
      const int64_t i = (b0 + lane) * n_.E + e;
      const T* up = !backward ? nullptr : lane == k ? grad_ + i * L * L : no_grad_.data();
      fill_table_lane(*batch_, k, frames[shared ? 0 : lane], levels + (lane * n_.Q + r) * L,
                      levels + (lane * n_.Q + s) * L, L, up);
    }
    kTableLanes<C>(*batch_, L, backward);
    for (uint32_t lanes = mask; lanes != 0; lanes &= lanes - 1) {
      const int k = __builtin_ctz(lanes);
      const int64_t b = b0 + k, i = b * n_.E + e;
      if (!backward) {
        for (int j = 0; j < L * L; ++j) out_[i * L * L + j] = T(batch_->log_prob[j][k]);
        continue;
      }
      T *gz_r = grad_z_ + (b * n_.Q + r) * K, *gz_s = grad_z_ + (b * n_.Q + s) * K;
      for (int j = 0; j < K; ++j) gz_r[j] += T(batch_->level[j].gz_r[k]), gz_s[j] += T(batch_->level[j].gz_s[k]);
      grad_theta_[i] = T(batch_->dtheta[k]);
    }
  }

 private:
  const PairwiseSizes& n_;
  int L_;
  T* out_;
  const T* grad_;
  T *grad_z_, *grad_theta_;
  std::vector<T> no_grad_;  // (padding lanes add nothing)
  std::unique_ptr<TableBatch<C>> batch_;
};

// Tables of any number of levels into out (grad null), or their backward from the
// upstream gradient grad (out's shape; grad_z accumulated, grad_theta written): each edge for
// TableBatch::kLanes samples at a time in SIMD lanes (levels in lanes too); float edges with
// |theta| > kFloatThetaLimit in double lanes from double levels. Each sample's gradients are
// summed edge after edge.
template <typename T>
void pairwise_logtable_lanes(const PairwiseInputs& in, Link link, T* out, const T* grad, T* grad_z, T* grad_theta) {
  const PairwiseSizes& n = in.n;
  const int L = int(n.L);
  const bool backward = grad != nullptr;
  constexpr int W = TableBatch<T>::kLanes;
  const T *theta = in.theta.data_ptr<T>(), *z = in.z.data_ptr<T>();
  const int64_t* edges = in.edges.data_ptr<int64_t>();
  const SharedFrames<T> shared_frames(theta, n);
  const int64_t blocks = (n.B + W - 1) / W;
  at::parallel_for(0, blocks, 1, [&](int64_t block_begin, int64_t block_end) {
    TableLanes<T, T> tables(n, out, grad, grad_z, grad_theta);
    TableLanes<T, double> wide_tables(n, out, grad, grad_z, grad_theta);
    const int64_t per_block = W * n.Q * L;
    std::vector<int64_t> rows(per_block);
    std::vector<int> level_index(per_block);
    std::vector<Level<T>> levels(per_block);
    std::vector<Level<double>> wide_levels(per_block), au_levels(W * L);
    std::vector<char> wide_ready(n.Q);
    std::vector<int64_t> au_rows(W * L);
    // AU q's levels of the block's samples in double, computed when a wide edge first needs them
    const auto need_wide = [&](int64_t b0, int lanes, int64_t q) {
      if (wide_ready[q]) return;
      for (int i = 0; i < lanes * L; ++i) au_rows[i] = (b0 + i / L) * n.Q + q;
      lane_levels(z, L, au_rows.data(), level_index.data(), lanes * L, link, backward, au_levels.data());
      for (int i = 0; i < lanes * L; ++i) wide_levels[((i / L) * n.Q + q) * L + i % L] = au_levels[i];
      wide_ready[q] = true;
    };
    FrankFrame<T> frames[W];
    FrankFrame<double> wide_frames[W];
    for (int64_t block = block_begin; block < block_end; ++block) {
      const int64_t b0 = block * W;
      const int lanes = int(std::min<int64_t>(W, n.B - b0));
      const int64_t count = lanes * n.Q * L;
      for (int64_t i = 0; i < count; ++i) rows[i] = b0 * n.Q + i / L, level_index[i] = int(i % L);
      lane_levels(z, L, rows.data(), level_index.data(), count, link, backward, levels.data());
      std::fill(wide_ready.begin(), wide_ready.end(), false);
      const uint32_t in_batch = (1u << lanes) - 1;
      for (int64_t e = 0; e < n.E; ++e) {
        const int64_t r = edges[2 * e], s = edges[2 * e + 1];
        const bool shared = !n.theta_per_sample;
        uint32_t wide = 0;
        if (shared) {
          wide = needs_double(theta[e]) ? in_batch : 0;
        } else {  // (each lane's frame in the type that evaluates it)
          for (int k = 0; k < lanes; ++k) {
            const T t = theta_of(theta, n, b0 + k, e);
            wide |= uint32_t(needs_double(t)) << k;
            if (needs_double(t)) {
              wide_frames[k] = make_frank_frame(double(t));
            } else {
              frames[k] = make_frank_frame(t);
            }
          }
        }
        tables.run(b0, e, r, s, in_batch & ~wide, shared ? &shared_frames.narrow[e] : frames, shared, levels.data());
        if (wide == 0) continue;
        need_wide(b0, lanes, r), need_wide(b0, lanes, s);
        wide_tables.run(b0, e, r, s, wide, shared ? &shared_frames.wide[e] : wide_frames, shared, wide_levels.data());
      }
    }
  });
}

at::Tensor pairwise_logtable_cpu(const at::Tensor& z_in, const at::Tensor& theta_in,
                                 const at::Tensor& edges_in, c10::string_view link_name) {
  const Link link = parse_link(std::string(link_name));
  const PairwiseInputs in = prepare_pairwise(z_in, theta_in, edges_in, nullptr);
  const PairwiseSizes& n = in.n;
  check_pairwise_data(in.z, in.theta, in.edges, nullptr, n);
  at::Tensor out = at::empty({n.B, n.E, n.L, n.L}, in.z.options());
  AT_DISPATCH_FLOATING_TYPES(in.z.scalar_type(), "ccnn_pairwise_logtable", [&] {
    pairwise_logtable_lanes<scalar_t>(in, link, out.data_ptr<scalar_t>(), nullptr, nullptr, nullptr);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> pairwise_logtable_backward_cpu(
    const at::Tensor& grad_in, const at::Tensor& z_in, const at::Tensor& theta_in,
    const at::Tensor& edges_in, c10::string_view link_name) {
  const Link link = parse_link(std::string(link_name));
  const PairwiseInputs in = prepare_pairwise(z_in, theta_in, edges_in, nullptr);
  const PairwiseSizes& n = in.n;
  check_grad(grad_in, in.z, {n.B, n.E, n.L, n.L});
  raise_data_errors(validate_indices(in.edges.data_ptr<int64_t>(), nullptr, n), n);
  const at::Tensor grad = grad_in.contiguous();
  at::Tensor grad_z = at::zeros_like(in.z);
  at::Tensor grad_theta = at::zeros({n.B, n.E}, in.z.options());
  AT_DISPATCH_FLOATING_TYPES(in.z.scalar_type(), "ccnn_pairwise_logtable_backward", [&] {
    pairwise_logtable_lanes<scalar_t>(in, link, nullptr, grad.data_ptr<scalar_t>(), grad_z.data_ptr<scalar_t>(),
                                      grad_theta.data_ptr<scalar_t>());
  });
  return {grad_z, grad_theta};
}

}  // namespace

TORCH_LIBRARY_IMPL(ccnn, CPU, m) {
  m.impl("frank_copula", &frank_copula_cpu);
  m.impl("frank_copula_backward", &frank_copula_backward_cpu);
  m.impl("ordinal_logprob", &ordinal_logprob_cpu);
  m.impl("ordinal_logprob_backward", &ordinal_logprob_backward_cpu);
  m.impl("pairwise_loglik", &pairwise_loglik_cpu);
  m.impl("pairwise_loglik_fwd", &pairwise_loglik_fwd_cpu);
  m.impl("pairwise_loglik_bwd", &pairwise_loglik_bwd_cpu);
  m.impl("pairwise_logtable", &pairwise_logtable_cpu);
  m.impl("pairwise_logtable_backward", &pairwise_logtable_backward_cpu);
}

const char* simd_level() {
  static const char* const kNames[] = {"base", "avx", "avx2", "avx512"};  // SimdLevel's order
  return kNames[int(kSimdLevel)];
}

}  // namespace copula
}  // namespace ccnn
