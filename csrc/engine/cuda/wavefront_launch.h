// Host code around the wavefront kernels of every cell: their shared-memory limit, their occupancy and the launches
// of a planned wavefront (one cooperative launch, or one launch per step). Internal to csrc/engine/cuda.
#ifndef DEEPRNN_ENGINE_CUDA_WAVEFRONT_LAUNCH_H_
#define DEEPRNN_ENGINE_CUDA_WAVEFRONT_LAUNCH_H_

#include <cuda_runtime.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "deeprnn/launch_plan.h"
#include "engine/cuda/kernel_params.h"

namespace deeprnn {
namespace cuda {

// Raises a kernel's dynamic shared-memory limit to the device's opt-in maximum, once per device. The limit is a
// property of the kernel shared by every thread of the process, so it is only ever raised to one value: lowering
// it for a small launch could make a concurrent large launch of the same kernel fail (two TF ops at once). A high
// limit costs nothing by itself; occupancy follows the shared memory each launch asks for. `name` names the kernel
// in error messages.
template <typename Params>
CudaStatus EnsureKernelSmemLimit(void (*kernel)(Params), const std::string& name) {
  static std::mutex mu;
  static std::set<std::pair<int, const void*>> done;  // (device, kernel)
  DeviceProps props;
  int device = 0;
  DEEPRNN_RETURN_IF_NOT_OK(CurrentDeviceProps(&props, &device));
  std::lock_guard<std::mutex> lock(mu);
  const std::pair<int, const void*> key = {device, reinterpret_cast<const void*>(kernel)};
  if (done.count(key)) return CudaStatus::Ok();
  const std::string what = "cudaFuncSetAttribute(" + name + ", cudaFuncAttributeMaxDynamicSharedMemorySize, " +
                           std::to_string(props.smem_per_block_optin) + ")";
  DEEPRNN_CUDA_RETURN_IF_ERROR(what.c_str(),
                               cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    static_cast<int>(props.smem_per_block_optin)));
  done.insert(key);
  return CudaStatus::Ok();
}

// Blocks of `kernel` with smem_bytes of dynamic shared memory that fit on one SM of the current device.
template <typename Params>
CudaStatus KernelOccupancy(void (*kernel)(Params), const std::string& name, int64_t smem_bytes, int* blocks_per_sm) {
  *blocks_per_sm = 0;
  DEEPRNN_RETURN_IF_NOT_OK(EnsureKernelSmemLimit(kernel, name));
  const std::string what = "cudaOccupancyMaxActiveBlocksPerMultiprocessor(" + name + ")";
  DEEPRNN_CUDA_RETURN_IF_ERROR(what.c_str(),
                               cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks_per_sm, kernel, kWavefrontThreads,
                                                                             static_cast<size_t>(smem_bytes)));
  return CudaStatus::Ok();
}

// Runs a planned wavefront: one cooperative launch over every step (persistent), or one launch per step over that
// step's active cells (stepwise). batch, time and layers of `p` are read, the tiling and step fields filled in
// here. `name` names the kernel in error messages.
template <typename Params>
CudaStatus LaunchPlannedWavefront(void (*kernel)(Params), Params p, const WavefrontPlan& plan, bool backward,
                                  const std::string& name, cudaStream_t stream, int64_t* launches) {
  *launches = 0;
  const int steps = p.time + p.layers - 1;
  p.row_tiles = static_cast<int32_t>(plan.row_tiles);
  p.col_tiles = static_cast<int32_t>(plan.col_tiles);
  if (plan.schedule == CudaSchedule::kPersistent) {
    p.resident = plan.weights_on_chip ? 1 : 0;
    p.first_step = backward ? steps - 1 : 0;
    p.num_steps = steps;
    void* args[] = {&p};
    const std::string what = "cudaLaunchCooperativeKernel(" + name + ", " + std::to_string(plan.grid) + " blocks, " +
                             std::to_string(plan.smem_bytes) + " B shared memory)";
    DEEPRNN_CUDA_RETURN_IF_ERROR(
        what.c_str(), cudaLaunchCooperativeKernel(kernel, dim3(static_cast<unsigned>(plan.grid)),
                                                  dim3(kWavefrontThreads), args,
                                                  static_cast<size_t>(plan.smem_bytes), stream));
    *launches = 1;
    return CudaStatus::Ok();
  }
  p.resident = 0;
  p.num_steps = 1;
  const int per_cell = p.row_tiles * p.col_tiles;
  for (int i = 0; i < steps; ++i) {
    const int s = backward ? steps - 1 - i : i;
    const int active = std::min(p.layers - 1, s) - std::max(0, s - (p.time - 1)) + 1;
    p.first_step = s;
    void* args[] = {&p};
    const cudaError_t err = cudaLaunchKernel(kernel, dim3(static_cast<unsigned>(active * per_cell)),
                                             dim3(kWavefrontThreads), args, static_cast<size_t>(plan.smem_bytes),
                                             stream);
    if (err != cudaSuccess) {
      const std::string what = "launch of " + name + " (stepwise, step " + std::to_string(s) + ")";
      return CudaStatus::Error(CudaErrorText(what.c_str(), err));
    }
    ++*launches;
  }
  return CudaStatus::Ok();
}

}  // namespace cuda
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CUDA_WAVEFRONT_LAUNCH_H_
