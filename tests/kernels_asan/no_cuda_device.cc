// The CUDA passes' entry points (csrc/deeprnn/stacked_cuda.h) as a machine without a GPU answers them: every call
// fails, as the first CUDA call does there. Linked into the AddressSanitizer build of deeprnn_fast._kernels
// (tests/kernels_asan_build.py) in place of the CUDA sources (csrc/engine/cuda, csrc/cells/*/cuda_*.cu), so that the
// module is built with DEEPRNN_WITH_CUDA and its CUDA entry points check every argument (__cuda_array_interface__
// dicts, overlaps, workspaces) under the sanitizer, without nvcc, then raise RuntimeError. The workspace sizes are
// host code (csrc/engine/plan) and are the real ones.
#include <string>

#include "deeprnn/stacked_cuda.h"

namespace deeprnn {

namespace {

CudaStatus NoDevice(const char* call) {
  return CudaStatus::Error(std::string(call) + ": no CUDA device (the AddressSanitizer test build has no CUDA)");
}

}  // namespace

template <typename T>
CudaStatus StackedForwardCuda(const ForwardArgs<T>&, const CudaLaunch&) {
  return NoDevice("StackedForwardCuda");
}

template <typename T>
CudaStatus StackedBackwardCuda(const BackwardArgs<T>&, T*, const CudaLaunch&) {
  return NoDevice("StackedBackwardCuda");
}

template CudaStatus StackedForwardCuda<float>(const ForwardArgs<float>&, const CudaLaunch&);
template CudaStatus StackedForwardCuda<double>(const ForwardArgs<double>&, const CudaLaunch&);
template CudaStatus StackedBackwardCuda<float>(const BackwardArgs<float>&, float*, const CudaLaunch&);
template CudaStatus StackedBackwardCuda<double>(const BackwardArgs<double>&, double*, const CudaLaunch&);

CudaStatus PlanStackedCuda(Cell, const Shape&, int, Direction, CudaSchedule, WavefrontPlan*, const PlanOptions&) {
  return NoDevice("PlanStackedCuda");
}

CudaStatus CudaDeviceCount(int* count) {
  *count = 0;  // as the library answers without a driver or a device: ok, none
  return CudaStatus::Ok();
}
CudaStatus CudaCurrentDeviceProps(DeviceProps*) { return NoDevice("cudaGetDeviceProperties"); }
CudaStatus CudaCurrentDeviceName(std::string*) { return NoDevice("cudaGetDeviceProperties"); }
CudaStatus CudaVersions(int*, int*) { return NoDevice("cudaRuntimeGetVersion"); }
CudaStatus CudaStreamWaitStream(void*, void*) { return NoDevice("cudaStreamWaitEvent"); }
CudaStatus CudaCopyHostToDeviceAsync(void*, const void*, int64_t, void*) { return NoDevice("cudaMemcpyAsync"); }
CudaStatus CudaGridSyncBenchmark(int64_t, int, void*) { return NoDevice("cudaLaunchCooperativeKernel"); }

}  // namespace deeprnn
