// The SIMD rectangle math (frank_simd.h) compiled for avx2, 8 float lanes.
#include <cstdint>
#include <cstring>

#include "copula/frank_math.h"
#include "copula/pair_batch.h"

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC target("avx2,fma")
#endif
#define CCNN_SIMD_LANES 8
#define CCNN_SIMD_HAS_GATHER 1
#define CCNN_SIMD_NAMESPACE avx2
#define CCNN_SIMD_LEVEL SimdLevel::kAvx2
#define CCNN_SIMD_SLEEF(fn, ulp) Sleef_##fn##d4_##ulp##avx2  // PyTorch's SLEEF, 4 double lanes
#include "copula/frank_simd.h"
