"""The switch that runs the op tests on the plain-TensorFlow fallback: DEEPRNN_FAST_TEST_FALLBACK=1 makes the op-test
modules (those that use conftest's `op_backend`) treat the compiled library as unavailable, so that every
`deeprnn_fast.stacked_*` call takes the reference through the same tests. Read once, at import."""
import os

FALLBACK_ENV = "DEEPRNN_FAST_TEST_FALLBACK"
FALLBACK = os.environ.get(FALLBACK_ENV, "") == "1"
