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
//    - chunked (wide layers, small batches): one product per layer and column block over the rows of a chunk of
//      consecutive steps (WeightGradChunkSteps, ~512 rows: K large enough to be efficient), run beside the
//      wavefront's next step as soon as the chunk is finished, where accumulating per step would re-read the weight
//      gradients T times. grad is a ring of two chunks per layer, not all T steps (the step's memory).
//    Either way every element is accumulated in a fixed order (t descending, by step or by chunk), so the results
//    do not depend on the threads.
// 3. Large batches with small weights run the streamed schedule as batch blocks (wavefront.h): each block of rows
//    runs the reverse wavefront, its dX and its dH_init alone on one thread, into partial weight gradients that are
//    then added in block order.
//
// Modifiers (deeprnn/stacked.h). Dropout: a product whose operand was dropped out sends its gradient back through the
// same masks (each gate's group of a side separately where the masks are per gate), as a scale on that product in
// the tile's one pass (TileProduct::scale), and the weight gradients read the dropped operands. A mask: a row that
// does not take step t passes its whole dh (and dc) to step t - 1 and has no grad slots, so with a mask every cell
// has a direct h path (the tanh/relu cell's masked epilogue writes both); a masked step whose output is a constant
// (zeros) passes no dY; row chunks that take neither step t nor t + 1 skip the products.
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

  // What one work unit computes in, grown on demand and reused.
  struct UnitScratch {
    ScratchBuffer<T> gemm, rows, operands;
  };

  static PointwiseBackward<T> FromRow(PointwiseBackward<T> pass, int64_t rows) {
    if (pass.saved) pass.saved += rows * pass.saved_ld;
    if (pass.h) pass.h += rows * pass.h_ld;
    for (int s = 0; s < 2; ++s)
      if (pass.prev[s]) pass.prev[s] += rows * pass.prev_ld[s];
    pass.dh += rows * pass.dh_ld;
    if (pass.dc) pass.dc += rows * pass.dc_ld;
    if (pass.dc_prev) pass.dc_prev += rows * pass.dc_prev_ld;
    pass.grad += rows * pass.grad_ld;
    return pass;
  }

  // The rows of [0, m) outside `runs`.
  static std::vector<RowRun> Complement(const std::vector<RowRun>& runs, int64_t m) {
    std::vector<RowRun> out;
    int64_t next = 0;
    for (const RowRun& run : runs) {
      if (run.begin > next) out.push_back({next, run.begin});
      next = run.end;
    }
    if (next < m) out.push_back({next, m});
    return out;
  }

  static void Run(const BackwardArgs<T>& a, T* scratch, const ParallelFor& parallel_for) {
    const Shape& shape = a.shape;
    const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
    const int64_t GW = AliasFreeRowStride(GS * H, sizeof(T));  // one row of grad slots, and the padding after it
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
    const Modifiers<T>& mod = a.modifiers;
    const uint8_t* mask = mod.mask;
    const bool dropout = mod.any_dropout();
    const std::vector<int64_t> first_taken = FirstTakenSteps(mask, B, TT);
    // The tanh/relu cell's dZ comes out of the products' epilogue (dropout included: each product through its
    // masks; with a mask, the masked epilogue, which also writes the dh that rows not taking the step pass on).
    const bool fused = Cell::kFusedEpilogue;
    const bool direct_h = Cell::kDirectH || mask != nullptr;
    const int x_copies = mod.input_dropout ? mod.input_masks : 1;
    const int h_copies = mod.recurrent_dropout ? mod.recurrent_masks : 1;

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
    const int64_t chunk = WeightGradChunkSteps(B, TT);  // chunked schedule only

    // The scratch: a ring of grad slots per layer (wavefront.h's GradCells), then the rolling dh and dc buffers. A
    // chunk's cells sit in consecutive slots (chunks start at multiples of `chunk`, the ring holds two).
    const int64_t grad_cells = GradCells(B, TT, weight_bytes);
    T* const grad_base = scratch;
    T* const dh_base = grad_base + L * grad_cells * B * GW;
    T* const dc_base = dh_base + L * 2 * B * H;
    auto grad = [&](int64_t l, int64_t t) { return grad_base + (l * grad_cells + t % grad_cells) * B * GW; };
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
    auto between = [&](int64_t l, int64_t t) -> const T* {  // the mask on h(l, t) on its way into layer l + 1
      return mod.between_dropout && l + 1 < L ? mod.between_dropout + (l * TT + t) * B * H : nullptr;
    };
    auto input_mask = [&](int64_t l, int copy) -> const T* {  // [B, in_l], or null
      return mod.input_dropout ? mod.input_dropout[l] + copy * B * in_size(l) : nullptr;
    };
    auto recurrent_mask = [&](int64_t l, int copy) -> const T* {  // [B, H], or null
      return mod.recurrent_dropout ? mod.recurrent_dropout[l] + copy * B * H : nullptr;
    };

    // The product groups of one side of the grad slots: the whole side at once, or one gate at a time where that
    // side's dropout masks are per gate. Each: the first slot column of the group within the side, its width, and
    // the dropout mask copy that multiplied its operand.
    struct Group {
      int64_t k0, k;
      int copy;
    };
    auto groups = [&](const GradSide& side, int copies) {
      std::vector<Group> out;
      if (copies == G && G > 1) {
        for (int pos = 0; pos < G; ++pos) out.push_back({pos * H, H, side.gates[pos]});
      } else {
        out.push_back({0, G * H, 0});
      }
      return out;
    };
    const std::vector<Group> x_groups = groups(Cell::kXSide, x_copies), h_groups = groups(Cell::kHSide, h_copies);
    auto x_side = [&](int64_t l, int64_t t) { return grad(l, t) + Cell::kXSide.first_slot * H; };
    auto h_side = [&](int64_t l, int64_t t) { return grad(l, t) + Cell::kHSide.first_slot * H; };

    // Appends to `spec` the products of one side of the grad slots in a data gradient: the whole side at once, or
    // one group per gate where that side's dropout masks are per gate, each through its mask and `extra` (the
    // between-layer mask), [B, n] matrices read from row row_begin, where there are any. `side_rows` is the tile's
    // row 0 of the side's columns (row stride GW); parts[k] holds product k's view of op(B) (it must outlive the tile).
    static_assert(2 * G <= kMaxTileProducts, "a backward tile holds both sides' products, one per gate");
    auto add_side = [&](TileSpec<T>& spec, PackedB<T>* parts, const T* side_rows, const PackedB<T>& b,
                        const std::vector<Group>& gs, const std::function<const T*(int)>& mask_of, const T* extra,
                        int64_t row_begin, int64_t n) {
      const T* extra_rows = extra ? extra + row_begin * n : nullptr;
      for (const Group& g : gs) {
        const T* mk = mask_of(g.copy);
        const int k = spec.num_products;
        parts[k] = gs.size() == 1 ? b : b.rows(g.k0, g.k);
        spec.AddProduct({side_rows + g.k0, GW, 1}, &parts[k], mk ? mk + row_begin * n : nullptr, n, extra_rows, n);
      }
    };
    // dst[tile rows, tile units] = add + a side's products through their masks (add_side): a data gradient.
    auto side_products = [&](const Tile& tile, const T* side_rows, const PackedB<T>& b,
                             const std::vector<Group>& gs, const std::function<const T*(int)>& mask_of,
                             const T* extra, T* dst, int64_t dst_ld, const T* add, int64_t add_ld, int64_t n) {
      TileSpec<T> spec;
      PackedB<T> parts[kMaxTileProducts];
      add_side(spec, parts, side_rows, b, gs, mask_of, extra, tile.row_begin, n);
      if (add) {
        spec.add[0] = add;
        spec.add_ld[0] = add_ld;
      }
      spec.dst[0] = dst;
      spec.dst_ld[0] = dst_ld;
      P::CellTile(spec, tile.row_end - tile.row_begin, n, tile.panel_begin, tile.panel_end);
    };

    // The weight gradients in column blocks of the grad slots: consecutive slots whose gates follow each other on
    // both sides share one block, whose grad columns are packed once for both products (GemmSharedB) and give the
    // bias gradient as a by-product. E.g. the GRU's [da_n | da_z | da_r | da_n r]: (da_n) -> dWx[:, n], bx_n;
    // (da_z, da_r) -> dWx[:, z r], dWh[:, z r], bx and bh of z and r; (da_n r) -> dWh[:, n], bh_n. Where dropout
    // masks are per gate, every gate reads its own dropped operand, and each slot is a block of its own.
    struct WeightBlock {
      int64_t column, width;       // grad slot columns
      int64_t x_column, h_column;  // first column in dWx / dWh (and the bias rows), or -1
      int x_gate, h_gate;          // the first gate of each side, or -1
    };
    std::vector<WeightBlock> blocks;
    {
      const bool per_gate = (x_copies == G || h_copies == G) && G > 1;
      auto side_gate = [](const GradSide& side, int slot) {
        return slot >= side.first_slot && slot < side.first_slot + G ? side.gates[slot - side.first_slot] : -1;
      };
      int prev_x = -2, prev_h = -2;
      for (int k = 0; k < GS; ++k) {
        const int xg = side_gate(Cell::kXSide, k), hg = side_gate(Cell::kHSide, k);
        const bool follows = !per_gate && !blocks.empty() &&
                             ((xg < 0 && prev_x < 0) || (xg >= 0 && xg == prev_x + 1)) &&
                             ((hg < 0 && prev_h < 0) || (hg >= 0 && hg == prev_h + 1));
        if (follows) {
          blocks.back().width += H;
        } else {
          blocks.push_back({k * H, H, xg < 0 ? -1 : xg * H, hg < 0 ? -1 : hg * H, xg, hg});
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

    // The rows of dWx(l) and dWh(l) that part `part` of `parts` of block i's weight gradients covers: PartRows over
    // the outputs the block has (dWx's rows first; layer 0's token rows are not a product's), and an empty range
    // for one it lacks.
    auto part_rows = [&](int64_t l, int64_t i, int64_t part, int64_t parts) {
      const WeightBlock& block = blocks[i];
      const bool dense_x = block.x_column >= 0 && !(l == 0 && tokens), has_h = block.h_column >= 0;
      std::array<RowRange, 2> out = {RowRange{0, dense_x ? in_size(l) : 0}, RowRange{0, has_h ? H : 0}};
      if (parts == 1) return out;
      int64_t rows[2];
      int num = 0;
      if (dense_x) rows[num++] = in_size(l);
      if (has_h) rows[num++] = H;
      const std::vector<RowRange> mine = PartRows(rows, num, part, parts, P::kMr);
      int o = 0;
      if (dense_x) out[0] = mine[o++];
      if (has_h) out[1] = mine[o++];
      return out;
    };

    // Block i's panels [p0, p1) of layer l's weight gradients over k_rows rows: in (the layer's input at those rows,
    // read transposed; for layer 0 with tokens, `token_rows` instead: the token of each row, index_stride apart, and
    // `token_scale` its input dropout, scale_stride apart), prev [k_rows, H] (read transposed), grad_rows [k_rows,
    // GW]. Only the rows of part `part` of `parts` (part_rows); part 0 also takes the bias gradient and the token
    // rows.
    auto accumulate_weight_grads = [&](Sink& sink, int64_t l, int64_t i, int64_t p0, int64_t p1, const GemmA<T>& in,
                                       const int32_t* token_rows, int64_t index_stride, const T* token_scale,
                                       int64_t scale_stride, int64_t k_rows, const GemmA<T>& prev,
                                       const T* grad_rows, ScratchBuffer<T>* scratch, int64_t part = 0,
                                       int64_t parts = 1) {
      const WeightBlock& block = blocks[i];
      const std::array<RowRange, 2> mine = part_rows(l, i, part, parts);
      GemmOutput<T> outs[2];
      int num_outs = 0;
      const bool scatter = block.x_column >= 0 && l == 0 && tokens && part == 0;
      auto add_output = [&](const GemmA<T>& a, const RowRange& r, int64_t array, int64_t column) {
        if (r.end <= r.begin) return;
        outs[num_outs++] = {{a.data + r.begin * a.rs, a.rs, a.cs}, r.end - r.begin,
                            sink.array(array) + r.begin * G * H + column, G * H};
      };
      add_output(in, mine[0], 2 * l, block.x_column);
      add_output(prev, mine[1], 2 * l + 1, block.h_column);
      double* sums = part == 0 ? sink.sums(l * num_blocks + i) : nullptr;
      if (num_outs > 0)
        P::GemmSharedB(outs, num_outs, k_rows, grad_rows + block.column, GW, block.width, p0, p1,
                       scratch->get(GemmScratchSize(p1 - p0, P::kNr, P::kMr, sizeof(T))), sums);
      if (scatter)
        P::ScatterAddRows(token_rows, index_stride, k_rows, grad_rows + block.column, GW, p0 * P::kNr,
                          std::min(block.width, p1 * P::kNr), sink.array(0) + block.x_column, G * H,
                          num_outs > 0 ? nullptr : sums, token_scale, scale_stride);
    };
    // The weight gradients of block i of cell (l, t) over batch rows [row_begin, row_begin + rows): with dropout,
    // the dropped operands are first copied into the unit's scratch.
    auto cell_weight_grads = [&](Sink& sink, int64_t l, int64_t i, int64_t p0, int64_t p1, int64_t t,
                                 int64_t row_begin, int64_t rows, UnitScratch& ws, int64_t part = 0,
                                 int64_t parts = 1) {
      const WeightBlock& block = blocks[i];
      const int64_t in = in_size(l);
      GemmA<T> x = l == 0 ? GemmA<T>{tokens ? nullptr : a.inputs.dense + row_begin * TT * D + t * D, 1, TT * D}
                          : GemmA<T>{h(l - 1, t) + row_begin * H, 1, H};
      GemmA<T> hp = {prev_state(l, t, 0) + row_begin * H, 1, H};
      const int32_t* token_rows = tokens ? a.inputs.tokens + row_begin * TT + t : nullptr;
      const T* token_scale = nullptr;
      const int xc = x_copies == G ? std::max(block.x_gate, 0) : 0, hc = h_copies == G ? std::max(block.h_gate, 0) : 0;
      const T* drop_x = block.x_column >= 0 ? input_mask(l, xc) : nullptr;
      const T* drop_between = block.x_column >= 0 && l > 0 ? between(l - 1, t) : nullptr;
      const T* drop_h = block.h_column >= 0 ? recurrent_mask(l, hc) : nullptr;
      if ((drop_x || drop_between) || drop_h) {
        // Only the columns the part's products read: its rows of dWx and dWh (part_rows).
        const std::array<RowRange, 2> mine = part_rows(l, i, part, parts);
        T* copies = ws.operands.get(rows * (in + H));
        if (drop_x && tokens && l == 0) {
          for (int64_t r = 0; r < rows; ++r) copies[r] = drop_x[(row_begin + r) * D + token_rows[r * TT]];
          token_scale = copies;
        } else if (drop_x || drop_between) {
          const T* first = drop_x ? drop_x + row_begin * in : drop_between + row_begin * H;
          const T* second = drop_x && drop_between ? drop_between + row_begin * H : nullptr;
          P::Multiply(copies, in, x.data, x.cs, first, in, second, H, rows, mine[0].begin, mine[0].end);
          x = {copies, 1, in};
        }
        if (drop_h) {
          P::Multiply(copies + rows * in, H, hp.data, H, drop_h + row_begin * H, H, nullptr, 0, rows, mine[1].begin,
                      mine[1].end);
          hp = {copies + rows * in, 1, H};
        }
      }
      accumulate_weight_grads(sink, l, i, p0, p1, x, token_rows, TT, token_scale, 1, rows, hp,
                              grad(l, t) + row_begin * GW, &ws.gemm, part, parts);
    };

    // Chunked: block i's panels [p0, p1) of layer l's weight gradients over the chunk of steps starting at t0, whose
    // grad rows are consecutive. Step 0 pairs grad with the initial states, the others with the previous step's
    // states; layer 0's dense inputs come from inputs_tb, a time-major copy whose rows line up with grad's. With
    // dropout or tokens, one step's rows at a time (the dropped operands are copied step by step).
    std::vector<T> inputs_tb;
    const bool chunk_per_step = dropout || tokens;
    if (!streamed && !chunk_per_step) {
      inputs_tb.resize(TT * B * D);
      for (int64_t t = 0; t < TT; ++t)
        for (int64_t b = 0; b < B; ++b)
          std::copy_n(a.inputs.dense + (b * TT + t) * D, D, inputs_tb.data() + (t * B + b) * D);
    }
    auto chunk_weight_grads = [&](Sink& sink, int64_t l, int64_t i, int64_t p0, int64_t p1, int64_t t0,
                                  int64_t part, int64_t parts, UnitScratch& ws) {
      const int64_t t1 = std::min(TT, t0 + chunk);
      if (chunk_per_step) {
        for (int64_t t = t1 - 1; t >= t0; --t) cell_weight_grads(sink, l, i, p0, p1, t, 0, B, ws, part, parts);
        return;
      }
      const int64_t in_rs = in_size(l);
      const T* in = l == 0 ? inputs_tb.data() : h(l - 1, 0);
      int64_t t = t0;
      if (t == 0) {
        accumulate_weight_grads(sink, l, i, p0, p1, {in, 1, in_rs}, nullptr, 0, nullptr, 0, B,
                                {prev_state(l, 0, 0), 1, H}, grad(l, 0), &ws.gemm, part, parts);
        t = 1;
      }
      if (t < t1)
        accumulate_weight_grads(sink, l, i, p0, p1, {in + t * B * in_rs, 1, in_rs}, nullptr, 0, nullptr, 0,
                                (t1 - t) * B, {h(l, t - 1), 1, H}, grad(l, t), &ws.gemm, part, parts);
    };

    auto row_tiles = [](int64_t row_begin, int64_t row_end, int64_t n, int64_t parts) {
      return SplitRowRange(row_begin, row_end, NumPanels(n, P::kNr), parts, P::kMr);
    };
    auto input_grad = [&](const Tile& tile, int64_t t) {
      const int64_t r0 = tile.row_begin;
      side_products(tile, x_side(0, t) + r0 * GW, wx_t[0], x_groups,
                    [&](int c) { return input_mask(0, c); }, nullptr,
                    a.grad_inputs + r0 * TT * D + t * D, TT * D, nullptr, 0, D);
    };
    auto initial_state_grad = [&](int64_t l, const Tile& tile) {
      const int64_t r0 = tile.row_begin;
      T* dst = a.grad_initial_states + l * NS * B * H;
      side_products(tile, h_side(l, 0) + r0 * GW, wh_t[l], h_groups, [&](int c) { return recurrent_mask(l, c); },
                    nullptr, dst + r0 * H, H, direct_h ? dh(l, 0) + r0 * H : nullptr, H, H);
      for (int s = 1; s < NS; ++s)
        for (int64_t r = tile.row_begin; r < tile.row_end; ++r) {
          const int64_t j0 = tile.panel_begin * P::kNr, j1 = std::min(H, tile.panel_end * P::kNr);
          std::copy(dc(l, 0) + r * H + j0, dc(l, 0) + r * H + j1, dst + (s * B + r) * H + j0);
        }
    };

    // The cell (l, t) = (layer, s - layer) of step s.
    auto cell = [&](int64_t l, int64_t t, const Tile& tile, UnitScratch& ws) {
      const int64_t r0 = tile.row_begin, m = tile.row_end - r0;
      const int64_t j0 = tile.panel_begin * P::kNr, j1 = std::min(H, tile.panel_end * P::kNr);
      const bool top = l == L - 1;
      // dY of the top layer; at a masked step whose output is a constant (zeros), none.
      const T* dy = top ? a.grad_outputs + (r0 * TT + t) * H : nullptr;
      int64_t dy_ld = TT * H;
      if (top && mask) {
        T* rows = ws.rows.get(m * H);
        for (int64_t i = 0; i < m; ++i) {
          const int64_t b = r0 + i;
          const bool passes = mask[b * TT + t] || (!mod.zero_output_for_mask && t > first_taken[b]);
          if (passes) {
            std::copy(dy + i * TT * H + j0, dy + i * TT * H + j1, rows + i * H + j0);
          } else {
            std::fill(rows + i * H + j0, rows + i * H + j1, T(0));
          }
        }
        dy = rows;
        dy_ld = H;
      }
      // The final state's gradient enters at t = T-1; the direct path from t + 1 everywhere else.
      const T* carried = t == TT - 1 ? a.grad_final_states + (l * NS * B + r0) * H
                                     : direct_h ? dh(l, t + 1) + r0 * H : nullptr;
      T* dh_rows = dh(l, t) + r0 * H;
      T* grad_rows = grad(l, t) + r0 * GW;

      // Row chunks that take neither step t nor t + 1 have no products to compute: their dh is the adds alone.
      const std::vector<RowRun> product_runs = TakenRuns(mask, TT, r0, tile.row_end, t, true, P::kMr);
      const std::vector<RowRun> pointwise_runs = TakenRuns(mask, TT, r0, tile.row_end, t, false, P::kMr);
      // The fused cell's epilogue over the tile's rows from i0: dZ into the grad slots; with a mask, the masked
      // epilogue, which also writes the dh that a row not taking step t passes on.
      auto fused_epilogue = [&](TileSpec<T>& spec, int64_t i0) {
        if constexpr (Cell::kFusedEpilogue) spec.activation = Cell::kActivation;
        spec.epilogue = mask ? Epilogue::kMaskedActivationGrad : Epilogue::kActivationGrad;
        spec.h = h(l, t) + (r0 + i0) * H;
        spec.h_ld = H;
        spec.dst[0] = grad_rows + i0 * GW;
        spec.dst_ld[0] = GW;
        if (mask) {
          spec.takes = mask + (r0 + i0) * TT + t;
          spec.takes_stride = TT;
          spec.dst[1] = dh_rows + i0 * H;
          spec.dst_ld[1] = H;
        }
      };
      for (const RowRun& run : Complement(product_runs, m)) {
        TileSpec<T> spec;
        if (dy) {
          spec.add[0] = dy + run.begin * dy_ld;
          spec.add_ld[0] = dy_ld;
        }
        if (carried) {
          spec.add[1] = carried + run.begin * H;
          spec.add_ld[1] = H;
        }
        if (fused) {
          fused_epilogue(spec, run.begin);
        } else {
          spec.dst[0] = dh_rows + run.begin * H;
          spec.dst_ld[0] = H;
        }
        P::CellTile(spec, run.end - run.begin, H, tile.panel_begin, tile.panel_end);
      }
      for (const RowRun& run : product_runs) {
        const int64_t row0 = r0 + run.begin, i0 = run.begin, rows = run.end - run.begin;
        TileSpec<T> spec;
        PackedB<T> parts[kMaxTileProducts];
        if (t + 1 < TT)
          add_side(spec, parts, h_side(l, t + 1) + row0 * GW, wh_t[l], h_groups,
                   [&](int c) { return recurrent_mask(l, c); }, nullptr, row0, H);
        if (l + 1 < L)
          add_side(spec, parts, x_side(l + 1, t) + row0 * GW, wx_t[l + 1], x_groups,
                   [&](int c) { return input_mask(l + 1, c); }, between(l, t), row0, H);
        if (dy) {
          spec.add[0] = dy + i0 * dy_ld;
          spec.add_ld[0] = dy_ld;
        }
        if (carried) {
          spec.add[1] = carried + i0 * H;
          spec.add_ld[1] = H;
        }
        if (fused) {
          fused_epilogue(spec, i0);
        } else {
          spec.dst[0] = dh_rows + i0 * H;
          spec.dst_ld[0] = H;
        }
        P::CellTile(spec, rows, H, tile.panel_begin, tile.panel_end);
      }
      if (fused) return;

      PointwiseBackward<T> pass;
      pass.saved = SS ? saved(l, t) + r0 * SS * H : nullptr;
      pass.saved_ld = SS * H;
      for (int s = 0; s < NS; ++s) {
        pass.prev[s] = prev_state(l, t, s) + r0 * prev_ld(t, s);
        pass.prev_ld[s] = prev_ld(t, s);
      }
      pass.h = h(l, t) + r0 * H;
      pass.h_ld = H;
      pass.dh = dh_rows;
      pass.dh_ld = H;
      const T* dc_in = nullptr;
      if (NS > 1) {
        dc_in = t == TT - 1 ? a.grad_final_states + ((l * NS + 1) * B + r0) * H : dc(l, t + 1) + r0 * H;
        pass.dc = dc_in;
        pass.dc_ld = H;
        pass.dc_prev = dc(l, t) + r0 * H;
        pass.dc_prev_ld = H;
      }
      pass.grad = grad_rows;
      pass.grad_ld = GW;
      pass.hidden = H;
      // A row that does not take step t passes its whole dh on: kept aside where the pass rewrites dh in place.
      T* kept = mask && Cell::kDirectH ? ws.rows.get(m * H) : nullptr;
      if (kept)
        for (int64_t i = 0; i < m; ++i)
          if (!mask[(r0 + i) * TT + t]) std::copy(dh_rows + i * H + j0, dh_rows + i * H + j1, kept + i * H + j0);
      for (const RowRun& run : pointwise_runs)
        Cell::template Cpu<Isa, T>::Backward(FromRow(pass, run.begin), run.end - run.begin, j0, j1);
      if (mask == nullptr) return;
      for (int64_t i = 0; i < m; ++i) {
        const int64_t b = r0 + i;
        T* dh_row = dh_rows + i * H;
        if (mask[b * TT + t]) {
          if (!Cell::kDirectH) std::fill(dh_row + j0, dh_row + j1, T(0));  // its h_{t-1} only via the products
          continue;
        }
        for (int k = 0; k < GS; ++k) std::fill(grad_rows + i * GW + k * H + j0, grad_rows + i * GW + k * H + j1, T(0));
        if (kept) std::copy(kept + i * H + j0, kept + i * H + j1, dh_row + j0);
        if (NS > 1) std::copy(dc_in + i * H + j0, dc_in + i * H + j1, pass.dc_prev + i * H + j0);
      }
    };

    // Column-panel groups per weight block: every group re-reads the layer's activations, so few groups when the
    // products are small (and streamed: several layers' units then run side by side), more when a chunk's product
    // over k_rows rows is large enough that a few tasks would leave cores idle at the end (each group about
    // 0.5 GFLOP or more).
    auto block_groups = [&](int64_t l, const WeightBlock& block, bool split, int64_t k_rows) {
      const int64_t block_panels = NumPanels(block.width, P::kNr);
      const int64_t few = std::max<int64_t>(1, 2 / (L * num_blocks));
      if (streamed) return std::min(block_panels, split ? few : int64_t{1});
      const double flops = 2.0 * k_rows * (in_size(l) + H) * block.width;
      return std::min(block_panels, std::max<int64_t>(few, std::min<int64_t>(8, static_cast<int64_t>(flops / 5e8))));
    };

    // The reverse wavefront over rows [row_begin, row_end): each step's cells split into tiles (one per cell when
    // `split` is false) that `step_for` runs, beside the weight gradients (and layer 0's dX) of what the step before
    // finished: streamed, its cells; chunked, the chunks it completed.
    enum Kind : int { kCell, kWeights, kChunkWeights, kInputGrad };
    struct Unit {
      Kind kind;
      int64_t layer;
      Tile tile;          // kCell, kInputGrad; kWeights, kChunkWeights: only its panels are used
      int64_t block = 0;  // kWeights, kChunkWeights: which WeightBlock
      int64_t t = 0;      // kInputGrad: the step; kChunkWeights: the chunk's first step
      int64_t part = 0, parts = 1;  // kChunkWeights: which part of the outputs' rows (ChunkRowParts)
    };
    auto wavefront = [&](int64_t row_begin, int64_t row_end, bool split, Sink& sink, const ParallelFor& step_for) {
      const int64_t rows = row_end - row_begin;
      const std::vector<Tile> cell_tiles =
          row_tiles(row_begin, row_end, H, split ? PartsForWork(2.0 * rows * H * 2 * G * H) : 1);
      const std::vector<Tile> input_grad_tiles =
          row_tiles(row_begin, row_end, D, split ? PartsForWork(2.0 * rows * D * G * H) : 1);
      std::vector<Unit> work;
      struct PendingChunk {
        std::vector<Unit> units;  // what is left of a layer's chunk: units [next, size) over steps_left steps
        int64_t next = 0, steps_left = 0;
      };
      std::vector<PendingChunk> pending(L);
      UnitScratch serial;  // a block's, reused by all its steps
      for (int64_t s = NumWavefrontSteps(TT, L) - 1; s >= -1; --s) {
        work.clear();
        // Streamed: the cells of step s + 1, finished, into the weight gradients and (layer 0) dX.
        if (streamed && s + 1 < NumWavefrontSteps(TT, L)) {
          const WavefrontStep done = ActiveLayers(s + 1, TT, L);
          for (int64_t l = done.first_layer; l <= done.last_layer; ++l)
            for (int64_t i = 0; i < num_blocks; ++i) {
              const int64_t groups = block_groups(l, blocks[i], split, rows);
              const int64_t block_panels = NumPanels(blocks[i].width, P::kNr);
              for (int64_t g = 0; g < groups; ++g)
                work.push_back({kWeights, l, {0, 0, block_panels * g / groups, block_panels * (g + 1) / groups}, i});
            }
          if (want_dx && done.first_layer == 0)
            for (const Tile& tile : input_grad_tiles) work.push_back({kInputGrad, 0, tile, 0, s + 1});
        }
        // Chunked: a chunk that step s + 1 completed (its first step's cell) is folded in over the next `chunk`
        // steps (down to step -1 at the end), a share of its units beside each step's cells: its half of the ring
        // is not overwritten before then, and no step carries a whole chunk's products while a core waits.
        if (!streamed && s + 1 < NumWavefrontSteps(TT, L)) {
          const WavefrontStep done = ActiveLayers(s + 1, TT, L);
          for (int64_t l = done.first_layer; l <= done.last_layer; ++l) {
            const int64_t t0 = s + 1 - l;
            if (t0 % chunk != 0) continue;
            PendingChunk& p = pending[l];  // the chunk before it was done at step s + 1
            p.units.clear();
            p.next = 0;
            p.steps_left = std::min(chunk, s + 2);
            const int64_t k_rows = std::min(chunk, TT - t0) * rows;
            for (int64_t i = 0; i < num_blocks; ++i) {
              const int64_t block_panels = NumPanels(blocks[i].width, P::kNr);
              // Enough units to give most of the chunk's steps one, but each of 8 panels or more: every unit
              // packs its own copy of the chunk's operand rows (scalar gathers), which 1-panel units paid for
              // more than for their products (measured on `small`, tanh: 16 one-panel units per chunk, ~20 %
              // slower steps).
              const int64_t spread = (p.steps_left + num_blocks - 1) / num_blocks;
              const int64_t groups =
                  std::min(std::max<int64_t>(1, block_panels / 8),
                           std::max(spread, block_groups(l, blocks[i], split, k_rows)));
              // Each column group in row parts (ChunkRowParts). With dropout, every part copies the dropped
              // operands of its steps again: B (in + H) values a step, against the part's ~32 MFLOP.
              const WeightBlock& block = blocks[i];
              const int64_t x_rows = block.x_column >= 0 && !(l == 0 && tokens) ? in_size(l) : 0;
              const int64_t h_rows = block.h_column >= 0 ? H : 0;
              const int64_t output_tiles = (x_rows + P::kMr - 1) / P::kMr + (h_rows + P::kMr - 1) / P::kMr;
              const double group_flops = 2.0 * k_rows * (x_rows + h_rows) * block.width / groups;
              const int64_t parts = ChunkRowParts(group_flops, output_tiles);
              for (int64_t g = 0; g < groups; ++g)
                for (int64_t q = 0; q < parts; ++q)
                  p.units.push_back({kChunkWeights, l,
                                     {0, 0, block_panels * g / groups, block_panels * (g + 1) / groups}, i, t0, q,
                                     parts});
            }
            if (want_dx && l == 0)
              for (int64_t t = t0; t < std::min(TT, t0 + chunk); ++t)
                for (const Tile& tile : input_grad_tiles) p.units.push_back({kInputGrad, 0, tile, 0, t});
          }
        }
        for (PendingChunk& p : pending) {
          if (p.steps_left == 0) continue;
          const int64_t take = (static_cast<int64_t>(p.units.size()) - p.next + p.steps_left - 1) / p.steps_left;
          for (int64_t u = 0; u < take; ++u) work.push_back(p.units[p.next++]);
          --p.steps_left;
        }
        if (s >= 0) {
          const WavefrontStep step = ActiveLayers(s, TT, L);
          for (int64_t l = step.first_layer; l <= step.last_layer; ++l)
            for (const Tile& tile : cell_tiles) work.push_back({kCell, l, tile});
        }
        // A block's next step reads, of the forward's arrays, the cells of step s - 1 (their activations, saved
        // gates and dY) and layer 0's input at step s (its weight gradient): fetch them while this step runs.
        if (!split && s >= 1) {
          const WavefrontStep next = ActiveLayers(s - 1, TT, L);
          for (int64_t l = next.first_layer; l <= next.last_layer; ++l) {
            const int64_t t = s - 1 - l;
            PrefetchRows(h(l, t) + row_begin * H, 1, rows * H, 0);
            if (SS > 0) PrefetchRows(saved(l, t) + row_begin * SS * H, 1, rows * SS * H, 0);
            if (l == L - 1 && a.grad_outputs) PrefetchRows(a.grad_outputs + (row_begin * TT + t) * H, rows, H, TT * H);
          }
          if (s < TT && !tokens) PrefetchRows(a.inputs.dense + (row_begin * TT + s) * D, rows, D, TT * D);
        }
        step_for(static_cast<int64_t>(work.size()), [&](int64_t begin, int64_t end) {
          UnitScratch unit;
          UnitScratch& ws = split ? unit : serial;
          for (int64_t u = begin; u < end; ++u) {
            const Unit& w = work[u];
            if (w.kind == kCell) {
              cell(w.layer, s - w.layer, w.tile, ws);
            } else if (w.kind == kInputGrad) {
              input_grad(w.tile, w.t);
            } else if (w.kind == kChunkWeights) {
              chunk_weight_grads(sink, w.layer, w.block, w.tile.panel_begin, w.tile.panel_end, w.t, w.part,
                                 w.parts, ws);
            } else {
              cell_weight_grads(sink, w.layer, w.block, w.tile.panel_begin, w.tile.panel_end, s + 1 - w.layer,
                                row_begin, rows, ws);
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
