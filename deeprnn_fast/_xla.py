"""Whether the layer is being traced for XLA, which cannot compile the fused op (it has no XLA kernel).

`tf.function(jit_compile=True)` (and so Keras' `model.compile(jit_compile=True)`, which wraps its train, test and
predict steps in one) enters an `XLAControlFlowContext` on the graph it traces into, and every graph traced inside
it (nested functions, while-loop bodies) has it among its outer graphs. TensorFlow itself asks the same question this
way (tensorflow/python/eager/polymorphic_function/polymorphic_function.py, OptionalXlaContext), as Keras 2's LSTM and
GRU did to avoid cuDNN under XLA.
"""
import tensorflow as tf
from tensorflow.python.ops import control_flow_util

__all__ = ["in_xla_context"]


def in_xla_context():
    """True while tracing inside an XLA-compiled function; False eagerly and in ordinary graphs."""
    if tf.executing_eagerly():
        return False
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
