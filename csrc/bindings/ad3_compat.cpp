// ccnn_decoder.ad3's variables, factors and the graph's create_* / declare_factor methods as CPython
// types (raw C API, METH_FASTCALL): building a graph from Python costs little more than the calls.
// The data model is that of python/ccnn_decoder/ad3/factor_graph.py, which subclasses
// FactorGraphBase: the graph holds Python lists (_variables, _kinds, _scores, _factors, _specs,
// _extras, _declared) that _decoder.solve_general_graph reads; a variable holds its graph's scores
// and its units (indices into _scores). Errors (types and messages) are those of the Python classes they
// replace. Variables and factors refer to their graph weakly (graph.self_ref): a graph forms no
// reference cycle, so it is freed when its last reference goes, without the cyclic GC.
#include "bindings/ad3_compat.h"

#include <structmember.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <vector>

#include "ad3/factor_graph.h"

namespace ccnn::bindings {
namespace {

// ---- shared objects ----

PyObject* g_zero;                    // 0.0: the score of a new unit
PyObject* g_one;                     // 1.0
PyObject* g_binary;                  // 0: the kind of a binary variable
PyObject* g_no_scores;               // (): the additional scores of a factor without any
PyObject* g_tree_arcs;               // _decoder.tree_arcs
PyObject* g_head_automaton_pairs;    // _decoder.head_automaton_pairs
PyObject* g_check_size;              // "_check_size"
PyObject* g_copy;                    // "copy"

// The solver's factor type codes (csrc/ad3/factor_graph.h, FactorType) are the indices.
constexpr const char* kKinds[] = {"dense", "xor", "atmostone", "or", "xorout", "orout", "andout", "imply",
                                  "budget", "knapsack", "pair", "sequence", "tree", "headautomaton",
                                  "binarytree", "generaltree", "sequencecompressor", "compressionbudget",
                                  "generaltreecounts", "binarytreecounts", "oracle"};
constexpr int kNumKinds = sizeof(kKinds) / sizeof(kKinds[0]);
constexpr int kDense = 0, kPair = 10, kSequence = 11, kTree = 12, kHeadAutomaton = 13;
constexpr int kFirstDeclared = kSequence;  // the kinds from here on are bound by declare_factor
PyObject* g_kind_names[kNumKinds];   // interned

// create_factor_logic's names and their kinds. XOROUT is the reference's (AD3's
// CreateFactorXOROUT): an XOR (exactly one literal true) whose last literal is negated, so the
// output is 1 exactly when one input is, and at most one input may be; it is not the parity
// factor "xorout" of the native API.
// negate_last: the last literal's negation flag is flipped; least: the fewest variables.
constexpr struct { const char* name; int kind; bool negate_last; int least; } kLogic[] = {
    {"XOR", 1, false, 1},  {"XOROUT", 1, true, 2}, {"ATMOSTONE", 2, false, 1}, {"OR", 3, false, 1},
    {"OROUT", 5, false, 2}, {"ANDOUT", 6, false, 2}, {"IMPLY", 7, false, 2}};

// A factor kind's code, or -1 (no error set) for anything else.
int kind_code(PyObject* kind) {
  if (kind == nullptr || !PyUnicode_Check(kind)) return -1;
  for (int i = 0; i < kNumKinds; ++i) {
    if (kind == g_kind_names[i] || PyUnicode_Compare(kind, g_kind_names[i]) == 0) return i;
  }
  return -1;
}

struct Numpy {
  PyObject* asarray;
  PyObject* ndim;
  PyObject* float64;
  PyObject* integer;
  PyObject* ndarray;
};

// numpy's few objects this file needs, imported on first use; nullptr with an error set.
const Numpy* numpy() {
  static Numpy np{};
  if (np.ndarray != nullptr) return &np;
  PyObject* module = PyImport_ImportModule("numpy");
  if (module == nullptr) return nullptr;
  Numpy got{PyObject_GetAttrString(module, "asarray"), PyObject_GetAttrString(module, "ndim"),
            PyObject_GetAttrString(module, "float64"), PyObject_GetAttrString(module, "integer"),
            PyObject_GetAttrString(module, "ndarray")};
  Py_DECREF(module);
  if (!got.asarray || !got.ndim || !got.float64 || !got.integer || !got.ndarray) return nullptr;
  np = got;
  return &np;
}

const char* type_name(PyObject* obj) { return _PyType_Name(Py_TYPE(obj)); }

bool is_str_or_bytes(PyObject* obj) { return PyUnicode_Check(obj) || PyBytes_Check(obj); }

// 1: an int or a numpy integer, not a bool; 0: anything else; -1: error.
int is_integer(PyObject* obj) {
  if (PyLong_CheckExact(obj)) return 1;
  if (PyBool_Check(obj)) return 0;
  if (PyLong_Check(obj)) return 1;
  const Numpy* np = numpy();
  return np == nullptr ? -1 : PyObject_IsInstance(obj, np->integer);
}

// int(value) of an int or numpy integer as Py_ssize_t; TypeError "{name}: expected {expected}, got
// {value!r}" for anything else. false with an error set.
bool integer_arg(PyObject* value, const char* name, Py_ssize_t& out, const char* expected = "an int") {
  const int ok = is_integer(value);
  if (ok <= 0) {
    if (ok == 0) PyErr_Format(PyExc_TypeError, "%s: expected %s, got %R", name, expected, value);
    return false;
  }
  PyObject* index = PyNumber_Index(value);
  if (index == nullptr) return false;
  out = PyLong_AsSsize_t(index);
  Py_DECREF(index);
  if (out == -1 && PyErr_Occurred()) {
    if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
      PyErr_Clear();
      PyErr_Format(PyExc_OverflowError, "%s: %R is out of range", name, value);
    }
    return false;
  }
  return true;
}

// float(value) as a new reference (a float itself when exact); TypeError "{name}: expected a real
// number, got {value!r}" for bools, strings, bytes, None and what float() refuses.
PyObject* real_number(PyObject* value, const char* name) {
  if (PyFloat_CheckExact(value)) return Py_NewRef(value);
  if (!PyBool_Check(value) && !is_str_or_bytes(value) && value != Py_None) {
    const double x = PyFloat_AsDouble(value);
    if (!(x == -1.0 && PyErr_Occurred())) return PyFloat_FromDouble(x);
    if (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_ValueError)) return nullptr;
    PyErr_Clear();
  }
  PyErr_Format(PyExc_TypeError, "%s: expected a real number, got %R", name, value);
  return nullptr;
}

// Opens the buffer of a float64 ndarray. 1: opened (release it); 0: not one; -1: error.
int float64_array_view(PyObject* obj, Py_buffer& view) {
  const Numpy* np = numpy();
  if (np == nullptr) return -1;
  if (Py_TYPE(obj) != reinterpret_cast<PyTypeObject*>(np->ndarray)) return 0;
  if (PyObject_GetBuffer(obj, &view, PyBUF_RECORDS_RO) < 0) {
    PyErr_Clear();  // (not a readable buffer: numpy's general path)
    return 0;
  }
  if (view.format != nullptr && std::strcmp(view.format, "d") == 0) return 1;
  PyBuffer_Release(&view);
  return 0;
}

// Reads a float64 ndarray (1-d; or any shape, C-contiguous, when `flatten`) or a list of floats.
// 1: read; 0: not such an object (nothing read); -1: error.
int read_plain_floats(PyObject* obj, bool flatten, std::vector<double>& out) {
  if (PyList_CheckExact(obj)) {
    const Py_ssize_t n = PyList_GET_SIZE(obj);
    for (Py_ssize_t i = 0; i < n; ++i) {
      if (!PyFloat_Check(PyList_GET_ITEM(obj, i))) return 0;
    }
    out.resize(n);
    for (Py_ssize_t i = 0; i < n; ++i) out[i] = PyFloat_AS_DOUBLE(PyList_GET_ITEM(obj, i));
    return 1;
  }
  Py_buffer view;
  const int opened = float64_array_view(obj, view);
  if (opened <= 0) return opened;
  int read = 0;
  const char* data = static_cast<const char*>(view.buf);
  if (view.ndim == 1) {
    out.resize(view.shape[0]);
    for (Py_ssize_t i = 0; i < view.shape[0]; ++i) std::memcpy(&out[i], data + i * view.strides[0], sizeof(double));
    read = 1;
  } else if (flatten && PyBuffer_IsContiguous(&view, 'C')) {
    out.resize(view.len / sizeof(double));
    std::memcpy(out.data(), data, view.len);
    read = 1;
  }
  PyBuffer_Release(&view);
  return read;
}

// np.asarray(obj, np.float64) for numbers only: TypeError naming `name` for None, strings, ragged
// nesting and arrays of other kinds than bool, int and float (numpy itself would turn None into NaN
// and "1.5" into 1.5). nullptr with an error set.
PyObject* as_real_array(PyObject* obj, const char* name) {
  const Numpy* np = numpy();
  if (np == nullptr) return nullptr;
  if (obj == Py_None || is_str_or_bytes(obj)) {
    return PyErr_Format(PyExc_TypeError, "%s: expected a sequence of real numbers, got %R", name, obj);
  }
  PyObject* array = PyObject_CallOneArg(np->asarray, obj);
  if (array == nullptr) {
    if (PyErr_ExceptionMatches(PyExc_TypeError) || PyErr_ExceptionMatches(PyExc_ValueError)) {
      PyErr_Clear();
      PyErr_Format(PyExc_TypeError, "%s: expected a sequence of real numbers", name);
    }
    return nullptr;
  }
  // (an empty array of any kind is an empty sequence of numbers)
  PyObject* dtype = PyObject_GetAttrString(array, "dtype");
  PyObject* kind = dtype ? PyObject_GetAttrString(dtype, "kind") : nullptr;
  PyObject* size = kind ? PyObject_GetAttrString(array, "size") : nullptr;
  const char* code = size ? PyUnicode_AsUTF8(kind) : nullptr;
  const bool refused = code != nullptr && (code[0] == '\0' || std::strchr("biuf", code[0]) == nullptr) &&
                       PyObject_IsTrue(size) == 1;
  if (refused) PyErr_Format(PyExc_TypeError, "%s: expected real numbers, got an array of dtype %S", name, dtype);
  Py_XDECREF(size);
  Py_XDECREF(kind);
  Py_XDECREF(dtype);
  if (code == nullptr || refused) {
    Py_DECREF(array);
    return nullptr;
  }
  PyObject* args[] = {array, np->float64};
  PyObject* floats = PyObject_Vectorcall(np->asarray, args, 2, nullptr);
  Py_DECREF(array);
  return floats;
}

// The values of np.asarray(obj, dtype=np.float64).reshape(-1) for numbers only (as_real_array),
// read without numpy when `obj` is a float64 array or a list of floats. false with an error set.
bool read_flat_floats(PyObject* obj, const char* name, std::vector<double>& out) {
  const int plain = read_plain_floats(obj, true, out);
  if (plain != 0) return plain > 0;
  PyObject* array = as_real_array(obj, name);
  if (array == nullptr) return false;
  PyObject* flat = PyObject_CallMethod(array, "reshape", "i", -1);
  Py_DECREF(array);
  if (flat == nullptr) return false;
  const int read = read_plain_floats(flat, true, out);
  Py_DECREF(flat);
  if (read == 0) PyErr_Format(PyExc_TypeError, "%s: expected a sequence of real numbers", name);
  return read > 0;
}

// A new list (or tuple) of `values` made Python objects by `make`.
template <bool kTuple, class T, class Make>
PyObject* sequence_of(const std::vector<T>& values, Make make) {
  const Py_ssize_t n = static_cast<Py_ssize_t>(values.size());
  PyObject* seq = kTuple ? PyTuple_New(n) : PyList_New(n);
  if (seq == nullptr) return nullptr;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* x = make(values[i]);
    if (x == nullptr) {
      Py_DECREF(seq);
      return nullptr;
    }
    if (kTuple) {
      PyTuple_SET_ITEM(seq, i, x);
    } else {
      PyList_SET_ITEM(seq, i, x);
    }
  }
  return seq;
}

}  // namespace

// Exact 0.0 and 1.0 (most posteriors: every value of a certified solution) share two float
// objects, which saves an allocation per value.
PyObject* float_list(const std::vector<double>& values) {
  return sequence_of<false>(values, [](double x) {
    if (x == 1.0) return Py_NewRef(g_one);
    if (x == 0.0 && !std::signbit(x)) return Py_NewRef(g_zero);
    return PyFloat_FromDouble(x);
  });
}

namespace {

PyObject* int_list(const std::vector<Py_ssize_t>& values) { return sequence_of<false>(values, PyLong_FromSsize_t); }
PyObject* int_tuple(const std::vector<Py_ssize_t>& values) { return sequence_of<true>(values, PyLong_FromSsize_t); }

PyObject* zeros_list(Py_ssize_t n) {
  PyObject* list = PyList_New(n);
  if (list == nullptr) return nullptr;
  for (Py_ssize_t i = 0; i < n; ++i) PyList_SET_ITEM(list, i, Py_NewRef(g_zero));
  return list;
}

// A flat list of floats (a float64 array or a list of floats read directly); TypeError naming
// `name` for anything that is not a flat sequence of real numbers.
PyObject* real_list(PyObject* values, const char* name) {
  std::vector<double> out;
  const int plain = read_plain_floats(values, false, out);
  if (plain != 0) return plain > 0 ? float_list(out) : nullptr;
  PyObject* array = as_real_array(values, name);
  if (array == nullptr) return nullptr;
  const int read = read_plain_floats(array, false, out);
  if (read == 0) {
    PyObject* shape = PyObject_GetAttrString(array, "shape");
    if (shape != nullptr) {
      PyErr_Format(PyExc_TypeError, "%s: expected a flat sequence of real numbers, got shape %S", name, shape);
      Py_DECREF(shape);
    }
  }
  Py_DECREF(array);
  return read > 0 ? float_list(out) : nullptr;
}

bool has_duplicates(std::vector<Py_ssize_t> values) {
  std::sort(values.begin(), values.end());
  return std::adjacent_find(values.begin(), values.end()) != values.end();
}

// Binds a METH_FASTCALL | METH_KEYWORDS call's arguments to `names`, the first `required` of
// them mandatory; absent optional ones are left nullptr.
template <int N>
bool bind_args(const char* function, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
               const char* const (&names)[N], int required, PyObject* (&out)[N]) {
  if (nargs > N) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments (%zd given)", function, N, nargs);
    return false;
  }
  for (int i = 0; i < N; ++i) out[i] = i < nargs ? args[i] : nullptr;
  const Py_ssize_t num_keywords = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  for (Py_ssize_t j = 0; j < num_keywords; ++j) {
    PyObject* key = PyTuple_GET_ITEM(kwnames, j);
    int i = 0;
    while (i < N && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) ++i;
    if (i == N) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", function, key);
      return false;
    }
    if (out[i] != nullptr) {
      PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", function, names[i]);
      return false;
    }
    out[i] = args[nargs + j];
  }
  for (int i = 0; i < required; ++i) {
    if (out[i] == nullptr) {
      PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s' (pos %d)", function, names[i], i + 1);
      return false;
    }
  }
  return true;
}

// ---- the types ----

// A method table's function (CPython's tables hold every signature as one pointer type).
template <class F>
PyCFunction cfunc(F* f) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f));
}

struct Graph {
  PyObject_HEAD
  PyObject* self_ref;   // a weak reference to itself, shared by its variables and factors
  PyObject* weakrefs;
  PyObject* variables;  // PBinaryVariable or PMultiVariable, creation order
  PyObject* kinds;      // per variable: 0 (binary) or its number of states
  PyObject* scores;     // per unit: its log-potential
  PyObject* factors;
  PyObject* specs;      // per factor: the solver's tuple (declared factors: made at solve time)
  PyObject* extras;     // per factor: its additional log-potentials (declared: taken at solve time)
  PyObject* declared;   // indices of the declared factors
  PyObject* last_table;  // the additional scores of the last dense factor (nullptr: none)
};

// A variable's graph: a weak reference to it and its scores (both nullptr: none).
struct GraphLink {
  PyObject* ref;
  PyObject* scores;
};

struct BinaryVariable {
  PyObject_HEAD
  GraphLink graph;   // none: its log-potential is `own`
  Py_ssize_t unit;
  double own;
};

struct MultiVariable {
  PyObject_HEAD
  GraphLink graph;
  Py_ssize_t begin;  // its states are the units begin .. begin + k - 1
  Py_ssize_t k;
  Py_ssize_t index;  // in its graph's variables
  PyObject* states;  // PBinaryVariable per state, made on demand (nullptr: none yet)
};

// A factor's attributes (the names of factor_graph.py's PFactor with a leading underscore);
// nullptr reads as an AttributeError, as an attribute never set.
struct Factor {
  PyObject_HEAD
  PyObject* kind;
  PyObject* links;       // PBinaryVariable (units) or, for dense, PMultiVariable
  PyObject* graph_ref;   // a weak reference to its graph, nullptr: none
  PyObject* additional;  // its additional log-potentials
  PyObject* link_units;  // the units of the links, once declared in a graph
  PyObject* negated;
  PyObject* budget;
  PyObject* costs;
  PyObject* num_states;  // per position / node
  PyObject* num_nodes;
  PyObject* arcs;
  PyObject* parents;
  PyObject* counts;      // compression budget: per position
  PyObject* positions;   // compression budget: the bigram positions
  PyObject* has_count_scores;  // binary tree with counts: per node
  PyObject* initialized;
  PyObject* length;      // head automaton, sequence compressor
};

PyTypeObject GraphType, BinaryVariableType, MultiVariableType, FactorType, SequenceType, TreeType,
    HeadAutomatonType;

Graph* as_graph(PyObject* obj) { return reinterpret_cast<Graph*>(obj); }
Factor* as_factor(PyObject* obj) { return reinterpret_cast<Factor*>(obj); }

// Replaces a reference-holding field.
void set_field(PyObject*& field, PyObject* value) { Py_XSETREF(field, Py_NewRef(value)); }

GraphLink link_to(Graph* graph) {
  if (graph == nullptr) return {nullptr, nullptr};
  return {Py_NewRef(graph->self_ref), Py_NewRef(graph->scores)};
}

void release(GraphLink& link) {
  Py_CLEAR(link.ref);
  Py_CLEAR(link.scores);
}

// The graph a weak reference (or nullptr) points to, None when none or gone: a new reference
// (nullptr with an exception on error).
PyObject* graph_of(PyObject* ref) {
  if (ref == nullptr) return Py_NewRef(Py_None);
#if PY_VERSION_HEX >= 0x030D0000
  PyObject* graph = nullptr;  // (PyWeakref_GetObject is deprecated from 3.13)
  if (PyWeakref_GetRef(ref, &graph) < 0) return nullptr;
  return graph != nullptr ? graph : Py_NewRef(Py_None);
#else
  return Py_NewRef(PyWeakref_GetObject(ref));
#endif
}

// The `_graph` attribute of variables.
PyObject* get_graph(PyObject* self, void* offset) {
  return graph_of(*reinterpret_cast<PyObject**>(reinterpret_cast<char*>(self) + reinterpret_cast<std::size_t>(offset)));
}

// What Python's `self._graph._unit_degree(unit)` counts (0 without a graph).
PyObject* unit_degree(const GraphLink& link, Py_ssize_t unit) {
  PyObject* graph = graph_of(link.ref);
  if (graph == nullptr) return nullptr;
  PyObject* degree = graph == Py_None ? PyLong_FromLong(0) : PyObject_CallMethod(graph, "_unit_degree", "n", unit);
  Py_DECREF(graph);
  return degree;
}

// ---- PBinaryVariable ----

// A variable holds no reference that could lead back to it: no GC support needed.
PyObject* new_binary_variable(GraphLink graph, Py_ssize_t unit) {
  BinaryVariable* v = PyObject_New(BinaryVariable, &BinaryVariableType);
  if (v == nullptr) {
    release(graph);
    return nullptr;
  }
  v->graph = graph;
  v->unit = unit;
  v->own = 0.0;
  return reinterpret_cast<PyObject*>(v);
}

// graph: None (out: nullptr) or a FactorGraphBase; false with a TypeError otherwise.
bool graph_arg(PyObject* graph, Graph*& out) {
  if (graph == nullptr || graph == Py_None) {
    out = nullptr;
    return true;
  }
  if (!PyObject_TypeCheck(graph, &GraphType)) {
    PyErr_Format(PyExc_TypeError, "graph: expected a PFactorGraph or None, got %s", type_name(graph));
    return false;
  }
  out = as_graph(graph);
  return true;
}

PyObject* binary_new(PyTypeObject*, PyObject* args, PyObject* kwargs) {
  static const char* names[] = {"graph", "unit", nullptr};
  PyObject* graph_obj = nullptr;
  Py_ssize_t unit = -1;
  Graph* graph;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|On", const_cast<char**>(names), &graph_obj, &unit) ||
      !graph_arg(graph_obj, graph)) {
    return nullptr;
  }
  return new_binary_variable(link_to(graph), unit);
}

void binary_dealloc(BinaryVariable* self) {
  release(self->graph);
  PyObject_Free(self);
}

PyObject* binary_get_log_potential(BinaryVariable* self, PyObject*) {
  if (self->graph.scores == nullptr) return PyFloat_FromDouble(self->own);
  return Py_XNewRef(PyList_GetItem(self->graph.scores, self->unit));
}

PyObject* binary_set_log_potential(BinaryVariable* self, PyObject* value) {
  PyObject* x = real_number(value, "log_potential");
  if (x == nullptr) return nullptr;
  if (self->graph.scores == nullptr) {
    self->own = PyFloat_AS_DOUBLE(x);
    Py_DECREF(x);
  } else if (PyList_SetItem(self->graph.scores, self->unit, x) < 0) {
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* binary_get_id(BinaryVariable* self, PyObject*) { return PyLong_FromSsize_t(self->unit); }

PyObject* binary_get_degree(BinaryVariable* self, PyObject*) { return unit_degree(self->graph, self->unit); }

PyMethodDef binary_methods[] = {
    {"get_log_potential", cfunc(binary_get_log_potential), METH_NOARGS, nullptr},
    {"set_log_potential", cfunc(binary_set_log_potential), METH_O, nullptr},
    {"get_id", cfunc(binary_get_id), METH_NOARGS, nullptr},
    {"get_degree", cfunc(binary_get_degree), METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef binary_getset[] = {
    {"_graph", get_graph, nullptr, nullptr, reinterpret_cast<void*>(offsetof(BinaryVariable, graph.ref))},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyMemberDef binary_members[] = {
    {"_unit", T_PYSSIZET, offsetof(BinaryVariable, unit), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

// ---- PMultiVariable ----

PyObject* new_multi_variable(Graph* graph, Py_ssize_t begin, Py_ssize_t k, Py_ssize_t index) {
  MultiVariable* v = PyObject_New(MultiVariable, &MultiVariableType);
  if (v == nullptr) return nullptr;
  v->graph = link_to(graph);
  v->begin = begin;
  v->k = k;
  v->index = index;
  v->states = nullptr;
  return reinterpret_cast<PyObject*>(v);
}

PyObject* multi_new(PyTypeObject*, PyObject* args, PyObject* kwargs) {
  static const char* names[] = {"graph", "begin", "num_states", "index", nullptr};
  PyObject* graph_obj = nullptr;
  Py_ssize_t begin = 0, k = 0, index = -1;
  Graph* graph;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|Onnn", const_cast<char**>(names), &graph_obj, &begin, &k,
                                   &index) ||
      !graph_arg(graph_obj, graph)) {
    return nullptr;
  }
  return new_multi_variable(graph, begin, k, index);
}

void multi_dealloc(MultiVariable* self) {
  release(self->graph);
  Py_CLEAR(self->states);
  PyObject_Free(self);
}

// A state index in [0, k): TypeError for a non-integer, IndexError out of bounds.
bool state_index(PyObject* i, Py_ssize_t k, Py_ssize_t& out) {
  PyObject* index;
  if (PyLong_CheckExact(i)) {
    index = Py_NewRef(i);
  } else {
    const int ok = is_integer(i);
    if (ok <= 0) {
      if (ok == 0) PyErr_Format(PyExc_TypeError, "state: expected an int, got %R", i);
      return false;
    }
    index = PyNumber_Index(i);
    if (index == nullptr) return false;
  }
  out = PyLong_AsSsize_t(index);
  if (out == -1 && PyErr_Occurred()) {
    if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
      Py_DECREF(index);
      return false;
    }
    PyErr_Clear();
  }
  if (out < 0 || out >= k || PyErr_Occurred()) {
    PyErr_Format(PyExc_IndexError, "State %S is out of bounds.", index);
    Py_DECREF(index);
    return false;
  }
  Py_DECREF(index);
  return true;
}

PyObject* multi_scores(MultiVariable* self) {
  if (self->graph.scores == nullptr) {
    PyErr_SetString(PyExc_AttributeError, "'NoneType' object has no attribute '_scores'");
    return nullptr;
  }
  return self->graph.scores;
}

Py_ssize_t multi_length(MultiVariable* self) { return self->k; }

PyObject* multi_state(MultiVariable* self, Py_ssize_t i) {
  if (self->states == nullptr) {
    self->states = PyList_New(self->k);
    if (self->states == nullptr) return nullptr;
    for (Py_ssize_t j = 0; j < self->k; ++j) PyList_SET_ITEM(self->states, j, Py_NewRef(Py_None));
  }
  PyObject* state = PyList_GET_ITEM(self->states, i);
  if (state == Py_None) {
    state = new_binary_variable({Py_XNewRef(self->graph.ref), Py_XNewRef(self->graph.scores)}, self->begin + i);
    if (state == nullptr) return nullptr;
    PyList_SET_ITEM(self->states, i, state);
    Py_DECREF(Py_None);
  }
  return Py_NewRef(state);
}

PyObject* multi_get_state(MultiVariable* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"i", "validate"};
  PyObject* bound[2];
  Py_ssize_t i;
  if (!bind_args("get_state", args, nargs, kwnames, names, 1, bound) || !state_index(bound[0], self->k, i)) {
    return nullptr;
  }
  return multi_state(self, i);
}

PyObject* multi_get_log_potential(MultiVariable* self, PyObject* i_obj) {
  Py_ssize_t i;
  if (!state_index(i_obj, self->k, i)) return nullptr;
  PyObject* scores = multi_scores(self);
  return scores == nullptr ? nullptr : Py_XNewRef(PyList_GetItem(scores, self->begin + i));
}

int multi_assign(MultiVariable* self, PyObject* i_obj, PyObject* value) {
  if (value == nullptr) {
    PyErr_SetString(PyExc_TypeError, "'PMultiVariable' object does not support item deletion");
    return -1;
  }
  Py_ssize_t i;
  if (!state_index(i_obj, self->k, i)) return -1;
  PyObject* scores = multi_scores(self);
  if (scores == nullptr) return -1;
  PyObject* x = real_number(value, "log_potential");
  return x == nullptr ? -1 : PyList_SetItem(scores, self->begin + i, x);
}

PyObject* multi_set_log_potential(MultiVariable* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_Format(PyExc_TypeError, "set_log_potential() takes exactly 2 arguments (%zd given)", nargs);
    return nullptr;
  }
  if (multi_assign(self, args[0], args[1]) < 0) return nullptr;
  Py_RETURN_NONE;
}

PyObject* multi_set_log_potentials(MultiVariable* self, PyObject* const* args, Py_ssize_t nargs,
                                   PyObject* kwnames) {
  static const char* const names[] = {"log_potentials", "validate"};
  PyObject* bound[2];
  std::vector<double> values;
  if (!bind_args("set_log_potentials", args, nargs, kwnames, names, 1, bound) ||
      !read_flat_floats(bound[0], "log_potentials", values)) {
    return nullptr;
  }
  if (static_cast<Py_ssize_t>(values.size()) != self->k) {
    PyErr_Format(PyExc_IndexError, "Expected buffer of length %zd", self->k);
    return nullptr;
  }
  PyObject* scores = multi_scores(self);
  if (scores == nullptr) return nullptr;
  for (Py_ssize_t i = 0; i < self->k; ++i) {
    PyObject* x = PyFloat_FromDouble(values[i]);
    if (x == nullptr || PyList_SetItem(scores, self->begin + i, x) < 0) return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* multi_get_num_states(MultiVariable* self, PyObject*) { return PyLong_FromSsize_t(self->k); }

PyObject* multi_units(MultiVariable* self, PyObject*) {
  return PyObject_CallFunction(reinterpret_cast<PyObject*>(&PyRange_Type), "nn", self->begin,
                               self->begin + self->k);
}

PyMethodDef multi_methods[] = {
    {"get_state", cfunc(multi_get_state), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"get_log_potential", cfunc(multi_get_log_potential), METH_O, nullptr},
    {"set_log_potential", cfunc(multi_set_log_potential), METH_FASTCALL, nullptr},
    {"set_log_potentials", cfunc(multi_set_log_potentials), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"get_num_states", cfunc(multi_get_num_states), METH_NOARGS, nullptr},
    {"_units", cfunc(multi_units), METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef multi_getset[] = {
    {"_graph", get_graph, nullptr, nullptr, reinterpret_cast<void*>(offsetof(MultiVariable, graph.ref))},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyMemberDef multi_members[] = {
    {"_begin", T_PYSSIZET, offsetof(MultiVariable, begin), READONLY, nullptr},
    {"_k", T_PYSSIZET, offsetof(MultiVariable, k), READONLY, nullptr},
    {"_index", T_PYSSIZET, offsetof(MultiVariable, index), READONLY, nullptr},
    {"_states", T_OBJECT, offsetof(MultiVariable, states), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyMappingMethods multi_mapping = {reinterpret_cast<lenfunc>(multi_length),
                                  reinterpret_cast<binaryfunc>(multi_get_log_potential),
                                  reinterpret_cast<objobjargproc>(multi_assign)};
// (iteration: the log-potentials, as a Python class with __getitem__ and __len__)
PyObject* multi_item(MultiVariable* self, Py_ssize_t i) {
  PyObject* index = PyLong_FromSsize_t(i);
  PyObject* value = index ? multi_get_log_potential(self, index) : nullptr;
  Py_XDECREF(index);
  return value;
}

PySequenceMethods multi_sequence = {reinterpret_cast<lenfunc>(multi_length), nullptr, nullptr,
                                    reinterpret_cast<ssizeargfunc>(multi_item)};

// ---- PFactor ----

// A factor with the class defaults of every attribute (kind, links and additional unset).
PyObject* alloc_factor(PyTypeObject* type) {
  PyObject* obj = type->tp_alloc(type, 0);
  if (obj == nullptr) return nullptr;
  Factor* f = as_factor(obj);
  PyObject* zero = PyLong_FromLong(0);
  f->link_units = Py_NewRef(Py_None);
  f->budget = Py_NewRef(zero);
  f->num_nodes = zero;
  for (PyObject** field : {&f->negated, &f->costs, &f->num_states, &f->arcs, &f->parents, &f->counts,
                           &f->positions, &f->has_count_scores}) {
    *field = Py_NewRef(g_no_scores);
  }
  f->initialized = Py_NewRef(Py_True);
  return obj;
}

PyObject* factor_new(PyTypeObject* type, PyObject*, PyObject*) { return alloc_factor(type); }

// A factor made by a create_* method: kind, links and additional scores (references stolen).
PyObject* created_factor(Graph* graph, int kind, PyObject* links, PyObject* additional) {
  PyObject* obj = alloc_factor(&FactorType);
  if (obj == nullptr) {
    Py_DECREF(links);
    Py_DECREF(additional);
    return nullptr;
  }
  Factor* f = as_factor(obj);
  f->kind = Py_NewRef(g_kind_names[kind]);
  f->links = links;
  f->additional = additional;
  f->graph_ref = Py_NewRef(graph->self_ref);
  return obj;
}

// PFactor(kind=None, links=(), negated=(), budget=0, costs=(), additional=()).
int factor_init(Factor* self, PyObject* args, PyObject* kwargs) {
  static const char* names[] = {"kind", "links", "negated", "budget", "costs", "additional", nullptr};
  PyObject *kind = Py_None, *links = g_no_scores, *negated = g_no_scores, *budget = nullptr,
           *costs = g_no_scores, *additional = g_no_scores;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOOOOO", const_cast<char**>(names), &kind, &links, &negated,
                                   &budget, &costs, &additional)) {
    return -1;
  }
  PyObject* links_list = PySequence_List(links);
  PyObject* negated_list = PySequence_List(negated);
  PyObject* costs_list = PySequence_List(costs);
  PyObject* additional_list = PySequence_List(additional);
  PyObject* additional_values = nullptr;
  if (additional_list != nullptr) {
    additional_values = PyList_GET_SIZE(additional_list) > 0 ? real_list(additional_list, "additional")
                                                              : Py_NewRef(additional_list);
  }
  const bool ok = links_list && negated_list && costs_list && additional_values;
  if (ok) {
    set_field(self->kind, kind);
    set_field(self->links, links_list);
    set_field(self->negated, negated_list);
    if (budget != nullptr) set_field(self->budget, budget);
    set_field(self->costs, costs_list);
    set_field(self->additional, additional_values);
  }
  Py_XDECREF(links_list);
  Py_XDECREF(negated_list);
  Py_XDECREF(costs_list);
  Py_XDECREF(additional_list);
  Py_XDECREF(additional_values);
  return ok ? 0 : -1;
}

// The fields but graph_ref (a property: the graph, or None).
#define FACTOR_FIELDS(APPLY)                                                                             \
  APPLY(kind) APPLY(links) APPLY(additional) APPLY(link_units) APPLY(negated) APPLY(budget) \
  APPLY(costs) APPLY(num_states) APPLY(num_nodes) APPLY(arcs) APPLY(parents) APPLY(counts)               \
  APPLY(positions) APPLY(has_count_scores) APPLY(initialized) APPLY(length)

int factor_traverse(Factor* self, visitproc visit, void* arg) {
#define VISIT_FIELD(name) Py_VISIT(self->name);
  FACTOR_FIELDS(VISIT_FIELD)
#undef VISIT_FIELD
  Py_VISIT(self->graph_ref);
  Py_VISIT(Py_TYPE(self));
  return 0;
}

int factor_clear(Factor* self) {
#define CLEAR_FIELD(name) Py_CLEAR(self->name);
  FACTOR_FIELDS(CLEAR_FIELD)
#undef CLEAR_FIELD
  Py_CLEAR(self->graph_ref);
  return 0;
}

void factor_dealloc(Factor* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  factor_clear(self);
  type->tp_free(self);
}

PyObject* factor_set_allocate(PyObject*, PyObject*) { Py_RETURN_NONE; }

// The number of items of a factor field (AttributeError when unset).
Py_ssize_t field_length(PyObject* field, const char* name) {
  if (field == nullptr) {
    PyErr_Format(PyExc_AttributeError, "'PFactor' object has no attribute '_%s'", name);
    return -1;
  }
  return PyObject_Length(field);
}

PyObject* factor_get_additional_log_potentials(Factor* self, PyObject*) {
  if (field_length(self->additional, "additional") < 0) return nullptr;
  const Numpy* np = numpy();
  if (np == nullptr) return nullptr;
  if (Py_TYPE(self->additional) == reinterpret_cast<PyTypeObject*>(np->ndarray)) {
    return PyObject_CallMethod(self->additional, "tolist", nullptr);
  }
  return PySequence_List(self->additional);
}

// 1: a 1-d float64 ndarray (the solver reads it directly); 0: not one; -1: error.
int is_float64_vector(PyObject* values) {
  Py_buffer view;
  const int opened = float64_array_view(values, view);
  if (opened <= 0) return opened;
  const bool vector = view.ndim == 1;
  PyBuffer_Release(&view);
  return vector;
}

PyObject* factor_set_additional_log_potentials(Factor* self, PyObject* values) {
  const Py_ssize_t expected = field_length(self->additional, "additional");
  if (expected < 0) return nullptr;
  const int vector = self->link_units != nullptr && self->link_units != Py_None ? is_float64_vector(values) : 0;
  if (vector < 0) return nullptr;
  if (vector) {
    // A declared factor (the graph reads its scores at solve time): a copy of the array (the
    // solver reads float64 arrays directly, no list of floats needed).
    const Py_ssize_t given = PyObject_Length(values);
    if (given != expected) {
      PyErr_Format(PyExc_ValueError, "additional_log_potentials: expected %zd values, got %zd", expected, given);
      return nullptr;
    }
    PyObject* copy = PyObject_CallMethodNoArgs(values, g_copy);
    if (copy == nullptr) return nullptr;
    Py_SETREF(self->additional, copy);
    Py_RETURN_NONE;
  }
  PyObject* list = real_list(values, "additional_log_potentials");
  if (list == nullptr) return nullptr;
  const Py_ssize_t given = PyList_GET_SIZE(list);
  int failed = 0;
  if (given != expected) {
    PyErr_Format(PyExc_ValueError, "additional_log_potentials: expected %zd values, got %zd", expected, given);
    failed = 1;
  } else if (given > 0) {  // (in place: a created factor's list is held by the graph)
    failed = PySequence_SetSlice(self->additional, 0, given, list);
  }
  Py_DECREF(list);
  if (failed) return nullptr;
  Py_RETURN_NONE;
}

PyObject* factor_check_size(PyObject*, PyObject*) { Py_RETURN_NONE; }

// The factor's binary variables: its links, or for dense, every state of its multi-valued ones.
PyObject* factor_units(Factor* self, PyObject*) {
  if (field_length(self->links, "links") < 0) return nullptr;
  if (kind_code(self->kind) != kDense) return PySequence_List(self->links);
  PyObject* out = PyList_New(0);
  PyObject* iter = out == nullptr ? nullptr : PyObject_GetIter(self->links);
  if (iter == nullptr) {
    Py_XDECREF(out);
    return nullptr;
  }
  bool ok = true;
  while (PyObject* v = PyIter_Next(iter)) {
    const Py_ssize_t k = ok ? PyObject_Length(v) : -1;
    ok = k >= 0;
    for (Py_ssize_t i = 0; ok && i < k; ++i) {
      PyObject* state = PyObject_CallMethod(v, "get_state", "n", i);
      ok = state != nullptr && PyList_Append(out, state) == 0;
      Py_XDECREF(state);
    }
    Py_DECREF(v);
  }
  Py_DECREF(iter);
  if (!ok || PyErr_Occurred()) Py_CLEAR(out);
  return out;
}

// The solver's (type, links, negated, budget, costs, num_states, num_nodes, arcs, parents,
// counts_for_budget, bigram_positions, has_count_scores) tuple of a declared factor.
PyObject* factor_spec(Factor* self, PyObject*) {
  const int code = kind_code(self->kind);
  if (code < 0) {
    PyErr_SetObject(PyExc_KeyError, self->kind ? self->kind : Py_None);
    return nullptr;
  }
  PyObject* items[] = {self->link_units, self->negated, self->budget, self->costs, self->num_states,
                       self->num_nodes, self->arcs, self->parents, self->counts, self->positions,
                       self->has_count_scores};
  PyObject* spec = PyTuple_New(12);
  if (spec == nullptr) return nullptr;
  PyTuple_SET_ITEM(spec, 0, PyLong_FromLong(code));
  for (int i = 0; i < 11; ++i) PyTuple_SET_ITEM(spec, i + 1, Py_NewRef(items[i] ? items[i] : Py_None));
  return spec;
}

PyObject* factor_get_degree(Factor* self, PyObject*) {
  PyObject* units = factor_units(self, nullptr);
  if (units == nullptr) return nullptr;
  const Py_ssize_t n = PyList_GET_SIZE(units);
  Py_DECREF(units);
  return PyLong_FromSsize_t(n);
}

PyObject* factor_get_variable(Factor* self, PyObject* i) {
  PyObject* units = factor_units(self, nullptr);
  if (units == nullptr) return nullptr;
  PyObject* v = PyObject_GetItem(units, i);
  Py_DECREF(units);
  return v;
}

PyMethodDef factor_methods[] = {
    {"set_allocate", factor_set_allocate, METH_O, "Accepted for compatibility (memory is Python's)."},
    {"get_additional_log_potentials", cfunc(factor_get_additional_log_potentials), METH_NOARGS, nullptr},
    {"set_additional_log_potentials", cfunc(factor_set_additional_log_potentials), METH_O, nullptr},
    {"_check_size", factor_check_size, METH_NOARGS,
     "Structured factors: the number of bound variables must match the initialization."},
    {"_units", cfunc(factor_units), METH_NOARGS, nullptr},
    {"_spec", cfunc(factor_spec), METH_NOARGS, nullptr},
    {"get_degree", cfunc(factor_get_degree), METH_NOARGS, nullptr},
    {"get_variable", cfunc(factor_get_variable), METH_O, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyObject* factor_get_graph(Factor* self, void*) { return graph_of(self->graph_ref); }

int factor_set_graph(Factor* self, PyObject* graph, void*) {
  if (graph == nullptr || graph == Py_None) {
    Py_CLEAR(self->graph_ref);
    return 0;
  }
  if (!PyObject_TypeCheck(graph, &GraphType)) {
    PyErr_Format(PyExc_TypeError, "_graph: expected a PFactorGraph or None, got %s", type_name(graph));
    return -1;
  }
  set_field(self->graph_ref, as_graph(graph)->self_ref);
  return 0;
}

PyGetSetDef factor_getset[] = {
    {"_graph", reinterpret_cast<getter>(factor_get_graph), reinterpret_cast<setter>(factor_set_graph), nullptr,
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

#define FACTOR_MEMBER(name) {"_" #name, T_OBJECT_EX, offsetof(Factor, name), 0, nullptr},
PyMemberDef factor_members[] = {FACTOR_FIELDS(FACTOR_MEMBER){nullptr, 0, 0, 0, nullptr}};
#undef FACTOR_MEMBER

// ---- the extension factors with a C initialize: PFactorSequence, PFactorTree,
// PFactorHeadAutomaton (reference: ad3.extensions) ----

// PFactorX(allocate=True): a factor of `kind`, not initialized yet.
int init_extension(Factor* self, PyObject* args, PyObject* kwargs, int kind) {
  static const char* names[] = {"allocate", nullptr};
  PyObject* allocate = nullptr;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O", const_cast<char**>(names), &allocate)) return -1;
  PyObject* links = PyList_New(0);
  PyObject* negated = PyList_New(0);
  PyObject* costs = PyList_New(0);
  PyObject* additional = PyList_New(0);
  const bool ok = links && negated && costs && additional;
  if (ok) {
    set_field(self->kind, g_kind_names[kind]);
    set_field(self->links, links);
    set_field(self->negated, negated);
    set_field(self->costs, costs);
    set_field(self->additional, additional);
    set_field(self->initialized, Py_False);
  }
  Py_XDECREF(links);
  Py_XDECREF(negated);
  Py_XDECREF(costs);
  Py_XDECREF(additional);
  return ok ? 0 : -1;
}

int sequence_init(Factor* self, PyObject* args, PyObject* kwargs) {
  return init_extension(self, args, kwargs, kSequence);
}
int tree_init(Factor* self, PyObject* args, PyObject* kwargs) { return init_extension(self, args, kwargs, kTree); }
int head_automaton_init(Factor* self, PyObject* args, PyObject* kwargs) {
  return init_extension(self, args, kwargs, kHeadAutomaton);
}

// 1: initialized and bound to a graph (its sizes can be checked); 0: not; -1: error.
int initialized_and_bound(Factor* self) {
  const int initialized = self->initialized ? PyObject_IsTrue(self->initialized) : 0;
  if (initialized <= 0) return initialized;
  return self->graph_ref != nullptr;
}

// The sum of a sequence of ints (num_states); -1 with an error set.
Py_ssize_t sum_of_ints(PyObject* values) {
  PyObject* iter = values ? PyObject_GetIter(values) : nullptr;
  if (iter == nullptr) return -1;
  Py_ssize_t sum = 0;
  while (PyObject* x = PyIter_Next(iter)) {
    const Py_ssize_t v = PyLong_AsSsize_t(x);
    Py_DECREF(x);
    if (v == -1 && PyErr_Occurred()) break;
    sum += v;
  }
  Py_DECREF(iter);
  return PyErr_Occurred() ? -1 : sum;
}

PyObject* sequence_check_size(Factor* self, PyObject*) {
  const int check = initialized_and_bound(self);
  if (check <= 0) return check < 0 ? nullptr : Py_NewRef(Py_None);
  const Py_ssize_t states = sum_of_ints(self->num_states), links = field_length(self->links, "links");
  if (states < 0 || links < 0) return nullptr;
  if (states != links) {
    return PyErr_Format(PyExc_ValueError, "num_states: %zd states in all, but %zd variables are bound to the factor",
                        states, links);
  }
  Py_RETURN_NONE;
}

PyObject* sequence_initialize(Factor* self, PyObject* num_states) {
  if (!PyList_CheckExact(num_states)) {
    const Numpy* np = numpy();
    if (np == nullptr) return nullptr;
    PyObject* ndim = num_states == Py_None || is_str_or_bytes(num_states)
                         ? nullptr
                         : PyObject_CallOneArg(np->ndim, num_states);
    const bool flat = ndim != nullptr && PyLong_Check(ndim) && PyLong_AsLong(ndim) == 1;
    Py_XDECREF(ndim);
    if (!flat) {
      PyErr_Clear();
      return PyErr_Format(PyExc_TypeError, "num_states: expected a sequence of ints, got %R", num_states);
    }
  }
  std::vector<Py_ssize_t> states;
  PyObject* iter = PyObject_GetIter(num_states);
  if (iter == nullptr) return nullptr;
  while (PyObject* k = PyIter_Next(iter)) {
    Py_ssize_t value;
    if (integer_arg(k, "num_states", value, "ints") && value < 1) {
      PyErr_Format(PyExc_ValueError, "num_states: every position needs at least one state, got %S", k);
    }
    Py_DECREF(k);
    if (PyErr_Occurred()) break;
    states.push_back(value);
  }
  Py_DECREF(iter);
  if (PyErr_Occurred()) return nullptr;
  if (states.empty()) return PyErr_Format(PyExc_ValueError, "num_states: a sequence needs at least one position");
  for (Py_ssize_t k : states) {
    if (k > ad3::kMaxStates) {
      return PyErr_Format(PyExc_ValueError, "num_states: expected 1 to 2^20 states per position, got %zd", k);
    }
  }
  Py_ssize_t size = states.front() + states.back();  // (states <= 2^20: no overflow)
  for (std::size_t i = 1; i < states.size(); ++i) size += states[i - 1] * states[i];
  if (static_cast<std::size_t>(size) > ad3::kMaxAdditional) {
    return PyErr_Format(PyExc_ValueError, "num_states: %zd transition scores; a factor may have at most 2^31 - 1",
                        size);
  }
  PyObject* states_list = int_list(states);
  PyObject* additional = states_list ? zeros_list(size) : nullptr;
  if (additional == nullptr) {
    Py_XDECREF(states_list);
    return nullptr;
  }
  Py_XSETREF(self->num_states, states_list);
  Py_XSETREF(self->additional, additional);
  set_field(self->initialized, Py_True);
  return sequence_check_size(self, nullptr);
}

// `seq` if it is a list, else list(seq): what tree_arcs and head_automaton_pairs take.
PyObject* as_list(PyObject* seq) { return PyList_CheckExact(seq) ? Py_NewRef(seq) : PySequence_List(seq); }

PyObject* tree_initialize(Factor* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"n_nodes", "arcs"};
  PyObject* bound[2];
  Py_ssize_t n;
  if (!bind_args("initialize", args, nargs, kwnames, names, 2, bound) || !integer_arg(bound[0], "n_nodes", n)) {
    return nullptr;
  }
  if (n < 2 || n > ad3::kMaxTreeNodes) {
    return PyErr_Format(PyExc_ValueError, "n_nodes: expected 2 to %d nodes, got %S", ad3::kMaxTreeNodes, bound[0]);
  }
  PyObject* arcs = bound[1];
  if (!PyList_Check(arcs) && !PyTuple_Check(arcs)) {
    return PyErr_Format(PyExc_TypeError, "arcs: expected a list of (head, modifier) pairs, got %s", type_name(arcs));
  }
  if (self->graph_ref != nullptr) {
    const Py_ssize_t links = field_length(self->links, "links");
    if (links < 0) return nullptr;
    const Py_ssize_t given = PySequence_Size(arcs);
    if (given != links) {
      return PyErr_Format(PyExc_ValueError, "arcs: expected one arc per bound variable (%zd), got %zd", links, given);
    }
  }
  PyObject* num_nodes = PyLong_FromSsize_t(n);
  PyObject* arc_list = num_nodes ? as_list(arcs) : nullptr;
  PyObject* call_args[] = {num_nodes, arc_list};
  PyObject* pairs = arc_list ? PyObject_Vectorcall(g_tree_arcs, call_args, 2, nullptr) : nullptr;
  Py_XDECREF(arc_list);
  if (pairs == nullptr) {
    Py_XDECREF(num_nodes);
    return nullptr;
  }
  Py_XSETREF(self->num_nodes, num_nodes);
  Py_XSETREF(self->arcs, pairs);
  set_field(self->initialized, Py_True);
  Py_RETURN_NONE;
}

PyObject* head_automaton_check_size(Factor* self, PyObject*) {
  const int check = initialized_and_bound(self);
  if (check <= 0) return check < 0 ? nullptr : Py_NewRef(Py_None);
  const Py_ssize_t links = field_length(self->links, "links");
  if (links < 0) return nullptr;
  if (self->length == nullptr) return PyErr_Format(PyExc_AttributeError, "'PFactor' object has no attribute '_length'");
  const Py_ssize_t length = PyLong_AsSsize_t(self->length);
  if (length == -1 && PyErr_Occurred()) return nullptr;
  if (links != length - 1) {
    return PyErr_Format(PyExc_ValueError, "length: %zd arcs expected, but %zd variables are bound", length - 1,
                        links);
  }
  Py_RETURN_NONE;
}

PyObject* head_automaton_initialize(Factor* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"length", "siblings"};
  PyObject* bound[2];
  Py_ssize_t length;
  if (!bind_args("initialize", args, nargs, kwnames, names, 2, bound) || !integer_arg(bound[0], "length", length)) {
    return nullptr;
  }
  PyObject* siblings = bound[1];
  if (!PyList_Check(siblings) && !PyTuple_Check(siblings)) {
    return PyErr_Format(PyExc_TypeError, "siblings: expected a list of (head, modifier, sibling) triples, got %s",
                        type_name(siblings));
  }
  PyObject* length_obj = PyLong_FromSsize_t(length);
  PyObject* sibling_list = length_obj ? as_list(siblings) : nullptr;
  PyObject* call_args[] = {length_obj, sibling_list};
  PyObject* pairs = sibling_list ? PyObject_Vectorcall(g_head_automaton_pairs, call_args, 2, nullptr) : nullptr;
  Py_XDECREF(sibling_list);
  // (one sibling score per pair 0 <= m < s <= length, as head_automaton_pairs checked)
  PyObject* additional = pairs ? zeros_list(length * (length + 1) / 2) : nullptr;
  if (additional == nullptr) {
    Py_XDECREF(length_obj);
    Py_XDECREF(pairs);
    return nullptr;
  }
  Py_XSETREF(self->length, length_obj);
  Py_XSETREF(self->arcs, pairs);
  Py_XSETREF(self->additional, additional);
  set_field(self->initialized, Py_True);
  return head_automaton_check_size(self, nullptr);
}

PyMethodDef sequence_methods[] = {
    {"initialize", cfunc(sequence_initialize), METH_O, nullptr},
    {"_check_size", cfunc(sequence_check_size), METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyMethodDef tree_methods[] = {
    {"initialize", cfunc(tree_initialize), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyMethodDef head_automaton_methods[] = {
    {"initialize", cfunc(head_automaton_initialize), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"_check_size", cfunc(head_automaton_check_size), METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

// ---- FactorGraphBase ----

PyObject* graph_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  if (PyTuple_GET_SIZE(args) > 0 || (kwargs != nullptr && PyDict_GET_SIZE(kwargs) > 0)) {
    return PyErr_Format(PyExc_TypeError, "%s() takes no arguments", type->tp_name);
  }
  PyObject* obj = type->tp_alloc(type, 0);
  if (obj == nullptr) return nullptr;
  Graph* g = as_graph(obj);
  g->self_ref = PyWeakref_NewRef(obj, nullptr);
  if (g->self_ref == nullptr) {
    Py_DECREF(obj);
    return nullptr;
  }
  for (PyObject** list : {&g->variables, &g->kinds, &g->scores, &g->factors, &g->specs, &g->extras, &g->declared}) {
    *list = PyList_New(0);
    if (*list == nullptr) {
      Py_DECREF(obj);
      return nullptr;
    }
  }
  return obj;
}

#define GRAPH_LISTS(APPLY) \
  APPLY(variables) APPLY(kinds) APPLY(scores) APPLY(factors) APPLY(specs) APPLY(extras) APPLY(declared)

int graph_traverse(Graph* self, visitproc visit, void* arg) {
#define VISIT_LIST(name) Py_VISIT(self->name);
  GRAPH_LISTS(VISIT_LIST)
#undef VISIT_LIST
  Py_VISIT(self->self_ref);
  Py_VISIT(self->last_table);
  Py_VISIT(Py_TYPE(self));
  return 0;
}

int graph_clear(Graph* self) {
#define CLEAR_LIST(name) Py_CLEAR(self->name);
  GRAPH_LISTS(CLEAR_LIST)
#undef CLEAR_LIST
  Py_CLEAR(self->self_ref);
  Py_CLEAR(self->last_table);
  return 0;
}

void graph_dealloc(Graph* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (self->weakrefs != nullptr) PyObject_ClearWeakRefs(reinterpret_cast<PyObject*>(self));
  graph_clear(self);
  type->tp_free(self);
}

// The error for a list item that is not a variable of type `expected` of the graph at hand.
void bad_variable(PyObject* v, const char* name, PyTypeObject* expected) {
  const char* expected_name = _PyType_Name(expected);
  if (v == Py_None) {
    PyErr_Format(PyExc_AttributeError, "%s: None is not a %s", name, expected_name);
  } else if (!PyObject_TypeCheck(v, expected)) {
    PyErr_Format(PyExc_TypeError, "%s: expected %s, got %s", name, expected_name, type_name(v));
  } else {
    PyErr_Format(PyExc_ValueError, "%s: a variable of another factor graph", name);
  }
}

// The units of a list of PBinaryVariable of `graph`; false with the error set.
bool units_of(Graph* graph, PyObject* variables, const char* name, std::vector<Py_ssize_t>& units) {
  if (!PyList_Check(variables)) {
    PyErr_Format(PyExc_TypeError, "%s: expected a list of PBinaryVariable, got %s", name, type_name(variables));
    return false;
  }
  const Py_ssize_t n = PyList_GET_SIZE(variables);
  units.resize(n);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* v = PyList_GET_ITEM(variables, i);
    if (Py_TYPE(v) != &BinaryVariableType || reinterpret_cast<BinaryVariable*>(v)->graph.ref != graph->self_ref) {
      bad_variable(v, name, &BinaryVariableType);
      return false;
    }
    units[i] = reinterpret_cast<BinaryVariable*>(v)->unit;
  }
  return true;
}

// A created factor's solver tuple (kind, units[, negated]): `units` (a tuple: one object) stolen,
// `negated` borrowed.
PyObject* spec_tuple(int kind, PyObject* links, PyObject* negated = nullptr) {
  PyObject* spec = links ? PyTuple_New(negated ? 3 : 2) : nullptr;
  if (spec == nullptr) {
    Py_XDECREF(links);
    return nullptr;
  }
  PyTuple_SET_ITEM(spec, 0, PyLong_FromLong(kind));  // (a small int: cached)
  PyTuple_SET_ITEM(spec, 1, links);
  if (negated) PyTuple_SET_ITEM(spec, 2, Py_NewRef(negated));
  return spec;
}

// A dense factor's additional scores as a new list; when they are those of the graph's previous
// dense factor (one table shared by many factors), its float objects are reused.
PyObject* table_list(Graph* graph, const std::vector<double>& values) {
  const Py_ssize_t n = static_cast<Py_ssize_t>(values.size());
  PyObject* last = graph->last_table;
  bool same = last != nullptr && PyList_GET_SIZE(last) == n;
  for (Py_ssize_t i = 0; same && i < n; ++i) {
    PyObject* x = PyList_GET_ITEM(last, i);
    const double value = PyFloat_CheckExact(x) ? PyFloat_AS_DOUBLE(x) : 0.0;
    same = PyFloat_CheckExact(x) && std::memcmp(&value, &values[i], sizeof(double)) == 0;
  }
  PyObject* list = same ? PyList_GetSlice(last, 0, n) : float_list(values);
  if (list != nullptr) set_field(graph->last_table, list);
  return list;
}

// Appends a factor, its solver tuple and its additional scores (references stolen); returns the
// factor (a new reference) or nullptr.
PyObject* add_factor(Graph* self, PyObject* factor, PyObject* spec, PyObject* extras) {
  const bool ok = factor && spec && extras && PyList_Append(self->factors, factor) == 0 &&
                  PyList_Append(self->specs, spec) == 0 && PyList_Append(self->extras, extras) == 0;
  Py_XDECREF(spec);
  Py_XDECREF(extras);
  if (!ok) Py_CLEAR(factor);
  return factor;
}

PyObject* graph_units_of(Graph* self, PyObject* variables) {
  std::vector<Py_ssize_t> units;
  return units_of(self, variables, "p_variables", units) ? int_list(units) : nullptr;
}

PyObject* graph_create_binary_variable(Graph* self, PyObject*) {
  PyObject* v = new_binary_variable(link_to(self), PyList_GET_SIZE(self->scores));
  if (v == nullptr || PyList_Append(self->scores, g_zero) < 0 || PyList_Append(self->kinds, g_binary) < 0 ||
      PyList_Append(self->variables, v) < 0) {
    Py_XDECREF(v);
    return nullptr;
  }
  return v;
}

PyObject* graph_create_multi_variable(Graph* self, PyObject* num_states) {
  Py_ssize_t k;
  if (!integer_arg(num_states, "num_states", k)) return nullptr;
  if (k < 1 || k > ad3::kMaxStates) {
    return PyErr_Format(PyExc_ValueError, "num_states: expected 1 to 2^20 states, got %S", num_states);
  }
  PyObject* kind = PyLong_FromSsize_t(k);
  PyObject* v = kind ? new_multi_variable(self, PyList_GET_SIZE(self->scores), k, PyList_GET_SIZE(self->variables))
                     : nullptr;
  bool ok = v != nullptr;
  for (Py_ssize_t i = 0; ok && i < k; ++i) ok = PyList_Append(self->scores, g_zero) == 0;
  ok = ok && PyList_Append(self->kinds, kind) == 0 && PyList_Append(self->variables, v) == 0;
  Py_XDECREF(kind);
  if (!ok) Py_CLEAR(v);
  return v;
}

PyObject* graph_create_factor_logic(Graph* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"factor_type", "p_variables", "negated", "owned_by_graph"};
  PyObject* bound[4];
  if (!bind_args("create_factor_logic", args, nargs, kwnames, names, 2, bound)) return nullptr;
  PyObject *factor_type = bound[0], *variables = bound[1], *negated = bound[2];
  int logic = -1;
  for (int i = 0; PyUnicode_CheckExact(factor_type) && i < static_cast<int>(std::size(kLogic)); ++i) {
    if (PyUnicode_CompareWithASCIIString(factor_type, kLogic[i].name) == 0) logic = i;
  }
  if (logic < 0) {
    if (!PyUnicode_Check(factor_type)) {
      return PyErr_Format(PyExc_TypeError, "factor_type: expected a str, got %R", factor_type);
    }
    return PyErr_Format(PyExc_NotImplementedError, "Unknown factor type: %S", factor_type);
  }
  std::vector<Py_ssize_t> units;
  if (!units_of(self, variables, "p_variables", units)) return nullptr;
  PyObject* flags = nullptr;  // None, or one bool per variable
  if (negated != nullptr && negated != Py_None) {
    if (!PyList_Check(negated)) {
      return PyErr_Format(PyExc_TypeError, "negated: expected a list of bool or None, got %s", type_name(negated));
    }
    const Py_ssize_t n = PyList_GET_SIZE(negated);
    if (n > 0 && n != static_cast<Py_ssize_t>(units.size())) {
      return PyErr_Format(PyExc_ValueError, "Expected one negated flag per variable, or none at all.");
    }
    if (n > 0) {
      flags = PyList_New(n);
      for (Py_ssize_t i = 0; flags && i < n; ++i) {
        const int truth = PyObject_IsTrue(PyList_GET_ITEM(negated, i));
        if (truth < 0) {
          Py_CLEAR(flags);
          return nullptr;
        }
        PyList_SET_ITEM(flags, i, PyBool_FromLong(truth));
      }
      if (flags == nullptr) return nullptr;
    }
  }
  const int kind = kLogic[logic].kind;
  const Py_ssize_t least = kLogic[logic].least;
  if (static_cast<Py_ssize_t>(units.size()) < least) {
    Py_XDECREF(flags);
    return PyErr_Format(PyExc_ValueError, "p_variables: %S needs at least %zd variables, got %zd", factor_type, least,
                        static_cast<Py_ssize_t>(units.size()));
  }
  if (has_duplicates(units)) {
    Py_XDECREF(flags);
    return PyErr_Format(PyExc_ValueError, "p_variables: a variable appears twice in this %S factor", factor_type);
  }
  if (kLogic[logic].negate_last) {  // the XOR's flags: the given ones (or none negated), the last one flipped
    const Py_ssize_t n = static_cast<Py_ssize_t>(units.size());
    if (flags == nullptr) {
      flags = PyList_New(n);
      for (Py_ssize_t i = 0; flags && i < n; ++i) PyList_SET_ITEM(flags, i, Py_NewRef(Py_False));
      if (flags == nullptr) return nullptr;
    }
    PyObject* last = PyList_GET_ITEM(flags, n - 1);
    PyList_SET_ITEM(flags, n - 1, PyBool_FromLong(last != Py_True));
    Py_DECREF(last);
  }
  PyObject* links = PyList_GetSlice(variables, 0, PyList_GET_SIZE(variables));
  PyObject* factor = links ? created_factor(self, kind, links, Py_NewRef(g_no_scores)) : nullptr;
  if (factor != nullptr && flags != nullptr) set_field(as_factor(factor)->negated, flags);
  PyObject* spec = spec_tuple(kind, int_tuple(units), flags ? flags : Py_None);
  Py_XDECREF(flags);
  return add_factor(self, factor, spec, Py_NewRef(g_no_scores));
}

PyObject* graph_create_factor_pair(Graph* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"p_variables", "edge_log_potential", "owned_by_graph"};
  PyObject* bound[3];
  if (!bind_args("create_factor_pair", args, nargs, kwnames, names, 2, bound)) return nullptr;
  PyObject* potential = real_number(bound[1], "edge_log_potential");
  if (potential == nullptr) return nullptr;
  std::vector<Py_ssize_t> units;
  if (!units_of(self, bound[0], "p_variables", units) || units.size() != 2 || units[0] == units[1]) {
    if (!PyErr_Occurred()) {
      PyErr_SetString(PyExc_ValueError, units.size() != 2
                                            ? "Pair factors require exactly two binary variables."
                                            : "p_variables: a variable appears twice in this pair factor");
    }
    Py_DECREF(potential);
    return nullptr;
  }
  PyObject* additional = PyList_New(1);
  if (additional == nullptr) {
    Py_DECREF(potential);
    return nullptr;
  }
  PyList_SET_ITEM(additional, 0, potential);
  PyObject* links = PyList_GetSlice(bound[0], 0, 2);
  PyObject* factor = links ? created_factor(self, kPair, links, Py_NewRef(additional)) : nullptr;
  PyObject* spec = spec_tuple(kPair, int_tuple(units));
  return add_factor(self, factor, spec, additional);
}

PyObject* graph_create_factor_dense(Graph* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"p_multi_variables", "additional_log_potentials", "owned_by_graph"};
  PyObject* bound[3];
  if (!bind_args("create_factor_dense", args, nargs, kwnames, names, 2, bound)) return nullptr;
  PyObject *variables = bound[0], *potentials = bound[1];
  if (!PyList_Check(variables)) {
    return PyErr_Format(PyExc_TypeError, "p_multi_variables: expected a list of PMultiVariable, got %s",
                        type_name(variables));
  }
  const Py_ssize_t n = PyList_GET_SIZE(variables);
  std::vector<Py_ssize_t> indices(n);
  Py_ssize_t expected = 1;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* v = PyList_GET_ITEM(variables, i);
    if (Py_TYPE(v) != &MultiVariableType || reinterpret_cast<MultiVariable*>(v)->graph.ref != self->self_ref) {
      bad_variable(v, "p_multi_variables", &MultiVariableType);
      return nullptr;
    }
    indices[i] = reinterpret_cast<MultiVariable*>(v)->index;
    expected *= reinterpret_cast<MultiVariable*>(v)->k;
  }
  std::vector<double> values;
  const int plain = read_plain_floats(potentials, true, values);
  if (plain < 0) return nullptr;
  if (plain == 0 && !read_flat_floats(potentials, "additional_log_potentials", values)) return nullptr;
  if (static_cast<Py_ssize_t>(values.size()) != expected) {
    return PyErr_Format(PyExc_ValueError,
                        "Must provide one log-potential per joint state assignment of all the variables.");
  }
  if (indices.empty()) return PyErr_Format(PyExc_ValueError, "p_multi_variables: expected at least one variable");
  if (has_duplicates(indices)) return PyErr_Format(PyExc_ValueError, "p_multi_variables: a variable appears twice");
  PyObject* additional = table_list(self, values);
  PyObject* links = additional ? PyList_GetSlice(variables, 0, n) : nullptr;
  PyObject* factor = links ? created_factor(self, kDense, links, Py_NewRef(additional)) : nullptr;
  PyObject* spec = spec_tuple(kDense, int_tuple(indices));
  return add_factor(self, factor, spec, additional);
}

PyObject* graph_declare_factor(Graph* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"p_factor", "p_variables", "owned_by_graph"};
  PyObject* bound[3];
  if (!bind_args("declare_factor", args, nargs, kwnames, names, 2, bound)) return nullptr;
  PyObject *factor = bound[0], *variables = bound[1];
  if (!PyObject_TypeCheck(factor, &FactorType)) {
    return PyErr_Format(PyExc_TypeError, "p_factor: expected a PFactor, got %s", type_name(factor));
  }
  Factor* f = as_factor(factor);
  if (kind_code(f->kind) < kFirstDeclared) {
    return PyErr_Format(PyExc_NotImplementedError, "declare_factor: %s is not supported by ccnn_decoder.ad3",
                        type_name(factor));
  }
  if (f->graph_ref != nullptr) {
    return PyErr_Format(PyExc_ValueError, "p_factor: this factor is already declared in a factor graph");
  }
  std::vector<Py_ssize_t> units;
  if (!units_of(self, variables, "p_variables", units)) return nullptr;
  if (has_duplicates(units)) return PyErr_Format(PyExc_ValueError, "p_variables: a variable appears twice");
  PyObject* links = PyList_GetSlice(variables, 0, PyList_GET_SIZE(variables));
  PyObject* unit_list = links ? int_list(units) : nullptr;
  if (unit_list == nullptr) {
    Py_XDECREF(links);
    return nullptr;
  }
  Py_XSETREF(f->links, links);
  Py_XSETREF(f->link_units, unit_list);
  set_field(f->graph_ref, self->self_ref);
  PyObject* checked = PyObject_CallMethodNoArgs(factor, g_check_size);
  if (checked == nullptr) return nullptr;
  Py_DECREF(checked);
  PyObject* index = PyLong_FromSsize_t(PyList_GET_SIZE(self->factors));
  const bool ok = index && PyList_Append(self->declared, index) == 0;
  Py_XDECREF(index);
  return ok ? add_factor(self, Py_NewRef(factor), Py_NewRef(Py_None), Py_NewRef(g_no_scores)) : nullptr;
}

PyMethodDef graph_methods[] = {
    {"_units_of", cfunc(graph_units_of), METH_O,
     "The units of a list of PBinaryVariable of this graph (TypeError, AttributeError or ValueError as the "
     "reference)."},
    {"create_binary_variable", cfunc(graph_create_binary_variable), METH_NOARGS, nullptr},
    {"create_multi_variable", cfunc(graph_create_multi_variable), METH_O, nullptr},
    {"create_factor_logic", cfunc(graph_create_factor_logic), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"create_factor_pair", cfunc(graph_create_factor_pair), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"create_factor_dense", cfunc(graph_create_factor_dense), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"declare_factor", cfunc(graph_declare_factor), METH_FASTCALL | METH_KEYWORDS,
     "Binds a separately created factor (ccnn_decoder.ad3.extensions: PFactorSequence, PFactorTree, ...) "
     "to binary variables; initialize it before solving."},
    {nullptr, nullptr, 0, nullptr}};

#define GRAPH_MEMBER(name) {"_" #name, T_OBJECT, offsetof(Graph, name), READONLY, nullptr},
PyMemberDef graph_members[] = {GRAPH_LISTS(GRAPH_MEMBER){nullptr, 0, 0, 0, nullptr}};
#undef GRAPH_MEMBER

// ---- registration ----

// A static type's slots (GC support when given `traverse`).
void fill_type(PyTypeObject& type, const char* name, Py_ssize_t size, unsigned long flags, destructor dealloc,
               traverseproc traverse, inquiry clear, PyMethodDef* methods, PyMemberDef* members,
               PyGetSetDef* getset, newfunc make, const char* doc) {
  type.tp_name = name;
  type.tp_basicsize = size;
  type.tp_flags = Py_TPFLAGS_DEFAULT | (traverse ? Py_TPFLAGS_HAVE_GC : 0) | flags;
  type.tp_getset = getset;
  type.tp_dealloc = dealloc;
  type.tp_traverse = traverse;
  type.tp_clear = clear;
  type.tp_methods = methods;
  type.tp_members = members;
  type.tp_new = make;
  type.tp_doc = doc;
}

}  // namespace

bool add_ad3_compat_types(PyObject* module) {
  g_zero = PyFloat_FromDouble(0.0);
  g_one = PyFloat_FromDouble(1.0);
  g_binary = PyLong_FromLong(0);
  g_no_scores = PyTuple_New(0);
  g_tree_arcs = PyObject_GetAttrString(module, "tree_arcs");
  g_head_automaton_pairs = PyObject_GetAttrString(module, "head_automaton_pairs");
  g_check_size = PyUnicode_InternFromString("_check_size");
  g_copy = PyUnicode_InternFromString("copy");
  if (!g_zero || !g_one || !g_binary || !g_no_scores || !g_tree_arcs || !g_head_automaton_pairs || !g_check_size || !g_copy) {
    return false;
  }
  for (int i = 0; i < kNumKinds; ++i) {
    g_kind_names[i] = PyUnicode_InternFromString(kKinds[i]);
    if (g_kind_names[i] == nullptr) return false;
  }
  fill_type(BinaryVariableType, "ccnn_decoder.ad3.factor_graph.PBinaryVariable", sizeof(BinaryVariable), 0,
            reinterpret_cast<destructor>(binary_dealloc), nullptr, nullptr, binary_methods, binary_members,
            binary_getset, binary_new,
            "A binary variable (or one state of a multi-valued variable): its log-potential scores the value 1.");
  fill_type(MultiVariableType, "ccnn_decoder.ad3.factor_graph.PMultiVariable", sizeof(MultiVariable), 0,
            reinterpret_cast<destructor>(multi_dealloc), nullptr, nullptr, multi_methods, multi_members,
            multi_getset, multi_new,
            "A multi-valued variable: K states, exactly one of which is on; its states are the units "
            "begin .. begin + K - 1 of its graph.");
  MultiVariableType.tp_as_mapping = &multi_mapping;
  MultiVariableType.tp_as_sequence = &multi_sequence;
  fill_type(FactorType, "ccnn_decoder.ad3.factor_graph.PFactor", sizeof(Factor), Py_TPFLAGS_BASETYPE,
            reinterpret_cast<destructor>(factor_dealloc), reinterpret_cast<traverseproc>(factor_traverse),
            reinterpret_cast<inquiry>(factor_clear), factor_methods, factor_members, factor_getset, factor_new,
            "A factor of a PFactorGraph.");
  FactorType.tp_init = reinterpret_cast<initproc>(factor_init);
  struct Extension {
    PyTypeObject& type;
    const char* name;
    PyMethodDef* methods;
    initproc init;
    const char* doc;
  };
  for (const Extension& e :
       {Extension{SequenceType, "ccnn_decoder.ad3.extensions.PFactorSequence", sequence_methods,
                  reinterpret_cast<initproc>(sequence_init),
                  "Sequence factor (reference: ad3.extensions.PFactorSequence)."},
        Extension{TreeType, "ccnn_decoder.ad3.extensions.PFactorTree", tree_methods,
                  reinterpret_cast<initproc>(tree_init),
                  "Dependency-tree factor (reference: ad3.extensions.PFactorTree)."},
        Extension{HeadAutomatonType, "ccnn_decoder.ad3.extensions.PFactorHeadAutomaton", head_automaton_methods,
                  reinterpret_cast<initproc>(head_automaton_init),
                  "Head automaton (reference: ad3.extensions.PFactorHeadAutomaton)."}}) {
    fill_type(e.type, e.name, sizeof(Factor), Py_TPFLAGS_BASETYPE, reinterpret_cast<destructor>(factor_dealloc),
              reinterpret_cast<traverseproc>(factor_traverse), reinterpret_cast<inquiry>(factor_clear), e.methods,
              nullptr, nullptr, factor_new, e.doc);
    e.type.tp_base = &FactorType;
    e.type.tp_init = e.init;
  }
  fill_type(GraphType, "ccnn_decoder._decoder.FactorGraphBase", sizeof(Graph), Py_TPFLAGS_BASETYPE,
            reinterpret_cast<destructor>(graph_dealloc), reinterpret_cast<traverseproc>(graph_traverse),
            reinterpret_cast<inquiry>(graph_clear), graph_methods, graph_members, nullptr, graph_new,
            "The lists and hot methods of ccnn_decoder.ad3.PFactorGraph.");
  GraphType.tp_weaklistoffset = offsetof(Graph, weakrefs);
  for (PyTypeObject* type : {&BinaryVariableType, &MultiVariableType, &FactorType, &SequenceType, &TreeType,
                             &HeadAutomatonType, &GraphType}) {
    if (PyType_Ready(type) < 0) return false;
    const char* name = _PyType_Name(type);
    if (PyModule_AddObjectRef(module, name, reinterpret_cast<PyObject*>(type)) < 0) return false;
  }
  return true;
}

}  // namespace ccnn::bindings
