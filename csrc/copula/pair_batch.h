// pair_batch.h: a batch of float or double label pairs in their Frank frames, stored field by field: the
// interface between the CPU kernels (copula_cpu.cpp) and the SIMD versions of the rectangle math
// (frank_simd.h, compiled once per instruction set in pair_lanes_*_cpu.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ccnn {
namespace copula {

// Inputs: the frame constants of make_frank_frame and the pair's row (u) and frame-column (v)
// level: lower / upper coordinate, their complements, mass and log mass. Outputs: log P, the
// mass-scaled coordinate gradients and d log P / d theta in the frame (FrankCell's fields).
#define CCNN_PAIR_BATCH_INPUTS(X)                                                                \
  X(theta) X(x1) X(m1) X(inv_mraw) X(inv_m1) X(lambda1) X(u0) X(u0b) X(u1) X(u1b) X(du) X(log_du) \
  X(v0) X(v0b) X(v1) X(v1b) X(dv) X(log_dv)
#define CCNN_PAIR_BATCH_OUTPUTS(X) X(log_prob) X(s_u0) X(s_u1) X(s_v0) X(s_v1) X(dtheta)

template <typename T>
struct PairBatch {
  static constexpr int kCapacity = 128;  // a multiple of every lane count
#define CCNN_DECLARE_ARRAY(name) T name[kCapacity];
  CCNN_PAIR_BATCH_INPUTS(CCNN_DECLARE_ARRAY)
  CCNN_PAIR_BATCH_OUTPUTS(CCNN_DECLARE_ARRAY)
#undef CCNN_DECLARE_ARRAY

  // Pointers to every field from one pair on.
  struct Lanes {
#define CCNN_DECLARE_POINTER(name) T* name;
    CCNN_PAIR_BATCH_INPUTS(CCNN_DECLARE_POINTER)
    CCNN_PAIR_BATCH_OUTPUTS(CCNN_DECLARE_POINTER)
#undef CCNN_DECLARE_POINTER
  };
  Lanes at(int first) {
    Lanes lanes;
#define CCNN_POINT(name) lanes.name = name + first;
    CCNN_PAIR_BATCH_INPUTS(CCNN_POINT)
    CCNN_PAIR_BATCH_OUTPUTS(CCNN_POINT)
#undef CCNN_POINT
    return lanes;
  }
};

// A batch of ordinal levels computed in type T: inputs the level's lower and upper threshold
// (-inf / +inf at the ends of the scale) and the cap of the weights' log, the inputs' type's
// Tuning::max_log_weight (float thresholds evaluated in double keep float's, as level_of_as);
// outputs the fields of Level<T> (make_level).
template <typename T>
struct LevelBatch {
  static constexpr int kCapacity = 128;
  T max_log_weight;
  T z_lo[kCapacity], z_hi[kCapacity];
  T cdf_lo[kCapacity], ccdf_lo[kCapacity], cdf_hi[kCapacity], ccdf_hi[kCapacity];
  T mass[kCapacity], log_mass[kCapacity], w_lo[kCapacity], w_hi[kCapacity];
};

// One level l of a TableBatch: each field 16 values, one per lane (the fields of TableBatch below).
template <typename T>
struct TableLevel {
  T r_lo[16], r_lob[16], r_hi[16], r_hib[16], r_mass[16], r_log_mass[16];
  T c_lo[16], c_lob[16], c_hi[16], c_hib[16], c_mass[16], c_log_mass[16];
  T r_w_lo[16], r_w_hi[16], c_w_lo[16], c_w_hi[16];  // backward
  T gz_r[16], gz_s[16];                              // backward
};

// One edge's log tables for up to kLanes samples (pairwise_logtable), made for one number of
// levels L (any): per sample (lane) the frame constants, and per level l (level[l]) of the row AU
// (r_*) and of the column AU (c_*) the frame coordinates of its two cut points with their
// complements (column levels already placed in the frame by column_lo / column_hi: reflected for
// theta < 0), its mass and log mass. Forward output: the log table, cell (a, c) of lane k at
// log_prob[a * L + c][k], in the original orientation. Backward inputs besides: the upstream
// gradient of each cell (up, laid out as log_prob), the levels' threshold weights (Level::w_lo,
// w_hi; the column AU's in its original orientation), sign = -1 where theta < 0 (reflected), else
// 1, and theta_sign = sign, or 0 where |theta| reached the cap; outputs d/dz of the row AU's and
// the column AU's thresholds (level[k].gz_r[lane], level[k].gz_s[lane], k < L-1) and d/dtheta.
// scratch: kScratchPerLevel bytes per level, 64-byte aligned, for the kernels' per-level vectors.
template <typename T>
struct TableBatch {
  static constexpr int kLanes = 16;
  static constexpr std::size_t kScratchPerLevel = 1024;
  T theta[kLanes], x1[kLanes], m1[kLanes], inv_mraw[kLanes], inv_m1[kLanes], lambda1[kLanes];
  T sign[kLanes], theta_sign[kLanes], dtheta[kLanes];
  TableLevel<T>* level;   // L
  T (*log_prob)[kLanes];  // L * L
  T (*up)[kLanes];        // L * L
  void* scratch;

  explicit TableBatch(int L)
      : levels_(L), cells_(2 * std::size_t(L) * L * kLanes), scratch_(L * kScratchPerLevel + kAlign) {
    level = levels_.data();
    log_prob = reinterpret_cast<T(*)[kLanes]>(cells_.data());
    up = log_prob + std::size_t(L) * L;
    const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(scratch_.data());
    scratch = scratch_.data() + ((at + kAlign - 1) / kAlign * kAlign - at);
  }
  TableBatch(const TableBatch&) = delete;
  TableBatch& operator=(const TableBatch&) = delete;

 private:
  static constexpr std::size_t kAlign = 64;
  std::vector<TableLevel<T>> levels_;
  std::vector<T> cells_;
  std::vector<unsigned char> scratch_;
};

// The instruction sets the SIMD math is compiled for (pair_lanes_*_cpu.cpp), narrowest first.
enum class SimdLevel { kBase, kAvx, kAvx2, kAvx512 };

// frank_cell for pairs [begin, end) of the batch, make_level for levels [0, count) (begin, end
// and count multiples of 16), the tables of a TableBatch or their backward, and ordinal_logprob
// of `rows` rows of L-1 thresholds (grad null: out = logp, rows x L; logp unused) or its backward
// from the forward's logp (out = grad_z, rows x (L-1)), false if the forward met a threshold that
// is not finite or not above the previous one of its row. Specialised for each compiled
// instruction set and type (frank_simd.h); copula_cpu.cpp picks the best the processor has.
template <SimdLevel level, typename T>
void frank_pair_lanes(PairBatch<T>& batch, int begin, int end, bool with_grad);
template <SimdLevel level, typename T>
void level_lanes(LevelBatch<T>& batch, int count, bool probit, bool with_weights);
template <SimdLevel level, typename T>
void table_lanes(TableBatch<T>& batch, int L, bool backward);
template <SimdLevel level, typename T>
bool ordinal_lanes(const T* z, const T* logp, const T* grad, int64_t rows, int L, bool probit, T* out);

}  // namespace copula
}  // namespace ccnn
