"""PyTorch's stacked RNNs as peers: one training step of torch.nn.RNN / GRU / LSTM with num_layers=L on the CPU.

The same step as train_steps.py's: forward of inputs [B, T, D] (batch_first), loss = sum(y^2) over the top layer's
output sequence, backward to the gradients of all parameters (not the inputs), float32, eager (PyTorch's ordinary
mode), with PyTorch's threads set to the run's thread count (machine.threads()). The weights are those of
workloads.py, converted to PyTorch's layout, so that these steps compute the same loss as the project's on the same
weights (test_bench_train_step.py checks it); PyTorch's second bias (bias_hh) is zero where the project has one bias.

torch is optional (the `bench` extra): without it every builder raises Unavailable and the cases skip.
"""
import numpy as np

import machine
import workloads
from unavailable import Unavailable

TORCH_MISSING = "torch not installed (pip install .[bench] / torch==2.13.0)"


def import_torch():
    try:
        import torch
    except ImportError:
        raise Unavailable(TORCH_MISSING) from None
    machine.apply_to_torch(torch)
    return torch


def _assign(torch, parameter, array):
    with torch.no_grad():
        parameter.copy_(torch.from_numpy(np.ascontiguousarray(array, dtype=workloads.DTYPE)))


def _compile_step(torch, module, inputs):
    x = torch.from_numpy(inputs)
    parameters = list(module.parameters())

    def step():
        for p in parameters:
            p.grad = None  # a fresh gradient each step, as the TF steps compute (no accumulation)
        outputs, _ = module(x)
        loss = outputs.square().sum()
        loss.backward()
        return loss.detach()

    return step


def _gate_order_keras_to_torch(hidden, gates):
    """Column permutation from Keras' gate blocks to PyTorch's: GRU z | r | n -> r | z | n; LSTM i | f | c | o is
    PyTorch's i | f | g | o already."""
    blocks = [np.arange(g * hidden, (g + 1) * hidden) for g in range(gates)]
    if gates == 3:
        blocks = [blocks[1], blocks[0], blocks[2]]
    return np.concatenate(blocks)


def build_torch_rnn(config, inputs):
    """torch.nn.RNN(nonlinearity="tanh", num_layers=L, batch_first=True), weights of workloads.make_rnn_weights."""
    torch = import_torch()
    rnn = torch.nn.RNN(config.features, config.hidden, num_layers=config.layers, nonlinearity="tanh",
                       batch_first=True)
    kernels, recurrent_kernels, biases = workloads.make_rnn_weights(config)
    for l in range(config.layers):
        _assign(torch, getattr(rnn, f"weight_ih_l{l}"), kernels[l].T)
        _assign(torch, getattr(rnn, f"weight_hh_l{l}"), recurrent_kernels[l].T)
        _assign(torch, getattr(rnn, f"bias_ih_l{l}"), biases[l])
        _assign(torch, getattr(rnn, f"bias_hh_l{l}"), np.zeros_like(biases[l]))
    return _compile_step(torch, rnn, inputs)


def _build_gated(config, inputs, module_class, gates, weights):
    torch = import_torch()
    rnn = module_class(config.features, config.hidden, num_layers=config.layers, batch_first=True)
    kernels, recurrent_kernels, biases = weights
    order = _gate_order_keras_to_torch(config.hidden, gates)
    for l in range(config.layers):
        _assign(torch, getattr(rnn, f"weight_ih_l{l}"), kernels[l][:, order].T)
        _assign(torch, getattr(rnn, f"weight_hh_l{l}"), recurrent_kernels[l][:, order].T)
        if biases[l].ndim == 2:  # the GRU's input and recurrent biases: nn.GRU's bias_ih and bias_hh
            _assign(torch, getattr(rnn, f"bias_ih_l{l}"), biases[l][0][order])
            _assign(torch, getattr(rnn, f"bias_hh_l{l}"), biases[l][1][order])
        else:
            _assign(torch, getattr(rnn, f"bias_ih_l{l}"), biases[l][order])
            _assign(torch, getattr(rnn, f"bias_hh_l{l}"), np.zeros_like(biases[l]))
    return _compile_step(torch, rnn, inputs)


def build_torch_gru(config, inputs):
    """torch.nn.GRU(num_layers=L, batch_first=True), weights of workloads.make_gru_weights (the same maths as
    Keras' GRUCell with reset_after=True)."""
    torch = import_torch()
    return _build_gated(config, inputs, torch.nn.GRU, 3, workloads.make_gru_weights(config))


def build_torch_lstm(config, inputs):
    """torch.nn.LSTM(num_layers=L, batch_first=True), weights of workloads.make_lstm_weights."""
    torch = import_torch()
    return _build_gated(config, inputs, torch.nn.LSTM, 4, workloads.make_lstm_weights(config))
