// Forward pass of the stacked RNN on the CPU: the wavefront over (layer, time) cells, each cell's two products, bias
// and activation fused into one pass over its output tile. Large batches with small weights run as batch blocks
// (cpu/wavefront.h), each block of rows the whole wavefront on one thread.
#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/wavefront.h"
#include "deeprnn/stacked_rnn.h"

namespace deeprnn {

void SerialFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n > 0) fn(0, n);
}

namespace {

struct CellTile {
  int64_t layer;
  Tile tile;
};

}  // namespace

template <typename T>
void StackedRnnForwardCpu(const Shape& shape, Activation activation, const T* inputs, const Weights<T>& weights,
                          const T* initial_states, T* outputs, T* final_states, T* activations,
                          const ParallelFor& parallel_for) {
  const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
  if (B == 0) return;
  if (TT == 0) {
    std::memcpy(final_states, initial_states, sizeof(T) * L * B * H);
    return;
  }
  const cpu::CpuKernelTable<T>& k = cpu::Kernels<T>();

  // Weights are packed once here and reused by all T steps.
  std::vector<cpu::PackedMatrix<T>> wx_storage, wh_storage;
  std::vector<cpu::PackedB<T>> wx, wh;
  for (int64_t l = 0; l < L; ++l) {
    wx_storage.emplace_back(weights.kernels[l], H, false, l == 0 ? D : H, H);
    wh_storage.emplace_back(weights.recurrent_kernels[l], H, false, H, H);
  }
  for (int64_t l = 0; l < L; ++l) {
    wx.push_back(wx_storage[l].view());
    wh.push_back(wh_storage[l].view());
  }
  const int64_t panels = cpu::NumPanels<T>(H);
  auto cell = [&](int64_t l, int64_t t) { return activations + (l * TT + t) * B * H; };

  // One tile of cell (l, t): both products, bias and activation in one pass, stored to up to three places.
  auto cell_tile = [&](int64_t l, int64_t t, const Tile& tile) {
    const int64_t r0 = tile.row_begin;
    cpu::TileSpec<T> spec;
    // Input product: the layer below at step t (layer 0 reads the batch-major inputs at time t).
    spec.products[0].a = l == 0 ? cpu::GemmA<T>{inputs + r0 * TT * D + t * D, TT * D, 1}
                                : cpu::GemmA<T>{cell(l - 1, t) + r0 * H, H, 1};
    spec.products[0].b = &wx[l];
    // Recurrent product: this layer at step t - 1 (the initial state at t = 0).
    const T* prev = t == 0 ? initial_states + l * B * H : cell(l, t - 1);
    spec.products[1] = {{prev + r0 * H, H, 1}, &wh[l]};
    spec.num_products = 2;
    spec.bias = weights.biases[l];
    spec.epilogue = cpu::Epilogue::kActivate;
    spec.activation = activation;
    spec.dst[0] = cell(l, t) + r0 * H;
    spec.dst_ld[0] = H;
    if (l == L - 1) {
      spec.dst[1] = outputs + (r0 * TT + t) * H;
      spec.dst_ld[1] = TT * H;
    }
    if (t == TT - 1) {
      spec.dst[2] = final_states + (l * B + r0) * H;
      spec.dst_ld[2] = H;
    }
    k.cell_tile(spec, tile.row_end - r0, H, tile.panel_begin, tile.panel_end);
  };

  // The wavefront over rows [row_begin, row_end) (RunOverBatch in cpu/wavefront.h).
  auto wavefront = [&](int64_t row_begin, int64_t row_end, bool split, const ParallelFor& step_for) {
    std::vector<CellTile> work;
    for (int64_t s = 0; s < NumWavefrontSteps(TT, L); ++s) {
      const WavefrontStep step = ActiveLayers(s, TT, L);
      work.clear();
      for (int64_t l = step.first_layer; l <= step.last_layer; ++l) {
        const double flops = 2.0 * (row_end - row_begin) * H * ((l == 0 ? D : H) + H);
        const int64_t parts = split ? PartsForWork(flops) : 1;
        for (const Tile& tile : SplitRowRange(row_begin, row_end, panels, parts, cpu::kGemmMr))
          work.push_back({l, tile});
      }
      step_for(static_cast<int64_t>(work.size()), [&](int64_t begin, int64_t end) {
        for (int64_t u = begin; u < end; ++u) cell_tile(work[u].layer, s - work[u].layer, work[u].tile);
      });
    }
  };
  const int64_t weight_bytes = static_cast<int64_t>(sizeof(T)) * LargestLayerWeights(shape, 1);
  RunOverBatch(B, BatchBlocks(B, weight_bytes, cpu::kGemmMr), parallel_for, wavefront);
}

template void StackedRnnForwardCpu<float>(const Shape&, Activation, const float*, const Weights<float>&,
                                          const float*, float*, float*, float*, const ParallelFor&);
template void StackedRnnForwardCpu<double>(const Shape&, Activation, const double*, const Weights<double>&,
                                           const double*, double*, double*, double*, const ParallelFor&);

}  // namespace deeprnn
