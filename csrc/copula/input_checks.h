// input_checks.h: the data-dependent validity rules of the copula ops, as host/device predicates,
// so the CPU loops and the CUDA validation kernel apply exactly the same rules. No torch.
#pragma once

#include <cstdint>

#include "copula/frank_math.h"

namespace ccnn {
namespace copula {

// Kinds of bad input data; a validation pass reports, for each kind, the smallest flat index of
// an offending element (or kNoError).
enum InputError : int {
  kZNotFinite = 0,     // z has a NaN or an infinity (index into z)
  kZNotIncreasing,     // a row of z is not strictly increasing (index of the (b, q) row)
  kThetaNotFinite,     // theta has a NaN or an infinity (index into theta)
  kLabelOutOfRange,    // labels outside [-1, L-1] (index into labels)
  kEdgeOutOfRange,     // an edge endpoint outside [0, Q-1] (edge index)
  kEdgeSelfLoop,       // an edge with r == s (edge index)
  kUnitOutOfRange,     // frank_copula: u or v outside [0, 1] or not finite (index into the broadcast)
  kNumInputErrors
};

constexpr int64_t kNoError = INT64_MAX;

// x - x is 0 exactly for finite x and NaN for NaN and infinities (works without <cmath> on device).
template <typename T>
CCNN_HD bool is_finite(T x) {
  return (x - x) == T(0);
}

// One row of L-1 thresholds: all finite, strictly increasing. Returns kZNotFinite,
// kZNotIncreasing or -1, and the offending column in *column for kZNotFinite.
template <typename T>
CCNN_HD int check_threshold_row(const T* z, int64_t count, int64_t* column) {
  for (int64_t k = 0; k < count; ++k) {
    if (!is_finite(z[k])) {
      *column = k;
      return kZNotFinite;
    }
  }
  for (int64_t k = 1; k < count; ++k) {
    if (!(z[k] > z[k - 1])) return kZNotIncreasing;
  }
  return -1;
}

CCNN_HD bool label_ok(int64_t label, int64_t num_levels) {
  return label >= -1 && label < num_levels;
}

// Returns kEdgeOutOfRange, kEdgeSelfLoop or -1.
CCNN_HD int check_edge(int64_t r, int64_t s, int64_t num_aus) {
  if (r < 0 || r >= num_aus || s < 0 || s >= num_aus) return kEdgeOutOfRange;
  if (r == s) return kEdgeSelfLoop;
  return -1;
}

template <typename T>
CCNN_HD bool unit_ok(T x) {
  return x >= T(0) && x <= T(1);  // false for NaN
}

}  // namespace copula
}  // namespace ccnn
