"""What checks the kernels without TensorFlow: the float64 NumPy oracle (`oracle`) and the GPU check script
(`gpu_check`, run on borrowed GPU machines that have NumPy and PyTorch but no TensorFlow)."""
