// CPU emulation of the grid group of cooperative_groups (see cuda_runtime.h beside this file).
#ifndef DEEPRNN_TESTS_CUDA_EMULATION_COOPERATIVE_GROUPS_H_
#define DEEPRNN_TESTS_CUDA_EMULATION_COOPERATIVE_GROUPS_H_

#include "cuda_runtime.h"

namespace cooperative_groups {

struct grid_group {
  void sync() const { emulation::GridSync(); }
};

inline grid_group this_grid() { return {}; }

}  // namespace cooperative_groups

#endif  // DEEPRNN_TESTS_CUDA_EMULATION_COOPERATIVE_GROUPS_H_
