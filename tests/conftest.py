import os
import sys

# The conformance helpers import each other by module name.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "conformance"))


import pytest  # noqa: E402

import pycnn  # noqa: E402


@pytest.fixture(params=pycnn.available_isas())
def isa(request):
    """Runs the test once per kernel path this CPU has (sessions created inside use it)."""
    before = pycnn.active_isa()
    pycnn.set_isa(request.param)
    try:
        yield request.param
    finally:
        pycnn.set_isa(before)
