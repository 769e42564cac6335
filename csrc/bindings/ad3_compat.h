// The hot construction path of ccnn_decoder.ad3 (the reference AD3 Python API) as CPython types.
#pragma once

#include <Python.h>

#include <vector>

namespace ccnn::bindings {

// Adds PBinaryVariable, PMultiVariable, PFactor, PFactorSequence, PFactorTree,
// PFactorHeadAutomaton and FactorGraphBase to `module` (ccnn_decoder._decoder, whose tree_arcs
// and head_automaton_pairs must already be defined). Returns false with a Python error set.
bool add_ad3_compat_types(PyObject* module);

// A new list of Python floats (nullptr with an error set); exact 0.0 and 1.0 share two objects.
// Needs add_ad3_compat_types to have run.
PyObject* float_list(const std::vector<double>& values);

}  // namespace ccnn::bindings
