# cython: language_level=3, boundscheck=False, wraparound=False
"""Numpy functions backed by pycnn's C++ kernels (typed memoryviews, GIL released).

This module starts small: element-wise activations. pycnn.functional wraps it.
"""
from libcpp.string cimport string
import numpy as np

cdef extern from "pycnn/functional.h" namespace "pycnn::functional" nogil:
    void c_activation "pycnn::functional::activation"(const string& kind, const float* x, float* y, long long n,
                                                      float alpha, float beta, int threads) except +


def activation(str kind, x, float alpha=0.0, float beta=0.0, int threads=1):
    """Applies the activation `kind` element-wise to a float32 array; returns a new array."""
    arr = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(arr)
    cdef const float[::1] src = arr.reshape(-1)
    cdef float[::1] dst = out.reshape(-1)
    cdef string k = kind.encode()
    cdef long long n = src.shape[0]
    if n == 0:
        return out
    with nogil:
        c_activation(k, &src[0], &dst[0], n, alpha, beta, threads)
    return out
