// pycnn._functional's C++ exception handler (Cython `except +raise_functional_error`):
// a pycnn::Error becomes the pycnn.errors class of its code, as in pycnn._core,
// except that a bad attribute is a bad argument here (the attributes are the
// Python function's arguments): InvalidArgumentError, a ValueError.
#pragma once
#include <Python.h>

#include <new>
#include <stdexcept>

#include "pycnn/errors.h"

namespace pycnn::bindings {

inline PyObject* pycnn_error_class(const char* name) {
  PyObject* core = PyImport_ImportModule("pycnn._core");
  if (!core) return nullptr;
  PyObject* cls = PyObject_GetAttrString(core, name);
  Py_DECREF(core);
  return cls;
}

// Called inside Cython's catch block, with the GIL held.
inline void raise_functional_error() {
  const char* cls_name = "EngineError";
  std::string msg;
  try {
    throw;
  } catch (const Error& e) {
    msg = e.what();
    if (e.code() == ErrorCode::Unsupported) cls_name = "UnsupportedModelError";
    else if (e.code() != ErrorCode::Runtime) cls_name = "InvalidArgumentError";
  } catch (const std::bad_alloc&) {
    msg = "out of memory";
  } catch (const std::exception& e) {
    msg = e.what();
  }
  if (PyErr_Occurred()) return;
  PyObject* cls = pycnn_error_class(cls_name);
  if (!cls) return;  // the import failed: that error stands
  PyErr_SetString(cls, msg.c_str());
  Py_DECREF(cls);
}

}  // namespace pycnn::bindings
