// The backward pass of the CPU engine, for any cell (engine/cell_description.h). Per-instruction-set code: see the
// ISA rule in simd.h.
//
// With grad(l, t) the cell's grad slots (the gradients with respect to the arguments of its nonlinearities), gx its
// input side and gh its recurrent side:
// 1. A reverse wavefront computes grad cell by cell:
//      dh(l, t) = dY_t [top layer] + dH_final(l) [t = T-1] + direct(l, t+1) [cells with kDirectH]
//               + gh(l, t+1) Wh(l)^T + gx(l+1, t) Wx(l+1)^T
//    then the cell's pointwise pass turns dh (and, for a second state, dc) into grad(l, t), the direct part for
//    h_{t-1} and dc_{t-1}. Cell (l, t) needs step s + 1's cells (l, t+1) and (l+1, t), so again the cells of one step
//    are independent. dh and dc live in two-slot rolling buffers per layer (slot t mod 2).
// 2. The weight gradients and the data gradients
//      dWx(l) = sum_t in(l, t)^T gx(l, t),  dWh(l) = sum_t h(l, t-1)^T gh(l, t),  db = column sums of gx and gh,
//      dX_t = gx(0, t) Wx(0)^T,  dH_init(l) = direct(l, 0) + gh(l, 0) Wh(l)^T,  dC_init(l) = dc_{-1}(l).
//    With token inputs, dWx(0) is a sum of grad rows into the tokens' rows, and there is no dX. Two schedules:
//    - streamed (large batches, small weights: the book's B = 1024, H = 32): while step s runs, the cells of step
//      s + 1 are folded into the weight gradients and dX as long as their rows are in cache. grad is then needed
//      for two steps only and is itself a rolling buffer (two slots per layer);
//    - batched (wide layers, small batches): one product per layer and column block over all T * B rows after the
//      wavefront (K large, efficient), where accumulating per step would re-read the weight gradients T times.
//    Either way every element is accumulated in a fixed order (t descending, or over all rows), so the results do
//    not depend on the threads.
// 3. Large batches with small weights run the streamed schedule as batch blocks (wavefront.h): each block of rows
//    runs the reverse wavefront, its dX and its dH_init alone on one thread, into partial weight gradients that are
//    then added in block order.
#ifndef DEEPRNN_ENGINE_CPU_BACKWARD_H_
#define DEEPRNN_ENGINE_CPU_BACKWARD_H_

#include "engine/cpu/products.h"

namespace deeprnn {
namespace cpu {

template <typename Isa, typename Cell, typename T>
struct BackwardPass {
  using P = Products<Isa, T>;
  static constexpr int G = Cell::kLayout.gates;
  static constexpr int NS = Cell::kLayout.states;
  static constexpr int SS = Cell::kLayout.saved_slots;
  static constexpr int BR = Cell::kLayout.bias_rows;
  static constexpr int GS = Cell::kGradSlots;

  static void Run(const BackwardArgs<T>& a, T* scratch, const ParallelFor& parallel_for) {
    const Shape& shape = a.shape;
    const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
    const int64_t GW = GS * H;  // one row of grad slots
    auto in_size = [&](int64_t l) { return l == 0 ? D : H; };
    for (int64_t l = 0; l < L; ++l) {
      std::fill_n(a.grad_weights.kernels[l], in_size(l) * G * H, T(0));
      std::fill_n(a.grad_weights.recurrent_kernels[l], H * G * H, T(0));
      std::fill_n(a.grad_weights.biases[l], BR * G * H, T(0));
    }
    if (B == 0) return;
    if (TT == 0) {
      std::copy_n(a.grad_final_states, L * NS * B * H, a.grad_initial_states);
      return;
    }
    const bool tokens = a.inputs.tokens != nullptr;
    const bool want_dx = a.grad_inputs != nullptr && !tokens;

    // op(B) = Wh^T and Wx^T for the data gradients, with their gate blocks in the order of the grad slots' sides.
    const std::vector<int> x_order(Cell::kXSide.gates, Cell::kXSide.gates + G);
    const std::vector<int> h_order(Cell::kHSide.gates, Cell::kHSide.gates + G);
    std::vector<PackedMatrix<T>> wx_t_storage(L), wh_t_storage(L);
    std::vector<PackedB<T>> wx_t(L), wh_t(L);
    for (int64_t l = 0; l < L; ++l) {
      if (l > 0 || want_dx) {
        wx_t_storage[l] = PackedMatrix<T>(a.weights.kernels[l], G * H, true, in_size(l), H, x_order, P::kNr);
        wx_t[l] = wx_t_storage[l].view();
      }
      wh_t_storage[l] = PackedMatrix<T>(a.weights.recurrent_kernels[l], G * H, true, H, H, h_order, P::kNr);
      wh_t[l] = wh_t_storage[l].view();
    }

    const int64_t weight_bytes = static_cast<int64_t>(sizeof(T)) * LargestLayerWeights(shape, G);
    const bool streamed = StreamedWeightGrads(B, weight_bytes);
    const std::vector<RowBlock> row_blocks = BatchBlocks(B, weight_bytes, P::kMr);  // streamed when not empty

    // The scratch: grad slots (all cells, or two per layer when streamed), then the rolling dh and dc buffers.
    const int64_t grad_cells = streamed ? std::min<int64_t>(2, TT) : TT;
    T* const grad_base = scratch;
    T* const dh_base = grad_base + L * grad_cells * B * GW;
    T* const dc_base = dh_base + (Cell::kFusedEpilogue ? 0 : L * 2 * B * H);
    auto grad = [&](int64_t l, int64_t t) { return grad_base + (l * grad_cells + (streamed ? t % 2 : t)) * B * GW; };
    auto dh = [&](int64_t l, int64_t t) { return dh_base + (l * 2 + t % 2) * B * H; };
    auto dc = [&](int64_t l, int64_t t) { return dc_base + (l * 2 + t % 2) * B * H; };
    auto h = [&](int64_t l, int64_t t) { return a.activations + (l * TT + t) * B * H; };
    auto saved = [&](int64_t l, int64_t t) { return a.saved + (l * TT + t) * B * SS * H; };
    // State s of cell (l, t - 1), the state cell (l, t) started from, and its row stride.
    auto prev_state = [&](int64_t l, int64_t t, int s) -> const T* {
      if (t == 0) return a.initial_states + (l * NS + s) * B * H;
      return s == 0 ? h(l, t - 1) : saved(l, t - 1) + Cell::kStateSlot[s] * H;
    };
    auto prev_ld = [&](int64_t t, int s) -> int64_t { return t == 0 || s == 0 ? H : SS * H; };

    // The weight gradients in column blocks of the grad slots: consecutive slots whose gates follow each other on
    // both sides share one block, whose grad columns are packed once for both products (GemmSharedB) and give the
    // bias gradient as a by-product. E.g. the GRU's [da_n | da_z | da_r | da_n r]: (da_n) -> dWx[:, n], bx_n;
    // (da_z, da_r) -> dWx[:, z r], dWh[:, z r], bx and bh of z and r; (da_n r) -> dWh[:, n], bh_n.
    struct WeightBlock {
      int64_t column, width;      // grad slot columns
      int64_t x_column, h_column;  // first column in dWx / dWh (and the bias rows), or -1
    };
    std::vector<WeightBlock> blocks;
    {
      auto side_gate = [](const GradSide& side, int slot) {
        return slot >= side.first_slot && slot < side.first_slot + G ? side.gates[slot - side.first_slot] : -1;
      };
      int prev_x = -2, prev_h = -2;
      for (int k = 0; k < GS; ++k) {
        const int xg = side_gate(Cell::kXSide, k), hg = side_gate(Cell::kHSide, k);
        const bool follows = !blocks.empty() && ((xg < 0 && prev_x < 0) || (xg >= 0 && xg == prev_x + 1)) &&
                             ((hg < 0 && prev_h < 0) || (hg >= 0 && hg == prev_h + 1));
        if (follows) {
          blocks.back().width += H;
        } else {
          blocks.push_back({k * H, H, xg < 0 ? -1 : xg * H, hg < 0 ? -1 : hg * H});
        }
        prev_x = xg;
        prev_h = hg;
      }
    }
    const int64_t num_blocks = static_cast<int64_t>(blocks.size());

    // Weight gradients accumulate into grad_weights (arrays 2 l and 2 l + 1: dWx(l), dWh(l)) or, per batch block,
    // a zeroed copy (weight_grad_sink.h); bias gradients into column sums in double, sums l * num_blocks + i.
    using Sink = WeightGradSink<T>;
    std::vector<typename Sink::Array> grad_arrays;
    std::vector<int64_t> sum_sizes;
    for (int64_t l = 0; l < L; ++l) {
      grad_arrays.push_back({a.grad_weights.kernels[l], in_size(l) * G * H});
      grad_arrays.push_back({a.grad_weights.recurrent_kernels[l], H * G * H});
      for (const WeightBlock& block : blocks) sum_sizes.push_back(block.width);
    }
    Sink sink(grad_arrays, sum_sizes);

    // Block i's panels [p0, p1) of layer l's weight gradients over k_rows rows: in (the layer's input at those rows,
    // read transposed; for layer 0 with tokens, `token_rows` instead: the token of each row, index_stride apart),
    // prev [k_rows, H] (read transposed), grad_rows [k_rows, GW].
    auto accumulate_weight_grads = [&](Sink& sink, int64_t l, int64_t i, int64_t p0, int64_t p1, const GemmA<T>& in,
                                       const int32_t* token_rows, int64_t index_stride, int64_t k_rows,
                                       const T* prev, const T* grad_rows, ScratchBuffer<T>* scratch) {
      const WeightBlock& block = blocks[i];
      GemmOutput<T> outs[2];
      int num_outs = 0;
      const bool scatter = block.x_column >= 0 && l == 0 && tokens;
      if (block.x_column >= 0 && !scatter) outs[num_outs++] = {in, in_size(l), sink.array(2 * l) + block.x_column, G * H};
      if (block.h_column >= 0) outs[num_outs++] = {{prev, 1, H}, H, sink.array(2 * l + 1) + block.h_column, G * H};
      double* sums = sink.sums(l * num_blocks + i);
      if (num_outs > 0)
        P::GemmSharedB(outs, num_outs, k_rows, grad_rows + block.column, GW, block.width, p0, p1,
                       scratch->get(GemmScratchSize(p1 - p0, P::kNr, P::kMr, sizeof(T))), sums);
      if (scatter)
        P::ScatterAddRows(token_rows, index_stride, k_rows, grad_rows + block.column, GW, p0 * P::kNr,
                          std::min(block.width, p1 * P::kNr), sink.array(0) + block.x_column, G * H,
                          num_outs > 0 ? nullptr : sums + 0);
    };
    // C[rows of tile] = A op(B) (+ add) for a pre-packed op(B), C overwritten: the data gradients.
    auto packed_product = [&](const Tile& tile, GemmA<T> in, const PackedB<T>* b, const T* add, T* c, int64_t ldc,
                              int64_t n) {
      TileSpec<T> spec;
      spec.products[0] = {{in.data + tile.row_begin * in.rs, in.rs, in.cs}, b};
      spec.num_products = 1;
      if (add) {
        spec.add[0] = add + tile.row_begin * ldc;
        spec.add_ld[0] = ldc;
      }
      spec.dst[0] = c + tile.row_begin * ldc;
      spec.dst_ld[0] = ldc;
      P::CellTile(spec, tile.row_end - tile.row_begin, n, tile.panel_begin, tile.panel_end);
    };
    auto x_side = [&](int64_t l, int64_t t) { return grad(l, t) + Cell::kXSide.first_slot * H; };
    auto h_side = [&](int64_t l, int64_t t) { return grad(l, t) + Cell::kHSide.first_slot * H; };
    auto input_grad = [&](const Tile& tile, int64_t t) {
      packed_product(tile, {x_side(0, t), GW, 1}, &wx_t[0], nullptr, a.grad_inputs + t * D, TT * D, D);
    };
    auto initial_state_grad = [&](int64_t l, const Tile& tile) {
      T* dst = a.grad_initial_states + l * NS * B * H;
      packed_product(tile, {h_side(l, 0), GW, 1}, &wh_t[l], Cell::kDirectH ? dh(l, 0) : nullptr, dst, H, H);
      for (int s = 1; s < NS; ++s)
        for (int64_t r = tile.row_begin; r < tile.row_end; ++r) {
          const int64_t j0 = tile.panel_begin * P::kNr, j1 = std::min(H, tile.panel_end * P::kNr);
          std::copy(dc(l, 0) + r * H + j0, dc(l, 0) + r * H + j1, dst + (s * B + r) * H + j0);
        }
    };
    auto row_tiles = [](int64_t row_begin, int64_t row_end, int64_t n, int64_t parts) {
      return SplitRowRange(row_begin, row_end, NumPanels(n, P::kNr), parts, P::kMr);
    };

    // The cell (l, t) = (layer, s - layer) of step s.
    auto cell = [&](int64_t l, int64_t t, const Tile& tile) {
      const int64_t r0 = tile.row_begin, m = tile.row_end - r0;
      TileSpec<T> spec;
      if (t + 1 < TT) spec.products[spec.num_products++] = {{h_side(l, t + 1) + r0 * GW, GW, 1}, &wh_t[l]};
      if (l + 1 < L) spec.products[spec.num_products++] = {{x_side(l + 1, t) + r0 * GW, GW, 1}, &wx_t[l + 1]};
      if (l == L - 1) {
        spec.add[0] = a.grad_outputs + (r0 * TT + t) * H;
        spec.add_ld[0] = TT * H;
      }
      // The final state's gradient enters at t = T-1; the direct path from t + 1 everywhere else.
      if (t == TT - 1) {
        spec.add[1] = a.grad_final_states + (l * NS * B + r0) * H;
      } else if (Cell::kDirectH) {
        spec.add[1] = dh(l, t + 1) + r0 * H;
      }
      spec.add_ld[1] = H;
      if constexpr (Cell::kFusedEpilogue) {
        spec.epilogue = Epilogue::kActivationGrad;
        spec.activation = Cell::kActivation;
        spec.h = h(l, t) + r0 * H;
        spec.h_ld = H;
        spec.dst[0] = grad(l, t) + r0 * GW;
        spec.dst_ld[0] = GW;
        P::CellTile(spec, m, H, tile.panel_begin, tile.panel_end);
      } else {
        spec.dst[0] = dh(l, t) + r0 * H;
        spec.dst_ld[0] = H;
        P::CellTile(spec, m, H, tile.panel_begin, tile.panel_end);
        PointwiseBackward<T> pass;
        pass.saved = saved(l, t) + r0 * SS * H;
        pass.saved_ld = SS * H;
        for (int s = 0; s < NS; ++s) {
          pass.prev[s] = prev_state(l, t, s) + r0 * prev_ld(t, s);
          pass.prev_ld[s] = prev_ld(t, s);
        }
        pass.dh = dh(l, t) + r0 * H;
        pass.dh_ld = H;
        if (NS > 1) {
          pass.dc = t == TT - 1 ? a.grad_final_states + ((l * NS + 1) * B + r0) * H : dc(l, t + 1) + r0 * H;
          pass.dc_ld = H;
          pass.dc_prev = dc(l, t) + r0 * H;
          pass.dc_prev_ld = H;
        }
        pass.grad = grad(l, t) + r0 * GW;
        pass.grad_ld = GW;
        pass.hidden = H;
        Cell::template Cpu<Isa, T>::Backward(pass, m, tile.panel_begin * P::kNr,
                                             std::min(H, tile.panel_end * P::kNr));
      }
    };

    // Column-panel groups per weight block: every group re-reads the layer's activations, so few groups when the
    // products are small (and streamed: several layers' units then run side by side), more when a batched product
    // is large enough that a few tasks would leave cores idle at the end (each group about 0.5 GFLOP or more).
    auto block_groups = [&](int64_t l, const WeightBlock& block, bool split) {
      const int64_t block_panels = NumPanels(block.width, P::kNr);
      const int64_t few = std::max<int64_t>(1, 2 / (L * num_blocks));
      if (streamed) return std::min(block_panels, split ? few : int64_t{1});
      const double flops = 2.0 * TT * B * (in_size(l) + H) * block.width;
      return std::min(block_panels, std::max<int64_t>(few, std::min<int64_t>(8, static_cast<int64_t>(flops / 5e8))));
    };

    // The reverse wavefront over rows [row_begin, row_end): each step's cells split into tiles (one per cell when
    // `split` is false) that `step_for` runs; streamed, with the weight gradients of the step before into `sink`.
    enum Kind : int { kCell, kWeights, kInputGrad };
    struct Unit {
      Kind kind;
      int64_t layer;
      Tile tile;          // kCell, kInputGrad; kWeights: only its panels are used
      int64_t block = 0;  // kWeights: which WeightBlock
    };
    auto wavefront = [&](int64_t row_begin, int64_t row_end, bool split, Sink& sink, const ParallelFor& step_for) {
      const int64_t rows = row_end - row_begin;
      const std::vector<Tile> cell_tiles =
          row_tiles(row_begin, row_end, H, split ? PartsForWork(2.0 * rows * H * 2 * G * H) : 1);
      const std::vector<Tile> input_grad_tiles =
          row_tiles(row_begin, row_end, D, split ? PartsForWork(2.0 * rows * D * G * H) : 1);
      std::vector<Unit> work;
      ScratchBuffer<T> serial_scratch;  // a block's, reused by all its steps
      for (int64_t s = NumWavefrontSteps(TT, L) - 1; s >= -1; --s) {
        work.clear();
        // Streamed: the cells of step s + 1, finished, into the weight gradients and (layer 0) dX.
        if (streamed && s + 1 < NumWavefrontSteps(TT, L)) {
          const WavefrontStep done = ActiveLayers(s + 1, TT, L);
          for (int64_t l = done.first_layer; l <= done.last_layer; ++l)
            for (int64_t i = 0; i < num_blocks; ++i) {
              const int64_t groups = block_groups(l, blocks[i], split);
              const int64_t block_panels = NumPanels(blocks[i].width, P::kNr);
              for (int64_t g = 0; g < groups; ++g)
                work.push_back({kWeights, l, {0, 0, block_panels * g / groups, block_panels * (g + 1) / groups}, i});
            }
          if (want_dx && done.first_layer == 0)
            for (const Tile& tile : input_grad_tiles) work.push_back({kInputGrad, 0, tile});
        }
        if (s >= 0) {
          const WavefrontStep step = ActiveLayers(s, TT, L);
          for (int64_t l = step.first_layer; l <= step.last_layer; ++l)
            for (const Tile& tile : cell_tiles) work.push_back({kCell, l, tile});
        }
        step_for(static_cast<int64_t>(work.size()), [&](int64_t begin, int64_t end) {
          ScratchBuffer<T> step_scratch;
          ScratchBuffer<T>& scratch = split ? step_scratch : serial_scratch;
          for (int64_t u = begin; u < end; ++u) {
            const Unit& unit = work[u];
            const int64_t l = unit.layer;
            if (unit.kind == kCell) {
              cell(l, s - l, unit.tile);
            } else if (unit.kind == kInputGrad) {
              input_grad(unit.tile, s + 1);
            } else {
              const int64_t t = s + 1 - l;
              const GemmA<T> in = l == 0 ? GemmA<T>{a.inputs.dense + row_begin * TT * D + t * D, 1, TT * D}
                                         : GemmA<T>{h(l - 1, t) + row_begin * H, 1, H};
              const int32_t* token_rows = tokens ? a.inputs.tokens + row_begin * TT + t : nullptr;
              accumulate_weight_grads(sink, l, unit.block, unit.tile.panel_begin, unit.tile.panel_end, in,
                                      token_rows, TT, rows, prev_state(l, t, 0) + row_begin * H,
                                      grad(l, t) + row_begin * GW, &scratch);
            }
          }
        });
      }
    };

    if (!row_blocks.empty()) {
      // Each batch block runs the whole reverse wavefront, its dX and its dH_init on one thread.
      RunBlocksIntoSink(row_blocks, sink, parallel_for, [&](int64_t row_begin, int64_t row_end, Sink& partial) {
        wavefront(row_begin, row_end, false, partial, SerialFor);
        for (int64_t l = 0; l < L; ++l)
          for (const Tile& tile : row_tiles(row_begin, row_end, H, 1)) initial_state_grad(l, tile);
      });
    } else {
      wavefront(0, B, true, sink, parallel_for);

      std::vector<std::function<void()>> tasks;
      for (int64_t l = 0; l < L; ++l)
        for (const Tile& tile : row_tiles(0, B, H, PartsForWork(2.0 * B * H * G * H)))
          tasks.push_back([=, &initial_state_grad] { initial_state_grad(l, tile); });
      // Batched: dX for every step, and the weight gradients, one task per layer, block and panel group over all
      // T * B rows. Rows t = 0 pair grad with the initial states, the others with the previous step's states;
      // layer 0's dense inputs are first copied time major so that its rows line up with grad's.
      std::vector<T> inputs_tb;
      if (!streamed) {
        if (want_dx)
          for (int64_t t = 0; t < TT; ++t)
            for (const Tile& tile : row_tiles(0, B, D, PartsForWork(2.0 * B * D * G * H)))
              tasks.push_back([=, &input_grad] { input_grad(tile, t); });
        if (!tokens) {
          inputs_tb.resize(TT * B * D);
          for (int64_t t = 0; t < TT; ++t)
            for (int64_t b = 0; b < B; ++b)
              std::copy_n(a.inputs.dense + (b * TT + t) * D, D, inputs_tb.data() + (t * B + b) * D);
        }
        for (int64_t l = 0; l < L; ++l)
          for (int64_t i = 0; i < num_blocks; ++i) {
            const int64_t groups = block_groups(l, blocks[i], true);
            const int64_t block_panels = NumPanels(blocks[i].width, P::kNr);
            for (int64_t g = 0; g < groups; ++g) {
              const int64_t p0 = block_panels * g / groups, p1 = block_panels * (g + 1) / groups;
              tasks.push_back([=, &inputs_tb, &accumulate_weight_grads, &sink, &h, &grad, &prev_state] {
                ScratchBuffer<T> scratch;
                const T* in = l == 0 ? inputs_tb.data() : h(l - 1, 0);
                const int64_t in_rs = in_size(l);
                if (l == 0 && tokens) {
                  // The tokens are batch major: one sum per step, in the order of t as everywhere else.
                  for (int64_t t = 0; t < TT; ++t)
                    accumulate_weight_grads(sink, l, i, p0, p1, {nullptr, 1, 1}, a.inputs.tokens + t, TT, B,
                                            prev_state(l, t, 0), grad(l, t), &scratch);
                  return;
                }
                accumulate_weight_grads(sink, l, i, p0, p1, {in, 1, in_rs}, nullptr, 0, B, prev_state(l, 0, 0),
                                        grad(l, 0), &scratch);
                if (TT > 1)
                  accumulate_weight_grads(sink, l, i, p0, p1, {in + B * in_rs, 1, in_rs}, nullptr, 0, (TT - 1) * B,
                                          h(l, 0), grad(l, 1), &scratch);
              });
            }
          }
      }
      parallel_for(static_cast<int64_t>(tasks.size()), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) tasks[i]();
      });
    }
    // The bias gradients: a GRU-like cell's two bias rows take the input and the recurrent side; a single bias row
    // takes the input side (which is the recurrent side too for those cells).
    for (int64_t l = 0; l < L; ++l)
      for (int64_t i = 0; i < num_blocks; ++i) {
        const WeightBlock& block = blocks[i];
        const std::vector<double>& sums = sink.sums_of(l * num_blocks + i);
        for (int64_t j = 0; j < block.width; ++j) {
          if (block.x_column >= 0) a.grad_weights.biases[l][block.x_column + j] = static_cast<T>(sums[j]);
          if (BR == 2 && block.h_column >= 0)
            a.grad_weights.biases[l][G * H + block.h_column + j] = static_cast<T>(sums[j]);
        }
      }
  }
};

}  // namespace cpu
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CPU_BACKWARD_H_
