// CUDA kernels of the copula ops: plain CUDA C++ on device pointers, no torch (launchers declared
// in copula_kernels.h, called from copula_cuda.cpp). The math is the same header as the CPU
// kernels (frank_math.h). Kernels use grid-stride loops over one index space each; gradients are
// gathered per output element in a fixed order (no atomics), so results are deterministic.
#include <cuda_runtime.h>

#include <algorithm>

#include "copula/copula_kernels.h"
#include "copula/input_checks.h"

namespace ccnn {
namespace copula {
namespace cuda {
namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t count) {
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  return int(std::max<int64_t>(1, std::min<int64_t>(blocks, 65535 * 8)));
}

#define CCNN_GRID_STRIDE(i, count)                                                       \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (count);          \
       i += int64_t(blockDim.x) * gridDim.x)

__device__ void record_first(int64_t* first, int kind, int64_t index) {
  atomicMin(reinterpret_cast<unsigned long long*>(first + kind),
            static_cast<unsigned long long>(index));
}

template <typename T>
__device__ T theta_at(const T* theta, const Sizes& n, int64_t b, int64_t e) {
  return theta[n.theta_per_sample ? b * n.E + e : e];
}

// ---- validation -------------------------------------------------------------------------------

template <typename T>
__global__ void validate_pairwise_kernel(const T* z, const T* theta, int64_t theta_numel,
                                         const int64_t* edges, const int64_t* labels, Sizes n,
                                         int64_t count, int64_t* first) {
  const int64_t K = n.L - 1;
  CCNN_GRID_STRIDE(i, count) {
    if (i < n.B * n.Q) {
      int64_t column = 0;
      const int bad = check_threshold_row(z + i * K, K, &column);
      if (bad == kZNotFinite) record_first(first, kZNotFinite, i * K + column);
      if (bad == kZNotIncreasing) record_first(first, kZNotIncreasing, i);
      if (labels != nullptr && !label_ok(labels[i], n.L)) record_first(first, kLabelOutOfRange, i);
    }
    if (i < theta_numel && !is_finite(theta[i])) record_first(first, kThetaNotFinite, i);
    if (i < n.E) {
      const int bad = check_edge(edges[2 * i], edges[2 * i + 1], n.Q);
      if (bad >= 0) record_first(first, bad, i);
    }
  }
}

template <typename T>
__global__ void validate_frank_kernel(const T* u, const T* v, const T* theta, int64_t count,
                                      int64_t* first) {
  CCNN_GRID_STRIDE(i, count) {
    if (!unit_ok(u[i]) || !unit_ok(v[i])) record_first(first, kUnitOutOfRange, i);
    if (!is_finite(theta[i])) record_first(first, kThetaNotFinite, i);
  }
}

// ---- frank_copula -----------------------------------------------------------------------------

template <typename T>
__global__ void frank_copula_kernel(const T* u, const T* v, const T* theta, T* out, int64_t count) {
  CCNN_GRID_STRIDE(i, count) { out[i] = frank_cdf(u[i], v[i], theta[i]); }
}

template <typename T>
__global__ void frank_copula_backward_kernel(const T* grad, const T* u, const T* v,
                                             const T* theta, T* grad_u, T* grad_v,
                                             T* grad_theta, int64_t count) {
  CCNN_GRID_STRIDE(i, count) {
    const CopulaGrad<T> d = frank_cdf_grad(u[i], v[i], theta[i]);
    grad_u[i] = grad[i] * d.du;
    grad_v[i] = grad[i] * d.dv;
    grad_theta[i] = grad[i] * d.dtheta;
  }
}

// ---- ordinal levels ---------------------------------------------------------------------------

// One thread per (row, level).
template <typename T>
__global__ void ordinal_logprob_kernel(const T* z, T* out, int64_t rows, int64_t L, Link link) {
  CCNN_GRID_STRIDE(i, rows * L) {
    const int64_t row = i / L, l = i % L;
    const Level<T> lev = level_of(z + row * (L - 1), int(L), int(l), link, false);
    out[i] = fn::max(lev.log_mass, T(kLogProbFloor));
  }
}

// One thread per (row, threshold k): threshold k is the top of level k and the bottom of k + 1.
template <typename T>
__global__ void ordinal_logprob_backward_kernel(const T* grad, const T* z, T* grad_z, int64_t rows,
                                                int64_t L, Link link) {
  const int64_t K = L - 1;
  CCNN_GRID_STRIDE(i, rows * K) {
    const int64_t row = i / K, k = i % K;
    const T* zr = z + row * K;
    const Level<T> below = level_of(zr, int(L), int(k), link, true);
    const Level<T> above = level_of(zr, int(L), int(k + 1), link, true);
    T g = T(0);
    if (below.log_mass > T(kLogProbFloor)) g += grad[row * L + k] * below.w_hi;
    if (above.log_mass > T(kLogProbFloor)) g -= grad[row * L + k + 1] * above.w_lo;
    grad_z[i] = g;
  }
}

template <typename T>
__global__ void ordinal_levels_kernel(const T* z, Level<T>* levels, int64_t rows, int64_t L,
                                      Link link, bool with_weights) {
  CCNN_GRID_STRIDE(i, rows * L) {
    levels[i] = level_of(z + (i / L) * (L - 1), int(L), int(i % L), link, with_weights);
  }
}

// ---- pairwise_loglik --------------------------------------------------------------------------

// One thread per (b, e): the two AUs' levels at their labels, then the fused pair evaluation.
template <typename T>
__global__ void pairwise_loglik_kernel(const T* z, const T* theta, const int64_t* edges,
                                       const int64_t* labels, T* out, T* partials, Sizes n,
                                       Link link) {
  const int64_t K = n.L - 1;
  CCNN_GRID_STRIDE(i, n.B * n.E) {
    const int64_t b = i / n.E, e = i % n.E;
    const int64_t r = edges[2 * e], s = edges[2 * e + 1];
    const int64_t a = labels[b * n.Q + r], c = labels[b * n.Q + s];
    const bool with_grad = partials != nullptr;
    if (a < 0 || c < 0) {
      out[i] = T(0);
      if (with_grad)
        for (int j = 0; j < 5; ++j) partials[5 * i + j] = T(0);
      continue;
    }
    const Level<T> row = level_of(z + (b * n.Q + r) * K, int(n.L), int(a), link, with_grad);
    const Level<T> col = level_of(z + (b * n.Q + s) * K, int(n.L), int(c), link, with_grad);
    const PairGrad<T> g = frank_pair_at(theta_at(theta, n, b, e), row, col, with_grad);
    out[i] = g.log_prob;
    if (with_grad) {
      partials[5 * i] = g.dz_r_lo;
      partials[5 * i + 1] = g.dz_r_hi;
      partials[5 * i + 2] = g.dz_s_lo;
      partials[5 * i + 3] = g.dz_s_hi;
      partials[5 * i + 4] = g.dtheta;
    }
  }
}

// One thread per (b, q, k): the sum over the edges touching AU q, in edge order.
template <typename T>
__global__ void pairwise_loglik_gather_kernel(const T* grad, const T* partials,
                                              const int64_t* edges, const int64_t* labels,
                                              T* grad_z, Sizes n) {
  const int64_t K = n.L - 1;
  CCNN_GRID_STRIDE(i, n.B * n.Q * K) {
    const int64_t b = i / (n.Q * K), q = (i / K) % n.Q, k = i % K;
    const int64_t label = labels[b * n.Q + q];
    T sum = T(0);
    if (label >= 0 && (label == k || label == k + 1)) {
      const int slot = label == k + 1 ? 0 : 1;  // k is the lower (0) or upper (1) threshold
      for (int64_t e = 0; e < n.E; ++e) {
        const int64_t r = edges[2 * e], s = edges[2 * e + 1];
        if (r != q && s != q) continue;
        const int64_t other = labels[b * n.Q + (r == q ? s : r)];
        if (other < 0) continue;
        const int64_t j = b * n.E + e;
        sum += grad[j] * partials[5 * j + (r == q ? 0 : 2) + slot];
      }
    }
    grad_z[i] = sum;
  }
}

template <typename T>
__global__ void scale_kernel(const T* grad, const T* partials, T* grad_theta, int64_t count) {
  CCNN_GRID_STRIDE(i, count) { grad_theta[i] = grad[i] * partials[5 * i + 4]; }
}

// ---- pairwise_logtable ------------------------------------------------------------------------

// One thread per cell (b, e, a, c) of the output (row-major), so consecutive threads write
// consecutive addresses.
template <typename T>
__global__ void pairwise_logtable_kernel(const Level<T>* levels, const T* theta,
                                         const int64_t* edges, T* out, Sizes n) {
  const int64_t L = n.L, cells = L * L;
  CCNN_GRID_STRIDE(i, n.B * n.E * cells) {
    const int64_t be = i / cells, a = (i % cells) / L, c = i % L;
    const int64_t b = be / n.E, e = be % n.E;
    const Level<T>& row = levels[(b * n.Q + edges[2 * e]) * L + a];
    const Level<T>& col = levels[(b * n.Q + edges[2 * e + 1]) * L + c];
    out[i] = frank_pair_at(theta_at(theta, n, b, e), row, col, false).log_prob;
  }
}

// One thread per (b, e): its cells' gradients summed into scratch and grad_theta.
template <typename T>
__global__ void pairwise_logtable_edge_grad_kernel(const T* grad, const Level<T>* levels,
                                                   const T* theta, const int64_t* edges,
                                                   T* scratch, T* grad_theta, Sizes n) {
  const int64_t L = n.L, K = n.L - 1;
  CCNN_GRID_STRIDE(i, n.B * n.E) {
    const int64_t b = i / n.E, e = i % n.E;
    const Level<T>* rows = levels + (b * n.Q + edges[2 * e]) * L;
    const Level<T>* cols = levels + (b * n.Q + edges[2 * e + 1]) * L;
    const T t = theta_at(theta, n, b, e);
    T* gr = scratch + i * 2 * K;
    T* gs = gr + K;
    for (int64_t k = 0; k < 2 * K; ++k) gr[k] = T(0);
    T dtheta = T(0);
    for (int64_t a = 0; a < L; ++a) {
      for (int64_t c = 0; c < L; ++c) {
        const T up = grad[(i * L + a) * L + c];
        if (up == T(0)) continue;
        const PairGrad<T> g = frank_pair_at(t, rows[a], cols[c], true);
        if (a > 0) gr[a - 1] += up * g.dz_r_lo;
        if (a < K) gr[a] += up * g.dz_r_hi;
        if (c > 0) gs[c - 1] += up * g.dz_s_lo;
        if (c < K) gs[c] += up * g.dz_s_hi;
        dtheta += up * g.dtheta;
      }
    }
    grad_theta[i] = dtheta;
  }
}

// One thread per (b, q, k): the sum of scratch over the edges touching AU q, in edge order.
template <typename T>
__global__ void pairwise_logtable_gather_kernel(const T* scratch, const int64_t* edges, T* grad_z,
                                                Sizes n) {
  const int64_t K = n.L - 1;
  CCNN_GRID_STRIDE(i, n.B * n.Q * K) {
    const int64_t b = i / (n.Q * K), q = (i / K) % n.Q, k = i % K;
    T sum = T(0);
    for (int64_t e = 0; e < n.E; ++e) {
      const T* part = scratch + (b * n.E + e) * 2 * K;
      if (edges[2 * e] == q) sum += part[k];
      if (edges[2 * e + 1] == q) sum += part[K + k];
    }
    grad_z[i] = sum;
  }
}

}  // namespace

// ---- launchers --------------------------------------------------------------------------------

template <typename T>
cudaError_t validate_pairwise(const T* z, const T* theta, int64_t theta_numel,
                              const int64_t* edges, const int64_t* labels, Sizes n,
                              int64_t* first, cudaStream_t stream) {
  const int64_t count = std::max(std::max(n.B * n.Q, theta_numel), n.E);
  validate_pairwise_kernel<<<blocks_for(count), kThreads, 0, stream>>>(
      z, theta, theta_numel, edges, labels, n, count, first);
  return cudaGetLastError();
}

template <typename T>
cudaError_t validate_frank(const T* u, const T* v, const T* theta, int64_t count, int64_t* first,
                           cudaStream_t stream) {
  validate_frank_kernel<<<blocks_for(count), kThreads, 0, stream>>>(u, v, theta, count, first);
  return cudaGetLastError();
}

template <typename T>
cudaError_t frank_copula(const T* u, const T* v, const T* theta, T* out, int64_t count,
                         cudaStream_t stream) {
  frank_copula_kernel<<<blocks_for(count), kThreads, 0, stream>>>(u, v, theta, out, count);
  return cudaGetLastError();
}

template <typename T>
cudaError_t frank_copula_backward(const T* grad, const T* u, const T* v, const T* theta,
                                  T* grad_u, T* grad_v, T* grad_theta, int64_t count,
                                  cudaStream_t stream) {
  frank_copula_backward_kernel<<<blocks_for(count), kThreads, 0, stream>>>(
      grad, u, v, theta, grad_u, grad_v, grad_theta, count);
  return cudaGetLastError();
}

template <typename T>
cudaError_t ordinal_logprob(const T* z, T* out, int64_t rows, int64_t L, Link link,
                            cudaStream_t stream) {
  ordinal_logprob_kernel<<<blocks_for(rows * L), kThreads, 0, stream>>>(z, out, rows, L, link);
  return cudaGetLastError();
}

template <typename T>
cudaError_t ordinal_logprob_backward(const T* grad, const T* z, T* grad_z, int64_t rows,
                                     int64_t L, Link link, cudaStream_t stream) {
  ordinal_logprob_backward_kernel<<<blocks_for(rows * (L - 1)), kThreads, 0, stream>>>(
      grad, z, grad_z, rows, L, link);
  return cudaGetLastError();
}

template <typename T>
cudaError_t pairwise_loglik(const T* z, const T* theta, const int64_t* edges,
                            const int64_t* labels, T* out, T* partials, Sizes n, Link link,
                            cudaStream_t stream) {
  pairwise_loglik_kernel<<<blocks_for(n.B * n.E), kThreads, 0, stream>>>(
      z, theta, edges, labels, out, partials, n, link);
  return cudaGetLastError();
}

template <typename T>
cudaError_t pairwise_loglik_bwd(const T* grad, const T* partials, const int64_t* edges,
                                const int64_t* labels, T* grad_z, T* grad_theta, Sizes n,
                                cudaStream_t stream) {
  pairwise_loglik_gather_kernel<<<blocks_for(n.B * n.Q * (n.L - 1)), kThreads, 0, stream>>>(
      grad, partials, edges, labels, grad_z, n);
  scale_kernel<<<blocks_for(n.B * n.E), kThreads, 0, stream>>>(grad, partials, grad_theta,
                                                               n.B * n.E);
  return cudaGetLastError();
}

template <typename T>
cudaError_t ordinal_levels(const T* z, Level<T>* levels, int64_t rows, int64_t L, Link link,
                           bool with_weights, cudaStream_t stream) {
  ordinal_levels_kernel<<<blocks_for(rows * L), kThreads, 0, stream>>>(z, levels, rows, L, link,
                                                                       with_weights);
  return cudaGetLastError();
}

template <typename T>
cudaError_t pairwise_logtable(const Level<T>* levels, const T* theta, const int64_t* edges,
                              T* out, Sizes n, cudaStream_t stream) {
  pairwise_logtable_kernel<<<blocks_for(n.B * n.E * n.L * n.L), kThreads, 0, stream>>>(
      levels, theta, edges, out, n);
  return cudaGetLastError();
}

template <typename T>
cudaError_t pairwise_logtable_backward(const T* grad, const Level<T>* levels, const T* theta,
                                       const int64_t* edges, T* scratch, T* grad_z,
                                       T* grad_theta, Sizes n, cudaStream_t stream) {
  pairwise_logtable_edge_grad_kernel<<<blocks_for(n.B * n.E), kThreads, 0, stream>>>(
      grad, levels, theta, edges, scratch, grad_theta, n);
  pairwise_logtable_gather_kernel<<<blocks_for(n.B * n.Q * (n.L - 1)), kThreads, 0, stream>>>(
      scratch, edges, grad_z, n);
  return cudaGetLastError();
}

#define CCNN_INSTANTIATE(T)                                                                      \
  template cudaError_t validate_pairwise<T>(const T*, const T*, int64_t, const int64_t*,         \
                                            const int64_t*, Sizes, int64_t*, cudaStream_t);     \
  template cudaError_t validate_frank<T>(const T*, const T*, const T*, int64_t, int64_t*,        \
                                         cudaStream_t);                                          \
  template cudaError_t frank_copula<T>(const T*, const T*, const T*, T*, int64_t, cudaStream_t); \
  template cudaError_t frank_copula_backward<T>(const T*, const T*, const T*, const T*, T*, T*,  \
                                                T*, int64_t, cudaStream_t);                      \
  template cudaError_t ordinal_logprob<T>(const T*, T*, int64_t, int64_t, Link, cudaStream_t);   \
  template cudaError_t ordinal_logprob_backward<T>(const T*, const T*, T*, int64_t, int64_t,     \
                                                   Link, cudaStream_t);                          \
  template cudaError_t pairwise_loglik<T>(const T*, const T*, const int64_t*, const int64_t*,    \
                                          T*, T*, Sizes, Link, cudaStream_t);                    \
  template cudaError_t pairwise_loglik_bwd<T>(const T*, const T*, const int64_t*,                \
                                              const int64_t*, T*, T*, Sizes, cudaStream_t);      \
  template cudaError_t ordinal_levels<T>(const T*, Level<T>*, int64_t, int64_t, Link, bool,      \
                                         cudaStream_t);                                          \
  template cudaError_t pairwise_logtable<T>(const Level<T>*, const T*, const int64_t*, T*,       \
                                            Sizes, cudaStream_t);                                \
  template cudaError_t pairwise_logtable_backward<T>(const T*, const Level<T>*, const T*,        \
                                                     const int64_t*, T*, T*, T*, Sizes,          \
                                                     cudaStream_t);

CCNN_INSTANTIATE(float)
CCNN_INSTANTIATE(double)
#undef CCNN_INSTANTIATE

}  // namespace cuda
}  // namespace copula
}  // namespace ccnn
