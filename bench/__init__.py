"""Load benchmarks run by hand on a developer machine; not part of the test suite."""
