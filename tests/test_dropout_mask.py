"""The dropout-mask op (deeprnn_fast.dropout_mask): exactly TensorFlow's stateless bits, thresholded and scaled, for
every size (Philox batches of 64 numbers, work units of 16384), seed, rate and dtype, on every path (the op, its
baseline and AVX2 versions, the plain-TF reference that XLA and GPUs use); kept with probability 1 - rate; bad
arguments refused with the argument named."""
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeprnn_fast import _library, ops, reference

REPO = Path(__file__).resolve().parents[1]


def library_or_skip():
    try:
        return _library.library()
    except _library.LibraryUnavailable as e:
        pytest.skip(str(e))


def tf_bits(shape, seed):
    return tf.random.stateless_uniform(shape, seed=seed, minval=None, maxval=None, dtype=tf.uint32).numpy()


def expected_mask(shape, rate, seed, dtype):
    """The definition, in NumPy from TensorFlow's own bits."""
    bits = tf_bits(shape, seed).astype(np.uint64)
    threshold = int(np.ceil(np.float64(np.float32(rate)) * 2.0 ** 32))
    scale = dtype(1) / (dtype(1) - dtype(np.float32(rate)))
    return np.where(bits >= threshold, scale, dtype(0)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("count", [1, 3, 63, 64, 65, 1000, 16383, 16384, 16385, 40001])
def test_the_op_gives_tensorflows_bits_thresholded_at_every_size(count, dtype):
    lib = library_or_skip()
    rng = np.random.default_rng(count)
    seed = rng.integers(-2 ** 62, 2 ** 62, 2)
    rate = float(rng.uniform(0.05, 0.9))
    got = lib.deeprnn_fast_dropout_mask([count], tf.constant(seed, tf.int64), rate=rate, dtype=dtype).numpy()
    want = expected_mask([count], rate, seed, dtype)
    np.testing.assert_array_equal(got, want)
    assert 0 < np.count_nonzero(got) < count or count < 64


@pytest.mark.parametrize("shape", [[0], [5, 0, 3], [2, 3, 7], [3, 129, 17]])
@pytest.mark.parametrize("seed_dtype", [tf.int32, tf.int64])
def test_shapes_and_seed_dtypes(shape, seed_dtype):
    library_or_skip()
    seed = tf.constant([7, -123456], seed_dtype)
    got = ops.dropout_mask(shape, 0.3, seed).numpy()
    assert got.shape == tuple(shape) and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected_mask(shape, 0.3, seed, np.float32))


@pytest.mark.parametrize("rate", [0.0, 1e-9, 0.2, 0.5, 0.999])
def test_kept_with_probability_one_minus_rate_and_scaled(rate):
    library_or_skip()
    n = 200_000
    mask = ops.dropout_mask([n], rate, tf.constant([3, 4], tf.int64), tf.float64).numpy()
    kept = mask != 0
    np.testing.assert_array_equal(np.unique(mask[kept]), [1.0 / (1.0 - np.float64(np.float32(rate)))])
    sigma = np.sqrt(n * rate * (1 - rate))
    assert abs(kept.sum() - n * (1 - rate)) <= 5 * sigma + 1
    if rate == 0.0:
        assert kept.all()


def test_neighbouring_elements_and_seeds_are_independent():
    library_or_skip()
    a = ops.dropout_mask([4, 100_000], 0.5, tf.constant([1, 2], tf.int64)).numpy() != 0
    b = ops.dropout_mask([4, 100_000], 0.5, tf.constant([1, 3], tf.int64)).numpy() != 0
    # Agreement of two independent fair coins: 1/2 +- 5 sigma; rows are the four words of one Philox block.
    sigma = 0.5 / np.sqrt(a[0].size)
    for x, y in [(a[0], b[0]), (a[0], a[1]), (a[1], a[2]), (a[2], a[3]), (a[0][1:], a[0][:-1])]:
        assert abs(np.mean(x == y) - 0.5) < 5 * sigma


def test_a_seed_generator_is_advanced_as_keras_advances_it():
    library_or_skip()
    ours, theirs = keras.random.SeedGenerator(42), keras.random.SeedGenerator(42)
    first = ops.dropout_mask([1000], 0.4, ours).numpy()
    second = ops.dropout_mask([1000], 0.4, ours).numpy()
    seeds = [theirs.next(), theirs.next()]
    np.testing.assert_array_equal(first, expected_mask([1000], 0.4, seeds[0], np.float32))
    np.testing.assert_array_equal(second, expected_mask([1000], 0.4, seeds[1], np.float32))
    assert np.any(first != second)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_the_reference_xla_and_tf_function_paths_give_the_same_masks(dtype):
    library_or_skip()
    seed = tf.constant([11, 12], tf.int64)
    eager = ops.dropout_mask([37, 50], 0.25, seed, dtype)
    graph = tf.function(lambda s: ops.dropout_mask(tf.constant([37, 50]), 0.25, s, dtype))(seed)
    xla = tf.function(lambda s: ops.dropout_mask([37, 50], 0.25, s, dtype), jit_compile=True)(seed)
    plain = reference.dropout_mask([37, 50], 0.25, seed, dtype)
    for other in (graph, xla, plain):
        np.testing.assert_array_equal(eager.numpy(), other.numpy())
    assert eager.dtype == dtype


def test_the_baseline_version_draws_the_same_bits_as_the_avx2_one():
    library_or_skip()
    code = ("import numpy as np, tensorflow as tf\n"
            "from deeprnn_fast import ops\n"
            "m = ops.dropout_mask([3, 40001], 0.37, tf.constant([5, -6], tf.int64)).numpy()\n"
            "print(int((m != 0).sum()), float(np.dot(np.arange(m.size) % 9973, (m != 0).ravel())))\n")
    results = []
    for isa in ("generic", None):
        env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
        env.pop("DEEPRNN_FAST_CPU_ISA", None)
        if isa:
            env["DEEPRNN_FAST_CPU_ISA"] = isa
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results.append(proc.stdout.strip().splitlines()[-1])
    mask = expected_mask([3, 40001], 0.37, [5, -6], np.float32) != 0
    assert results[0] == results[1] == f"{int(mask.sum())} {float(np.dot(np.arange(mask.size) % 9973, mask.ravel()))}"


@pytest.mark.parametrize("rate, error", [(-0.1, ValueError), (1.0, ValueError), (1 - 1e-9, ValueError),
                                         (float("nan"), ValueError), (True, TypeError), ("0.5", TypeError),
                                         (None, TypeError)])
def test_a_rate_outside_zero_one_is_refused_with_its_name(rate, error):
    with pytest.raises(error, match=r"rate must be a fraction in \[0, 1\)"):
        ops.dropout_mask([4], rate, tf.constant([1, 2], tf.int64))


@pytest.mark.parametrize("seed", [tf.constant([1, 2, 3], tf.int64), tf.constant([1.0, 2.0]), tf.constant(5)])
def test_a_bad_seed_is_refused(seed):
    with pytest.raises(ValueError, match=r"seed must be a \[2\] int32 or int64 tensor"):
        ops.dropout_mask([4], 0.5, seed)


def test_a_bad_dtype_is_refused():
    with pytest.raises(TypeError, match="dtype must be float32 or float64; got float16"):
        ops.dropout_mask([4], 0.5, tf.constant([1, 2], tf.int64), tf.float16)


def test_the_raw_op_checks_what_the_wrapper_checks():
    lib = library_or_skip()
    seed = tf.constant([1, 2], tf.int64)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=r"rate must be in \[0, 1\)"):
        lib.deeprnn_fast_dropout_mask([4], seed, rate=1.5)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="seed"):
        lib.deeprnn_fast_dropout_mask([4], tf.constant([1, 2, 3], tf.int64), rate=0.5)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError)):
        lib.deeprnn_fast_dropout_mask([4, -2], seed, rate=0.5)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="shape must be 1-D"):
        lib.deeprnn_fast_dropout_mask([[4]], seed, rate=0.5)
