"""The step-by-step loop behind the Keras layers whenever the fused op cannot run a call.

It runs L cells over time, the whole stack of one time step before the next, with exactly the semantics of
`keras.layers.RNN` over `StackedRNNCells` (keras/src/backend/tensorflow/rnn.py): at a masked step every state keeps
its previous value and the output repeats the previous output (zeros before the first unmasked step), or is zero with
`zero_output_for_mask`. It knows nothing about the cell's maths: each layer is a callable, so the GRU layer reuses it.

Plain TensorFlow with a `tf.while_loop`, so the number of time steps may be unknown until run time.
"""
import tensorflow as tf

__all__ = ["run_stacked_cells"]


def run_stacked_cells(cell_steps, inputs, initial_states, mask=None, zero_output_for_mask=False,
                      between_layer_masks=None):
    """Runs a stack of cells over a sequence.

    Args:
      cell_steps: L callables `step(x_t [B, In], h_prev [B, H]) -> h_t [B, H]`, bottom layer first.
      inputs: [B, T, D] in processing order (already reversed in time for `go_backwards`).
      initial_states: L tensors [B, H].
      mask: None, or a bool tensor [B, T] in processing order; False marks a step to skip.
      zero_output_for_mask: the output at a masked step is zero instead of the previous output.
      between_layer_masks: None, or L-1 tensors [B, T, H] multiplied into layer l's output before it enters layer
        l + 1 (dropout between layers). The states carried in time are never multiplied.

    Returns:
      (outputs [B, T, H] in processing order, list of L final states [B, H]).
    """
    num_layers = len(cell_steps)
    time_major = tf.transpose(inputs, [1, 0, 2])
    steps = tf.shape(time_major)[0]

    def unstacked(tensor_time_major):
        return tf.TensorArray(tensor_time_major.dtype, size=steps).unstack(tensor_time_major)

    input_ta = unstacked(time_major)
    mask_ta = unstacked(tf.transpose(tf.cast(mask, tf.bool))) if mask is not None else None
    drop_tas = ([unstacked(tf.transpose(m, [1, 0, 2])) for m in between_layer_masks]
                if between_layer_masks else None)
    top = initial_states[-1]
    output_ta = tf.TensorArray(inputs.dtype, size=steps, element_shape=top.shape)

    def body(t, output_ta, prev_output, *states):
        x = input_ta.read(t)
        new_states = []
        for l in range(num_layers):
            h = cell_steps[l](x, states[l])
            new_states.append(h)
            x = h * drop_tas[l].read(t) if drop_tas is not None and l < num_layers - 1 else h
        output = new_states[-1]
        if mask_ta is not None:
            keep = tf.expand_dims(mask_ta.read(t), -1)
            new_states = [tf.where(keep, h, s) for h, s in zip(new_states, states)]
            output = tf.where(keep, output, tf.zeros_like(output) if zero_output_for_mask else prev_output)
        return (t + 1, output_ta.write(t, output), output, *new_states)

    loop_vars = (tf.constant(0), output_ta, tf.zeros_like(top), *initial_states)
    result = tf.while_loop(lambda t, *_: t < steps, body, loop_vars, maximum_iterations=steps)
    outputs = tf.transpose(result[1].stack(), [1, 0, 2])
    return outputs, list(result[3:])
