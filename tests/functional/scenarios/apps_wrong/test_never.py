def test_never_runs():
    raise AssertionError("the run should have stopped before the tests")
