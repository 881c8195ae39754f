// Everything the per-instruction-set translation units (isa_*.cc) include before their `#pragma GCC target`: the
// standard library and the engine's plain helpers, so that none of it is compiled for a wider instruction set (see
// the ISA rule in simd.h).
#ifndef DEEPRNN_ENGINE_CPU_ENGINE_DEPS_H_
#define DEEPRNN_ENGINE_CPU_ENGINE_DEPS_H_

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#include <immintrin.h>

#include "cells/gru/cell.h"
#include "cells/lstm/cell.h"
#include "cells/rnn/cell.h"
#include "deeprnn/stacked.h"
#include "engine/cell_description.h"
#include "engine/cpu/dispatch.h"
#include "engine/cpu/pointwise.h"
#include "engine/cpu/step_mask.h"
#include "engine/cpu/tiles.h"
#include "engine/cpu/wavefront.h"
#include "engine/cpu/weight_grad_sink.h"

#endif  // DEEPRNN_ENGINE_CPU_ENGINE_DEPS_H_
