"""Prepared convolutions for Winograd weights that come back.

A session packs its weights once, and Winograd-transforms the 3x3 ones (the
transformed weights are 1.8-4x the originals). A functional call runs one-
shot: the GEMM reads the weights in place (nothing packed), and Winograd's
transform goes to scratch memory. On small planes that transform costs as
much as the convolution, so when a call used Winograd, the second call with
the same weight array (same buffer, shape and arguments) prepares the
operator as a session would, keeping a copy of the weights; from then on a
call with byte-identical weights (checked with memcmp, a fraction of the
transform's cost) reuses it. Weights changed in place simply miss. Other
algorithms gain nothing from a cache: checking the bytes would cost what
reading them in place costs.

Entries are dropped least recently used past the limit (256 MB by default;
set_weight_cache_limit(0) turns the cache off).
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from .. import _functional

_LIMIT = [256 << 20]
_lock = threading.Lock()
_entries: OrderedDict = OrderedDict()  # key -> _Entry
_seen: OrderedDict = OrderedDict()     # keys called once, no copy kept
_SEEN_MAX = 256


class _Entry:
    __slots__ = ("prepared", "copies", "nbytes", "lock")

    def __init__(self, prepared, copies, nbytes):
        self.prepared, self.copies, self.nbytes = prepared, copies, nbytes
        self.lock = threading.Lock()  # one run at a time per prepared op


def _key(op_type: str, attrs: dict, constants: list) -> tuple:
    frozen = tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in attrs.items()))
    # The ISA too: packed weights belong to the kernels that packed them.
    return (op_type, frozen, _functional.active_isa()) + tuple(
        None if a is None else (a.ctypes.data, a.shape) for a in constants)


def _matches(entry: _Entry, constants: list, threads: int) -> bool:
    return all((a is None) == (c is None) and (a is None or _functional.same_bytes(a, c, threads))
               for a, c in zip(constants, entry.copies))


def _footprint(constants: list) -> int:
    # The copies, the packed weights and, for 3x3 kernels, Winograd's
    # transformed ones (up to 4x the originals).
    n = sum(a.nbytes for a in constants if a is not None)
    w = constants[0]
    return n + w.nbytes * (5 if w.ndim == 4 and w.shape[2:] == (3, 3) else 1)


def _may_use_winograd(w, attrs: dict) -> bool:
    """Whether the convolution is one Winograd could run (3x3, stride 1, no
    dilation, one group; the op decides the rest): others skip the cache."""
    return (w.ndim == 4 and w.shape[2] == 3 and w.shape[3] == 3 and attrs.get("group", 1) == 1 and
            all(s == 1 for s in attrs.get("strides", ())) and all(d == 1 for d in attrs.get("dilations", ())))


def _run_once(op_type: str, fn: str, x, constants: list, attrs: dict, threads: int):
    """One-shot run: the op reads the weights in place. Returns (output, algorithm)."""
    once = _functional.Prepared(op_type, fn, ["input"] + constants, dict(attrs, _weights_once=1), 1, threads)
    return once.run([x], threads)[0], once.algorithm


def run_conv(op_type: str, fn: str, x, constants: list, attrs: dict, threads: int):
    """Runs op_type on x with constant inputs `constants` (weight, bias or
    None), through the cache. Returns the output."""
    if not _may_use_winograd(constants[0], attrs):
        return _run_once(op_type, fn, x, constants, attrs, threads)[0]
    key = _key(op_type, attrs, constants)
    with _lock:
        entry = _entries.get(key)
        if entry is not None:
            _entries.move_to_end(key)
    # The byte check runs outside the lock: other threads' calls go on.
    if entry is not None and not _matches(entry, constants, threads):
        with _lock:
            if _entries.get(key) is entry:
                del _entries[key]
        entry = None
    with _lock:
        again = entry is None and _seen.pop(key, False)
    if again and _LIMIT[0] >= _footprint(constants):
        copies = [None if a is None else a.copy() for a in constants]
        prepared = _functional.Prepared(op_type, fn, ["input"] + copies, attrs, 1, threads)
        entry = _Entry(prepared, copies, _footprint(constants))
        with _lock:
            _entries[key] = entry
            total = sum(e.nbytes for e in _entries.values())
            while total > _LIMIT[0] and len(_entries) > 1:
                _, old = _entries.popitem(last=False)
                total -= old.nbytes
    if entry is not None:
        with entry.lock:
            return entry.prepared.run([x], threads)[0]
    y, algorithm = _run_once(op_type, fn, x, constants, attrs, threads)
    if _LIMIT[0] > 0 and algorithm.startswith("winograd"):
        with _lock:
            _seen[key] = True
            if len(_seen) > _SEEN_MAX:
                _seen.popitem(last=False)
    return y


def set_weight_cache_limit(nbytes: int) -> None:
    """Memory the prepared-weights cache may hold (bytes); 0 turns it off and empties it."""
    if nbytes < 0:
        raise ValueError(f"set_weight_cache_limit: nbytes must be >= 0, got {nbytes}")
    _LIMIT[0] = int(nbytes)
    if nbytes == 0:
        clear_weight_cache()


def clear_weight_cache() -> None:
    """Drops every prepared convolution (and this thread's scratch memory)."""
    with _lock:
        _entries.clear()
        _seen.clear()
    _functional.release_scratch()
