// Internal to csrc/ad3: the small loops of an AD3 iteration, compiled for a number of states K
// known at compile time (K = 2..8, the common case: loops unroll, values stay in registers) or,
// with K = 0, for any number k given at run time. With GCC and Clang, the K states go in pairs
// through 2-wide vector extensions (SSE2 / NEON), the last one alone when K is odd; other
// compilers take the scalar loops, with the same results up to the order of floating-point sums.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "ad3/ad3.h"

namespace ccnn {
namespace ad3 {
namespace detail {

// Calls f(std::integral_constant<int, K>()) with K = k when 2 <= k <= 8, else with K = 0.
template <typename F>
inline decltype(auto) dispatch_states(int k, F&& f) {
  switch (k) {
    case 2: return f(std::integral_constant<int, 2>());
    case 3: return f(std::integral_constant<int, 3>());
    case 4: return f(std::integral_constant<int, 4>());
    case 5: return f(std::integral_constant<int, 5>());
    case 6: return f(std::integral_constant<int, 6>());
    case 7: return f(std::integral_constant<int, 7>());
    case 8: return f(std::integral_constant<int, 8>());
    default: return f(std::integral_constant<int, 0>());
  }
}

#if defined(__GNUC__) && !defined(CCNN_AD3_SCALAR)  // -DCCNN_AD3_SCALAR: scalar loops everywhere
#define CCNN_AD3_VECTOR 1
typedef double double2 __attribute__((vector_size(16)));
typedef long long int64x2 __attribute__((vector_size(16)));

inline double2 load2(const double* p) {
  double2 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store2(double* p, double2 v) { std::memcpy(p, &v, sizeof v); }
#endif

inline std::uint64_t bits(double v) {
  std::uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

// max over (s, t) of table[s * kb + t] + ra[s] + rb[t] (kb = KB when KB > 0), by column maxima:
// independent lanes rather than one long dependency chain. column: kb scratch values (KB = 0).
template <int KB>
inline double table_max(const double* table, int ka, int kb, const double* ra, const double* rb,
                        double* column) {
#ifdef CCNN_AD3_VECTOR
  if constexpr (KB > 0) {  // pairs of columns, one vector register each (the last alone when KB is odd)
    constexpr int H = KB / 2, last = KB - 1;
    double2 pairs[H];
    double last_column = table[last] + ra[0];
    for (int h = 0; h < H; ++h) pairs[h] = load2(table + 2 * h) + ra[0];
    for (int s = 1; s < ka; ++s) {
      const double* row = table + static_cast<std::size_t>(s) * KB;
      for (int h = 0; h < H; ++h) {
        const double2 v = load2(row + 2 * h) + ra[s];
        pairs[h] = v > pairs[h] ? v : pairs[h];
      }
      if constexpr (KB % 2 == 1) {
        const double v = row[last] + ra[s];
        last_column = v > last_column ? v : last_column;
      }
    }
    double best = -std::numeric_limits<double>::infinity();
    for (int t = 0; t < 2 * H; ++t) {
      const double v = pairs[t / 2][t % 2] + rb[t];
      best = v > best ? v : best;
    }
    if constexpr (KB % 2 == 1) {
      const double v = last_column + rb[last];
      best = v > best ? v : best;
    }
    return best;
  }
#endif
  const int n = KB > 0 ? KB : kb;
  double fixed[KB > 0 ? KB : 1];
  if (KB > 0) column = fixed;
  for (int t = 0; t < n; ++t) column[t] = table[t] + ra[0];
  for (int s = 1; s < ka; ++s) {
    const double* row = table + static_cast<std::size_t>(s) * n;
    for (int t = 0; t < n; ++t) {
      const double v = row[t] + ra[s];
      column[t] = v > column[t] ? v : column[t];
    }
  }
  double best = -std::numeric_limits<double>::infinity();
  for (int t = 0; t < n; ++t) {
    const double v = column[t] + rb[t];
    best = v > best ? v : best;
  }
  return best;
}

// The first (row-major) configuration attaining table_max.
inline void table_argmax(const double* table, int ka, int kb, const double* ra, const double* rb,
                         int& best_s, int& best_t) {
  double best = -std::numeric_limits<double>::infinity();
  best_s = best_t = 0;
  for (int s = 0; s < ka; ++s) {
    const double* row = table + static_cast<std::size_t>(s) * kb;
    for (int t = 0; t < kb; ++t) {
      const double v = row[t] + ra[s] + rb[t];
      if (v > best) best = v, best_s = s, best_t = t;
    }
  }
}

// r = (xa, xb): ka + kb values (ka = kb = K when K > 0).
template <int K>
inline void concatenate(int ka, int kb, const double* __restrict xa, const double* __restrict xb,
                        double* __restrict r) {
#ifdef CCNN_AD3_VECTOR
  if constexpr (K > 0 && K % 2 == 0) {
    for (int h = 0; h < K / 2; ++h) {
      store2(r + 2 * h, load2(xa + 2 * h));
      store2(r + K + 2 * h, load2(xb + 2 * h));
    }
    return;
  }
#endif
  for (int j = 0; j < ka; ++j) r[j] = xa[j];
  for (int j = 0; j < kb; ++j) r[ka + j] = xb[j];
}

// AD3's averaging step for one variable with k (= K when K > 0) states and deg edges: p = the
// mean of the deg blocks of q. Returns the sum of squared changes of p; rise = its largest
// increase. sum: k scratch values.
template <int K>
inline double average_blocks(int k, int deg, const double* __restrict q, double* __restrict p,
                             double* __restrict sum, double& rise) {
  const double inv_degree = 1.0 / deg;
#ifdef CCNN_AD3_VECTOR
  if constexpr (K > 0) {  // pairs of states, and the last one alone when K is odd
    constexpr int H = K / 2, last = K - 1;
    double2 total[H];
    double total_last = q[last];
    for (int h = 0; h < H; ++h) total[h] = load2(q + 2 * h);
    for (int d = 1; d < deg; ++d) {
      for (int h = 0; h < H; ++h) total[h] += load2(q + d * K + 2 * h);
      if constexpr (K % 2 == 1) total_last += q[d * K + last];
    }
    double2 change = {0.0, 0.0}, largest = {0.0, 0.0};
    for (int h = 0; h < H; ++h) {
      const double2 value = total[h] * inv_degree;
      const double2 diff = value - load2(p + 2 * h);
      change += diff * diff;
      largest = diff > largest ? diff : largest;
      store2(p + 2 * h, value);
    }
    double squares = change[0] + change[1], most = largest[0] > largest[1] ? largest[0] : largest[1];
    if constexpr (K % 2 == 1) {
      const double value = total_last * inv_degree, diff = value - p[last];
      squares += diff * diff;
      most = diff > most ? diff : most;
      p[last] = value;
    }
    rise = most;
    return squares;
  }
#endif
  const int n = K > 0 ? K : k;
  for (int s = 0; s < n; ++s) sum[s] = q[s];
  for (int d = 1; d < deg; ++d) {
    for (int s = 0; s < n; ++s) sum[s] += q[d * n + s];
  }
  double change = 0.0, largest = 0.0;
  for (int s = 0; s < n; ++s) {
    const double value = sum[s] * inv_degree;
    const double diff = value - p[s];
    change += diff * diff;
    largest = diff > largest ? diff : largest;
    p[s] = value;
  }
  rise = largest;
  return change;
}

// AD3's dual update for one variable's deg edge ends, with their next subproblem inputs:
// lambda -= step (q - p), x = p + (share + lambda) * scale. Sets dirty[edge] for the edges whose
// input x changed bitwise; returns the sum of squared (q - p).
template <int K>
inline double update_blocks(int k, int deg, const double* __restrict p, const double* __restrict share,
                            const double* __restrict q, double step, double scale,
                            double* __restrict lambda, double* __restrict x,
                            const Graph::Incidence* incident, char* dirty) {
#ifdef CCNN_AD3_VECTOR
  if constexpr (K > 0) {  // pairs of states, and the last one alone when K is odd
    constexpr int H = K / 2, last = K - 1;
    double2 pv[H], base[H];
    for (int h = 0; h < H; ++h) {
      pv[h] = load2(p + 2 * h);
      base[h] = load2(share + 2 * h);
    }
    double2 squares = {0.0, 0.0};
    double squares_last = 0.0;
    for (int d = 0; d < deg; ++d) {
      int64x2 changed = {0, 0};
      for (int h = 0; h < H; ++h) {
        const int j = d * K + 2 * h;
        const double2 diff = load2(q + j) - pv[h];
        squares += diff * diff;
        const double2 l = load2(lambda + j) - step * diff;
        store2(lambda + j, l);
        const double2 input = pv[h] + (base[h] + l) * scale;
        changed |= (int64x2)input ^ (int64x2)load2(x + j);  // a vector cast reinterprets the bits
        store2(x + j, input);
      }
      std::uint64_t changed_last = 0;
      if constexpr (K % 2 == 1) {
        const int j = d * K + last;
        const double diff = q[j] - p[last];
        squares_last += diff * diff;
        lambda[j] -= step * diff;
        const double input = p[last] + (share[last] + lambda[j]) * scale;
        changed_last = bits(input) ^ bits(x[j]);
        x[j] = input;
      }
      if ((changed[0] | changed[1] | changed_last) != 0) dirty[incident[d].edge] = 1;
    }
    return squares[0] + squares[1] + squares_last;
  }
#endif
  const int n = K > 0 ? K : k;
  double squares = 0.0;
  for (int d = 0; d < deg; ++d) {
    std::uint64_t changed = 0;
    for (int s = 0; s < n; ++s) {
      const int j = d * n + s;
      const double diff = q[j] - p[s];
      squares += diff * diff;
      lambda[j] -= step * diff;
      const double input = p[s] + (share[s] + lambda[j]) * scale;
      changed |= bits(input) ^ bits(x[j]);
      x[j] = input;
    }
    if (changed != 0) dirty[incident[d].edge] = 1;
  }
  return squares;
}

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
