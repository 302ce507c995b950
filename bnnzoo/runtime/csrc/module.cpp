// bnnzoo.runtime._engine: the CPython binding. Plain C API, no third-party headers, so that the
// build needs nothing but a C++17 compiler and Python's headers.
//
// Every buffer handed in is checked here for type, contiguity and length against the sizes the
// plan declares; the plan's internal offsets were validated by bnnzoo/runtime/program.py.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstring>

#include "engine.h"

#ifdef _OPENMP
#include <omp.h>
#endif

using bnnzoo_rt::KernelTable;

namespace {

bool get_buffer(PyObject* obj, Py_buffer* view, bool writable, Py_ssize_t itemsize, const char* formats,
                const char* what) {
  const int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
  if (PyObject_GetBuffer(obj, view, flags) != 0) return false;
  const char* fmt = view->format ? view->format : "B";
  if (*fmt == '<' || *fmt == '=' || *fmt == '@') ++fmt;
  if (view->itemsize != itemsize || !std::strchr(formats, *fmt) || fmt[1] != '\0') {
    PyErr_Format(PyExc_TypeError, "%s: expected a contiguous buffer of %zd-byte items ('%s'), got '%s'", what,
                 itemsize, formats, view->format ? view->format : "B");
    PyBuffer_Release(view);
    return false;
  }
  return true;
}

struct Plan {
  PyObject_HEAD
  Py_buffer ops, weights, params;
  bool have_ops, have_weights, have_params;
  int64_t n_ops, arena_bytes, scratch_bytes, in_bytes, out_bytes;
  const KernelTable* table;
};

void plan_dealloc(Plan* self) {
  if (self->have_ops) PyBuffer_Release(&self->ops);
  if (self->have_weights) PyBuffer_Release(&self->weights);
  if (self->have_params) PyBuffer_Release(&self->params);
  PyTypeObject* type = Py_TYPE(self);
  type->tp_free(reinterpret_cast<PyObject*>(self));
  Py_DECREF(type);  // a heap type
}

int plan_init(Plan* self, PyObject* args, PyObject* kwargs) {
  static const char* names[] = {"ops",       "weights",   "params", "arena_bytes", "scratch_bytes",
                                "in_bytes",  "out_bytes", "isa",    nullptr};
  PyObject *ops, *weights, *params;
  long long arena, scratch, in_bytes, out_bytes;
  const char* isa;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOLLLLs", const_cast<char**>(names), &ops, &weights, &params,
                                   &arena, &scratch, &in_bytes, &out_bytes, &isa))
    return -1;
  if (self->have_ops || self->have_weights || self->have_params) {
    PyErr_SetString(PyExc_RuntimeError, "Plan is already initialised");
    return -1;
  }
  if (arena < 0 || scratch < 0 || in_bytes <= 0 || out_bytes <= 0 || (arena | scratch) % 64 || (in_bytes | out_bytes) % 4) {
    PyErr_SetString(PyExc_ValueError, "plan sizes: arena and scratch in multiples of 64 bytes, images of 4");
    return -1;
  }
  const char* error = nullptr;
  self->table = bnnzoo_rt::select_isa(isa, &error);
  if (!self->table) {
    PyErr_Format(PyExc_ValueError, "ISA '%s': %s", isa, error);
    return -1;
  }
  if (!get_buffer(ops, &self->ops, false, 8, "qlQL", "ops")) return -1;
  self->have_ops = true;
  if (self->ops.len % (8 * bnnzoo_rt::OP_WIDTH)) {
    PyErr_Format(PyExc_ValueError, "ops: expected rows of %d int64 fields", bnnzoo_rt::OP_WIDTH);
    return -1;
  }
  if (!get_buffer(weights, &self->weights, false, 8, "QLql", "weights")) return -1;
  self->have_weights = true;
  if (!get_buffer(params, &self->params, false, 4, "f", "params")) return -1;
  self->have_params = true;
  self->n_ops = self->ops.len / (8 * bnnzoo_rt::OP_WIDTH);
  self->arena_bytes = arena;
  self->scratch_bytes = scratch;
  self->in_bytes = in_bytes;
  self->out_bytes = out_bytes;
  return 0;
}

PyObject* plan_run(Plan* self, PyObject* args, PyObject* kwargs) {
  static const char* names[] = {"input", "output", "n", "workspace", "threads", "times", nullptr};
  PyObject *input, *output, *workspace, *times = Py_None;
  long long n;
  int threads;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOLOi|O", const_cast<char**>(names), &input, &output, &n,
                                   &workspace, &threads, &times))
    return nullptr;
  if (!self->table) {
    PyErr_SetString(PyExc_RuntimeError, "Plan is not initialised");
    return nullptr;
  }
  if (n < 0 || threads < 1 || threads > 4096) {
    PyErr_SetString(PyExc_ValueError, "n must be >= 0 and threads between 1 and 4096");
    return nullptr;
  }
  Py_buffer in, out, ws, tv;
  if (!get_buffer(input, &in, false, 4, "f", "input")) return nullptr;
  if (!get_buffer(output, &out, true, 4, "f", "output")) {
    PyBuffer_Release(&in);
    return nullptr;
  }
  if (!get_buffer(workspace, &ws, true, 1, "Bb", "workspace")) {
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    return nullptr;
  }
  bool have_times = times != Py_None;
  if (have_times && !get_buffer(times, &tv, true, 8, "d", "times")) {
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    PyBuffer_Release(&ws);
    return nullptr;
  }
  const char* problem = nullptr;
  if (in.len < n * self->in_bytes)
    problem = "input is smaller than n images";
  else if (out.len < n * self->out_bytes)
    problem = "output is smaller than n images";
  else if (ws.len < int64_t(threads) * (self->arena_bytes + self->scratch_bytes))
    problem = "workspace is smaller than threads * (arena + scratch)";
  else if (have_times && tv.len < self->n_ops * 8)
    problem = "times has fewer entries than the plan has ops";
  else if (reinterpret_cast<uintptr_t>(ws.buf) % 64)
    problem = "workspace is not 64-byte aligned";
  if (!problem) {
    bnnzoo_rt::Workspace w{static_cast<uint8_t*>(ws.buf), self->arena_bytes, self->scratch_bytes};
    Py_BEGIN_ALLOW_THREADS;
    self->table->run(static_cast<const int64_t*>(self->ops.buf), self->n_ops,
                     static_cast<const uint64_t*>(self->weights.buf), static_cast<const float*>(self->params.buf),
                     static_cast<const uint8_t*>(in.buf), self->in_bytes, static_cast<uint8_t*>(out.buf),
                     self->out_bytes, n, w, threads, have_times ? static_cast<double*>(tv.buf) : nullptr);
    Py_END_ALLOW_THREADS;
  }
  PyBuffer_Release(&in);
  PyBuffer_Release(&out);
  PyBuffer_Release(&ws);
  if (have_times) PyBuffer_Release(&tv);
  if (problem) {
    PyErr_SetString(PyExc_ValueError, problem);
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* plan_isa(Plan* self, void*) { return PyUnicode_FromString(self->table ? self->table->name : "none"); }
PyObject* plan_n_ops(Plan* self, void*) { return PyLong_FromLongLong(self->n_ops); }

PyMethodDef plan_methods[] = {
    {"run", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(plan_run)), METH_VARARGS | METH_KEYWORDS,
     "run(input, output, n, workspace, threads, times=None): run the plan on n images"},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef plan_getset[] = {{"isa", reinterpret_cast<getter>(plan_isa), nullptr, "the ISA of this plan", nullptr},
                             {"n_ops", reinterpret_cast<getter>(plan_n_ops), nullptr, "number of ops", nullptr},
                             {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot plan_slots[] = {
    {Py_tp_doc, const_cast<char*>("Plan(ops, weights, params, arena_bytes, scratch_bytes, in_bytes, out_bytes, isa)")},
    {Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
    {Py_tp_init, reinterpret_cast<void*>(plan_init)},
    {Py_tp_dealloc, reinterpret_cast<void*>(plan_dealloc)},
    {Py_tp_methods, plan_methods},
    {Py_tp_getset, plan_getset},
    {0, nullptr}};

PyType_Spec plan_spec = {"bnnzoo.runtime._engine.Plan", sizeof(Plan), 0, Py_TPFLAGS_DEFAULT, plan_slots};

PyObject* resolve_isa(PyObject*, PyObject* args) {
  const char* request = nullptr;
  if (!PyArg_ParseTuple(args, "|z", &request)) return nullptr;
  const char* error = nullptr;
  const KernelTable* table = bnnzoo_rt::select_isa(request, &error);
  if (!table) {
    PyErr_SetString(PyExc_ValueError, error);
    return nullptr;
  }
  return PyUnicode_FromString(table->name);
}

PyObject* isa_info(PyObject*, PyObject*) {
  PyObject* built = PyList_New(0);
  PyObject* supported = PyList_New(0);
  static const char* const names[] = {"avx512", "avx2", "scalar"};
  for (const char* name : names) {
    PyObject* s = PyUnicode_FromString(name);
    if (bnnzoo_rt::isa_built(name)) PyList_Append(built, s);
    if (bnnzoo_rt::isa_supported_by_cpu(name)) PyList_Append(supported, s);
    Py_DECREF(s);
  }
#ifdef _OPENMP
  const int openmp = 1, max_threads = omp_get_max_threads();
#else
  const int openmp = 0, max_threads = 1;
#endif
  PyObject* result = Py_BuildValue("{s:N,s:N,s:s,s:O,s:i,s:i,s:i,s:i}", "built", built, "supported", supported, "best",
                                   bnnzoo_rt::best_isa(), "openmp", openmp ? Py_True : Py_False, "max_threads",
                                   max_threads, "abi", bnnzoo_rt::ABI_VERSION, "op_width", bnnzoo_rt::OP_WIDTH,
                                   "max_mr", bnnzoo_rt::MAX_MR);
  return result;
}

PyObject* xor_popcount_peak(PyObject*, PyObject* args) {
  const char* isa;
  double seconds;
  int threads;
  if (!PyArg_ParseTuple(args, "sdi", &isa, &seconds, &threads)) return nullptr;
  if (!(seconds > 0.0 && seconds <= 60.0) || threads < 1 || threads > 4096) {
    PyErr_SetString(PyExc_ValueError, "seconds must be in (0, 60] and threads between 1 and 4096");
    return nullptr;
  }
  const char* error = nullptr;
  const KernelTable* table = bnnzoo_rt::select_isa(isa, &error);
  if (!table) {
    PyErr_Format(PyExc_ValueError, "ISA '%s': %s", isa, error);
    return nullptr;
  }
  double rate;
  Py_BEGIN_ALLOW_THREADS;
  rate = table->xor_popcount_peak(seconds, threads);
  Py_END_ALLOW_THREADS;
  return PyFloat_FromDouble(rate);
}

PyMethodDef module_methods[] = {
    {"resolve_isa", resolve_isa, METH_VARARGS,
     "resolve_isa(request=None): the ISA a plan would use; None reads BNNZOO_RUNTIME_ISA"},
    {"isa_info", isa_info, METH_NOARGS, "built and CPU-supported ISAs, OpenMP, limits"},
    {"xor_popcount_peak", xor_popcount_peak, METH_VARARGS,
     "xor_popcount_peak(isa, seconds, threads): binary MACs/s of an L1-resident XOR-popcount loop"},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_engine", "bnnzoo's native XNOR-popcount inference engine", -1,
                          module_methods, nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__engine(void) {
  PyObject* module = PyModule_Create(&module_def);
  if (!module) return nullptr;
  PyObject* type = PyType_FromSpec(&plan_spec);
  if (!type || PyModule_AddObject(module, "Plan", type) < 0) {
    Py_XDECREF(type);
    Py_DECREF(module);
    return nullptr;
  }
  return module;
}
