"""The activations the fused ops compute themselves, in every spelling Keras resolves them to: a layer whose
activation is another function runs the step-by-step loop."""
import keras
import tensorflow as tf

__all__ = ["RELU", "SIGMOID", "TANH", "is_one_of"]

TANH = (keras.activations.tanh, tf.tanh, tf.math.tanh, tf.nn.tanh)
SIGMOID = (keras.activations.sigmoid, tf.sigmoid, tf.math.sigmoid, tf.nn.sigmoid)
RELU = (keras.activations.relu, tf.nn.relu)


def is_one_of(function, functions):
    return any(function is f for f in functions)
