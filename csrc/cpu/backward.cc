// Backward pass of the stacked RNN on the CPU.
//
// 1. A reverse wavefront computes dZ, the gradient with respect to every cell's pre-activation:
//      G(l, t) = dY_t [top layer] + dH_final(l) [t = T-1] + dZ(l, t+1) W_h(l)^T + dZ(l+1, t) W_x(l+1)^T
//      dZ(l, t) = G(l, t) * phi'(Z(l, t))
//    Cell (l, t) needs step s + 1's cells (l, t+1) and (l+1, t), so again the cells of one step are independent.
// 2. Everything else is a plain product over all (t, b) at once, run as one parallel batch of tiles:
//      dX_t = dZ(0, t) W_x(0)^T,  dH_init(l) = dZ(l, 0) W_h(l)^T,
//      dW_x(l) = sum_t H(l-1, t)^T dZ(l, t),  dW_h(l) = sum_t H(l, t-1)^T dZ(l, t),  db(l) = sum_{t,b} dZ(l, t).
#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/wavefront.h"
#include "cpu/weight_grad_sink.h"
#include "deeprnn/stacked_rnn.h"

namespace deeprnn {

template <typename T>
void StackedRnnBackwardCpu(const Shape& shape, Activation activation, const T* inputs, const Weights<T>& weights,
                           const T* initial_states, const T* activations, const T* grad_outputs,
                           const T* grad_final_states, T* grad_inputs, const WeightGrads<T>& grad_weights,
                           T* grad_initial_states, T* grad_preactivations, const ParallelFor& parallel_for) {
  const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
  auto in_size = [&](int64_t l) { return l == 0 ? D : H; };
  for (int64_t l = 0; l < L; ++l) {
    std::fill_n(grad_weights.kernels[l], in_size(l) * H, T(0));
    std::fill_n(grad_weights.recurrent_kernels[l], H * H, T(0));
    std::fill_n(grad_weights.biases[l], H, T(0));
  }
  if (B == 0) return;
  if (TT == 0) {
    std::memcpy(grad_initial_states, grad_final_states, sizeof(T) * L * B * H);
    return;
  }
  const cpu::CpuKernelTable<T>& k = cpu::Kernels<T>();

  // op(B) = W^T for the data gradients, packed once.
  std::vector<cpu::PackedMatrix<T>> wx_t_storage, wh_t_storage;
  for (int64_t l = 0; l < L; ++l) {
    wx_t_storage.emplace_back(weights.kernels[l], H, true, H, in_size(l));
    wh_t_storage.emplace_back(weights.recurrent_kernels[l], H, true, H, H);
  }
  std::vector<cpu::PackedB<T>> wx_t, wh_t;
  for (int64_t l = 0; l < L; ++l) {
    wx_t.push_back(wx_t_storage[l].view());
    wh_t.push_back(wh_t_storage[l].view());
  }
  auto h = [&](int64_t l, int64_t t) { return activations + (l * TT + t) * B * H; };
  auto dz = [&](int64_t l, int64_t t) { return grad_preactivations + (l * TT + t) * B * H; };
  const int64_t panels = cpu::NumPanels<T>(H);

  // Weight gradients: dW_x(l) = sum_t in(l, t)^T dZ(l, t), dW_h(l) = sum_t H(l, t-1)^T dZ(l, t), db(l) = sum of
  // dZ(l)'s rows. Both products read the same dZ(l), so one call accumulates both from each packed slab of it and
  // the bias gradient comes out of the packing (gemm_shared_b). Two schedules:
  // - streamed: while the reverse wavefront runs, the cells of step s + 1 are folded into the weight gradients
  //   alongside step s's cells, as long as their dZ, H and inputs are still in cache. For large batches with small
  //   weights (the book's language model: B = 1024, H = 32), where the batched products below would stream every
  //   activation from memory again for little arithmetic.
  // - batched: after the wavefront, one product per layer over all T * B rows (K large, efficient), when the
  //   weights are large or the batch small, where accumulating per step would re-read the weight gradients from
  //   memory T times.
  // Either way each weight-gradient element is accumulated in a fixed order (t descending, or over all rows).
  // Large batches with small weights run the streamed schedule as batch blocks (cpu/wavefront.h): each block of
  // rows runs the reverse wavefront, its dX and its dH_init alone on one thread, into partial weight gradients
  // that are then added in block order.
  const int64_t largest_weights = LargestLayerWeights(shape, 1);
  const int64_t weight_bytes = largest_weights * static_cast<int64_t>(sizeof(T));
  const bool streamed = StreamedWeightGrads(B, weight_bytes);
  const std::vector<RowBlock> row_blocks = BatchBlocks(B, weight_bytes, cpu::kGemmMr);  // streamed when not empty
  // Column-panel groups per layer: every group re-reads the layer's activations, so few groups when the products
  // are small (and streamed: several layers' units then run side by side), more when a batched product is large
  // enough that a few tasks would leave cores idle at the end (each group about 0.5 GFLOP or more).
  const double batched_flops = 2.0 * TT * B * (largest_weights);
  const int64_t few_groups = (2 + L - 1) / L;
  const int64_t groups = std::min<int64_t>(
      panels, streamed ? few_groups : std::max<int64_t>(few_groups, std::min<int64_t>(8, batched_flops / 5e8)));

  // Weight gradients accumulate into grad_weights (arrays 2 l and 2 l + 1: dW_x(l), dW_h(l)) or, per batch block,
  // a zeroed copy (cpu/weight_grad_sink.h); bias gradients into column sums of dZ in double, sums l.
  using Sink = cpu::WeightGradSink<T>;
  std::vector<typename Sink::Array> grad_arrays;
  for (int64_t l = 0; l < L; ++l) {
    grad_arrays.push_back({grad_weights.kernels[l], in_size(l) * H});
    grad_arrays.push_back({grad_weights.recurrent_kernels[l], H * H});
  }
  Sink sink(grad_arrays, std::vector<int64_t>(L, H));
  auto accumulate_weight_grads = [&](Sink& sink, int64_t l, int64_t p0, int64_t p1, const cpu::GemmA<T>& in,
                                     int64_t k_rows, const T* prev, const T* dz_rows, T* scratch) {
    const cpu::GemmOutput<T> outs[2] = {{in, in_size(l), sink.array(2 * l), H},
                                        {{prev, 1, H}, H, sink.array(2 * l + 1), H}};
    k.gemm_shared_b(outs, 2, k_rows, dz_rows, H, H, p0, p1, scratch, sink.sums(l));
  };
  // C[rows of tile] = A op(B) for a pre-packed op(B), C overwritten: the data gradients dX and dH_init.
  auto packed_product = [&](const Tile& tile, cpu::GemmA<T> a, const cpu::PackedB<T>* b, T* c, int64_t ldc,
                            int64_t n) {
    cpu::TileSpec<T> spec;
    spec.products[0] = {{a.data + tile.row_begin * a.rs, a.rs, a.cs}, b};
    spec.num_products = 1;
    spec.dst[0] = c + tile.row_begin * ldc;
    spec.dst_ld[0] = ldc;
    k.cell_tile(spec, tile.row_end - tile.row_begin, n, tile.panel_begin, tile.panel_end);
  };
  auto input_grad = [&](const Tile& tile, int64_t t) {
    packed_product(tile, {dz(0, t), H, 1}, &wx_t[0], grad_inputs + t * D, TT * D, D);
  };
  auto initial_state_grad = [&](int64_t l, const Tile& tile) {
    packed_product(tile, {dz(l, 0), H, 1}, &wh_t[l], grad_initial_states + l * B * H, H, H);
  };
  // Tiles of rows [row_begin, row_end) of an [B, n] output: about `parts` of them, one when parts is 1.
  auto row_tiles = [](int64_t row_begin, int64_t row_end, int64_t n, int64_t parts) {
    return SplitRowRange(row_begin, row_end, cpu::NumPanels<T>(n), parts, cpu::kGemmMr);
  };
  // dZ for one tile of cell (l, t).
  auto cell = [&](int64_t l, int64_t t, const Tile& tile) {
    const int64_t r0 = tile.row_begin;
    cpu::TileSpec<T> spec;
    if (t + 1 < TT) spec.products[spec.num_products++] = {{dz(l, t + 1) + r0 * H, H, 1}, &wh_t[l]};
    if (l + 1 < L) spec.products[spec.num_products++] = {{dz(l + 1, t) + r0 * H, H, 1}, &wx_t[l + 1]};
    if (l == L - 1) {
      spec.add[0] = grad_outputs + (r0 * TT + t) * H;
      spec.add_ld[0] = TT * H;
    }
    if (t == TT - 1) {
      spec.add[1] = grad_final_states + (l * B + r0) * H;
      spec.add_ld[1] = H;
    }
    spec.epilogue = cpu::Epilogue::kActivationGrad;
    spec.activation = activation;
    spec.h = h(l, t) + r0 * H;
    spec.h_ld = H;
    spec.dst[0] = dz(l, t) + r0 * H;
    spec.dst_ld[0] = H;
    k.cell_tile(spec, tile.row_end - r0, H, tile.panel_begin, tile.panel_end);
  };

  // The reverse wavefront over rows [row_begin, row_end): each step's cells split into tiles that `step_for` runs
  // (`split`), or one tile per cell for one batch block, which also folds each finished cell of layer 0 into dX.
  struct Unit {
    enum Kind { kCell, kWeights, kInputGrad } kind;
    int64_t layer;
    Tile tile;  // kWeights: only its panels are used
  };
  auto wavefront = [&](int64_t row_begin, int64_t row_end, bool split, Sink& sink, const ParallelFor& step_for) {
    const int64_t rows = row_end - row_begin;
    const std::vector<Tile> cell_tiles = row_tiles(row_begin, row_end, H, split ? PartsForWork(4.0 * rows * H * H) : 1);
    const std::vector<Tile> input_grad_tiles = row_tiles(row_begin, row_end, D, 1);
    const int64_t unit_groups = split ? groups : 1;
    std::vector<Unit> work;
    cpu::ScratchBuffer<T> serial_scratch;  // a block's, reused by all its steps
    for (int64_t s = NumWavefrontSteps(TT, L) - 1; s >= -1; --s) {
      work.clear();
      if (streamed && s + 1 < NumWavefrontSteps(TT, L)) {
        const WavefrontStep done = ActiveLayers(s + 1, TT, L);
        for (int64_t l = done.first_layer; l <= done.last_layer; ++l)
          for (int64_t g = 0; g < unit_groups; ++g)
            work.push_back({Unit::kWeights, l, {0, 0, panels * g / unit_groups, panels * (g + 1) / unit_groups}});
        if (!split && done.first_layer == 0)
          for (const Tile& tile : input_grad_tiles) work.push_back({Unit::kInputGrad, 0, tile});
      }
      if (s >= 0) {
        const WavefrontStep step = ActiveLayers(s, TT, L);
        for (int64_t l = step.first_layer; l <= step.last_layer; ++l)
          for (const Tile& tile : cell_tiles) work.push_back({Unit::kCell, l, tile});
      }
      step_for(static_cast<int64_t>(work.size()), [&](int64_t begin, int64_t end) {
        cpu::ScratchBuffer<T> step_scratch;
        cpu::ScratchBuffer<T>& scratch = split ? step_scratch : serial_scratch;
        for (int64_t u = begin; u < end; ++u) {
          const Unit& unit = work[u];
          const int64_t l = unit.layer;
          if (unit.kind == Unit::kCell) {
            cell(l, s - l, unit.tile);
          } else if (unit.kind == Unit::kInputGrad) {
            input_grad(unit.tile, s + 1);
          } else {
            // The cell (l, t) of step s + 1: in(l, t) is the batch-major input at time t or the layer below's states.
            const int64_t t = s + 1 - l, p0 = unit.tile.panel_begin, p1 = unit.tile.panel_end;
            const cpu::GemmA<T> in = l == 0 ? cpu::GemmA<T>{inputs + row_begin * TT * D + t * D, 1, TT * D}
                                            : cpu::GemmA<T>{h(l - 1, t) + row_begin * H, 1, H};
            const T* prev = (t == 0 ? initial_states + l * B * H : h(l, t - 1)) + row_begin * H;
            accumulate_weight_grads(sink, l, p0, p1, in, rows, prev, dz(l, t) + row_begin * H,
                                    scratch.get(cpu::GemmScratchSize<T>(p1 - p0)));
          }
        }
      });
    }
  };

  if (!row_blocks.empty()) {
    // Each batch block runs the whole reverse wavefront, its dX and its dH_init on one thread.
    cpu::RunBlocksIntoSink(row_blocks, sink, parallel_for, [&](int64_t row_begin, int64_t row_end, Sink& partial) {
      wavefront(row_begin, row_end, false, partial, SerialFor);
      for (int64_t l = 0; l < L; ++l)
        for (const Tile& tile : row_tiles(row_begin, row_end, H, 1)) initial_state_grad(l, tile);
    });
  } else {
    wavefront(0, B, true, sink, parallel_for);

    std::vector<std::function<void()>> tasks;
    for (int64_t t = 0; t < TT; ++t)
      for (const Tile& tile : row_tiles(0, B, D, PartsForWork(2.0 * B * D * H)))
        tasks.push_back([=, &input_grad] { input_grad(tile, t); });
    for (int64_t l = 0; l < L; ++l)
      for (const Tile& tile : row_tiles(0, B, H, PartsForWork(2.0 * B * H * H)))
        tasks.push_back([=, &initial_state_grad] { initial_state_grad(l, tile); });
    // Batched weight gradients: one task per layer and panel group over all T * B rows. Rows t = 0 pair dZ with
    // the initial states, the others with the previous step's states; layer 0's inputs are first copied time
    // major so that its rows line up with dZ's.
    std::vector<T> inputs_tb;
    if (!streamed) {
      inputs_tb.resize(TT * B * D);
      for (int64_t t = 0; t < TT; ++t)
        for (int64_t b = 0; b < B; ++b)
          std::copy_n(inputs + (b * TT + t) * D, D, inputs_tb.data() + (t * B + b) * D);
      for (int64_t l = 0; l < L; ++l)
        for (int64_t g = 0; g < groups; ++g) {
          const int64_t p0 = panels * g / groups, p1 = panels * (g + 1) / groups;
          tasks.push_back([=, &inputs_tb, &accumulate_weight_grads, &sink] {
            cpu::ScratchBuffer<T> buffer;
            T* scratch = buffer.get(cpu::GemmScratchSize<T>(p1 - p0));
            const T* in = l == 0 ? inputs_tb.data() : h(l - 1, 0);
            const int64_t in_rs = in_size(l);
            accumulate_weight_grads(sink, l, p0, p1, {in, 1, in_rs}, B, initial_states + l * B * H, dz(l, 0),
                                    scratch);
            if (TT > 1)
              accumulate_weight_grads(sink, l, p0, p1, {in + B * in_rs, 1, in_rs}, (TT - 1) * B, h(l, 0), dz(l, 1),
                                      scratch);
          });
        }
    }
    parallel_for(static_cast<int64_t>(tasks.size()), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) tasks[i]();
    });
  }
  for (int64_t l = 0; l < L; ++l)
    for (int64_t j = 0; j < H; ++j) grad_weights.biases[l][j] = static_cast<T>(sink.sums_of(l)[j]);
}

template void StackedRnnBackwardCpu<float>(const Shape&, Activation, const float*, const Weights<float>&, const float*,
                                           const float*, const float*, const float*, float*,
                                           const WeightGrads<float>&, float*, float*, const ParallelFor&);
template void StackedRnnBackwardCpu<double>(const Shape&, Activation, const double*, const Weights<double>&,
                                            const double*, const double*, const double*, const double*, double*,
                                            const WeightGrads<double>&, double*, double*, const ParallelFor&);

}  // namespace deeprnn
