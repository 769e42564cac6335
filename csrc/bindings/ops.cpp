// ccnn_ext._C: the one place where the compiled ops are registered with torch and Python.
// Op schemas live in TORCH_LIBRARY(ccnn, ...) below; CPU and CUDA kernels register
// themselves with TORCH_LIBRARY_IMPL next to their implementations.
#include <torch/extension.h>

namespace {

bool built_with_cuda() {
#ifdef CCNN_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "ccnn compiled ops (Frank copula kernels)";
  m.def("built_with_cuda", &built_with_cuda, "True when the CUDA kernels were compiled in.");
}
