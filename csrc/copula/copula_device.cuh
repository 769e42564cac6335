// copula_device.cuh: helpers shared by the CUDA translation units of the copula ops (copula.cu,
// copula_table.cu). Internal: included by .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "copula/copula_kernels.h"
#include "copula/input_checks.h"
#include "copula/table_assembly.h"

namespace ccnn {
namespace copula {
namespace cuda {
namespace detail {

constexpr int kThreads = 256;
// Grids are capped here and kernels stride over the rest (keeps grid.x far below its limit).
constexpr int64_t kMaxBlocks = int64_t(65535) * 16;
// 32-bit indexing when every flat index of a call (and the index plus one grid stride, below
// 2^28) stays below 2^30 + 2^28 < 2^31.
constexpr int64_t kInt32Limit = int64_t(1) << 30;

inline int blocks_for(int64_t count, int threads = kThreads) {
  const int64_t blocks = (count + threads - 1) / threads;
  return int(std::max<int64_t>(1, std::min<int64_t>(blocks, kMaxBlocks)));
}

// Built with CCNN_CUDA_INDEX64, every call takes the 64-bit index kernels (so that tests run them
// at small sizes).
#ifdef CCNN_CUDA_INDEX64
constexpr bool kAlways64BitIndex = true;
#else
constexpr bool kAlways64BitIndex = false;
#endif

// Whether every flat index formed by the pairwise kernels of a call fits 32-bit indexing.
inline bool fits_int32(const Sizes& n) {
  if (kAlways64BitIndex) return false;
  const double B = double(n.B), Q = double(n.Q), L = double(n.L), E = double(n.E);
  const double largest = std::max({B * E * L * L,          // table cells
                                   B * Q * L,              // levels
                                   B * E * 5.0,            // partials
                                   B * E * 2.0 * L,        // scratch
                                   2.0 * E + 2.0 * Q + 2,  // edges, incidence lists
                                   B * Q + 1});            // labels, z rows
  return largest < double(kInt32Limit);
}

// Grid-stride loop of index type I over [0, count).
#define CCNN_GRID_STRIDE(I, i, count)                                                    \
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < (count);                \
       i += I(blockDim.x) * I(gridDim.x))

template <typename T>
__device__ __forceinline__ T quiet_nan();
template <>
__device__ __forceinline__ float quiet_nan<float>() {
  return __int_as_float(0x7fc00000);
}
template <>
__device__ __forceinline__ double quiet_nan<double>() {
  return __longlong_as_double(0x7ff8000000000000LL);
}

// Products that the compiler may not fuse into an FMA with a following addition, so a fixed-order
// sum of products rounds exactly like the same sum on the CPU.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

// Whether an AU index read from `edges` can be dereferenced.
template <typename I>
__device__ __forceinline__ bool au_in_range(int64_t q, I Q) {
  return q >= 0 && q < int64_t(Q);
}

template <typename T, typename I>
__device__ __forceinline__ T theta_at(const T* theta, bool per_sample, I E, I b, I e) {
  return theta[per_sample ? b * E + e : e];
}

// The per-AU incidence lists of an edge list in CSR form: AU q's entries are
// entries[offsets[q] .. offsets[q + 1]), each 2 e + side (side 0: q is edge e's row AU r, side 1:
// its column AU s), in increasing edge order, side 0 before side 1. Endpoints outside [0, Q-1]
// appear in no list. Built on the device by build_incidence (copula.cu), no host synchronisation.
template <typename I>
struct Incidence {
  const I* offsets;
  const I* entries;
};

template <typename I>
cudaError_t build_incidence(const int64_t* edges, const Sizes& n, void* workspace,
                            cudaStream_t stream, Incidence<I>* out);

// Runs launch(index_tag, level_tag) with index_tag an int32_t or int64_t value (the index type)
// and level_tag a std::integral_constant<int, kL>: kL = L for L in 2..8 with 32-bit indexing,
// 0 (L read at run time) otherwise.
template <typename Launch>
cudaError_t dispatch_index_and_levels(const Sizes& n, Launch&& launch) {
  if (!fits_int32(n)) return launch(int64_t(0), std::integral_constant<int, 0>());
  switch (n.L) {
    case 2: return launch(int32_t(0), std::integral_constant<int, 2>());
    case 3: return launch(int32_t(0), std::integral_constant<int, 3>());
    case 4: return launch(int32_t(0), std::integral_constant<int, 4>());
    case 5: return launch(int32_t(0), std::integral_constant<int, 5>());
    case 6: return launch(int32_t(0), std::integral_constant<int, 6>());
    case 7: return launch(int32_t(0), std::integral_constant<int, 7>());
    case 8: return launch(int32_t(0), std::integral_constant<int, 8>());
    default: return launch(int32_t(0), std::integral_constant<int, 0>());
  }
}

template <typename Launch>
cudaError_t dispatch_index(const Sizes& n, Launch&& launch) {
  if (!fits_int32(n)) return launch(int64_t(0));
  return launch(int32_t(0));
}

}  // namespace detail

// The helpers every kernel file uses.
using detail::au_in_range;
using detail::blocks_for;
using detail::kThreads;
using detail::mul_rn;
using detail::quiet_nan;
using detail::theta_at;

}  // namespace cuda
}  // namespace copula
}  // namespace ccnn
