// CUDA implementations of the copula ops (torch side): argument checks (copula.h), device guard,
// contiguous inputs, output and workspace allocation, then the plain-CUDA launchers of copula.cu
// and copula_table.cu, all on the current stream. Includes only the c10 CUDA stream/guard headers
// (no ATen/cuda), so it builds with a bare CUDA toolkit.
//
// Synchronisation: the only host synchronisation is the copy of a validation result, and it
// happens only when data checks are on and the current stream is not being captured into a CUDA
// graph (data_checks_active). With checks off (or under capture) no call synchronises; the kernels
// then never dereference an out-of-range index but give NaN outputs for it (copula.h).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "copula/copula.h"
#include "copula/copula_kernels.h"

namespace ccnn {
namespace copula {
namespace {

void check_launch(cudaError_t status, const char* what) {
  TORCH_CHECK(status == cudaSuccess, "ccnn: CUDA kernel launch failed in ", what, ": ",
              cudaGetErrorString(status));
}

cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// Whether `stream` is capturing a CUDA graph (then nothing may synchronise). A query error (e.g.
// an illegal legacy-stream query during another stream's global-mode capture) counts as capturing:
// skipping a check is safe, the kernels guard their indices.
bool stream_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &status) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the (non-sticky) error
    return true;
  }
  return status != cudaStreamCaptureStatusNone;
}

// Whether this call runs the data checks that need a host synchronisation.
bool data_checks_active() { return data_checks_enabled() && !stream_capturing(current_stream()); }

cuda::Sizes to_cuda(const PairwiseSizes& n) { return {n.B, n.Q, n.L, n.E, n.theta_per_sample}; }

// The device the kernels run on. The dispatcher calls these functions when any argument is on
// CUDA, so `t` (the op's main tensor) on another device means the arguments are on different
// devices: a ValueError, raised before a device guard is built on it.
c10::Device cuda_device_of(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.is_cuda(), name, " must be on the CUDA device of the other arguments, got ",
                    t.device());
  return t.device();
}

// Runs a validation kernel into a kNumInputErrors int64 buffer and copies it to the host (the one
// synchronisation of a checked call; callers run it only when data_checks_active()).
template <typename Launch>
ErrorIndices run_validation(const at::Tensor& like, Launch launch) {
  at::Tensor first = at::full({kNumInputErrors}, kNoError, like.options().dtype(at::kLong));
  check_launch(launch(first.data_ptr<int64_t>()), "validation");
  const at::Tensor host = first.cpu();
  ErrorIndices out;
  for (int k = 0; k < kNumInputErrors; ++k) out[k] = host.data_ptr<int64_t>()[k];
  return out;
}

struct PairwiseInputs {
  at::Tensor z, theta, edges, labels;
  PairwiseSizes n;
};

PairwiseInputs prepare_pairwise(const at::Tensor& z, const at::Tensor& theta,
                                const at::Tensor& edges, const at::Tensor* labels, bool check_data) {
  PairwiseInputs in;
  in.n = check_pairwise_args(z, theta, edges, labels);
  in.z = z.contiguous(), in.theta = theta.contiguous(), in.edges = edges.contiguous();
  if (labels != nullptr) in.labels = labels->contiguous();
  if (check_data && data_checks_active()) {
    AT_DISPATCH_FLOATING_TYPES(in.z.scalar_type(), "ccnn_validate_pairwise", [&] {
      raise_data_errors(run_validation(in.z,
                                       [&](int64_t* first) {
                                         return cuda::validate_pairwise(
                                             in.z.data_ptr<scalar_t>(),
                                             in.theta.data_ptr<scalar_t>(), in.theta.numel(),
                                             in.edges.data_ptr<int64_t>(),
                                             labels ? in.labels.data_ptr<int64_t>() : nullptr,
                                             to_cuda(in.n), first, current_stream());
                                       }),
                        in.n);
    });
  }
  return in;
}

// The index checks of the internal backward ops (edges in range with r != s, labels if given in
// [-1, L-1]), when data_checks_active(); without them the kernels give NaN for a bad index.
void check_indices(const at::Tensor& edges, const at::Tensor* labels, const PairwiseSizes& n) {
  if (!data_checks_active() || (n.E == 0 && (labels == nullptr || n.B * n.Q == 0))) return;
  raise_data_errors(run_validation(edges,
                                   [&](int64_t* first) {
                                     return cuda::validate_pairwise<float>(
                                         nullptr, nullptr, 0, edges.data_ptr<int64_t>(),
                                         labels ? labels->data_ptr<int64_t>() : nullptr,
                                         to_cuda(n), first, current_stream());
                                   }),
                    n);
}

// Device workspace of the backward launchers (the per-AU incidence lists).
at::Tensor incidence_workspace(const at::Tensor& like, const PairwiseSizes& n) {
  return at::empty({int64_t(cuda::incidence_workspace_bytes(to_cuda(n)))},
                   like.options().dtype(at::kByte));
}

// ---- frank_copula -----------------------------------------------------------------------------

at::Tensor frank_copula_cuda(const at::Tensor& u_in, const at::Tensor& v_in,
                             const at::Tensor& theta_in) {
  const c10::cuda::CUDAGuard guard(cuda_device_of(u_in, "u"));
  auto [u, v, theta] = check_frank_args(u_in, v_in, theta_in);
  at::Tensor out = at::empty_like(u);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "ccnn_frank_copula_cuda", [&] {
    const scalar_t *pu = u.data_ptr<scalar_t>(), *pv = v.data_ptr<scalar_t>(),
                   *pt = theta.data_ptr<scalar_t>();
    if (data_checks_active()) {
      raise_unit_errors(run_validation(u, [&](int64_t* first) {
        return cuda::validate_frank(pu, pv, pt, u.numel(), first, current_stream());
      }));
    }
    check_launch(cuda::frank_copula(pu, pv, pt, out.data_ptr<scalar_t>(), u.numel(),
                                    current_stream()),
                 "frank_copula");
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> frank_copula_backward_cuda(
    const at::Tensor& grad_in, const at::Tensor& u_in, const at::Tensor& v_in,
    const at::Tensor& theta_in) {
  const c10::cuda::CUDAGuard guard(cuda_device_of(u_in, "u"));
  auto [u, v, theta] = check_frank_args(u_in, v_in, theta_in);
  check_grad(grad_in, u, u.sizes());
  const at::Tensor grad = grad_in.contiguous();
  at::Tensor gu = at::empty_like(u), gv = at::empty_like(u), gt = at::empty_like(u);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "ccnn_frank_copula_backward_cuda", [&] {
    check_launch(cuda::frank_copula_backward(
                     grad.data_ptr<scalar_t>(), u.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
                     theta.data_ptr<scalar_t>(), gu.data_ptr<scalar_t>(),
                     gv.data_ptr<scalar_t>(), gt.data_ptr<scalar_t>(), u.numel(),
                     current_stream()),
                 "frank_copula_backward");
  });
  return {gu, gv, gt};
}

// ---- ordinal_logprob --------------------------------------------------------------------------

at::Tensor ordinal_logprob_cuda(const at::Tensor& z_in, c10::string_view link_name) {
  const Link link = parse_link(std::string(link_name));
  const c10::cuda::CUDAGuard guard(cuda_device_of(z_in, "z"));
  check_thresholds(z_in);
  const at::Tensor z = z_in.contiguous();
  const int64_t B = z.size(0), Q = z.size(1), L = z.size(2) + 1;
  if (data_checks_active()) {
    // the pairwise validation with no theta, edges or labels checks exactly z
    const PairwiseSizes n{B, Q, L, 0, false};
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "ccnn_validate_ordinal", [&] {
      raise_data_errors(run_validation(z,
                                       [&](int64_t* first) {
                                         return cuda::validate_pairwise<scalar_t>(
                                             z.data_ptr<scalar_t>(), nullptr, 0, nullptr,
                                             nullptr, to_cuda(n), first, current_stream());
                                       }),
                        n);
    });
  }
  at::Tensor out = at::empty({B, Q, L}, z.options());
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "ccnn_ordinal_logprob_cuda", [&] {
    check_launch(cuda::ordinal_logprob(z.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), B * Q, L,
                                       link, current_stream()),
                 "ordinal_logprob");
  });
  return out;
}

at::Tensor ordinal_logprob_backward_cuda(const at::Tensor& grad_in, const at::Tensor& z_in,
                                         const at::Tensor& logp_in, c10::string_view link_name) {
  const Link link = parse_link(std::string(link_name));
  const c10::cuda::CUDAGuard guard(cuda_device_of(z_in, "z"));
  check_thresholds(z_in);
  const at::Tensor z = z_in.contiguous();
  const int64_t B = z.size(0), Q = z.size(1), L = z.size(2) + 1;
  check_grad(grad_in, z, {B, Q, L});
  check_forward_output(logp_in, "logp", z, {B, Q, L});
  const at::Tensor grad = grad_in.contiguous(), logp = logp_in.contiguous();
  at::Tensor grad_z = at::empty_like(z);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "ccnn_ordinal_logprob_backward_cuda", [&] {
    check_launch(cuda::ordinal_logprob_backward(grad.data_ptr<scalar_t>(), z.data_ptr<scalar_t>(),
                                                logp.data_ptr<scalar_t>(), grad_z.data_ptr<scalar_t>(),
                                                B * Q, L, link, current_stream()),
                 "ordinal_logprob_backward");
  });
  return grad_z;
}

// ---- pairwise_loglik --------------------------------------------------------------------------

void pairwise_loglik_launch(const PairwiseInputs& in, Link link, at::Tensor& out,
                            at::Tensor* partials) {
  AT_DISPATCH_FLOATING_TYPES(in.z.scalar_type(), "ccnn_pairwise_loglik_cuda", [&] {
    check_launch(cuda::pairwise_loglik(in.z.data_ptr<scalar_t>(), in.theta.data_ptr<scalar_t>(),
                                       in.edges.data_ptr<int64_t>(),
                                       in.labels.data_ptr<int64_t>(), out.data_ptr<scalar_t>(),
                                       partials ? partials->data_ptr<scalar_t>() : nullptr,
                                       to_cuda(in.n), link, current_stream()),
                 "pairwise_loglik");
  });
}

at::Tensor pairwise_loglik_cuda(const at::Tensor& z, const at::Tensor& theta,
                                const at::Tensor& edges, const at::Tensor& labels,
                                c10::string_view link_name) {
  const Link link = parse_link(std::string(link_name));
  const c10::cuda::CUDAGuard guard(cuda_device_of(z, "z"));
  const PairwiseInputs in = prepare_pairwise(z, theta, edges, &labels, true);
  at::Tensor out = at::empty({in.n.B, in.n.E}, in.z.options());
  pairwise_loglik_launch(in, link, out, nullptr);
  return out;
}

std::tuple<at::Tensor, at::Tensor> pairwise_loglik_fwd_cuda(const at::Tensor& z,
                                                            const at::Tensor& theta,
                                                            const at::Tensor& edges,
                                                            const at::Tensor& labels,
                                                            c10::string_view link_name) {
  const Link link = parse_link(std::string(link_name));
  const c10::cuda::CUDAGuard guard(cuda_device_of(z, "z"));
  const PairwiseInputs in = prepare_pairwise(z, theta, edges, &labels, true);
  at::Tensor out = at::empty({in.n.B, in.n.E}, in.z.options());
  at::Tensor partials = at::empty({in.n.B, in.n.E, 5}, in.z.options());
  pairwise_loglik_launch(in, link, out, &partials);
  return {out, partials};
}

std::tuple<at::Tensor, at::Tensor> pairwise_loglik_bwd_cuda(const at::Tensor& grad_in,
                                                            const at::Tensor& partials_in,
                                                            const at::Tensor& z,
                                                            const at::Tensor& edges_in,
                                                            const at::Tensor& labels_in) {
  const c10::cuda::CUDAGuard guard(cuda_device_of(z, "z"));
  const PairwiseSizes n = check_pairwise_bwd_args(grad_in, partials_in, z, edges_in, labels_in);
  const at::Tensor grad = grad_in.contiguous(), partials = partials_in.contiguous();
  const at::Tensor edges = edges_in.contiguous(), labels = labels_in.contiguous();
  check_indices(edges, &labels, n);
  at::Tensor grad_z = at::empty({n.B, n.Q, n.L - 1}, z.options());
  at::Tensor grad_theta = at::empty({n.B, n.E}, z.options());
  const at::Tensor workspace = incidence_workspace(z, n);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "ccnn_pairwise_loglik_bwd_cuda", [&] {
    check_launch(cuda::pairwise_loglik_bwd(grad.data_ptr<scalar_t>(),
                                           partials.data_ptr<scalar_t>(),
                                           edges.data_ptr<int64_t>(), labels.data_ptr<int64_t>(),
                                           workspace.data_ptr(), grad_z.data_ptr<scalar_t>(),
                                           grad_theta.data_ptr<scalar_t>(), to_cuda(n),
                                           current_stream()),
                 "pairwise_loglik_bwd");
  });
  return {grad_z, grad_theta};
}

// ---- pairwise_logtable ------------------------------------------------------------------------

// The (B, Q, L) levels of every AU, in a byte tensor holding Level<scalar_t> records.
template <typename T>
at::Tensor levels_of(const PairwiseInputs& in, Link link, bool with_weights) {
  const int64_t count = in.n.B * in.n.Q * in.n.L;
  at::Tensor levels = at::empty({count * int64_t(sizeof(Level<T>))}, in.z.options().dtype(at::kByte));
  check_launch(cuda::ordinal_levels(in.z.data_ptr<T>(), reinterpret_cast<Level<T>*>(levels.data_ptr()),
                                    in.n.B * in.n.Q, in.n.L, link, with_weights, current_stream()),
               "ordinal levels");
  return levels;
}

at::Tensor pairwise_logtable_cuda(const at::Tensor& z, const at::Tensor& theta,
                                  const at::Tensor& edges, c10::string_view link_name) {
  const Link link = parse_link(std::string(link_name));
  const c10::cuda::CUDAGuard guard(cuda_device_of(z, "z"));
  const PairwiseInputs in = prepare_pairwise(z, theta, edges, nullptr, true);
  const PairwiseSizes& n = in.n;
  at::Tensor out = at::empty({n.B, n.E, n.L, n.L}, in.z.options());
  AT_DISPATCH_FLOATING_TYPES(in.z.scalar_type(), "ccnn_pairwise_logtable_cuda", [&] {
    const at::Tensor levels = levels_of<scalar_t>(in, link, false);
    check_launch(cuda::pairwise_logtable(reinterpret_cast<const Level<scalar_t>*>(levels.data_ptr()),
                                         in.theta.data_ptr<scalar_t>(),
                                         in.edges.data_ptr<int64_t>(), out.data_ptr<scalar_t>(),
                                         to_cuda(n), current_stream()),
                 "pairwise_logtable");
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> pairwise_logtable_backward_cuda(const at::Tensor& grad_in,
                                                                   const at::Tensor& z,
                                                                   const at::Tensor& theta,
                                                                   const at::Tensor& edges,
                                                                   c10::string_view link_name) {
  const Link link = parse_link(std::string(link_name));
  const c10::cuda::CUDAGuard guard(cuda_device_of(z, "z"));
  const PairwiseInputs in = prepare_pairwise(z, theta, edges, nullptr, false);
  const PairwiseSizes& n = in.n;
  check_grad(grad_in, in.z, {n.B, n.E, n.L, n.L});
  check_indices(in.edges, nullptr, n);
  const at::Tensor grad = grad_in.contiguous();
  at::Tensor grad_z = at::empty_like(in.z);
  at::Tensor grad_theta = at::empty({n.B, n.E}, in.z.options());
  at::Tensor scratch = at::empty({n.B, n.E, 2 * (n.L - 1)}, in.z.options());
  const at::Tensor workspace = incidence_workspace(in.z, n);
  AT_DISPATCH_FLOATING_TYPES(in.z.scalar_type(), "ccnn_pairwise_logtable_backward_cuda", [&] {
    const at::Tensor levels = levels_of<scalar_t>(in, link, true);
    check_launch(cuda::pairwise_logtable_backward(
                     grad.data_ptr<scalar_t>(),
                     reinterpret_cast<const Level<scalar_t>*>(levels.data_ptr()),
                     in.theta.data_ptr<scalar_t>(), in.edges.data_ptr<int64_t>(),
                     workspace.data_ptr(), scratch.data_ptr<scalar_t>(), grad_z.data_ptr<scalar_t>(),
                     grad_theta.data_ptr<scalar_t>(), to_cuda(n), current_stream()),
                 "pairwise_logtable_backward");
  });
  return {grad_z, grad_theta};
}

}  // namespace

TORCH_LIBRARY_IMPL(ccnn, CUDA, m) {
  m.impl("frank_copula", &frank_copula_cuda);
  m.impl("frank_copula_backward", &frank_copula_backward_cuda);
  m.impl("ordinal_logprob", &ordinal_logprob_cuda);
  m.impl("ordinal_logprob_backward", &ordinal_logprob_backward_cuda);
  m.impl("pairwise_loglik", &pairwise_loglik_cuda);
  m.impl("pairwise_loglik_fwd", &pairwise_loglik_fwd_cuda);
  m.impl("pairwise_loglik_bwd", &pairwise_loglik_bwd_cuda);
  m.impl("pairwise_logtable", &pairwise_logtable_cuda);
  m.impl("pairwise_logtable_backward", &pairwise_logtable_backward_cuda);
}

}  // namespace copula
}  // namespace ccnn
