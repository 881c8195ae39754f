"""The step-by-step loop behind the Keras layers whenever the fused op cannot run a call.

It runs L cells over time, the whole stack of one time step before the next, with exactly the semantics of
`keras.layers.RNN` over `StackedRNNCells` (keras/src/backend/tensorflow/rnn.py): at a masked step every state keeps
its previous value and the output repeats the previous output (zeros before the first unmasked step), or is zero with
`zero_output_for_mask`. It knows nothing about the cell's maths: each layer is a callable with a tuple of states (one
for the RNN and the GRU, h and c for the LSTM), so every layer of the package reuses it.

Plain TensorFlow with a `tf.while_loop`, so the number of time steps may be unknown until run time (and XLA compiles
it).
"""
import tensorflow as tf

__all__ = ["run_stacked_cells"]


def run_stacked_cells(cell_steps, inputs, initial_states, mask=None, zero_output_for_mask=False,
                      between_layer_masks=None):
    """Runs a stack of cells over a sequence.

    Args:
      cell_steps: L callables `step(x_t, states) -> (h_t [B, H], new_states)`, bottom layer first; `states` is the
        layer's tuple of S state tensors [B, H], `h_t` the output the next layer takes. Layer 0's x_t is [B, D]
        (floats) or [B] (token ids) as `inputs` holds them.
      inputs: [B, T, D] floats or [B, T] integer token ids, in processing order (already reversed in time for
        `go_backwards`).
      initial_states: L tuples of S tensors [B, H].
      mask: None, or a bool tensor [B, T] in processing order; False marks a step to skip.
      zero_output_for_mask: the output at a masked step is zero instead of the previous output.
      between_layer_masks: None, or one [L-1, T, B, H] tensor (time major, as the fused op takes it), mask l
        multiplied into layer l's output before it enters layer l + 1 (dropout between layers). The states carried
        in time are never multiplied.

    Returns:
      (outputs [B, T, H] in processing order, list of L tuples of S final states [B, H]).
    """
    num_layers = len(cell_steps)
    per_layer = [len(s) for s in initial_states]
    rank = inputs.shape.rank
    time_major = tf.transpose(inputs, [1, 0] + list(range(2, rank)))
    steps = tf.shape(time_major)[0]

    def unstacked(tensor_time_major):
        return tf.TensorArray(tensor_time_major.dtype, size=steps).unstack(tensor_time_major)

    input_ta = unstacked(time_major)
    mask_ta = unstacked(tf.transpose(tf.cast(mask, tf.bool))) if mask is not None else None
    drop_tas = ([unstacked(between_layer_masks[l]) for l in range(num_layers - 1)]
                if between_layer_masks is not None else None)
    top = initial_states[-1][0]
    output_ta = tf.TensorArray(top.dtype, size=steps, element_shape=top.shape)

    def nested(flat_states):
        # while_loop carries a flat list; the cells see their own tuples.
        result, start = [], 0
        for count in per_layer:
            result.append(tuple(flat_states[start:start + count]))
            start += count
        return result

    def body(t, output_ta, prev_output, *flat_states):
        states = nested(flat_states)
        x = input_ta.read(t)
        new_states = []
        for l in range(num_layers):
            h, layer_states = cell_steps[l](x, states[l])
            new_states.append(tuple(layer_states))
            x = h * drop_tas[l].read(t) if drop_tas is not None and l < num_layers - 1 else h
        output = h
        if mask_ta is not None:
            keep = tf.expand_dims(mask_ta.read(t), -1)
            new_states = [tuple(tf.where(keep, n, s) for n, s in zip(new, old))
                          for new, old in zip(new_states, states)]
            output = tf.where(keep, output, tf.zeros_like(output) if zero_output_for_mask else prev_output)
        return (t + 1, output_ta.write(t, output), output, *[s for layer in new_states for s in layer])

    flat_initial = [s for layer in initial_states for s in layer]
    loop_vars = (tf.constant(0), output_ta, tf.zeros_like(top), *flat_initial)
    result = tf.while_loop(lambda t, *_: t < steps, body, loop_vars, maximum_iterations=steps)
    outputs = tf.transpose(result[1].stack(), [1, 0, 2])
    outputs.set_shape([inputs.shape[0], inputs.shape[1], top.shape[-1]])  # the TensorArray forgets the time steps
    return outputs, nested(list(result[3:]))
