// The GRU's CUDA backward pass: its wavefront kernels (every tile, float and double) and their driver.
#include "cells/gru/cuda_pointwise.cuh"
#include "engine/cuda/backward_pass.cuh"
#include "engine/cuda/passes.h"

DEEPRNN_INSTANTIATE_CUDA_BACKWARD(::deeprnn::GruCell)
