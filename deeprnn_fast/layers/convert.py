"""`from_keras`: turns a Keras stack of SimpleRNN, GRU or LSTM cells into an equivalent `StackedRNN`, `StackedGRU` or
`StackedLSTM`, weights included."""
import keras

from deeprnn_fast.layers.stacked_gru import StackedGRU
from deeprnn_fast.layers.stacked_lstm import StackedLSTM
from deeprnn_fast.layers.stacked_rnn import StackedRNN

__all__ = ["from_keras"]

# Cell settings that every layer of the stack must share, since the stacked layer has one of each.
_SHARED_CELL_SETTINGS = ("units", "activation", "use_bias", "kernel_initializer", "recurrent_initializer",
                         "bias_initializer", "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                         "kernel_constraint", "recurrent_constraint", "bias_constraint", "recurrent_dropout")
# Per cell type: the stacked layer replacing it, and its settings beyond the shared ones.
_CONVERSIONS = {
    keras.layers.SimpleRNNCell: (StackedRNN, ()),
    keras.layers.GRUCell: (StackedGRU, ("recurrent_activation", "reset_after")),
    keras.layers.LSTMCell: (StackedLSTM, ("recurrent_activation", "unit_forget_bias")),
}


def _cells_of(rnn):
    cell = rnn.cell
    cells = list(cell.cells) if isinstance(cell, keras.layers.StackedRNNCells) else [cell]
    for c in cells:
        if type(c) not in _CONVERSIONS:
            raise ValueError("from_keras converts RNNs over keras.layers.SimpleRNNCell, keras.layers.GRUCell or "
                             f"keras.layers.LSTMCell only; {rnn.name!r} has a {type(c).__name__}")
    return cells


def _rnn_layers_of(layer):
    """The RNN layers of `layer`: itself, or the layers of a Sequential of RNNs."""
    if isinstance(layer, keras.layers.RNN):
        return [layer]
    if isinstance(layer, keras.Sequential):
        rnns = [l for l in layer.layers if not isinstance(l, keras.layers.InputLayer)]
        if not rnns or not all(isinstance(l, keras.layers.RNN) for l in rnns):
            raise ValueError("from_keras converts a keras.Sequential made of SimpleRNN layers only, of GRU layers "
                             f"only or of LSTM layers only; got layers {[type(l).__name__ for l in rnns]}")
        for l in rnns[:-1]:
            if not l.return_sequences or l.return_state:
                raise ValueError(f"In a Sequential stack every layer but the last must return sequences (and no "
                                 f"state); {l.name!r} does not")
        for attribute in ("go_backwards", "stateful", "unroll"):
            values = {getattr(l, attribute) for l in rnns}
            if len(values) > 1:
                raise ValueError(f"The layers of the Sequential disagree on {attribute}: {values}")
        if len(rnns) > 1 and rnns[0].go_backwards:
            raise ValueError("A Sequential of go_backwards layers reverses time at every layer, which a stacked RNN "
                             "does not: it has no StackedRNN, StackedGRU or StackedLSTM equivalent")
        return rnns
    raise ValueError("from_keras expects a keras.layers.RNN over SimpleRNNCells, GRUCells or LSTMCells "
                     "(keras.layers.SimpleRNN, GRU and LSTM included) or a keras.Sequential of such layers; got "
                     f"{type(layer).__name__}")


def from_keras(layer, vocabulary_size=None):
    """Returns a StackedRNN, StackedGRU or StackedLSTM computing what `layer` computes, with its weights (and
    stateful states) copied.

    `layer` is a `keras.layers.RNN` over one or several `SimpleRNNCell`s (`keras.layers.SimpleRNN` included),
    `GRUCell`s (`keras.layers.GRU` included, in either `reset_after` form) or `LSTMCell`s (`keras.layers.LSTM`
    included), or a `keras.Sequential` of such layers; all cells must be of one type and have the same units,
    activations, initializers, regularizers, constraints, recurrent_dropout (and reset_after, unit_forget_bias).
    Cells with (input) dropout are refused: the stacked layers' dropout acts between layers instead.

    vocabulary_size: None, or V for a layer fed one-hot vectors of V features: the result then takes the token ids
    [batch, time] instead and computes what `layer` computes on `tf.one_hot(ids, V)`, with the same weights.
    """
    rnns = _rnn_layers_of(layer)
    cells = [c for rnn in rnns for c in _cells_of(rnn)]
    kinds = {type(c) for c in cells}
    if len(kinds) > 1:
        raise ValueError("from_keras needs every cell to be of one type (all SimpleRNNCell or all GRUCell); got "
                         f"{[type(c).__name__ for c in cells]}")
    target, extra_settings = _CONVERSIONS[kinds.pop()]
    shared = _SHARED_CELL_SETTINGS + extra_settings
    configs = [c.get_config() for c in cells]
    for key in shared:
        if any(cfg[key] != configs[0][key] for cfg in configs):
            raise ValueError(f"from_keras needs every cell to have the same {key}; got "
                             f"{[cfg[key] for cfg in configs]}")
    if any(c.dropout for c in cells):
        raise ValueError(f"from_keras cannot convert cells with dropout > 0: {type(cells[0]).__name__} drops each "
                         f"cell's inputs with one mask for all steps, {target.__name__} drops between layers; set "
                         "dropout=0 first")
    last = rnns[-1]
    settings = {key: configs[0][key] for key in shared}
    settings["activity_regularizer"] = last.activity_regularizer
    built = all(c.built for c in cells)
    if vocabulary_size is not None and built and cells[0].kernel.shape[0] != vocabulary_size:
        raise ValueError(f"from_keras: vocabulary_size={vocabulary_size} stands for one-hot inputs of that many "
                         f"features, but {rnns[0].name!r} takes {cells[0].kernel.shape[0]} features")
    converted = target(num_layers=len(cells), return_sequences=last.return_sequences,
                       return_state=last.return_state, go_backwards=rnns[0].go_backwards,
                       stateful=rnns[0].stateful, unroll=rnns[0].unroll,
                       zero_output_for_mask=last.zero_output_for_mask, seed=cells[0].seed,
                       dtype=rnns[0].dtype_policy, vocabulary_size=vocabulary_size, **settings)
    if built:
        keras_states = [s for rnn in rnns if rnn.stateful for s in keras.tree.flatten(rnn.states or [])]
        batch = keras_states[0].shape[0] if keras_states else None
        converted.build((batch, None) if vocabulary_size is not None else (batch, None, cells[0].kernel.shape[0]))
        converted.set_weights([w for c in cells for w in c.get_weights()])
        if keras_states:
            for variable, value in zip(converted.states, keras_states):
                variable.assign(value)
    return converted
