// CUDA runtime helpers of the library: error texts, the cached device properties, and the small services the
// adapters (TensorFlow, pybind11, benchmarks) use without CUDA headers of their own.
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "deeprnn/stacked_cuda.h"
#include "engine/cuda/kernel_params.h"

namespace deeprnn {
namespace cuda {

std::string CudaErrorText(const char* what, cudaError_t error) {
  return std::string(what) + " failed: " + cudaGetErrorName(error) + " (" + cudaGetErrorString(error) + ")";
}

CudaStatus CurrentDeviceProps(DeviceProps* props, int* device) {
  int dev = 0;
  DEEPRNN_CUDA_RETURN_IF_ERROR("cudaGetDevice", cudaGetDevice(&dev));
  if (device != nullptr) *device = dev;
  static std::mutex mu;
  static std::map<int, DeviceProps> cache;  // properties never change while a process runs
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(dev);
  if (it == cache.end()) {
    cudaDeviceProp prop;
    DEEPRNN_CUDA_RETURN_IF_ERROR("cudaGetDeviceProperties", cudaGetDeviceProperties(&prop, dev));
    DeviceProps p;
    p.sm_count = prop.multiProcessorCount;
    p.smem_per_block_optin = static_cast<int64_t>(prop.sharedMemPerBlockOptin);
    p.smem_per_sm = static_cast<int64_t>(prop.sharedMemPerMultiprocessor);
    p.reserved_smem_per_block = static_cast<int64_t>(prop.reservedSharedMemPerBlock);
    p.max_threads_per_sm = prop.maxThreadsPerMultiProcessor;
    p.max_blocks_per_sm = prop.maxBlocksPerMultiProcessor;
    p.regs_per_sm = prop.regsPerMultiprocessor;
    p.cooperative_launch = prop.cooperativeLaunch != 0;
    p.cc_major = prop.major;
    p.cc_minor = prop.minor;
    it = cache.emplace(dev, p).first;
  }
  *props = it->second;
  return CudaStatus::Ok();
}

namespace {

__global__ void GridSyncKernel(int64_t syncs) {
  cooperative_groups::grid_group grid = cooperative_groups::this_grid();
  for (int64_t i = 0; i < syncs; ++i) grid.sync();
}

}  // namespace

}  // namespace cuda

CudaStatus CudaDeviceCount(int* count) {
  *count = 0;
  const cudaError_t err = cudaGetDeviceCount(count);
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) {
    (void)cudaGetLastError();  // not sticky, but leave no error behind for the caller's next check
    *count = 0;
    return CudaStatus::Ok();
  }
  if (err != cudaSuccess) {
    *count = 0;
    return CudaStatus::Error(cuda::CudaErrorText("cudaGetDeviceCount", err));
  }
  return CudaStatus::Ok();
}

CudaStatus CudaCurrentDeviceProps(DeviceProps* props) { return cuda::CurrentDeviceProps(props, nullptr); }

CudaStatus CudaCurrentDeviceName(std::string* name) {
  int dev = 0;
  DEEPRNN_CUDA_RETURN_IF_ERROR("cudaGetDevice", cudaGetDevice(&dev));
  cudaDeviceProp prop;
  DEEPRNN_CUDA_RETURN_IF_ERROR("cudaGetDeviceProperties", cudaGetDeviceProperties(&prop, dev));
  *name = prop.name;
  return CudaStatus::Ok();
}

CudaStatus CudaVersions(int* runtime_version, int* driver_version) {
  *runtime_version = 0;
  *driver_version = 0;
  DEEPRNN_CUDA_RETURN_IF_ERROR("cudaRuntimeGetVersion", cudaRuntimeGetVersion(runtime_version));
  DEEPRNN_CUDA_RETURN_IF_ERROR("cudaDriverGetVersion", cudaDriverGetVersion(driver_version));
  return CudaStatus::Ok();
}

CudaStatus CudaStreamWaitStream(void* waiting, void* producer) {
  if (waiting == producer) return CudaStatus::Ok();
  cudaEvent_t event;
  DEEPRNN_CUDA_RETURN_IF_ERROR("cudaEventCreateWithFlags", cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  cudaError_t err = cudaEventRecord(event, static_cast<cudaStream_t>(producer));
  if (err == cudaSuccess) err = cudaStreamWaitEvent(static_cast<cudaStream_t>(waiting), event, 0);
  // Destroying an event whose work is still queued is allowed: its resources go once the work completes.
  const cudaError_t destroy_err = cudaEventDestroy(event);
  DEEPRNN_CUDA_RETURN_IF_ERROR("cudaEventRecord / cudaStreamWaitEvent", err);
  DEEPRNN_CUDA_RETURN_IF_ERROR("cudaEventDestroy", destroy_err);
  return CudaStatus::Ok();
}

CudaStatus CudaCopyHostToDeviceAsync(void* device_dst, const void* host_src, int64_t bytes, void* stream) {
  if (bytes <= 0) return CudaStatus::Ok();
  // A pageable copy of our own: cudaMemcpyAsync returns only once it has staged pageable memory, so the caller's
  // buffer (pinned or not) is free to go when this returns.
  std::vector<unsigned char> staging(static_cast<size_t>(bytes));
  std::memcpy(staging.data(), host_src, static_cast<size_t>(bytes));
  DEEPRNN_CUDA_RETURN_IF_ERROR("cudaMemcpyAsync(host to device)",
                               cudaMemcpyAsync(device_dst, staging.data(), static_cast<size_t>(bytes),
                                               cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream)));
  return CudaStatus::Ok();
}

CudaStatus CudaGridSyncBenchmark(int64_t syncs, int blocks, void* stream) {
  DeviceProps props;
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CurrentDeviceProps(&props, nullptr));
  if (!props.cooperative_launch) return CudaStatus::Error("the device does not support cooperative launch");
  if (blocks <= 0) blocks = props.sm_count;
  int per_sm = 0;
  DEEPRNN_CUDA_RETURN_IF_ERROR("cudaOccupancyMaxActiveBlocksPerMultiprocessor(grid-sync kernel)",
                               cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, cuda::GridSyncKernel,
                                                                             kWavefrontThreads, 0));
  if (static_cast<int64_t>(per_sm) * props.sm_count < blocks)
    return CudaStatus::Error("grid-sync benchmark: " + std::to_string(blocks) + " blocks are not co-resident (" +
                             std::to_string(per_sm) + " per SM x " + std::to_string(props.sm_count) + " SMs)");
  void* args[] = {&syncs};
  DEEPRNN_CUDA_RETURN_IF_ERROR(
      "cudaLaunchCooperativeKernel(grid-sync kernel)",
      cudaLaunchCooperativeKernel(cuda::GridSyncKernel, dim3(blocks),
                                  dim3(kWavefrontThreads), args, 0, static_cast<cudaStream_t>(stream)));
  return CudaStatus::Ok();
}

}  // namespace deeprnn
