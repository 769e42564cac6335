// table_assembly.h: the one routine that turns two AUs' levels into a cell of an edge's (L, L)
// log table (or the cell of one observed label pair), with its gradient. Host and device (plain
// C++17 on the host, CUDA on devices); no torch. Built only from frank_math.h's entry points
// (make_frank_level, make_frank_coord, make_frank_coord_above, column_lo/column_hi, frank_cell,
// pair_from_cell, make_frank_frame, needs_double), so numerics changes there carry over.
//
// Used by every CUDA pair kernel (pairwise_loglik, pairwise_logtable and its backward), one
// thread per cell, and meant for the CPU kernels too, so that CPU and CUDA assemble a table the
// same way and a table cell (a, c) is, on one device, bitwise the pairwise_loglik value of the
// label pair (a, c):
//
//   Per cell (what the CUDA kernels do):
//       PairGrad<T> g = table_cell_at(signed_theta, rows[a], cols[c], with_grad);
//   Per edge, reusing each level's frame quantities across the L cells of its row / column
//   (a CPU loop; the same values, cell for cell, as the per-cell form):
//       const FrankFrame<C> f = make_frank_frame(C(signed_theta));  // C = double if needs_double
//       frank_edge_sides(f, rows, cols, L, with_grad, row_sides, col_sides);
//       for a, c: PairGrad<C> g = table_cell(f, row_sides[a], col_sides[c], rows[a], cols[c],
//                                            with_grad);
//
// Orientation. `rows` and `cols` are the L levels (Level<W>, level 0 first) of the edge's row AU r
// and column AU s, and (a, c) is a cell in the original orientation: a = level of r, c = level of
// s. The frame (make_frank_frame) always has theta >= 0; for a negative theta it reflects the
// column axis (v -> 1 - v), so the column level c occupies [1 - F(z_c), 1 - F(z_{c-1})] there,
// i.e. frame column L - 1 - c. frank_column_side places a column level at its reflected position
// itself and pair_from_cell maps the gradient back (swapping and negating the column thresholds'
// terms, negating d/dtheta), so callers never reorder columns: cell (a, c) goes to out[a * L + c]
// and its gradient to thresholds (a - 1, a) of r and (c - 1, c) of s, whatever the sign of theta.
//
// Each level's coordinates are computed from its own cut points (make_frank_coord of the lower
// CDF, make_frank_coord_above for the upper one), not chained from the level below, so a cell
// depends only on (theta, rows[a], cols[c]): that is what makes the per-cell and per-edge forms,
// and pairwise_loglik and pairwise_logtable, agree bitwise on one device. (frank_pair in
// frank_math.h is the same sequence of calls: frank_pair(f, r, s, g) == table_cell(f,
// frank_row_side(f, r, g), frank_column_side(f, s, g), r, s, g).)
#pragma once

#include "copula/frank_math.h"

namespace ccnn {
namespace copula {

// One level of one AU placed on an axis of a frame: its FrankLevel (mass, phi, e^{-theta mass},
// lambda) and the frame coordinates of its bottom (`lo`) and top (`hi`) cut points.
template <typename C>
struct FrankSide {
  FrankLevel<C> level;
  FrankCoord<C> lo, hi;
};

// A level of the row AU on the u axis (never reflected).
template <typename C, typename W>
CCNN_HD FrankSide<C> frank_row_side(const FrankFrame<C>& f, const Level<W>& r, bool with_grad) {
  FrankSide<C> side;
  side.level = make_frank_level(f, C(r.mass), C(r.log_mass), with_grad);
  side.lo = make_frank_coord(f, C(r.cdf_lo), C(r.ccdf_lo));
  side.hi = make_frank_coord_above(f, side.lo, side.level, C(r.cdf_hi), C(r.ccdf_hi));
  return side;
}

// A level of the column AU on the v axis, reflected when the frame is (theta < 0).
template <typename C, typename W>
CCNN_HD FrankSide<C> frank_column_side(const FrankFrame<C>& f, const Level<W>& s, bool with_grad) {
  FrankSide<C> side;
  side.level = make_frank_level(f, C(s.mass), C(s.log_mass), with_grad);
  side.lo = make_frank_coord(f, column_lo(f, s), column_hi_complement(f, s, false));
  side.hi = make_frank_coord_above(f, side.lo, side.level, column_hi(f, s),
                                   column_hi_complement(f, s, true));
  return side;
}

// The L row sides and L column sides of one edge, in original level order (row_sides[a] for
// rows[a], col_sides[c] for cols[c]; reflection is inside each column side).
template <typename C, typename W>
CCNN_HD void frank_edge_sides(const FrankFrame<C>& f, const Level<W>* rows, const Level<W>* cols,
                              int L, bool with_grad, FrankSide<C>* row_sides,
                              FrankSide<C>* col_sides) {
  for (int l = 0; l < L; ++l) {
    row_sides[l] = frank_row_side(f, rows[l], with_grad);
    col_sides[l] = frank_column_side(f, cols[l], with_grad);
  }
}

// Cell (a, c) from its two sides: log P and d log P / d (z_r_lo, z_r_hi, z_s_lo, z_s_hi, theta)
// in the original orientation (r = rows[a], s = cols[c] give the threshold weights).
template <typename C, typename W>
CCNN_HD PairGrad<C> table_cell(const FrankFrame<C>& f, const FrankSide<C>& row,
                               const FrankSide<C>& col, const Level<W>& r, const Level<W>& s,
                               bool with_grad) {
  return pair_from_cell(
      f, frank_cell(f, row.lo, row.hi, col.lo, col.hi, row.level, col.level, with_grad), r, s);
}

// Cell (a, c) of an edge given the frame and the two AUs' level arrays.
template <typename C, typename W>
CCNN_HD PairGrad<C> table_cell(const FrankFrame<C>& f, const Level<W>* rows, const Level<W>* cols,
                               int a, int c, bool with_grad) {
  const Level<W>& r = rows[a];
  const Level<W>& s = cols[c];
  return table_cell(f, frank_row_side(f, r, with_grad), frank_column_side(f, s, with_grad), r, s,
                    with_grad);
}

// One cell for inputs of type T given the signed theta, in double when T is float and |theta| is
// beyond float's range (needs_double); r is the row AU at level a, s the column AU at level c.
template <typename T>
CCNN_HD PairGrad<T> table_cell_at(T signed_theta, const Level<T>& r, const Level<T>& s,
                                  bool with_grad) {
  if (needs_double(signed_theta)) {
    const FrankFrame<double> f = make_frank_frame(double(signed_theta));
    const PairGrad<double> g = table_cell(f, frank_row_side(f, r, with_grad),
                                          frank_column_side(f, s, with_grad), r, s, with_grad);
    return {T(g.log_prob), T(g.dz_r_lo), T(g.dz_r_hi), T(g.dz_s_lo), T(g.dz_s_hi), T(g.dtheta)};
  }
  const FrankFrame<T> f = make_frank_frame(signed_theta);
  return table_cell(f, frank_row_side(f, r, with_grad), frank_column_side(f, s, with_grad), r, s,
                    with_grad);
}

// One label pair straight from the thresholds: zr, zs are the row and column AU's L-1 thresholds
// and (a, c) their labels. When T is float and |theta| is beyond float's range the levels, too,
// are computed in double (level_of_as), not only the rectangle.
template <typename T>
CCNN_HD PairGrad<T> pair_cell_from_thresholds(T signed_theta, const T* zr, const T* zs, int L,
                                              int a, int c, Link link, bool with_grad) {
  if (needs_double(signed_theta)) {
    const Level<double> r = level_of_as<double>(zr, L, a, link, with_grad);
    const Level<double> s = level_of_as<double>(zs, L, c, link, with_grad);
    const FrankFrame<double> f = make_frank_frame(double(signed_theta));
    const PairGrad<double> g = table_cell(f, frank_row_side(f, r, with_grad),
                                          frank_column_side(f, s, with_grad), r, s, with_grad);
    return {T(g.log_prob), T(g.dz_r_lo), T(g.dz_r_hi), T(g.dz_s_lo), T(g.dz_s_hi), T(g.dtheta)};
  }
  const Level<T> r = level_of(zr, L, a, link, with_grad), s = level_of(zs, L, c, link, with_grad);
  return table_cell_at(signed_theta, r, s, with_grad);
}

}  // namespace copula
}  // namespace ccnn
