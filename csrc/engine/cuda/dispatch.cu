// The CUDA entry points of deeprnn/stacked_cuda.h: the pass of the cell the arguments name (engine/cuda/passes.h).
// The one list of the cells the CUDA engine runs is here.
#include <string>

#include "cells/gru/cell.h"
#include "cells/lstm/cell.h"
#include "cells/rnn/cell.h"
#include "deeprnn/stacked_cuda.h"
#include "engine/cuda/passes.h"

namespace deeprnn {

namespace {

CudaStatus UnknownCell(Cell cell) {
  return CudaStatus::Error("unknown cell " + std::to_string(static_cast<int>(cell)) +
                           " (deeprnn::Cell: tanh 0, relu 1, gru 2, lstm 3)");
}

template <typename T, bool kBackward>
CudaStatus PlanWith(Cell cell, const Shape& shape, CudaSchedule schedule, WavefrontPlan* plan,
                    const PlanOptions& options) {
  switch (cell) {
    case Cell::kTanh: return cuda::PlanCell<RnnCell<Cell::kTanh>, T, kBackward>(shape, schedule, plan, options);
    case Cell::kRelu: return cuda::PlanCell<RnnCell<Cell::kRelu>, T, kBackward>(shape, schedule, plan, options);
    case Cell::kGru: return cuda::PlanCell<GruCell, T, kBackward>(shape, schedule, plan, options);
    case Cell::kLstm: return cuda::PlanCell<LstmCell, T, kBackward>(shape, schedule, plan, options);
  }
  return UnknownCell(cell);
}

}  // namespace

template <typename T>
CudaStatus StackedForwardCuda(const ForwardArgs<T>& args, const CudaLaunch& launch) {
  switch (args.cell) {
    case Cell::kTanh: return cuda::ForwardCell<RnnCell<Cell::kTanh>, T>(args, launch);
    case Cell::kRelu: return cuda::ForwardCell<RnnCell<Cell::kRelu>, T>(args, launch);
    case Cell::kGru: return cuda::ForwardCell<GruCell, T>(args, launch);
    case Cell::kLstm: return cuda::ForwardCell<LstmCell, T>(args, launch);
  }
  return UnknownCell(args.cell);
}

template <typename T>
CudaStatus StackedBackwardCuda(const BackwardArgs<T>& args, T* grad_slots, const CudaLaunch& launch) {
  switch (args.cell) {
    case Cell::kTanh: return cuda::BackwardCell<RnnCell<Cell::kTanh>, T>(args, grad_slots, launch);
    case Cell::kRelu: return cuda::BackwardCell<RnnCell<Cell::kRelu>, T>(args, grad_slots, launch);
    case Cell::kGru: return cuda::BackwardCell<GruCell, T>(args, grad_slots, launch);
    case Cell::kLstm: return cuda::BackwardCell<LstmCell, T>(args, grad_slots, launch);
  }
  return UnknownCell(args.cell);
}

CudaStatus PlanStackedCuda(Cell cell, const Shape& shape, int element_bytes, Direction direction,
                           CudaSchedule schedule, WavefrontPlan* plan, const PlanOptions& options) {
  const bool backward = direction == Direction::kBackward;
  if (element_bytes == 4)
    return backward ? PlanWith<float, true>(cell, shape, schedule, plan, options)
                    : PlanWith<float, false>(cell, shape, schedule, plan, options);
  if (element_bytes == 8)
    return backward ? PlanWith<double, true>(cell, shape, schedule, plan, options)
                    : PlanWith<double, false>(cell, shape, schedule, plan, options);
  return CudaStatus::Error("element size must be 4 (float32) or 8 (float64) bytes; got " +
                           std::to_string(element_bytes));
}

template CudaStatus StackedForwardCuda<float>(const ForwardArgs<float>&, const CudaLaunch&);
template CudaStatus StackedForwardCuda<double>(const ForwardArgs<double>&, const CudaLaunch&);
template CudaStatus StackedBackwardCuda<float>(const BackwardArgs<float>&, float*, const CudaLaunch&);
template CudaStatus StackedBackwardCuda<double>(const BackwardArgs<double>&, double*, const CudaLaunch&);

}  // namespace deeprnn
