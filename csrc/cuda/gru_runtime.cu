// Planning of the GRU wavefront on the current device (with the GRU kernels' real occupancy), for the launchers and
// for PlanStackedGruCuda.
#include <cuda_runtime.h>

#include <string>

#include "cuda/gru_kernel_params.cuh"
#include "cuda/kernel_params.h"
#include "deeprnn/stacked_gru_cuda.h"

namespace deeprnn {
namespace cuda {

template <typename T>
CudaStatus PlanGruForCurrentDevice(const Shape& shape, Direction direction, CudaSchedule schedule,
                                   WavefrontPlan* plan) {
  DeviceProps props;
  DEEPRNN_RETURN_IF_NOT_OK(CurrentDeviceProps(&props, nullptr));
  CudaStatus occupancy_error;
  const OccupancyFn occupancy = [&](int tile, int64_t smem_bytes) {
    int blocks = 0;
    const CudaStatus st = direction == Direction::kForward
                              ? GruWavefrontOccupancy<T, false>(tile, smem_bytes, &blocks)
                              : GruWavefrontOccupancy<T, true>(tile, smem_bytes, &blocks);
    if (!st.ok() && occupancy_error.ok()) occupancy_error = st;
    return st.ok() ? blocks : 0;
  };
  DEEPRNN_RETURN_IF_NOT_OK(PlanGruWavefront(shape, sizeof(T), direction, props, schedule, occupancy, plan));
  return occupancy_error;
}
template CudaStatus PlanGruForCurrentDevice<float>(const Shape&, Direction, CudaSchedule, WavefrontPlan*);
template CudaStatus PlanGruForCurrentDevice<double>(const Shape&, Direction, CudaSchedule, WavefrontPlan*);

}  // namespace cuda

CudaStatus PlanStackedGruCuda(const Shape& shape, int element_bytes, Direction direction, CudaSchedule schedule,
                              WavefrontPlan* plan) {
  if (element_bytes == 4) return cuda::PlanGruForCurrentDevice<float>(shape, direction, schedule, plan);
  if (element_bytes == 8) return cuda::PlanGruForCurrentDevice<double>(shape, direction, schedule, plan);
  return CudaStatus::Error("element size must be 4 (float32) or 8 (float64) bytes; got " +
                           std::to_string(element_bytes));
}

}  // namespace deeprnn
