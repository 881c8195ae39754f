// The LSTM's CUDA forward pass: its wavefront kernels (every tile, float and double) and their driver.
#include "cells/lstm/cuda_pointwise.cuh"
#include "engine/cuda/forward_pass.cuh"
#include "engine/cuda/passes.h"

DEEPRNN_INSTANTIATE_CUDA_FORWARD(::deeprnn::LstmCell)
