// copula_kernels.h: launchers of the CUDA kernels of the copula ops (defined in copula.cu and
// copula_table.cu), on plain device pointers. No torch: copula_cuda.cpp adapts tensors and calls
// these. Every pointer is to contiguous device memory laid out as documented in copula.h; every
// launcher only enqueues work on `stream` (never synchronises, never allocates, so a launch can be
// captured in a CUDA graph) and returns the status of its last launch (the first failing one).
//
// Bounds: no kernel reads or writes out of bounds whatever the index data. Edge endpoints outside
// [0, Q-1] and labels outside [-1, L-1] are never dereferenced: the outputs that depend on them are
// NaN (see copula.h). Kernels index with 32-bit integers when every flat index of the call fits
// (below 2^30), with 64-bit ones otherwise; the table kernels are specialised for L = 2..8.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
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
// (device memory, filled with kNoError by the caller). z, theta and labels may be null (not
// checked): with z == theta == labels == nullptr only the edges are checked.
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
cudaError_t ordinal_logprob_backward(const T* grad, const T* z, const T* logp, T* grad_z, int64_t rows,
                                     int64_t L, Link link, cudaStream_t stream);

// Bytes of device workspace the backward launchers need for the per-AU incidence lists (CSR:
// counts, offsets and the (edge, side) entries of every AU, in edge order). Allocated by the
// caller (any alignment of 8 bytes or more), overwritten by the launcher.
size_t incidence_workspace_bytes(Sizes n);

// pairwise_loglik (partials == nullptr) or pairwise_loglik_fwd: one thread per (b, e).
template <typename T>
cudaError_t pairwise_loglik(const T* z, const T* theta, const int64_t* edges,
                            const int64_t* labels, T* out, T* partials, Sizes n, Link link,
                            cudaStream_t stream);
// pairwise_loglik_bwd: builds the incidence lists in `workspace`, then one thread per (b, q, k)
// sums grad[b, e] * partials[b, e, .] over AU q's incident edges in edge order (deterministic, no
// atomics); grad_theta[b, e] = grad[b, e] * partials[b, e, 4].
template <typename T>
cudaError_t pairwise_loglik_bwd(const T* grad, const T* partials, const int64_t* edges,
                                const int64_t* labels, void* workspace, T* grad_z, T* grad_theta,
                                Sizes n, cudaStream_t stream);

// The B * Q * L levels (Level<T>) of every AU, the shared first stage of the table kernels.
template <typename T>
cudaError_t ordinal_levels(const T* z, Level<T>* levels, int64_t rows, int64_t L, Link link,
                           bool with_weights, cudaStream_t stream);
// pairwise_logtable: one thread per table cell (b, e, a, c), coalesced writes.
template <typename T>
cudaError_t pairwise_logtable(const Level<T>* levels, const T* theta, const int64_t* edges,
                              T* out, Sizes n, cudaStream_t stream);
// pairwise_logtable_backward: one thread per cell computes grad * d(cell)/d(inputs); a block holds
// the cells of one or more (b, e) pairs and reduces them in shared memory in a fixed order into
// scratch[b, e, 0:L-1] (row AU thresholds), scratch[b, e, L-1:2L-2] (column AU thresholds) and
// grad_theta[b, e]; then the incidence lists (workspace) gather scratch per (b, q, k) in edge
// order. Deterministic, no atomics.
template <typename T>
cudaError_t pairwise_logtable_backward(const T* grad, const Level<T>* levels, const T* theta,
                                       const int64_t* edges, void* workspace, T* scratch,
                                       T* grad_z, T* grad_theta, Sizes n, cudaStream_t stream);

}  // namespace cuda
}  // namespace copula
}  // namespace ccnn
