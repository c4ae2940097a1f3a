# cython: language_level=3, boundscheck=False, wraparound=False
"""pycnn.functional's compiled half: pycnn's C++ operators run once on numpy
arrays (typed memoryviews, the GIL released while they pack and compute).

Use pycnn.functional: it checks arguments and names them in its errors.
"""
from libcpp.string cimport string
from libcpp.vector cimport vector
from libcpp.memory cimport unique_ptr
from libc.stdint cimport int64_t
import numpy as np

cdef extern from "bindings/functional_errors.h" namespace "pycnn::bindings":
    cdef void raise_functional_error()

cdef extern from "pycnn/functional.h" namespace "pycnn::functional" nogil:
    void c_activation "pycnn::functional::activation"(const string& kind, const float* x, float* y, long long n,
                                                      float alpha, float beta, int threads) except +raise_functional_error
    cdef cppclass OpCall:
        OpCall(const string& op_type, const string& name) except +raise_functional_error
        void set_int(const string& key, int64_t v)
        void set_ints(const string& key, const vector[int64_t]& v) except +raise_functional_error
        void set_float(const string& key, double v)
        void set_string(const string& key, const string& v) except +raise_functional_error
        void add_input(const float* data, const vector[int64_t]& shape, bint constant) except +raise_functional_error
        void add_absent_input() except +raise_functional_error
        void prepare(int outputs, int threads) except +raise_functional_error
        void bind(int i, const float* data, const vector[int64_t]& shape) except +raise_functional_error
        void infer(int threads) except +raise_functional_error
        vector[int64_t] output_shape(int i) except +raise_functional_error
        int output_dtype(int i) except +raise_functional_error
        void run(const vector[void*]& outputs, int threads) except +raise_functional_error
        string algorithm()
    void c_release_scratch "pycnn::functional::release_scratch"()
    bint c_same_bytes "pycnn::functional::same_bytes"(const void* a, const void* b, size_t n, int threads)

cdef extern from "pycnn/session.h" namespace "pycnn":
    void c_set_isa "pycnn::set_isa"(const string& name) except +raise_functional_error
    const char* c_active_isa "pycnn::active_isa"()


def set_isa(str name):
    """Forces this module's kernel path (pycnn.set_isa calls it with pycnn._core's)."""
    c_set_isa(name.encode())


def active_isa():
    return c_active_isa().decode()


def activation(str kind, x, float alpha=0.0, float beta=0.0, int threads=1, out=None):
    """Applies the activation `kind` element-wise to a float32 array; returns
    a new array, or `out` (C-contiguous float32, x's size; may be x itself)."""
    arr = np.asarray(x, dtype=np.float32, order="C")  # 0-d stays 0-d
    if out is None:
        out = np.empty_like(arr)
    cdef const float[::1] src = arr.reshape(-1)
    cdef float[::1] dst = out.reshape(-1)
    cdef string k = kind.encode()
    cdef long long n = src.shape[0]
    if dst.shape[0] != n:
        raise ValueError(f"out has {dst.shape[0]} values, x {n}")
    if n == 0:
        return out
    with nogil:
        c_activation(k, &src[0], &dst[0], n, alpha, beta, threads)
    return out


cdef const float* data_of(arr):
    cdef const float[::1] view = arr.reshape(-1)
    return &view[0]


cdef class Prepared:
    """An ONNX operator made once (its constant inputs packed, as a session
    packs weights) and run on new inputs any number of times.

    op_type, name: the operator and the Python function its errors name.
    inputs: per operator input, a float32 array for a constant (kept alive
    here), "input" for one given to each run, or None for an omitted one.
    attrs: ONNX attributes, each an int, a float, a str or a list of ints.
    """
    cdef unique_ptr[OpCall] call
    cdef list constants
    cdef list runtime  # operator input indices given to run(), in order
    cdef int outputs

    def __init__(self, str op_type, str name, list inputs, dict attrs, int outputs=1, int threads=1):
        self.call.reset(new OpCall(op_type.encode(), name.encode()))
        self.constants = []
        self.runtime = []
        self.outputs = outputs
        for key, value in attrs.items():
            k = key.encode()
            if isinstance(value, (bool, int)):
                self.call.get().set_int(k, int(value))
            elif isinstance(value, float):
                self.call.get().set_float(k, value)
            elif isinstance(value, str):
                self.call.get().set_string(k, value.encode())
            else:
                self.call.get().set_ints(k, [int(v) for v in value])
        cdef vector[int64_t] no_shape
        for i, arr in enumerate(inputs):
            if arr is None:
                self.call.get().add_absent_input()
            elif isinstance(arr, str):
                self.runtime.append(i)
                self.call.get().add_input(NULL, no_shape, False)
            else:
                arr = np.ascontiguousarray(arr, dtype=np.float32)
                if arr.size == 0:
                    raise ValueError(f"{name}: input {i} is empty (shape {arr.shape})")
                self.constants.append(arr)
                self.call.get().add_input(data_of(arr), list(arr.shape), True)
        with nogil:
            self.call.get().prepare(outputs, threads)

    def run(self, list arrays, int threads=1):
        """Runs on `arrays` (C-contiguous float32, one per "input"); returns the outputs, new arrays."""
        if len(arrays) != len(self.runtime):
            raise ValueError(f"expected {len(self.runtime)} inputs, got {len(arrays)}")
        keep = []
        for i, arr in zip(self.runtime, arrays):
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            keep.append(arr)
            self.call.get().bind(i, data_of(arr) if arr.size else NULL, list(arr.shape))
        self.call.get().infer(threads)
        results = []
        cdef vector[void*] ptrs
        cdef size_t addr
        for i in range(self.outputs):
            dtype = np.int64 if self.call.get().output_dtype(i) == 2 else np.float32
            out = np.empty(tuple(self.call.get().output_shape(i)), dtype=dtype)
            results.append(out)
            addr = out.ctypes.data
            ptrs.push_back(<void*>addr)
        if any(r.size == 0 for r in results) or any(a.size == 0 for a in keep):
            return results
        with nogil:
            self.call.get().run(ptrs, threads)
        return results


    @property
    def algorithm(self):
        """What the last run did, as the profiler names it ("winograd-f2x3", "pointwise-gemm", ...)."""
        return self.call.get().algorithm().decode()


def run_op(str op_type, str name, list inputs, list constant, dict attrs, int outputs=1, int threads=1):
    """Runs the ONNX operator `op_type` once on `inputs` (float32 arrays or
    None for an omitted input; constant[i]: input i is a weight the op may
    pack); returns its outputs as new arrays."""
    spec = [None if a is None else (a if c else "input") for a, c in zip(inputs, constant)]
    prepared = Prepared(op_type, name, spec, attrs, outputs, threads)
    return prepared.run([a for a, c in zip(inputs, constant) if a is not None and not c], threads)


def same_bytes(a, b, int threads=1):
    """Whether two C-contiguous arrays hold the same bytes (memcmp over `threads` threads; no temporaries)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    cdef const unsigned char[::1] x = a.reshape(-1).view(np.uint8)
    cdef const unsigned char[::1] y = b.reshape(-1).view(np.uint8)
    cdef size_t n = x.shape[0]
    if n == 0:
        return True
    cdef bint same
    with nogil:
        same = c_same_bytes(&x[0], &y[0], n, threads)
    return same


def release_scratch():
    """Frees the scratch memory the calling thread's functional calls keep."""
    c_release_scratch()
