// The CUDA library's entry points (csrc/deeprnn/stacked_rnn_cuda.h, stacked_gru_cuda.h) as a machine without a GPU
// answers them: every call fails, as the first CUDA call does there. Linked into the AddressSanitizer build of
// deeprnn_fast._kernels (tests/kernels_asan_build.py) in place of csrc/cuda/*.cu, so that the module is built with
// DEEPRNN_WITH_CUDA and its CUDA entry points check every argument (__cuda_array_interface__ dicts, overlaps,
// workspaces) under the sanitizer, without nvcc, then raise RuntimeError.
#include <string>

#include "deeprnn/stacked_gru_cuda.h"
#include "deeprnn/stacked_rnn_cuda.h"

namespace deeprnn {

namespace {

CudaStatus NoDevice(const char* call) {
  return CudaStatus::Error(std::string(call) + ": no CUDA device (the AddressSanitizer test build has no CUDA)");
}

}  // namespace

template <typename T>
CudaStatus StackedRnnForwardCuda(const Shape&, Activation, const T*, const Weights<T>&, const T*, T*, T*, T*, void*,
                                 int64_t, void*, CudaSchedule, CudaLaunchInfo*) {
  return NoDevice("StackedRnnForwardCuda");
}

template <typename T>
CudaStatus StackedRnnBackwardCuda(const Shape&, Activation, const T*, const Weights<T>&, const T*, const T*, const T*,
                                  const T*, T*, const WeightGrads<T>&, T*, T*, void*, int64_t, void*, CudaSchedule,
                                  CudaLaunchInfo*) {
  return NoDevice("StackedRnnBackwardCuda");
}

template <typename T>
CudaStatus StackedGruForwardCuda(const Shape&, const T*, const GruWeights<T>&, const T*, T*, T*, T*, T*, void*,
                                 int64_t, void*, CudaSchedule, CudaLaunchInfo*) {
  return NoDevice("StackedGruForwardCuda");
}

template <typename T>
CudaStatus StackedGruBackwardCuda(const Shape&, const T*, const GruWeights<T>&, const T*, const T*, const T*,
                                  const T*, const T*, T*, const GruWeightGrads<T>&, T*, T*, void*, int64_t, void*,
                                  CudaSchedule, CudaLaunchInfo*) {
  return NoDevice("StackedGruBackwardCuda");
}

#define DEEPRNN_NO_DEVICE_INSTANTIATE(T)                                                                          \
  template CudaStatus StackedRnnForwardCuda<T>(const Shape&, Activation, const T*, const Weights<T>&, const T*,   \
                                               T*, T*, T*, void*, int64_t, void*, CudaSchedule, CudaLaunchInfo*); \
  template CudaStatus StackedRnnBackwardCuda<T>(const Shape&, Activation, const T*, const Weights<T>&, const T*,  \
                                                const T*, const T*, const T*, T*, const WeightGrads<T>&, T*, T*,  \
                                                void*, int64_t, void*, CudaSchedule, CudaLaunchInfo*);            \
  template CudaStatus StackedGruForwardCuda<T>(const Shape&, const T*, const GruWeights<T>&, const T*, T*, T*, T*, \
                                               T*, void*, int64_t, void*, CudaSchedule, CudaLaunchInfo*);         \
  template CudaStatus StackedGruBackwardCuda<T>(const Shape&, const T*, const GruWeights<T>&, const T*, const T*, \
                                                const T*, const T*, const T*, T*, const GruWeightGrads<T>&, T*,   \
                                                T*, void*, int64_t, void*, CudaSchedule, CudaLaunchInfo*);
DEEPRNN_NO_DEVICE_INSTANTIATE(float)
DEEPRNN_NO_DEVICE_INSTANTIATE(double)
#undef DEEPRNN_NO_DEVICE_INSTANTIATE

CudaStatus PlanStackedRnnCuda(const Shape&, int, Direction, CudaSchedule, WavefrontPlan*) {
  return NoDevice("PlanStackedRnnCuda");
}
CudaStatus PlanStackedGruCuda(const Shape&, int, Direction, CudaSchedule, WavefrontPlan*) {
  return NoDevice("PlanStackedGruCuda");
}

CudaStatus CudaDeviceCount(int* count) {
  *count = 0;  // as the library answers without a driver or a device: ok, none
  return CudaStatus::Ok();
}
CudaStatus CudaCurrentDeviceProps(DeviceProps*) { return NoDevice("cudaGetDeviceProperties"); }
CudaStatus CudaCurrentDeviceName(std::string*) { return NoDevice("cudaGetDeviceProperties"); }
CudaStatus CudaVersions(int*, int*) { return NoDevice("cudaRuntimeGetVersion"); }
CudaStatus CudaStreamWaitStream(void*, void*) { return NoDevice("cudaStreamWaitEvent"); }
CudaStatus CudaGridSyncBenchmark(int64_t, int, void*) { return NoDevice("cudaLaunchCooperativeKernel"); }

}  // namespace deeprnn
