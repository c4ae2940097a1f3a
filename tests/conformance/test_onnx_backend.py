"""ONNX backend conformance: pycnn (through pycnn.backend) against the
expected outputs the onnx package ships or generates. See onnx_cases.py for
which cases run and why the others are skipped."""
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import pycnn.backend as backend
from onnx_cases import all_cases

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}/{c.name}" for c in CASES])
def test_conformance(case):
    if case.skip:
        pytest.skip(case.skip)
    rep = backend.prepare(case.model)
    for inputs, expected in case.data_sets:
        inputs = [numpy_helper.to_array(i) if isinstance(i, onnx.TensorProto) else i for i in inputs]
        expected = [numpy_helper.to_array(e) if isinstance(e, onnx.TensorProto) else e for e in expected]
        outputs = rep.run(inputs)
        assert len(outputs) == len(expected)
        for got, want in zip(outputs, expected):
            want = np.asarray(want)
            assert got.dtype == want.dtype, f"dtype {got.dtype} != {want.dtype}"
            assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
            if want.dtype.kind in "fc":
                np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol)
            else:
                np.testing.assert_array_equal(got, want)
