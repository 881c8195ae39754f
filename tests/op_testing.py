"""Helpers of the op tests: fresh random stacked-RNN arguments and the loss both implementations are differentiated on."""
import numpy as np
import tensorflow as tf

# Agreement with the reference: float64 to rounding, float32 to a few ulp of the largest value compared.
TOLERANCE = {tf.float64: 1e-10, tf.float32: 1e-5}


def random_args(rng, batch, time, features, units, layers, dtype=tf.float64, scale=0.6):
    """Inputs, weights and initial states drawn afresh, at a scale that keeps tanh out of saturation so that every
    weight visibly moves the result; biases and initial states are non-zero so that a lost term shows."""

    def draw(shape, std):
        return tf.constant(rng.normal(0.0, std, shape), dtype)

    inputs = draw((batch, time, features), 1.0)
    kernels = [draw((features if l == 0 else units, units), scale / np.sqrt(features if l == 0 else units))
               for l in range(layers)]
    recurrent = [draw((units, units), scale / np.sqrt(units)) for _ in range(layers)]
    biases = [draw((units,), 0.3) for _ in range(layers)]
    initial = [draw((batch, units), 0.5) for _ in range(layers)]
    return inputs, kernels, recurrent, biases, initial


def flatten_args(inputs, kernels, recurrent, biases, initial):
    return [inputs] + list(kernels) + list(recurrent) + list(biases) + list(initial)


def loss_of(outputs, final_states):
    """A loss that weighs every output and every final state differently, so that a gradient routed to the wrong
    time step, layer or unit changes the result."""
    w = tf.cast(tf.reshape(tf.range(tf.size(outputs)) % 7 + 1, tf.shape(outputs)), outputs.dtype) / 7.0
    loss = tf.reduce_sum(w * outputs * tf.cos(outputs))
    for l, s in enumerate(final_states):
        loss += (0.3 + 0.1 * l) * tf.reduce_sum(s * s)
    return loss


def value_and_grads(fn, args, activation):
    flat = flatten_args(*args)
    with tf.GradientTape() as tape:
        tape.watch(flat)
        outputs, final_states = fn(*args, activation=activation)
        loss = loss_of(outputs, final_states)
    return outputs, final_states, tape.gradient(loss, flat)


def assert_close(actual, expected, rtol, atol, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def scaled_close(actual, expected, dtype, what):
    """assert_close at TOLERANCE[dtype], the absolute part scaled by the largest expected magnitude (at least 1)."""
    tol = TOLERANCE[dtype]
    scale = max(1.0, float(np.max(np.abs(np.asarray(expected)))) if np.size(expected) else 1.0)
    assert_close(actual, expected, rtol=tol, atol=tol * scale, what=what)
