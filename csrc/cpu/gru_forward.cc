// Forward pass of the stacked GRU on the CPU: the wavefront of deeprnn/stacked_rnn.h over (layer, time) cells.
//
// Work split. A unit of work is one tile of one cell: a block of batch rows times a block of units [j0, j1) (whole
// column panels of H). Its elementwise pass needs, for each unit j, the three gates' columns j, H + j and 2H + j, so
// the weights are packed per gate (six [in, H] / [H, H] matrices per layer, column blocks of Wx and Wh) and the
// unit runs the products of its tile for each gate, then the elementwise pass over the same rows and units. That
// keeps the tanh RNN's tiling (SplitTiles over B x panels of H, so several units per cell on small batches) and
// every product a plain cell_tile call, with no permuted layouts; the price is reading the tile's rows of x and h
// once per gate instead of once, which stay in L1/L2.
//
// Large batches with small weights run as batch blocks instead (cpu/wavefront.h): each block of rows runs the whole
// wavefront on one thread, one tile per cell, with no synchronisation between steps.
//
// The products write a tile's [z_pre | r_pre | xn | q] rows to scratch (z and r sum their input and recurrent products
// in one accumulator, with the two biases added together); the elementwise pass turns them into the gates
// [z | r | n | q], which it writes with streaming stores (cpu/gru_pointwise.h): the backward pass reads them long
// after, so writing them through the caches would only cost a read of every line first.
#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/gru_pointwise.h"
#include "cpu/wavefront.h"
#include "deeprnn/stacked_gru.h"

namespace deeprnn {

namespace {

// Gate g's column block [g H, (g + 1) H) of a [rows, 3H] weight matrix, packed.
template <typename T>
cpu::PackedMatrix<T> PackGate(const T* w, int64_t rows, int64_t H, int g) {
  return cpu::PackedMatrix<T>(w + g * H, 3 * H, false, rows, H);
}

}  // namespace

template <typename T>
void StackedGruForwardCpu(const Shape& shape, const T* inputs, const GruWeights<T>& weights, const T* initial_states,
                          T* outputs, T* final_states, T* activations, T* gates, const ParallelFor& parallel_for) {
  const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
  const int64_t G = kGruGateSlots * H;  // one gates row
  if (B == 0) return;
  if (TT == 0) {
    std::memcpy(final_states, initial_states, sizeof(T) * L * B * H);
    return;
  }
  const cpu::CpuKernelTable<T>& k = cpu::Kernels<T>();
  const cpu::GruKernelTable<T>& gru = cpu::GruKernels<T>();

  // Per layer and gate, packed once and reused by all T steps: wx[3 l + g], wh[3 l + g].
  std::vector<cpu::PackedMatrix<T>> wx_storage, wh_storage;
  for (int64_t l = 0; l < L; ++l)
    for (int g = 0; g < 3; ++g) {
      wx_storage.push_back(PackGate(weights.kernels[l], l == 0 ? D : H, H, g));
      wh_storage.push_back(PackGate(weights.recurrent_kernels[l], H, H, g));
    }
  std::vector<cpu::PackedB<T>> wx, wh;
  for (size_t i = 0; i < wx_storage.size(); ++i) {
    wx.push_back(wx_storage[i].view());
    wh.push_back(wh_storage[i].view());
  }
  // z and r add both biases before the sigmoid: bx + bh for their 2H columns, per layer.
  std::vector<T> bias_zr(L * 2 * H);
  for (int64_t l = 0; l < L; ++l)
    for (int64_t j = 0; j < 2 * H; ++j) bias_zr[l * 2 * H + j] = weights.biases[l][j] + weights.biases[l][3 * H + j];

  const int64_t panels = cpu::NumPanels<T>(H);
  auto cell = [&](int64_t l, int64_t t) { return activations + (l * TT + t) * B * H; };
  auto cell_gates = [&](int64_t l, int64_t t) { return gates + (l * TT + t) * B * G; };

  // One tile of cell (l, t): its four products into `pre` (the tile's rows, [m, 4H], still in cache when the
  // elementwise pass reads them), then the elementwise pass over the same rows and units into the gates.
  auto cell_tile = [&](int64_t l, int64_t t, const Tile& tile, T* pre) {
    const int64_t r0 = tile.row_begin, m = tile.row_end - r0;
    // The layer below at step t (layer 0 reads the batch-major inputs at time t); this layer at step t - 1.
    const cpu::GemmA<T> x = l == 0 ? cpu::GemmA<T>{inputs + r0 * TT * D + t * D, TT * D, 1}
                                   : cpu::GemmA<T>{cell(l - 1, t) + r0 * H, H, 1};
    const T* h_prev = (t == 0 ? initial_states + l * B * H : cell(l, t - 1)) + r0 * H;
    const cpu::GemmA<T> h = {h_prev, H, 1};
    const T* bias = weights.biases[l];

    auto product = [&](int slot, const cpu::GemmA<T>* a_x, const cpu::PackedB<T>* b_x, const cpu::GemmA<T>* a_h,
                       const cpu::PackedB<T>* b_h, const T* slot_bias) {
      cpu::TileSpec<T> spec;
      if (a_x) spec.products[spec.num_products++] = {*a_x, b_x};
      if (a_h) spec.products[spec.num_products++] = {*a_h, b_h};
      spec.bias = slot_bias;
      spec.dst[0] = pre + slot * H;
      spec.dst_ld[0] = G;
      k.cell_tile(spec, m, H, tile.panel_begin, tile.panel_end);
    };
    product(0, &x, &wx[3 * l], &h, &wh[3 * l], bias_zr.data() + l * 2 * H);              // z_pre
    product(1, &x, &wx[3 * l + 1], &h, &wh[3 * l + 1], bias_zr.data() + l * 2 * H + H);  // r_pre
    product(2, &x, &wx[3 * l + 2], nullptr, nullptr, bias + 2 * H);                      // xn
    product(3, nullptr, nullptr, &h, &wh[3 * l + 2], bias + 5 * H);                      // q

    cpu::GruForwardTile<T> pass;
    pass.pre = pre;
    pass.pre_ld = G;
    pass.gates = cell_gates(l, t) + r0 * G;
    pass.gates_ld = G;
    pass.h_prev = h_prev;
    pass.h_prev_ld = H;
    pass.hidden = H;
    pass.dst[0] = cell(l, t) + r0 * H;
    pass.dst_ld[0] = H;
    if (l == L - 1) {
      pass.dst[1] = outputs + (r0 * TT + t) * H;
      pass.dst_ld[1] = TT * H;
    }
    if (t == TT - 1) {
      pass.dst[2] = final_states + (l * B + r0) * H;
      pass.dst_ld[2] = H;
    }
    gru.forward(pass, m, tile.panel_begin * cpu::kNr<T>, std::min(H, tile.panel_end * cpu::kNr<T>));
  };

  // The wavefront over rows [row_begin, row_end) (RunOverBatch in cpu/wavefront.h).
  struct CellTile {
    int64_t layer;
    Tile tile;
  };
  auto wavefront = [&](int64_t row_begin, int64_t row_end, bool split, const ParallelFor& step_for) {
    std::vector<CellTile> work;
    cpu::ScratchBuffer<T> serial_pre;  // a block's, reused by all its steps
    for (int64_t s = 0; s < NumWavefrontSteps(TT, L); ++s) {
      const WavefrontStep step = ActiveLayers(s, TT, L);
      work.clear();
      for (int64_t l = step.first_layer; l <= step.last_layer; ++l) {
        const double flops = 2.0 * (row_end - row_begin) * 3 * H * ((l == 0 ? D : H) + H);
        const int64_t parts = split ? PartsForWork(flops) : 1;
        for (const Tile& tile : SplitRowRange(row_begin, row_end, panels, parts, cpu::kGemmMr))
          work.push_back({l, tile});
      }
      step_for(static_cast<int64_t>(work.size()), [&](int64_t begin, int64_t end) {
        cpu::ScratchBuffer<T> step_pre;
        cpu::ScratchBuffer<T>& pre = split ? step_pre : serial_pre;
        for (int64_t u = begin; u < end; ++u) {
          const Tile& tile = work[u].tile;
          cell_tile(work[u].layer, s - work[u].layer, tile, pre.get((tile.row_end - tile.row_begin) * G));
        }
      });
    }
  };
  const int64_t weight_bytes = static_cast<int64_t>(sizeof(T)) * LargestLayerWeights(shape, 3);
  RunOverBatch(B, BatchBlocks(B, weight_bytes, cpu::kGemmMr), parallel_for, wavefront);
}

template void StackedGruForwardCpu<float>(const Shape&, const float*, const GruWeights<float>&, const float*, float*,
                                          float*, float*, float*, const ParallelFor&);
template void StackedGruForwardCpu<double>(const Shape&, const double*, const GruWeights<double>&, const double*,
                                           double*, double*, double*, double*, const ParallelFor&);

}  // namespace deeprnn
