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


@pytest.fixture
def run_in_threads():
    """run(work, n): calls work(i) for i < n on n Python threads at once and
    returns the exceptions they raised (the main thread reports them)."""
    import threading

    def run(work, n):
        start, errors = threading.Barrier(n), []

        def body(i):
            try:
                start.wait()
                work(i)
            except Exception as e:  # noqa: BLE001 (returned to the caller)
                errors.append(e)

        threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return errors

    return run
