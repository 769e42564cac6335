// The C entry points of entry.cpp (the emulated CUDA launchers, one per op and dtype suffix f32 /
// f64), declared once for entry.cpp and the C++ test; tests/test_cuda_emulation.py calls the same
// ones through ctypes.
#pragma once

#include <cstdint>

#define CCNN_EMU_DECLARE(T, suffix)                                                                              \
  extern "C" int frank_copula_##suffix(const T*, const T*, const T*, T*, int64_t);                              \
  extern "C" int frank_copula_backward_##suffix(const T*, const T*, const T*, const T*, T*, T*, T*, int64_t);   \
  extern "C" int ordinal_logprob_##suffix(const T*, T*, int64_t, int64_t, int);                                 \
  extern "C" int ordinal_logprob_backward_##suffix(const T*, const T*, const T*, T*, int64_t, int64_t, int);    \
  extern "C" int pairwise_loglik_##suffix(const T*, const T*, const int64_t*, const int64_t*, T*, T*, int64_t,  \
                                          int64_t, int64_t, int64_t, int, int);                                 \
  extern "C" int pairwise_loglik_bwd_##suffix(const T*, const T*, const int64_t*, const int64_t*, T*, T*,       \
                                              int64_t, int64_t, int64_t, int64_t, int);                         \
  extern "C" int pairwise_logtable_##suffix(const T*, const T*, const int64_t*, T*, int64_t, int64_t, int64_t,  \
                                            int64_t, int, int);                                                 \
  extern "C" int pairwise_logtable_backward_##suffix(const T*, const T*, const T*, const int64_t*, T*, T*,      \
                                                     int64_t, int64_t, int64_t, int64_t, int, int);             \
  extern "C" int validate_pairwise_##suffix(const T*, const T*, int64_t, const int64_t*, const int64_t*,        \
                                            int64_t, int64_t, int64_t, int64_t, int, int64_t*);                 \
  extern "C" int validate_frank_##suffix(const T*, const T*, const T*, int64_t, int64_t*);

CCNN_EMU_DECLARE(float, f32)
CCNN_EMU_DECLARE(double, f64)
