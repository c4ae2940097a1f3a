"""Argument checking shared by pycnn.functional: every bad argument becomes
an InvalidArgumentError (a ValueError) naming the function, the argument and
the value, before any kernel runs."""
from __future__ import annotations

import numbers

import numpy as np

from .. import _functional
from ..errors import InvalidArgumentError

_threads = [0]  # 0 until first asked: pycnn.default_num_threads()


def threads() -> int:
    if not _threads[0]:
        from .. import default_num_threads
        _threads[0] = default_num_threads()
    return _threads[0]


def bad(fn: str, message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{fn}: {message}")


def as_float32(x, fn: str, name: str) -> np.ndarray:
    """x as a C-contiguous float32 array. Real dtypes (bool, integers,
    float16/32/64) are converted to float32; complex, object and string
    dtypes are refused."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: {name} has dtype {arr.dtype}; pycnn.functional computes in float32 and takes "
                        "real numbers only (bool, integer or floating dtypes)")
    return np.asarray(arr, dtype=np.float32, order="C")  # keeps 0-d arrays 0-d


def batched(x, fn: str, spatial: int, name: str = "input") -> tuple[np.ndarray, bool]:
    """An (N, C, *spatial) float32 array from x, which may also come without
    its batch dim (C, *spatial), as torch allows; the flag says to drop it again."""
    arr = as_float32(x, fn, name)
    if arr.ndim == spatial + 1:
        return arr[None], True
    if arr.ndim != spatial + 2:
        dims = "L" if spatial == 1 else "H, W"
        raise bad(fn, f"{name} must be (N, C, {dims}) or (C, {dims}), got shape {arr.shape}")
    if arr.size == 0:
        raise bad(fn, f"{name} is empty (shape {arr.shape})")
    return arr, False


def ints(value, n: int, fn: str, name: str, minimum: int) -> tuple[int, ...]:
    """An int or a sequence of n ints, each >= minimum, as an n-tuple."""
    if type(value) is int and value >= minimum:  # the common case, fast
        return (value,) * n
    vals = (value,) * n if isinstance(value, numbers.Integral) else tuple(value) if is_seq(value) else None
    if vals is None or len(vals) != n or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                                 for v in vals):
        raise bad(fn, f"{name} must be an int or a sequence of {n} ints, got {value!r}")
    if any(v < minimum for v in vals):
        raise bad(fn, f"{name} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in vals)


def is_seq(v) -> bool:
    """A tuple, list or 1-D array: a per-dimension argument."""
    return isinstance(v, (tuple, list)) or (isinstance(v, np.ndarray) and v.ndim == 1)


def pads(padding, n: int, fn: str) -> list[tuple[int, int]]:
    """(begin, end) per spatial dim from an int, a sequence of n ints
    (symmetric), or a sequence of n (begin, end) pairs (asymmetric)."""
    if is_seq(padding) and len(padding) == n and all(is_seq(p) for p in padding):
        pairs = [tuple(p) for p in padding]
        if not all(len(p) == 2 and all(isinstance(v, numbers.Integral) for v in p) for p in pairs):
            raise bad(fn, f"padding pairs must be (begin, end) ints, got {padding!r}")
        if any(v < 0 for p in pairs for v in p):
            raise bad(fn, f"padding must be >= 0, got {padding!r}")
        return [(int(b), int(e)) for b, e in pairs]
    try:
        sym = ints(padding, n, fn, "padding", 0)
    except InvalidArgumentError:
        forms = "(p,) or ((begin, end),)" if n == 1 else "(pH, pW) or ((top, bottom), (left, right))"
        raise bad(fn, f"padding must be 'valid', 'same', an int, {forms}; got {padding!r}") from None
    return [(p, p) for p in sym]


def onnx_pads(pairs: list[tuple[int, int]]) -> list[int]:
    """ONNX order: every begin, then every end."""
    return [b for b, _ in pairs] + [e for _, e in pairs]


def output_sizes(fn: str, size: tuple, pairs, kernel: tuple, stride: tuple, dilation: tuple,
                 ceil_mode: bool = False) -> tuple[int, ...]:
    """Spatial output sizes of a window over `size` padded by (begin, end)
    `pairs`: floor((size + pads - d(k - 1) - 1) / s) + 1, rounded up with
    ceil_mode (the last window must start inside the input or its begin
    padding, as torch); a kernel larger than the padded input is refused."""
    out = []
    for i, (n, (b, e), k, s, d) in enumerate(zip(size, pairs, kernel, stride, dilation)):
        extent = d * (k - 1) + 1
        span = n + b + e - extent
        if span < 0:
            raise bad(fn, f"the kernel (size {k}, dilation {d}: extent {extent}) is larger than the padded input "
                          f"in spatial dim {i} (size {n} + padding {b}+{e} = {n + b + e})")
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + b:
            o -= 1
        out.append(o)
    return tuple(out)


def run(op_type: str, fn: str, inputs: list, constant: list, attrs: dict, outputs: int = 1) -> list[np.ndarray]:
    return _functional.run_op(op_type, fn, inputs, constant, attrs, outputs, threads())


def set_num_threads(n: int) -> None:
    """Threads each pycnn.functional call uses (default: every CPU this process may use)."""
    if not isinstance(n, numbers.Integral) or n < 1:
        raise InvalidArgumentError(f"set_num_threads: n must be an int >= 1, got {n!r}")
    _threads[0] = int(n)


def get_num_threads() -> int:
    return threads()
