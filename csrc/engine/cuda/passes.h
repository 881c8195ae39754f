// The per-cell CUDA passes behind the entry points of deeprnn/stacked_cuda.h (engine/cuda/dispatch.cu calls them).
// Each cell instantiates its own in cells/<cell>/cuda_forward.cu and cuda_backward.cu with the macros below, so
// that a cell's kernels are compiled once, in its own translation units: registering a cell with the CUDA engine is
// those two files, its cuda_pointwise.cuh and a case in dispatch.cu.
#ifndef DEEPRNN_ENGINE_CUDA_PASSES_H_
#define DEEPRNN_ENGINE_CUDA_PASSES_H_

#include "deeprnn/stacked_cuda.h"

namespace deeprnn {
namespace cuda {

template <typename Cell, typename T>
CudaStatus ForwardCell(const ForwardArgs<T>& args, const CudaLaunch& launch);  // engine/cuda/forward_pass.cuh

template <typename Cell, typename T>
CudaStatus BackwardCell(const BackwardArgs<T>& args, T* grad_slots, const CudaLaunch& launch);  // backward_pass.cuh

template <typename Cell, typename T, bool kBackward>
CudaStatus PlanCell(const Shape& shape, CudaSchedule schedule, WavefrontPlan* plan,
                    const PlanOptions& options);  // wavefront_kernel.cuh

}  // namespace cuda
}  // namespace deeprnn

// In a cell's cuda_forward.cu (after including engine/cuda/forward_pass.cuh and the cell's cuda_pointwise.cuh).
#define DEEPRNN_INSTANTIATE_CUDA_FORWARD(CellType)                                                               \
  namespace deeprnn {                                                                                          \
  namespace cuda {                                                                                             \
  template CudaStatus ForwardCell<CellType, float>(const ForwardArgs<float>&, const CudaLaunch&);              \
  template CudaStatus ForwardCell<CellType, double>(const ForwardArgs<double>&, const CudaLaunch&);            \
  template CudaStatus PlanCell<CellType, float, false>(const Shape&, CudaSchedule, WavefrontPlan*, const PlanOptions&);            \
  template CudaStatus PlanCell<CellType, double, false>(const Shape&, CudaSchedule, WavefrontPlan*, const PlanOptions&);           \
  }                                                                                                            \
  }

// In a cell's cuda_backward.cu (after including engine/cuda/backward_pass.cuh and the cell's cuda_pointwise.cuh).
#define DEEPRNN_INSTANTIATE_CUDA_BACKWARD(CellType)                                                              \
  namespace deeprnn {                                                                                          \
  namespace cuda {                                                                                             \
  template CudaStatus BackwardCell<CellType, float>(const BackwardArgs<float>&, float*, const CudaLaunch&);    \
  template CudaStatus BackwardCell<CellType, double>(const BackwardArgs<double>&, double*, const CudaLaunch&);  \
  template CudaStatus PlanCell<CellType, float, true>(const Shape&, CudaSchedule, WavefrontPlan*, const PlanOptions&);             \
  template CudaStatus PlanCell<CellType, double, true>(const Shape&, CudaSchedule, WavefrontPlan*, const PlanOptions&);            \
  }                                                                                                            \
  }

#endif  // DEEPRNN_ENGINE_CUDA_PASSES_H_
