// CUDA kernels of pairwise_logtable and its backward (a translation unit of its own so that it
// compiles in parallel with copula.cu): plain CUDA C++ on device pointers, no torch. Every cell is
// assembled by table_assembly.h's table_cell_at, the routine pairwise_loglik uses too. The table
// kernels are specialised on L (2..8, and a generic kL = 0) and on the index type (int32 where
// every flat index fits). Deterministic: fixed-order reductions in shared memory, no atomics.
#include "copula/copula_device.cuh"

namespace ccnn {
namespace copula {
namespace cuda {

namespace {

// One thread per cell (b, e, a, c) of the output (row-major), so consecutive threads write
// consecutive addresses. An edge with an endpoint outside [0, Q-1] gets a NaN table.
template <typename T, typename I, int kL>
__global__ void pairwise_logtable_kernel(const Level<T>* levels, const T* theta,
                                         const int64_t* edges, T* out, Sizes n) {
  const I L = kL > 0 ? I(kL) : I(n.L), cells = L * L;
  const I Q = I(n.Q), E = I(n.E);
  CCNN_GRID_STRIDE(I, i, I(n.B) * E * cells) {
    const I be = i / cells, cell = i - be * cells;
    const I a = cell / L, c = cell - a * L;
    const I b = be / E, e = be - b * E;
    const int64_t r = edges[2 * e], s = edges[2 * e + 1];
    if (!au_in_range(r, Q) || !au_in_range(s, Q)) {
      out[i] = quiet_nan<T>();
      continue;
    }
    const Level<T>& row = levels[(b * Q + I(r)) * L + a];
    const Level<T>& col = levels[(b * Q + I(s)) * L + c];
    out[i] = table_cell_at(theta_at(theta, n.theta_per_sample, E, b, e), row, col, false).log_prob;
  }
}

// The backward of the table, one thread per cell. A block of kThreads threads works on `slots`
// (b, e) pairs at once, each pair's L^2 cells in passes of `span` = min(L^2, kThreads) cells
// (one pass unless L > 16). In a pass every thread computes one cell's five contributions
// grad * d(log P)/d(z_r_lo, z_r_hi, z_s_lo, z_s_hi, theta) into shared memory; then, after a
// barrier, each of the pair's 2L - 1 outputs (row thresholds k, column thresholds k, theta) is
// summed by one fixed thread over its cells in increasing cell order (row-major (a, c)) and
// written to scratch / grad_theta (later passes add to what the same thread wrote before).
// Cells whose upstream gradient is 0 contribute 0 (their derivatives are not evaluated); an edge
// with an endpoint outside [0, Q-1] gets NaN contributions.
template <typename T, typename I, int kL>
__global__ void __launch_bounds__(kThreads)
    pairwise_logtable_backward_kernel(const T* grad, const Level<T>* levels, const T* theta,
                                      const int64_t* edges, T* scratch, T* grad_theta, Sizes n) {
  __shared__ T part[5][kThreads];
  const I L = kL > 0 ? I(kL) : I(n.L), K = L - 1, cells = L * L;
  const I Q = I(n.Q), E = I(n.E), pairs = I(n.B) * E;
  const I span = cells < I(kThreads) ? cells : I(kThreads);
  const I slots = I(kThreads) / span;  // >= 1
  const I outputs = 2 * K + 1;         // per pair: K row thresholds, K column thresholds, theta
  const I t = I(threadIdx.x);
  const I my_slot = t / span, my_cell = t - my_slot * span;  // my_slot >= slots: idle in pass
  for (I base = I(blockIdx.x) * slots; base < pairs; base += I(gridDim.x) * slots) {
    // this thread's pair
    const I p = base + my_slot;
    const bool active = my_slot < slots && p < pairs;
    I b = 0, e = 0, r = 0, s = 0;
    bool bad_edge = false;
    T th = T(0);
    if (active) {
      b = p / E, e = p - b * E;
      const int64_t r64 = edges[2 * e], s64 = edges[2 * e + 1];
      bad_edge = !au_in_range(r64, Q) || !au_in_range(s64, Q);
      if (!bad_edge) r = I(r64), s = I(s64);
      th = theta_at(theta, n.theta_per_sample, E, b, e);
    }
    for (I c0 = 0; c0 < cells; c0 += span) {
      // 1. this thread's cell
      T d_rlo = T(0), d_rhi = T(0), d_slo = T(0), d_shi = T(0), d_theta = T(0);
      const I cell = c0 + my_cell;
      if (active && cell < cells) {
        if (bad_edge) {
          d_rlo = d_rhi = d_slo = d_shi = d_theta = quiet_nan<T>();
        } else {
          const T up = grad[p * cells + cell];
          if (up != T(0)) {
            const I a = cell / L, c = cell - a * L;
            const PairGrad<T> g = table_cell_at(th, levels[(b * Q + r) * L + a],
                                                levels[(b * Q + s) * L + c], true);
            d_rlo = mul_rn(up, g.dz_r_lo);
            d_rhi = mul_rn(up, g.dz_r_hi);
            d_slo = mul_rn(up, g.dz_s_lo);
            d_shi = mul_rn(up, g.dz_s_hi);
            d_theta = mul_rn(up, g.dtheta);
          }
        }
      }
      part[0][t] = d_rlo;
      part[1][t] = d_rhi;
      part[2][t] = d_slo;
      part[3][t] = d_shi;
      part[4][t] = d_theta;
      __syncthreads();
      // 2. fixed-order sums: output j of slot `slot` is always summed by thread
      //    (slot * outputs + j) mod kThreads, in increasing cell order
      const I end = c0 + span < cells ? c0 + span : cells;  // cells [c0, end) are in this pass
      for (I task = t; task < slots * outputs; task += I(kThreads)) {
        const I slot = task / outputs, j = task - slot * outputs;
        const I q = base + slot;
        if (q >= pairs) continue;
        const I first = slot * span - c0;  // part[.][first + cell] is cell `cell` of this slot
        T acc = T(0);
        if (j < K) {  // row threshold k: top of row level k, bottom of row level k + 1
          const I k = j;
          const I lo = k * L > c0 ? k * L : c0, hi = (k + 2) * L < end ? (k + 2) * L : end;
          for (I idx = lo; idx < hi; ++idx) acc += part[idx < (k + 1) * L ? 1 : 0][first + idx];
        } else if (j < 2 * K) {  // column threshold k: cells (a, k) (top) and (a, k + 1) (bottom)
          const I k = j - K;
          for (I a = c0 / L; a * L < end; ++a) {
            const I top = a * L + k, bottom = top + 1;
            if (top >= c0 && top < end) acc += part[3][first + top];
            if (bottom >= c0 && bottom < end) acc += part[2][first + bottom];
          }
        } else {  // theta
          for (I idx = c0; idx < end; ++idx) acc += part[4][first + idx];
        }
        T* dst = j < 2 * K ? scratch + q * (2 * K) + j : grad_theta + q;
        *dst = c0 == 0 ? acc : *dst + acc;
      }
      __syncthreads();
    }
  }
}

// One thread per (b, q, k): the sum of scratch over AU q's incident edges, in edge order.
template <typename T, typename I, int kL>
__global__ void pairwise_logtable_gather_kernel(const T* scratch, detail::Incidence<I> inc,
                                                T* grad_z, Sizes n) {
  const I Q = I(n.Q), E = I(n.E), L = kL > 0 ? I(kL) : I(n.L), K = L - 1;
  CCNN_GRID_STRIDE(I, i, I(n.B) * Q * K) {
    const I bq = i / K, k = i - bq * K;
    const I b = bq / Q, q = bq - b * Q;
    T sum = T(0);
    const I end = inc.offsets[q + 1];
    for (I j = inc.offsets[q]; j < end; ++j) {
      const I entry = inc.entries[j], e = entry >> 1, side = entry & 1;
      sum += scratch[(b * E + e) * (2 * K) + side * K + k];
    }
    grad_z[i] = sum;
  }
}

}  // namespace

template <typename T>
cudaError_t pairwise_logtable(const Level<T>* levels, const T* theta, const int64_t* edges,
                              T* out, Sizes n, cudaStream_t stream) {
  const int64_t count = n.B * n.E * n.L * n.L;
  if (count == 0) return cudaSuccess;
  return detail::dispatch_index_and_levels(n, [&](auto index, auto level_tag) {
    using I = decltype(index);
    constexpr int kL = decltype(level_tag)::value;
    pairwise_logtable_kernel<T, I, kL><<<blocks_for(count), kThreads, 0, stream>>>(
        levels, theta, edges, out, n);
    return cudaGetLastError();
  });
}

template <typename T>
cudaError_t pairwise_logtable_backward(const T* grad, const Level<T>* levels, const T* theta,
                                       const int64_t* edges, void* workspace, T* scratch,
                                       T* grad_z, T* grad_theta, Sizes n, cudaStream_t stream) {
  return detail::dispatch_index_and_levels(n, [&](auto index, auto level_tag) {
    using I = decltype(index);
    constexpr int kL = decltype(level_tag)::value;
    const int64_t pairs = n.B * n.E, cells = n.L * n.L;
    if (pairs > 0) {
      const int64_t slots = cells < kThreads ? kThreads / cells : 1;
      pairwise_logtable_backward_kernel<T, I, kL>
          <<<blocks_for(pairs, int(slots)), kThreads, 0, stream>>>(grad, levels, theta, edges,
                                                                   scratch, grad_theta, n);
      const cudaError_t status = cudaGetLastError();
      if (status != cudaSuccess) return status;
    }
    if (n.B * n.Q * (n.L - 1) > 0) {
      detail::Incidence<I> inc;
      const cudaError_t status = detail::build_incidence<I>(edges, n, workspace, stream, &inc);
      if (status != cudaSuccess) return status;
      pairwise_logtable_gather_kernel<T, I, kL>
          <<<blocks_for(n.B * n.Q * (n.L - 1)), kThreads, 0, stream>>>(scratch, inc, grad_z, n);
    }
    return cudaGetLastError();
  });
}

#define CCNN_INSTANTIATE(T)                                                                      \
  template cudaError_t pairwise_logtable<T>(const Level<T>*, const T*, const int64_t*, T*,       \
                                            Sizes, cudaStream_t);                                \
  template cudaError_t pairwise_logtable_backward<T>(const T*, const Level<T>*, const T*,        \
                                                     const int64_t*, void*, T*, T*, T*, Sizes,   \
                                                     cudaStream_t);

CCNN_INSTANTIATE(float)
CCNN_INSTANTIATE(double)
#undef CCNN_INSTANTIATE

}  // namespace cuda
}  // namespace copula
}  // namespace ccnn
