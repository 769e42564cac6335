// The SIMD rectangle math (frank_simd.h) compiled for avx512, 16 float lanes.
#include <cstdint>
#include <cstring>

#include "copula/frank_math.h"
#include "copula/pair_batch.h"

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC target("avx512f,avx512dq,avx512vl,avx512bw,fma")
#endif
#define CCNN_SIMD_LANES 16
#define CCNN_SIMD_NAMESPACE avx512
#define CCNN_SIMD_LEVEL SimdLevel::kAvx512
#define CCNN_SIMD_SLEEF(fn, ulp) Sleef_##fn##d8_##ulp##avx512f  // PyTorch's SLEEF, 8 double lanes
#include "copula/frank_simd.h"
