// The SIMD rectangle math (frank_simd.h) compiled for AVX with FMA but no AVX2, 8 float lanes:
// 256-bit float arithmetic, with the few integer steps (exponent bits in exp and log) split by the
// compiler into two 128-bit halves. For processors (and virtual machines) that expose AVX and FMA
// without AVX2.
#include <cstdint>
#include <cstring>

#include "copula/frank_math.h"
#include "copula/pair_batch.h"

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC target("avx,fma")
#endif
#define CCNN_SIMD_LANES 8
#define CCNN_SIMD_NAMESPACE avx
#define CCNN_SIMD_LEVEL SimdLevel::kAvx
#define CCNN_SIMD_SLEEF(fn, ulp) Sleef_##fn##d4_##ulp##avx  // PyTorch's SLEEF, 4 double lanes
#include "copula/frank_simd.h"
