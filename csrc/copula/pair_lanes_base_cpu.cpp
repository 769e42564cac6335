// The SIMD rectangle math (frank_simd.h) compiled for the baseline instruction set, 4 float lanes.
#include <cstdint>
#include <cstring>

#include "copula/frank_math.h"
#include "copula/pair_batch.h"


#define CCNN_SIMD_LANES 4
#define CCNN_SIMD_NAMESPACE base
#define CCNN_SIMD_LEVEL SimdLevel::kBase
#include "copula/frank_simd.h"
