// copula_kernels.h: launchers of the CUDA kernels of the copula ops (defined in copula.cu), on
// plain device pointers. No torch: copula_cuda.cpp adapts tensors and calls these. Every pointer is
// to contiguous device memory laid out as documented in copula.h; every launcher enqueues on
// `stream` and returns the launch status.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "copula/frank_math.h"

namespace ccnn {
namespace copula {
namespace cuda {

struct Sizes {
  int64_t B, Q, L, E;
  bool theta_per_sample;
};

// Smallest offending index per InputError kind (input_checks.h) into first[kNumInputErrors]
// (device memory, filled with kNoError by the caller). labels may be null.
template <typename T>
cudaError_t validate_pairwise(const T* z, const T* theta, int64_t theta_numel,
                              const int64_t* edges, const int64_t* labels, Sizes n,
                              int64_t* first, cudaStream_t stream);
template <typename T>
cudaError_t validate_frank(const T* u, const T* v, const T* theta, int64_t count, int64_t* first,
                           cudaStream_t stream);

// frank_copula: out[i] = C(u[i], v[i]; theta[i]); backward: grad[i] * dC/d(u, v, theta).
template <typename T>
cudaError_t frank_copula(const T* u, const T* v, const T* theta, T* out, int64_t count,
                         cudaStream_t stream);
template <typename T>
cudaError_t frank_copula_backward(const T* grad, const T* u, const T* v, const T* theta,
                                  T* grad_u, T* grad_v, T* grad_theta, int64_t count,
                                  cudaStream_t stream);

// ordinal_logprob over rows = B * Q rows of L-1 thresholds.
template <typename T>
cudaError_t ordinal_logprob(const T* z, T* out, int64_t rows, int64_t L, Link link,
                            cudaStream_t stream);
template <typename T>
cudaError_t ordinal_logprob_backward(const T* grad, const T* z, T* grad_z, int64_t rows,
                                     int64_t L, Link link, cudaStream_t stream);

// pairwise_loglik (partials == nullptr) or pairwise_loglik_fwd: one thread per (b, e).
template <typename T>
cudaError_t pairwise_loglik(const T* z, const T* theta, const int64_t* edges,
                            const int64_t* labels, T* out, T* partials, Sizes n, Link link,
                            cudaStream_t stream);
// pairwise_loglik_bwd: grad_z[b, q, k] gathers its edges' partials in edge order (deterministic);
// grad_theta[b, e] = grad[b, e] * partials[b, e, 4].
template <typename T>
cudaError_t pairwise_loglik_bwd(const T* grad, const T* partials, const int64_t* edges,
                                const int64_t* labels, T* grad_z, T* grad_theta, Sizes n,
                                cudaStream_t stream);

// The B * Q * L levels (Level<T>) of every AU, the shared first stage of the table kernels.
template <typename T>
cudaError_t ordinal_levels(const T* z, Level<T>* levels, int64_t rows, int64_t L, Link link,
                           bool with_weights, cudaStream_t stream);
// pairwise_logtable: one thread per table cell (b, e, a, c), coalesced writes.
template <typename T>
cudaError_t pairwise_logtable(const Level<T>* levels, const T* theta, const int64_t* edges,
                              T* out, Sizes n, cudaStream_t stream);
// pairwise_logtable_backward: one thread per (b, e) sums its L x L cells into
// scratch[b, e, 0:L-1] (row AU thresholds), scratch[b, e, L-1:2L-2] (column AU thresholds) and
// grad_theta[b, e]; then one thread per (b, q, k) gathers scratch over the edges in edge order.
template <typename T>
cudaError_t pairwise_logtable_backward(const T* grad, const Level<T>* levels, const T* theta,
                                       const int64_t* edges, T* scratch, T* grad_z,
                                       T* grad_theta, Sizes n, cudaStream_t stream);

}  // namespace cuda
}  // namespace copula
}  // namespace ccnn
