// copula.h: the fused Frank copula ops of ccnn (torch side).
//
// Schemas: csrc/bindings/ops.cpp (library `ccnn`). Math: copula/frank_math.h; the assembly of a
// pair / table cell from two AUs' levels, shared by the CPU and CUDA kernels:
// copula/table_assembly.h. CPU kernels: copula_cpu.cpp. CUDA kernels: copula.cu and
// copula_table.cu (plain CUDA, launchers in copula_kernels.h) launched from copula_cuda.cpp.
// Python wrappers with autograd and fake (meta) implementations: ccnn_ext/copula.py.
//
// Shapes and types (B samples, Q AUs, L ordinal levels, E edges). Floating inputs of one call
// share one dtype, float32 or float64; index inputs are int64; all inputs on one device.
// Non-contiguous inputs are accepted (copied to contiguous memory first).
//
//   frank_copula(u, v, theta) -> C
//       u, v, theta   broadcastable to one shape S; u, v in [0, 1]; theta finite
//       C             (S) Frank copula C(u, v; theta)
//   frank_copula_backward(grad, u, v, theta) -> (grad_u, grad_v, grad_theta)
//       grad          (S); each output (S) = grad * dC/d(input), before any sum over broadcast
//
//   ordinal_logprob(z, link) -> logp
//       z             (B, Q, L-1) thresholds, finite, strictly increasing along the last axis
//       link          "probit" (standard normal CDF) or "logit" (logistic CDF)
//       logp          (B, Q, L) log P(y_q = l) = log(F(z_l) - F(z_{l-1})), F(z_{-1}) = 0,
//                     F(z_{L-1}) = 1, clamped below at log(1e-300)
//   ordinal_logprob_backward(grad, z, logp, link) -> grad_z (B, Q, L-1)
//       logp          (B, Q, L) the forward's output for z: the CPU kernels take the level masses
//                     from it (d logp_l / d z = F'(z) / e^logp_l); the CUDA kernel recomputes them
//
//   pairwise_loglik(z, theta, edges, labels, link) -> loglik
//       z             (B, Q, L-1) as above
//       theta         (E) shared or (B, E) per sample; finite Frank parameters
//       edges         (E, 2) int64 AU pairs (r, s), 0 <= r, s < Q, r != s
//       labels        (B, Q) int64 in [-1, L-1], -1 = not annotated
//       loglik        (B, E) log P(y_r = labels[:, r], y_s = labels[:, s]); 0 where either label
//                     is -1 (and no gradient); clamped below at log(1e-300)
//   pairwise_loglik_fwd(z, theta, edges, labels, link) -> (loglik, partials)
//       the forward for training: loglik as above and its local derivatives
//       partials      (B, E, 5) d loglik[b, e] / d (z[b, r, a-1], z[b, r, a], z[b, s, c-1],
//                     z[b, s, c], theta[(b,) e]) with a, c the labels of r, s (0 where a
//                     threshold does not exist, a label is missing or P is at the floor)
//   pairwise_loglik_bwd(grad, partials, z, edges, labels) -> (grad_z, grad_theta)
//       grad          (B, E); z only gives shape and dtype; grad_z (B, Q, L-1) (each sample's
//                     edges summed in a fixed order); grad_theta (B, E) per sample (the caller
//                     sums over samples when theta is shared)
//
//   pairwise_logtable(z, theta, edges, link) -> table
//       table         (B, E, L, L) log P(y_r = a, y_s = b), clamped below at log(1e-300)
//   pairwise_logtable_backward(grad, z, theta, edges, link) -> (grad_z, grad_theta)
//       grad          (B, E, L, L); grad_z (B, Q, L-1); grad_theta (B, E) per sample
//
// Checks: every op checks ranks, shapes, dtypes and devices before touching memory, and (unless
// turned off with set_data_checks(false)) the data rules of copula/input_checks.h: finite and
// strictly increasing z, finite theta, labels in range, edges in range with r != s, u and v in
// [0, 1]. The internal backward ops (pairwise_loglik_bwd, pairwise_logtable_backward) check only
// the index rules (edges; labels), since they take the forward's already checked values.
//
// On CUDA the data rules run in one validation kernel whose result is copied to the host: one
// host synchronisation per checked call. They run only when data checks are on AND the current
// stream is not capturing a CUDA graph (a capture skips them: it must not synchronise). With the
// checks off (set_data_checks(false), the trainer's choice on CUDA) no copula op ever
// synchronises, so a training step can be captured (CUDA graphs, torch.compile
// mode="reduce-overhead"); bad data is then not reported but never crashes: the CUDA kernels
// range-check every index they read before using it as an address, and an edge endpoint outside
// [0, Q-1] or a label outside [-1, L-1] makes the outputs that depend on it NaN (the edge's
// loglik / partials / table / grad_theta, the grad_z entries it feeds), so the loss is NaN.
// Non-finite or non-increasing z and non-finite theta give unspecified (possibly NaN) values.
//
// On the CPU the index rules (edges, labels) cost no synchronisation and are checked on every
// call that reads indices, whatever set_data_checks says; set_data_checks(false) skips only the
// value rules (finite, increasing z; finite theta).
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <string>
#include <tuple>

#include "copula/frank_math.h"
#include "copula/input_checks.h"

namespace ccnn {
namespace copula {

// Data checks on (default) or off, process-wide (turn off, e.g., inside CUDA graph capture).
void set_data_checks(bool enabled);
bool data_checks_enabled();

// The SIMD version the CPU float32 kernels run: "avx512", "avx2", "avx" or "base" (the
// widest this processor supports, capped by CCNN_SIMD=base|avx|avx2 when the library loads).
const char* simd_level();

using ErrorIndices = std::array<int64_t, kNumInputErrors>;

// Sizes of a pairwise call, read from checked arguments.
struct PairwiseSizes {
  int64_t B, Q, L, E;
  bool theta_per_sample;
};

inline Link parse_link(const std::string& link) {
  TORCH_CHECK_VALUE(link == "probit" || link == "logit",
                    "link must be \"probit\" or \"logit\", got \"", link, "\"");
  return link == "probit" ? Link::Probit : Link::Logit;
}

inline void check_floating(const at::Tensor& t, const char* name) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, name,
                   " must be float32 or float64, got ", t.scalar_type());
}

inline void check_same_dtype(const at::Tensor& t, const char* name, const at::Tensor& ref,
                             const char* ref_name) {
  TORCH_CHECK_TYPE(t.scalar_type() == ref.scalar_type(), name, " must have the dtype of ",
                   ref_name, " (", ref.scalar_type(), "), got ", t.scalar_type());
}

inline void check_same_device(const at::Tensor& t, const char* name, const at::Tensor& ref,
                              const char* ref_name) {
  TORCH_CHECK_VALUE(t.device() == ref.device(), name, " must be on the device of ", ref_name,
                    " (", ref.device(), "), got ", t.device());
}

inline void check_index(const at::Tensor& t, const char* name) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kLong, name, " must be int64, got ", t.scalar_type());
}

inline void check_thresholds(const at::Tensor& z) {
  check_floating(z, "z");
  TORCH_CHECK_VALUE(z.dim() == 3, "z must have shape (B, Q, L-1), got ", z.dim(), " dimensions ",
                    z.sizes());
  TORCH_CHECK_VALUE(z.size(2) >= 1, "z must have at least one threshold (L >= 2), got shape ",
                    z.sizes());
}

// Checks z, theta, edges and (if given) labels; returns the sizes.
inline PairwiseSizes check_pairwise_args(const at::Tensor& z, const at::Tensor& theta,
                                         const at::Tensor& edges, const at::Tensor* labels) {
  check_thresholds(z);
  PairwiseSizes n;
  n.B = z.size(0), n.Q = z.size(1), n.L = z.size(2) + 1;
  check_floating(theta, "theta");
  check_same_dtype(theta, "theta", z, "z");
  check_same_device(theta, "theta", z, "z");
  check_index(edges, "edges");
  check_same_device(edges, "edges", z, "z");
  TORCH_CHECK_VALUE(edges.dim() == 2 && edges.size(1) == 2, "edges must have shape (E, 2), got ",
                    edges.sizes());
  n.E = edges.size(0);
  TORCH_CHECK_VALUE((theta.dim() == 1 && theta.size(0) == n.E) ||
                        (theta.dim() == 2 && theta.size(0) == n.B && theta.size(1) == n.E),
                    "theta must have shape (E,) = (", n.E, ",) or (B, E) = (", n.B, ", ", n.E,
                    "), got ", theta.sizes());
  n.theta_per_sample = theta.dim() == 2;
  if (labels != nullptr) {
    check_index(*labels, "labels");
    check_same_device(*labels, "labels", z, "z");
    TORCH_CHECK_VALUE(labels->dim() == 2 && labels->size(0) == n.B && labels->size(1) == n.Q,
                      "labels must have shape (B, Q) = (", n.B, ", ", n.Q, "), got ",
                      labels->sizes());
  }
  return n;
}

// Checks the arguments of pairwise_loglik_bwd; returns the sizes.
inline PairwiseSizes check_pairwise_bwd_args(const at::Tensor& grad, const at::Tensor& partials,
                                             const at::Tensor& z, const at::Tensor& edges,
                                             const at::Tensor& labels) {
  check_thresholds(z);
  check_index(edges, "edges");
  check_index(labels, "labels");
  PairwiseSizes n{z.size(0), z.size(1), z.size(2) + 1, edges.dim() == 2 ? edges.size(0) : -1, false};
  TORCH_CHECK_VALUE(edges.dim() == 2 && edges.size(1) == 2, "edges must have shape (E, 2), got ",
                    edges.sizes());
  TORCH_CHECK_VALUE(labels.sizes() == at::IntArrayRef({n.B, n.Q}),
                    "labels must have shape (B, Q) = (", n.B, ", ", n.Q, "), got ", labels.sizes());
  check_same_dtype(grad, "grad", z, "z");
  check_same_dtype(partials, "partials", z, "z");
  check_same_device(grad, "grad", z, "z");
  check_same_device(partials, "partials", z, "z");
  check_same_device(edges, "edges", z, "z");
  check_same_device(labels, "labels", z, "z");
  TORCH_CHECK_VALUE(grad.sizes() == at::IntArrayRef({n.B, n.E}), "grad must have shape (B, E) = (",
                    n.B, ", ", n.E, "), got ", grad.sizes());
  TORCH_CHECK_VALUE(partials.sizes() == at::IntArrayRef({n.B, n.E, 5}),
                    "partials must have shape (B, E, 5) = (", n.B, ", ", n.E, ", 5), got ",
                    partials.sizes());
  return n;
}

// Checks a gradient argument of a backward op.
inline void check_grad(const at::Tensor& grad, const at::Tensor& ref, at::IntArrayRef sizes) {
  check_same_dtype(grad, "grad", ref, "the forward input");
  check_same_device(grad, "grad", ref, "the forward input");
  TORCH_CHECK_VALUE(grad.sizes() == sizes, "grad must have shape ", sizes, ", got ", grad.sizes());
}

// The forward's output handed to a backward (named `name`): dtype and device of z, shape `sizes`.
inline void check_forward_output(const at::Tensor& out, const char* name, const at::Tensor& z,
                                 at::IntArrayRef sizes) {
  check_same_dtype(out, name, z, "z");
  check_same_device(out, name, z, "z");
  TORCH_CHECK_VALUE(out.sizes() == sizes, name, " must have shape ", sizes, ", got ", out.sizes());
}

// Raises a ValueError for the first kind of bad data found (sizes describe z for the messages).
inline void raise_data_errors(const ErrorIndices& first, const PairwiseSizes& n) {
  auto at3 = [&](int64_t i) {  // flat index into z -> "[b, q, k]"
    const int64_t K = n.L - 1;
    return "[" + std::to_string(i / (n.Q * K)) + ", " + std::to_string((i / K) % n.Q) + ", " +
           std::to_string(i % K) + "]";
  };
  auto at2 = [](int64_t i, int64_t cols) {
    return "[" + std::to_string(i / cols) + ", " + std::to_string(i % cols) + "]";
  };
  if (first[kZNotFinite] != kNoError)
    TORCH_CHECK_VALUE(false, "z must be finite; z", at3(first[kZNotFinite]), " is not");
  if (first[kZNotIncreasing] != kNoError)
    TORCH_CHECK_VALUE(false, "z must be strictly increasing along its last axis; z",
                      at2(first[kZNotIncreasing], n.Q), " is not");
  if (first[kThetaNotFinite] != kNoError)
    TORCH_CHECK_VALUE(false, "theta must be finite; theta",
                      n.theta_per_sample ? at2(first[kThetaNotFinite], n.E)
                                         : "[" + std::to_string(first[kThetaNotFinite]) + "]",
                      " is not");
  if (first[kLabelOutOfRange] != kNoError)
    TORCH_CHECK_VALUE(false, "labels must be in [-1, L-1] = [-1, ", n.L - 1, "]; labels",
                      at2(first[kLabelOutOfRange], n.Q), " is not");
  if (first[kEdgeOutOfRange] != kNoError)
    TORCH_CHECK_VALUE(false, "edges must hold AU indices in [0, Q-1] = [0, ", n.Q - 1,
                      "]; edges[", first[kEdgeOutOfRange], "] does not");
  if (first[kEdgeSelfLoop] != kNoError)
    TORCH_CHECK_VALUE(false, "edges must join two different AUs (r != s); edges[",
                      first[kEdgeSelfLoop], "] has r == s");
}

inline void raise_unit_errors(const ErrorIndices& first) {
  if (first[kUnitOutOfRange] != kNoError)
    TORCH_CHECK_VALUE(false, "u and v must lie in [0, 1]; element ", first[kUnitOutOfRange],
                      " of the broadcast u, v does not");
  if (first[kThetaNotFinite] != kNoError)
    TORCH_CHECK_VALUE(false, "theta must be finite; element ", first[kThetaNotFinite],
                      " of the broadcast theta is not");
}

// frank_copula argument checks; returns u, v, theta broadcast and contiguous.
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> check_frank_args(const at::Tensor& u,
                                                                       const at::Tensor& v,
                                                                       const at::Tensor& theta) {
  check_floating(u, "u");
  check_same_dtype(v, "v", u, "u");
  check_same_dtype(theta, "theta", u, "u");
  check_same_device(v, "v", u, "u");
  check_same_device(theta, "theta", u, "u");
  std::vector<at::Tensor> b;
  try {
    b = at::broadcast_tensors({u, v, theta});
  } catch (const c10::Error&) {
    TORCH_CHECK_VALUE(false, "u, v and theta must be broadcastable, got shapes ", u.sizes(), ", ",
                      v.sizes(), " and ", theta.sizes());
  }
  return {b[0].contiguous(), b[1].contiguous(), b[2].contiguous()};
}

}  // namespace copula
}  // namespace ccnn
