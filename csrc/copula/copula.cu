// CUDA kernels of the copula ops except the table ones (copula_table.cu): plain CUDA C++ on device
// pointers, no torch (launchers declared in copula_kernels.h, called from copula_cuda.cpp). The
// math is frank_math.h and table_assembly.h, shared with the CPU kernels. Gradients are gathered
// per output element in a fixed order (no atomics), so results are deterministic. Index values
// read from edges / labels are range-checked before they are used as addresses; an out-of-range
// one makes the outputs that depend on it NaN.
#include "copula/copula_device.cuh"

namespace ccnn {
namespace copula {
namespace cuda {

namespace {

__device__ void record_first(int64_t* first, int kind, int64_t index) {
  atomicMin(reinterpret_cast<unsigned long long*>(first + kind),
            static_cast<unsigned long long>(index));
}

// ---- validation -------------------------------------------------------------------------------

template <typename T>
__global__ void validate_pairwise_kernel(const T* z, const T* theta, int64_t theta_numel,
                                         const int64_t* edges, const int64_t* labels, Sizes n,
                                         int64_t count, int64_t* first) {
  const int64_t K = n.L - 1;
  CCNN_GRID_STRIDE(int64_t, i, count) {
    if (i < n.B * n.Q) {
      if (z != nullptr) {
        int64_t column = 0;
        const int bad = check_threshold_row(z + i * K, K, &column);
        if (bad == kZNotFinite) record_first(first, kZNotFinite, i * K + column);
        if (bad == kZNotIncreasing) record_first(first, kZNotIncreasing, i);
      }
      if (labels != nullptr && !label_ok(labels[i], n.L)) record_first(first, kLabelOutOfRange, i);
    }
    if (theta != nullptr && i < theta_numel && !is_finite(theta[i]))
      record_first(first, kThetaNotFinite, i);
    if (edges != nullptr && i < n.E) {
      const int bad = check_edge(edges[2 * i], edges[2 * i + 1], n.Q);
      if (bad >= 0) record_first(first, bad, i);
    }
  }
}

template <typename T>
__global__ void validate_frank_kernel(const T* u, const T* v, const T* theta, int64_t count,
                                      int64_t* first) {
  CCNN_GRID_STRIDE(int64_t, i, count) {
    if (!unit_ok(u[i]) || !unit_ok(v[i])) record_first(first, kUnitOutOfRange, i);
    if (!is_finite(theta[i])) record_first(first, kThetaNotFinite, i);
  }
}

// ---- frank_copula -----------------------------------------------------------------------------

template <typename T, typename I>
__global__ void frank_copula_kernel(const T* u, const T* v, const T* theta, T* out, I count) {
  CCNN_GRID_STRIDE(I, i, count) { out[i] = frank_cdf(u[i], v[i], theta[i]); }
}

template <typename T, typename I>
__global__ void frank_copula_backward_kernel(const T* grad, const T* u, const T* v,
                                             const T* theta, T* grad_u, T* grad_v,
                                             T* grad_theta, I count) {
  CCNN_GRID_STRIDE(I, i, count) {
    const CopulaGrad<T> d = frank_cdf_grad(u[i], v[i], theta[i]);
    grad_u[i] = grad[i] * d.du;
    grad_v[i] = grad[i] * d.dv;
    grad_theta[i] = grad[i] * d.dtheta;
  }
}

// ---- ordinal levels ---------------------------------------------------------------------------

// One thread per (row, level).
template <typename T, typename I>
__global__ void ordinal_logprob_kernel(const T* z, T* out, I rows, I L, Link link) {
  CCNN_GRID_STRIDE(I, i, rows * L) {
    const I row = i / L, l = i - row * L;
    const Level<T> lev = level_of(z + row * (L - 1), int(L), int(l), link, false);
    out[i] = fn::max(lev.log_mass, T(kLogProbFloor));
  }
}

// One thread per (row, threshold k): threshold k is the top of level k and the bottom of k + 1,
// d logp_l / d z_k = +-F'(z_k) / e^{logp_l} from the forward's logp (make_level's weights, capped
// at e^max_log_weight; a level at the floor passes no gradient), as the CPU kernel.
template <typename T, typename I>
__global__ void ordinal_logprob_backward_kernel(const T* grad, const T* z, const T* logp, T* grad_z,
                                                I rows, I L, Link link) {
  const I K = L - 1;
  const T floor = T(kLogProbFloor), cap = Tuning<T>::max_log_weight;
  CCNN_GRID_STRIDE(I, i, rows * K) {
    const I row = i / K, k = i - row * K;
    const T log_pdf = cut_log_pdf(z[i], link);
    const T below = logp[row * L + k], above = logp[row * L + k + 1];
    T g = T(0);
    if (below > floor) g += grad[row * L + k] * fn::exp(fn::min(log_pdf - below, cap));
    if (above > floor) g -= grad[row * L + k + 1] * fn::exp(fn::min(log_pdf - above, cap));
    grad_z[i] = g;
  }
}

template <typename T, typename I>
__global__ void ordinal_levels_kernel(const T* z, Level<T>* levels, I rows, I L, Link link,
                                      bool with_weights) {
  CCNN_GRID_STRIDE(I, i, rows * L) {
    const I row = i / L;
    levels[i] = level_of(z + row * (L - 1), int(L), int(i - row * L), link, with_weights);
  }
}

// ---- incidence lists (CSR) --------------------------------------------------------------------

constexpr unsigned kFullMask = 0xffffffffu;

// One warp per AU q: counts[q] = number of edge endpoints equal to q.
template <typename I>
__global__ void incidence_count_kernel(const int64_t* edges, I E, I Q, I* counts) {
  const int lane = int(threadIdx.x) & 31;
  const I warps = I(blockDim.x) / 32;
  for (I q = I(blockIdx.x) * warps + I(threadIdx.x) / 32; q < Q; q += I(gridDim.x) * warps) {
    I count = 0;
    for (I e = lane; e < E; e += 32) count += I(edges[2 * e] == q) + I(edges[2 * e + 1] == q);
    for (int d = 16; d > 0; d /= 2) count += __shfl_down_sync(kFullMask, count, d);
    if (lane == 0) counts[q] = count;
  }
}

// One block of 1024 threads: offsets[0] = 0, offsets[q + 1] = counts[0] + ... + counts[q].
template <typename I>
__global__ void incidence_scan_kernel(const I* counts, I Q, I* offsets) {
  __shared__ I warp_sums[32];
  __shared__ I carry;
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) / 32;
  const int warps = int(blockDim.x) / 32;
  if (threadIdx.x == 0) {
    carry = 0;
    offsets[0] = 0;
  }
  __syncthreads();
  for (I base = 0; base < Q; base += I(blockDim.x)) {
    const I i = base + I(threadIdx.x);
    I v = i < Q ? counts[i] : I(0);
    for (int d = 1; d < 32; d *= 2) {
      const I y = __shfl_up_sync(kFullMask, v, d);
      if (lane >= d) v += y;
    }
    if (lane == 31) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
      I w = lane < warps ? warp_sums[lane] : I(0);
      for (int d = 1; d < 32; d *= 2) {
        const I y = __shfl_up_sync(kFullMask, w, d);
        if (lane >= d) w += y;
      }
      warp_sums[lane] = w;
    }
    __syncthreads();
    const I inclusive = carry + (warp > 0 ? warp_sums[warp - 1] : I(0)) + v;
    if (i < Q) offsets[i + 1] = inclusive;
    __syncthreads();
    if (threadIdx.x == blockDim.x - 1) carry = inclusive;
    __syncthreads();
  }
}

// One warp per AU q: writes q's entries 2 e + side in edge order (ballot + popc compaction).
template <typename I>
__global__ void incidence_fill_kernel(const int64_t* edges, I E, I Q, const I* offsets,
                                      I* entries) {
  const int lane = int(threadIdx.x) & 31;
  const unsigned below = (1u << lane) - 1u;
  const I warps = I(blockDim.x) / 32;
  for (I q = I(blockIdx.x) * warps + I(threadIdx.x) / 32; q < Q; q += I(gridDim.x) * warps) {
    I pos = offsets[q];
    for (I e0 = 0; e0 < E; e0 += 32) {  // uniform over the warp: every lane runs each round
      const I e = e0 + lane;
      bool row = false, col = false;
      if (e < E) {
        row = edges[2 * e] == q;
        col = edges[2 * e + 1] == q;
      }
      const unsigned rows = __ballot_sync(kFullMask, row), cols = __ballot_sync(kFullMask, col);
      const I before = I(__popc(rows & below) + __popc(cols & below));
      if (row) entries[pos + before] = 2 * e;
      if (col) entries[pos + before + I(row)] = 2 * e + 1;
      pos += I(__popc(rows) + __popc(cols));
    }
  }
}

// Workspace layout, in elements of I: counts[Q], offsets[Q + 1], entries[2 E].
template <typename I>
I* incidence_counts(void* workspace) {
  return static_cast<I*>(workspace);
}

// ---- pairwise_loglik --------------------------------------------------------------------------

// One thread per (b, e): the two AUs' levels at their labels, then the fused pair evaluation.
template <typename T, typename I>
__global__ void pairwise_loglik_kernel(const T* z, const T* theta, const int64_t* edges,
                                       const int64_t* labels, T* out, T* partials, Sizes n,
                                       Link link) {
  const I B = I(n.B), Q = I(n.Q), E = I(n.E), L = I(n.L), K = L - 1;
  const bool with_grad = partials != nullptr;
  CCNN_GRID_STRIDE(I, i, B * E) {
    const I b = i / E, e = i - b * E;
    const int64_t r = edges[2 * e], s = edges[2 * e + 1];
    int64_t a = 0, c = 0;
    bool bad = !au_in_range(r, Q) || !au_in_range(s, Q);
    if (!bad) {
      a = labels[b * Q + I(r)], c = labels[b * Q + I(s)];
      bad = !label_ok(a, n.L) || !label_ok(c, n.L);
    }
    if (bad || a < 0 || c < 0) {  // a bad index: NaN; a missing label: 0, no gradient
      const T value = bad ? quiet_nan<T>() : T(0);
      out[i] = value;
      if (with_grad)
        for (int j = 0; j < 5; ++j) partials[5 * i + j] = value;
      continue;
    }
    const PairGrad<T> g = pair_cell_from_thresholds(
        theta_at(theta, n.theta_per_sample, E, b, e), z + (b * Q + I(r)) * K,
        z + (b * Q + I(s)) * K, int(L), int(a), int(c), link, with_grad);
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

// One thread per (b, q, k): the sum over AU q's incident edges, in edge order, of
// grad[b, e] * (the partial of threshold k of q). A label of q or of an incident edge's other AU
// outside [-1, L-1], or another AU outside [0, Q-1], makes the result NaN.
template <typename T, typename I, int kL>
__global__ void pairwise_loglik_gather_kernel(const T* grad, const T* partials,
                                              const int64_t* edges, const int64_t* labels,
                                              detail::Incidence<I> inc, T* grad_z, Sizes n) {
  const I Q = I(n.Q), E = I(n.E), L = kL > 0 ? I(kL) : I(n.L), K = L - 1;
  CCNN_GRID_STRIDE(I, i, I(n.B) * Q * K) {
    const I bq = i / K, k = i - bq * K;
    const I b = bq / Q, q = bq - b * Q;
    const int64_t label = labels[bq];
    T sum = T(0);
    if (!label_ok(label, n.L)) {
      sum = quiet_nan<T>();
    } else if (label == k || label == k + 1) {
      const int slot = label == k + 1 ? 0 : 1;  // k is the level's lower (0) or upper (1) threshold
      const I end = inc.offsets[q + 1];
      for (I j = inc.offsets[q]; j < end; ++j) {
        const I entry = inc.entries[j], e = entry >> 1;
        const int side = int(entry & 1);
        const int64_t other = edges[2 * e + 1 - side];
        if (!au_in_range(other, Q)) {
          sum += quiet_nan<T>();
          continue;
        }
        const int64_t other_label = labels[b * Q + I(other)];
        if (!label_ok(other_label, n.L)) sum += quiet_nan<T>();
        if (other_label < 0) continue;
        const I be = b * E + e;
        sum += mul_rn(grad[be], partials[5 * be + 2 * side + slot]);
      }
    }
    grad_z[i] = sum;
  }
}

// grad_theta[b, e] = grad[b, e] * partials[b, e, 4]; NaN where the edge or its labels are bad.
template <typename T, typename I>
__global__ void pairwise_loglik_theta_kernel(const T* grad, const T* partials,
                                             const int64_t* edges, const int64_t* labels,
                                             T* grad_theta, Sizes n) {
  const I Q = I(n.Q), E = I(n.E);
  CCNN_GRID_STRIDE(I, i, I(n.B) * E) {
    const I b = i / E, e = i - b * E;
    const int64_t r = edges[2 * e], s = edges[2 * e + 1];
    bool bad = !au_in_range(r, Q) || !au_in_range(s, Q);
    if (!bad) bad = !label_ok(labels[b * Q + I(r)], n.L) || !label_ok(labels[b * Q + I(s)], n.L);
    grad_theta[i] = bad ? quiet_nan<T>() : mul_rn(grad[i], partials[5 * i + 4]);
  }
}

}  // namespace

// ---- incidence lists --------------------------------------------------------------------------

size_t incidence_workspace_bytes(Sizes n) {
  return size_t(2 * n.Q + 1 + 2 * n.E) * sizeof(int64_t);  // room for 64-bit entries
}

namespace detail {

template <typename I>
cudaError_t build_incidence(const int64_t* edges, const Sizes& n, void* workspace,
                            cudaStream_t stream, Incidence<I>* out) {
  I* counts = incidence_counts<I>(workspace);
  I* offsets = counts + n.Q;
  I* entries = offsets + n.Q + 1;
  out->offsets = offsets;
  out->entries = entries;
  if (n.Q == 0) return cudaSuccess;
  const int warps_per_block = kThreads / 32;
  const int blocks = blocks_for(n.Q, warps_per_block);
  incidence_count_kernel<I><<<blocks, kThreads, 0, stream>>>(edges, I(n.E), I(n.Q), counts);
  cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) return status;
  incidence_scan_kernel<I><<<1, 1024, 0, stream>>>(counts, I(n.Q), offsets);
  status = cudaGetLastError();
  if (status != cudaSuccess) return status;
  incidence_fill_kernel<I><<<blocks, kThreads, 0, stream>>>(edges, I(n.E), I(n.Q), offsets,
                                                            entries);
  return cudaGetLastError();
}

template cudaError_t build_incidence<int32_t>(const int64_t*, const Sizes&, void*, cudaStream_t,
                                              Incidence<int32_t>*);
template cudaError_t build_incidence<int64_t>(const int64_t*, const Sizes&, void*, cudaStream_t,
                                              Incidence<int64_t>*);

}  // namespace detail

// ---- launchers --------------------------------------------------------------------------------

namespace {

// 32-bit indexing for an elementwise kernel over `count` items.
bool count_fits_int32(int64_t count) { return !detail::kAlways64BitIndex && count < detail::kInt32Limit; }

}  // namespace

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
  if (count == 0) return cudaSuccess;
  if (count_fits_int32(count))
    frank_copula_kernel<T, int32_t><<<blocks_for(count), kThreads, 0, stream>>>(
        u, v, theta, out, int32_t(count));
  else
    frank_copula_kernel<T, int64_t><<<blocks_for(count), kThreads, 0, stream>>>(u, v, theta,
                                                                                out, count);
  return cudaGetLastError();
}

template <typename T>
cudaError_t frank_copula_backward(const T* grad, const T* u, const T* v, const T* theta,
                                  T* grad_u, T* grad_v, T* grad_theta, int64_t count,
                                  cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  if (count_fits_int32(count))
    frank_copula_backward_kernel<T, int32_t><<<blocks_for(count), kThreads, 0, stream>>>(
        grad, u, v, theta, grad_u, grad_v, grad_theta, int32_t(count));
  else
    frank_copula_backward_kernel<T, int64_t><<<blocks_for(count), kThreads, 0, stream>>>(
        grad, u, v, theta, grad_u, grad_v, grad_theta, count);
  return cudaGetLastError();
}

template <typename T>
cudaError_t ordinal_logprob(const T* z, T* out, int64_t rows, int64_t L, Link link,
                            cudaStream_t stream) {
  const int64_t count = rows * L;
  if (count == 0) return cudaSuccess;
  if (count_fits_int32(count))
    ordinal_logprob_kernel<T, int32_t><<<blocks_for(count), kThreads, 0, stream>>>(
        z, out, int32_t(rows), int32_t(L), link);
  else
    ordinal_logprob_kernel<T, int64_t><<<blocks_for(count), kThreads, 0, stream>>>(z, out, rows,
                                                                                   L, link);
  return cudaGetLastError();
}

template <typename T>
cudaError_t ordinal_logprob_backward(const T* grad, const T* z, const T* logp, T* grad_z, int64_t rows,
                                     int64_t L, Link link, cudaStream_t stream) {
  const int64_t count = rows * L;  // the largest index read (grad, logp)
  if (rows * (L - 1) == 0) return cudaSuccess;
  if (count_fits_int32(count))
    ordinal_logprob_backward_kernel<T, int32_t>
        <<<blocks_for(rows * (L - 1)), kThreads, 0, stream>>>(grad, z, logp, grad_z, int32_t(rows),
                                                              int32_t(L), link);
  else
    ordinal_logprob_backward_kernel<T, int64_t>
        <<<blocks_for(rows * (L - 1)), kThreads, 0, stream>>>(grad, z, logp, grad_z, rows, L, link);
  return cudaGetLastError();
}

template <typename T>
cudaError_t ordinal_levels(const T* z, Level<T>* levels, int64_t rows, int64_t L, Link link,
                           bool with_weights, cudaStream_t stream) {
  const int64_t count = rows * L;
  if (count == 0) return cudaSuccess;
  if (count_fits_int32(count))
    ordinal_levels_kernel<T, int32_t><<<blocks_for(count), kThreads, 0, stream>>>(
        z, levels, int32_t(rows), int32_t(L), link, with_weights);
  else
    ordinal_levels_kernel<T, int64_t><<<blocks_for(count), kThreads, 0, stream>>>(
        z, levels, rows, L, link, with_weights);
  return cudaGetLastError();
}

template <typename T>
cudaError_t pairwise_loglik(const T* z, const T* theta, const int64_t* edges,
                            const int64_t* labels, T* out, T* partials, Sizes n, Link link,
                            cudaStream_t stream) {
  if (n.B * n.E == 0) return cudaSuccess;
  return detail::dispatch_index(n, [&](auto index) {
    using I = decltype(index);
    pairwise_loglik_kernel<T, I><<<blocks_for(n.B * n.E), kThreads, 0, stream>>>(
        z, theta, edges, labels, out, partials, n, link);
    return cudaGetLastError();
  });
}

template <typename T>
cudaError_t pairwise_loglik_bwd(const T* grad, const T* partials, const int64_t* edges,
                                const int64_t* labels, void* workspace, T* grad_z, T* grad_theta,
                                Sizes n, cudaStream_t stream) {
  return detail::dispatch_index_and_levels(n, [&](auto index, auto levels) {
    using I = decltype(index);
    constexpr int kL = decltype(levels)::value;
    if (n.B * n.Q * (n.L - 1) > 0) {
      detail::Incidence<I> inc;
      const cudaError_t status = detail::build_incidence<I>(edges, n, workspace, stream, &inc);
      if (status != cudaSuccess) return status;
      pairwise_loglik_gather_kernel<T, I, kL>
          <<<blocks_for(n.B * n.Q * (n.L - 1)), kThreads, 0, stream>>>(grad, partials, edges,
                                                                       labels, inc, grad_z, n);
      const cudaError_t launched = cudaGetLastError();
      if (launched != cudaSuccess) return launched;
    }
    if (n.B * n.E > 0)
      pairwise_loglik_theta_kernel<T, I><<<blocks_for(n.B * n.E), kThreads, 0, stream>>>(
          grad, partials, edges, labels, grad_theta, n);
    return cudaGetLastError();
  });
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
  template cudaError_t ordinal_logprob_backward<T>(const T*, const T*, const T*, T*, int64_t,    \
                                                   int64_t, Link, cudaStream_t);                 \
  template cudaError_t pairwise_loglik<T>(const T*, const T*, const int64_t*, const int64_t*,    \
                                          T*, T*, Sizes, Link, cudaStream_t);                    \
  template cudaError_t pairwise_loglik_bwd<T>(const T*, const T*, const int64_t*,                \
                                              const int64_t*, void*, T*, T*, Sizes,              \
                                              cudaStream_t);                                     \
  template cudaError_t ordinal_levels<T>(const T*, Level<T>*, int64_t, int64_t, Link, bool,      \
                                         cudaStream_t);

CCNN_INSTANTIATE(float)
CCNN_INSTANTIATE(double)
#undef CCNN_INSTANTIATE

}  // namespace cuda
}  // namespace copula
}  // namespace ccnn
