// ccnn_ext._C: the one place where the compiled ops are registered with torch and Python.
// Op schemas live in TORCH_LIBRARY(ccnn, ...) below; CPU and CUDA kernels register
// themselves with TORCH_LIBRARY_IMPL next to their implementations.
#include <torch/extension.h>

#include "copula/copula.h"

namespace {

bool built_with_cuda() {
#ifdef CCNN_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace

// Frank copula ops: shapes and dtypes of every argument are documented in csrc/copula/copula.h.
TORCH_LIBRARY(ccnn, m) {
  m.def("frank_copula(Tensor u, Tensor v, Tensor theta) -> Tensor");
  m.def("frank_copula_backward(Tensor grad, Tensor u, Tensor v, Tensor theta) -> (Tensor, Tensor, Tensor)");
  m.def("ordinal_logprob(Tensor z, str link) -> Tensor");
  m.def("ordinal_logprob_backward(Tensor grad, Tensor z, Tensor logp, str link) -> Tensor");
  m.def("pairwise_loglik(Tensor z, Tensor theta, Tensor edges, Tensor labels, str link) -> Tensor");
  m.def("pairwise_loglik_fwd(Tensor z, Tensor theta, Tensor edges, Tensor labels, str link) -> (Tensor, Tensor)");
  m.def("pairwise_loglik_bwd(Tensor grad, Tensor partials, Tensor z, Tensor edges, Tensor labels) -> (Tensor, Tensor)");
  m.def("pairwise_logtable(Tensor z, Tensor theta, Tensor edges, str link) -> Tensor");
  m.def("pairwise_logtable_backward(Tensor grad, Tensor z, Tensor theta, Tensor edges, str link) -> (Tensor, Tensor)");
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "ccnn compiled ops (Frank copula kernels)";
  m.def("built_with_cuda", &built_with_cuda, "True when the CUDA kernels were compiled in.");
  m.def("set_data_checks", &ccnn::copula::set_data_checks, py::arg("enabled"),
        "Turn the copula ops' data checks (finite, increasing z, label/edge ranges) on or off.");
  m.def("data_checks_enabled", &ccnn::copula::data_checks_enabled,
        "Whether the copula ops check their input data.");
  m.def("simd_level", &ccnn::copula::simd_level,
        "The SIMD version the CPU float32 copula kernels run (avx512, avx2, avx or base).");
}
