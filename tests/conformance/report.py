"""Prints the conformance counts by operator (passed / failed / skipped, with
the skip reasons), for closing notes and the README:

    python tests/conformance/report.py
"""
import collections
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
warnings.filterwarnings("ignore")

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from onnx_cases import SUPPORTED_OPS, all_cases  # noqa: E402

import pycnn.backend as backend  # noqa: E402


def outcome(case):
    if case.skip:
        return "skipped"
    try:
        rep = backend.prepare(case.model)
        for inputs, expected in case.data_sets:
            inputs = [numpy_helper.to_array(i) if isinstance(i, onnx.TensorProto) else i for i in inputs]
            expected = [numpy_helper.to_array(e) if isinstance(e, onnx.TensorProto) else e for e in expected]
            for got, want in zip(rep.run(inputs), expected):
                want = np.asarray(want)
                assert got.shape == want.shape and got.dtype == want.dtype
                if want.dtype.kind == "f":
                    np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol)
                else:
                    np.testing.assert_array_equal(got, want)
        return "passed"
    except Exception:
        return "failed"


def main():
    by_op = collections.defaultdict(collections.Counter)
    reasons = collections.Counter()
    totals = collections.Counter()
    for case in all_cases():
        result = outcome(case)
        totals[result] += 1
        if case.skip:
            reasons["outside the op list" if case.skip.startswith("uses operators") else case.skip] += 1
        for op in case.ops:
            if op in SUPPORTED_OPS:
                by_op[op][result] += 1
    print(f"total: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    print("\n| op | passed | failed | skipped |\n|---|---|---|---|")
    for op in sorted(SUPPORTED_OPS):
        c = by_op.get(op, collections.Counter())
        print(f"| {op} | {c['passed']} | {c['failed']} | {c['skipped']} |")
    print("\nskip reasons:")
    for reason, n in reasons.most_common():
        print(f"  {n:5d}  {reason}")


if __name__ == "__main__":
    main()
