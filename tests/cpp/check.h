// A minimal test harness for the C++ core's ctest programs (no external framework needed).
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace ccnn_test {
inline int& failures() {
  static int count = 0;
  return count;
}
}  // namespace ccnn_test

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++ccnn_test::failures();                                               \
    }                                                                        \
  } while (0)

// |actual - expected| <= atol + rtol * |expected|
#define CHECK_CLOSE(actual, expected, rtol, atol)                                      \
  do {                                                                                 \
    const double a_ = (actual), e_ = (expected);                                       \
    if (!(std::fabs(a_ - e_) <= (atol) + (rtol) * std::fabs(e_))) {                    \
      std::fprintf(stderr, "%s:%d: %s = %.17g, expected %.17g\n", __FILE__, __LINE__, \
                   #actual, a_, e_);                                                   \
      ++ccnn_test::failures();                                                         \
    }                                                                                  \
  } while (0)

#define TEST_MAIN_RETURN()                                                   \
  (ccnn_test::failures() == 0                                                \
       ? (std::printf("all checks passed\n"), 0)                             \
       : (std::fprintf(stderr, "%d check(s) failed\n", ccnn_test::failures()), 1))
