// C entry points over the launchers of csrc/copula's CUDA kernels, built for the host with the
// emulation of cuda_runtime.h (tests/test_cuda_emulation.py loads them with ctypes). Each mirrors
// the orchestration of copula_cuda.cpp (levels, then the table; workspace and scratch sizes) on
// host buffers, and returns the cudaError_t of its launches (0: success).
#include <cstdint>
#include <vector>

#include "copula/copula_kernels.h"
#include "copula/input_checks.h"
#include "entry.h"

namespace {

using ccnn::copula::Level;
using ccnn::copula::Link;
namespace cuda = ccnn::copula::cuda;

cuda::Sizes sizes(int64_t B, int64_t Q, int64_t L, int64_t E, int per_sample) {
  return {B, Q, L, E, per_sample != 0};
}

template <typename T>
std::vector<Level<T>> levels_of(const T* z, int64_t rows, int64_t L, int link, bool with_weights,
                                int* status) {
  std::vector<Level<T>> levels(static_cast<std::size_t>(rows * L));
  *status = cuda::ordinal_levels(z, levels.data(), rows, L, Link(link), with_weights, nullptr);
  return levels;
}

template <typename T>
int pairwise_logtable(const T* z, const T* theta, const int64_t* edges, T* out, int64_t B, int64_t Q,
                      int64_t L, int64_t E, int per_sample, int link) {
  int status = 0;
  const std::vector<Level<T>> levels = levels_of(z, B * Q, L, link, false, &status);
  if (status != 0) return status;
  return cuda::pairwise_logtable(levels.data(), theta, edges, out, sizes(B, Q, L, E, per_sample), nullptr);
}

template <typename T>
int pairwise_logtable_backward(const T* grad, const T* z, const T* theta, const int64_t* edges, T* grad_z,
                               T* grad_theta, int64_t B, int64_t Q, int64_t L, int64_t E, int per_sample,
                               int link) {
  int status = 0;
  const std::vector<Level<T>> levels = levels_of(z, B * Q, L, link, true, &status);
  if (status != 0) return status;
  const cuda::Sizes n = sizes(B, Q, L, E, per_sample);
  std::vector<T> scratch(static_cast<std::size_t>(B * E * 2 * (L - 1)));
  std::vector<char> workspace(cuda::incidence_workspace_bytes(n));
  return cuda::pairwise_logtable_backward(grad, levels.data(), theta, edges, workspace.data(), scratch.data(),
                                          grad_z, grad_theta, n, nullptr);
}

template <typename T>
int pairwise_loglik_bwd(const T* grad, const T* partials, const int64_t* edges, const int64_t* labels,
                        T* grad_z, T* grad_theta, int64_t B, int64_t Q, int64_t L, int64_t E, int per_sample) {
  const cuda::Sizes n = sizes(B, Q, L, E, per_sample);
  std::vector<char> workspace(cuda::incidence_workspace_bytes(n));
  return cuda::pairwise_loglik_bwd(grad, partials, edges, labels, workspace.data(), grad_z, grad_theta, n,
                                   nullptr);
}

template <typename T>
int validate_pairwise(const T* z, const T* theta, int64_t theta_numel, const int64_t* edges,
                      const int64_t* labels, int64_t B, int64_t Q, int64_t L, int64_t E, int per_sample,
                      int64_t* first) {
  for (int k = 0; k < ccnn::copula::kNumInputErrors; ++k) first[k] = ccnn::copula::kNoError;
  return cuda::validate_pairwise(z, theta, theta_numel, edges, labels, sizes(B, Q, L, E, per_sample), first,
                                 nullptr);
}

template <typename T>
int validate_frank(const T* u, const T* v, const T* theta, int64_t count, int64_t* first) {
  for (int k = 0; k < ccnn::copula::kNumInputErrors; ++k) first[k] = ccnn::copula::kNoError;
  return cuda::validate_frank(u, v, theta, count, first, nullptr);
}

}  // namespace

#define CCNN_EMU_ENTRIES(T, suffix)                                                                         \
  extern "C" int frank_copula_##suffix(const T* u, const T* v, const T* theta, T* out, int64_t count) {     \
    return cuda::frank_copula(u, v, theta, out, count, nullptr);                                            \
  }                                                                                                         \
  extern "C" int frank_copula_backward_##suffix(const T* grad, const T* u, const T* v, const T* theta,     \
                                                T* gu, T* gv, T* gt, int64_t count) {                       \
    return cuda::frank_copula_backward(grad, u, v, theta, gu, gv, gt, count, nullptr);                      \
  }                                                                                                         \
  extern "C" int ordinal_logprob_##suffix(const T* z, T* out, int64_t rows, int64_t L, int link) {          \
    return cuda::ordinal_logprob(z, out, rows, L, Link(link), nullptr);                                     \
  }                                                                                                         \
  extern "C" int ordinal_logprob_backward_##suffix(const T* grad, const T* z, const T* logp, T* grad_z,    \
                                                   int64_t rows, int64_t L, int link) {                     \
    return cuda::ordinal_logprob_backward(grad, z, logp, grad_z, rows, L, Link(link), nullptr);             \
  }                                                                                                         \
  extern "C" int pairwise_loglik_##suffix(const T* z, const T* theta, const int64_t* edges,                \
                                          const int64_t* labels, T* out, T* partials, int64_t B, int64_t Q, \
                                          int64_t L, int64_t E, int per_sample, int link) {                 \
    return cuda::pairwise_loglik(z, theta, edges, labels, out, partials, sizes(B, Q, L, E, per_sample),     \
                                 Link(link), nullptr);                                                      \
  }                                                                                                         \
  extern "C" int pairwise_loglik_bwd_##suffix(const T* grad, const T* partials, const int64_t* edges,      \
                                              const int64_t* labels, T* grad_z, T* grad_theta, int64_t B,   \
                                              int64_t Q, int64_t L, int64_t E, int per_sample) {            \
    return pairwise_loglik_bwd(grad, partials, edges, labels, grad_z, grad_theta, B, Q, L, E, per_sample); \
  }                                                                                                         \
  extern "C" int pairwise_logtable_##suffix(const T* z, const T* theta, const int64_t* edges, T* out,      \
                                            int64_t B, int64_t Q, int64_t L, int64_t E, int per_sample,     \
                                            int link) {                                                     \
    return pairwise_logtable(z, theta, edges, out, B, Q, L, E, per_sample, link);                          \
  }                                                                                                         \
  extern "C" int pairwise_logtable_backward_##suffix(const T* grad, const T* z, const T* theta,            \
                                                     const int64_t* edges, T* grad_z, T* grad_theta,        \
                                                     int64_t B, int64_t Q, int64_t L, int64_t E,            \
                                                     int per_sample, int link) {                            \
    return pairwise_logtable_backward(grad, z, theta, edges, grad_z, grad_theta, B, Q, L, E, per_sample,   \
                                      link);                                                                \
  }                                                                                                         \
  extern "C" int validate_pairwise_##suffix(const T* z, const T* theta, int64_t theta_numel,               \
                                            const int64_t* edges, const int64_t* labels, int64_t B,         \
                                            int64_t Q, int64_t L, int64_t E, int per_sample,                \
                                            int64_t* first) {                                               \
    return validate_pairwise(z, theta, theta_numel, edges, labels, B, Q, L, E, per_sample, first);         \
  }                                                                                                         \
  extern "C" int validate_frank_##suffix(const T* u, const T* v, const T* theta, int64_t count,            \
                                         int64_t* first) {                                                  \
    return validate_frank(u, v, theta, count, first);                                                       \
  }

CCNN_EMU_ENTRIES(float, f32)
CCNN_EMU_ENTRIES(double, f64)
