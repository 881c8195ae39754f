"""The checks of a stacked layer's call arguments (sequences or token ids, initial states, mask): every error names the
argument and the shape or dtype that was expected, so that bad input never reaches a kernel.

A mixin of `StackedRecurrentBase`; it reads the layer's `units`, `num_layers`, `state_names`, `input_size`,
`vocabulary_size`, `stateful` and `states`.
"""
import keras
import tensorflow as tf

from deeprnn_fast import _validate

__all__ = ["CallArgumentChecks"]


class CallArgumentChecks:

    def _checked_inputs(self, sequences):
        """The call's sequences as a tensor: floats [batch, time, features], or integer token ids [batch, time] for a
        layer with vocabulary_size."""
        name = type(self).__name__
        _validate.check_dense(f"{name} inputs", sequences)
        inputs = tf.convert_to_tensor(sequences)
        if self.vocabulary_size is not None:
            if not inputs.dtype.is_integer:
                raise ValueError(f"{name} {self.name!r} has vocabulary_size={self.vocabulary_size}: it takes integer "
                                 f"token ids of shape [batch, time]; got dtype {inputs.dtype.name}")
            if inputs.shape.rank != 2:
                raise ValueError(f"{name} {self.name!r} has vocabulary_size={self.vocabulary_size}: it takes token "
                                 f"ids of shape [batch, time] (rank 2); got shape {inputs.shape}")
        else:
            if not inputs.dtype.is_floating:
                raise ValueError(f"{name} expects floating-point inputs of shape [batch, time, features]; got dtype "
                                 f"{inputs.dtype.name} (cast them first, e.g. tf.cast(x, 'float32'), or build the "
                                 "layer with vocabulary_size= to feed token ids [batch, time])")
            if inputs.shape.rank != 3:
                raise ValueError(f"{name} expects inputs of shape [batch, time, {self.input_size}] (rank 3); got "
                                 f"shape {inputs.shape}")
            if inputs.shape[-1] != self.input_size:
                raise ValueError(f"{name} {self.name!r} was built for inputs of shape [batch, time, "
                                 f"{self.input_size}]; got shape {inputs.shape}")
        if inputs.shape[1] == 0:
            raise ValueError(f"{name} needs at least one time step; got inputs of shape {inputs.shape}")
        if self.stateful and inputs.shape[0] is not None and inputs.shape[0] != self.states[0].shape[0]:
            batch = self.states[0].shape[0]
            expected = f"[{batch}, time]" if self.vocabulary_size is not None else f"[{batch}, time, {self.input_size}]"
            raise ValueError(f"A stateful {name} keeps states of shape [{batch}, {self.units}]: its inputs must have "
                             f"shape {expected}; got shape {inputs.shape}")
        return inputs

    def _token_ids(self, tokens, in_xla):
        """Token ids as int32, checked to lie in [0, vocabulary_size).

        The check runs when the ids are known (at run time in a graph), on the ids as given, before a cast to int32
        could wrap a huge int64 id into range. XLA drops assertions and clamps gathers silently, so inside an XLA
        cluster an id out of range is mapped to row `vocabulary_size` instead, which the caller fills with NaN
        (`_poisoned_kernel`): its sequence then computes NaN, never another token's output."""
        vocabulary = self.vocabulary_size
        wide = tf.cast(tokens, tf.int64)  # compared in int64: in a narrower type the vocabulary size could wrap
        valid = tf.logical_and(wide >= 0, wide < vocabulary)
        if in_xla:
            return tf.where(valid, tf.cast(tokens, tf.int32), vocabulary)
        expected = (f"{type(self).__name__} {self.name!r} inputs (tokens) must be token ids in [0, {vocabulary}) "
                    "(vocabulary_size); got ids from {} to {}")
        if tf.executing_eagerly():
            if not bool(tf.reduce_all(valid)):
                raise tf.errors.InvalidArgumentError(
                    None, None, expected.format(int(tf.reduce_min(wide)), int(tf.reduce_max(wide))))
            return tf.cast(tokens, tf.int32)
        message = tf.strings.format(expected, (tf.reduce_min(wide), tf.reduce_max(wide)))
        check = tf.debugging.Assert(tf.reduce_all(valid), [message])
        with tf.control_dependencies([check]):
            return tf.cast(tf.identity(tokens), tf.int32)

    def _initial_states(self, initial_state, inputs, op_dtype):
        """Per layer a tuple of its states (len(state_names) tensors [batch, units]), from `initial_state` (flat, in
        Keras' order, or nested as keras.layers.RNN returns them), the state variables, or zeros."""
        name, units, layers = type(self).__name__, self.units, self.num_layers
        per_layer = len(self.state_names)
        batch = inputs.shape[0]
        if initial_state is None:
            if self.stateful:
                flat = [tf.cast(v.value, op_dtype) for v in self.states]
            else:
                zeros = tf.zeros(tf.stack([tf.shape(inputs)[0], units]) if batch is None else [batch, units],
                                 op_dtype)
                flat = [zeros] * (layers * per_layer)
            return [tuple(flat[l * per_layer:(l + 1) * per_layer]) for l in range(layers)]
        given = keras.tree.flatten(initial_state)
        expected = f"[{'batch' if batch is None else batch}, {units}]"
        if len(given) != layers * per_layer:
            order = ("one per layer" if per_layer == 1 else
                     f"{' and '.join(self.state_names)} of every layer in turn "
                     f"([{', '.join(f'{s}_0' for s in self.state_names)}, "
                     f"{', '.join(f'{s}_1' for s in self.state_names)}, ...])")
            raise ValueError(f"{name} initial_state must be a list of {layers * per_layer} tensors of shape "
                             f"{expected}, {order}; got {len(given)} tensors")
        flat = []
        for i, state in enumerate(given):
            state = tf.convert_to_tensor(state)
            if not state.dtype.is_floating:
                raise ValueError(f"{name} initial_state[{i}] must be floating-point, of shape {expected}; got dtype "
                                 f"{state.dtype.name}")
            shape = state.shape
            if (shape.rank != 2 or shape[1] != units
                    or (batch is not None and shape[0] is not None and shape[0] != batch)):
                raise ValueError(f"{name} initial_state[{i}] must have shape {expected}; got shape {shape}")
            flat.append(tf.cast(state, op_dtype))
        return [tuple(flat[l * per_layer:(l + 1) * per_layer]) for l in range(layers)]

    def _checked_mask(self, mask, inputs):
        if mask is None:
            return None
        mask = tf.convert_to_tensor(mask)
        if mask.shape.rank == 3 and mask.shape[-1] == 1:
            mask = tf.squeeze(mask, -1)
        batch, time = inputs.shape[0], inputs.shape[1]
        if mask.shape.rank != 2 or any(m is not None and i is not None and m != i
                                       for m, i in zip(mask.shape, (batch, time))):
            raise ValueError(f"{type(self).__name__} expects a mask of shape [batch, time] = "
                             f"[{'batch' if batch is None else batch}, {'time' if time is None else time}]; got "
                             f"shape {mask.shape}")
        return tf.cast(mask, tf.bool)
