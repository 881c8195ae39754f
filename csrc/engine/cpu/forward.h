// The forward pass of the CPU engine, for any cell (engine/cell_description.h). Per-instruction-set code: see the
// ISA rule in simd.h.
//
// The wavefront over (layer, time) cells. A unit of work is one tile of one cell: a block of batch rows times a block
// of units [j0, j1) (whole column panels of H). The weights are packed per gate block, so that a tile runs, for each
// of the cell's pre-activation slots, one fused product pass over the same rows and units (both products, the bias
// and, for token inputs, a gathered row of layer 0's kernel), then the cell's pointwise pass over the tile while it
// is in cache. A cell whose pointwise maths is one activation (tanh/relu) runs it in the products' epilogue instead.
// Tiles split each step's cells across threads (SplitTiles over B x panels of H, so several units per cell on small
// batches); large batches with small weights run as batch blocks instead (wavefront.h): each block of rows runs the
// whole wavefront on one thread, one tile per cell, with no synchronisation between steps.
//
// Modifiers (deeprnn/stacked.h): dropout multiplies the products' operands. Each dropped operand is written once, by
// the tile that produces its state, over the tile's own rows and units only (the tiles of the next step read whole
// rows of it, so copying at the reader would repeat the copy in every tile of a row block): h(l, t) times the
// recurrent masks for (l, t + 1), and times the input masks and the between-layer mask for (l + 1, t), into buffers
// alternating with the parity of t. The initial states are dropped before the wavefront, layer 0's dense inputs by
// the tiles that read them. One copy per gate where the masks are per gate. A mask skips the products of row chunks
// that take no step and then gives every row that does not take it its previous states and output.
#ifndef DEEPRNN_ENGINE_CPU_FORWARD_H_
#define DEEPRNN_ENGINE_CPU_FORWARD_H_

#include "engine/cpu/products.h"

namespace deeprnn {
namespace cpu {

template <typename Isa, typename Cell, typename T>
struct ForwardPass {
  using P = Products<Isa, T>;
  static constexpr int G = Cell::kLayout.gates;
  static constexpr int NS = Cell::kLayout.states;
  static constexpr int SS = Cell::kLayout.saved_slots;
  static constexpr int NP = Cell::kPreSlots;

  struct CellTile {
    int64_t layer;
    Tile tile;
  };

  // What one work unit computes in, grown on demand and reused by its tiles.
  struct UnitScratch {
    ScratchBuffer<T> pre, operands, scales;
    ScratchBuffer<const T*> gathered;
  };

  // Shifts every row pointer of a tile's product pass down by `rows`: the same pass over a run of its rows.
  static TileSpec<T> FromRow(TileSpec<T> spec, int64_t rows) {
    for (int s = 0; s < spec.num_products; ++s) {
      TileProduct<T>& prod = spec.products[s];
      prod.a.data += rows * prod.a.rs;
      for (int c = 0; c < 2; ++c)
        if (prod.scale[c]) prod.scale[c] += rows * prod.scale_ld[c];
    }
    for (int s = 0; s < 2; ++s)
      if (spec.add[s]) spec.add[s] += rows * spec.add_ld[s];
    if (spec.gather) spec.gather += rows;
    if (spec.gather_scale) spec.gather_scale += rows;
    if (spec.h) spec.h += rows * spec.h_ld;
    if (spec.takes) spec.takes += rows * spec.takes_stride;
    for (int d = 0; d < kTileDestinations; ++d)
      if (spec.dst[d]) spec.dst[d] += rows * spec.dst_ld[d];
    return spec;
  }
  static PointwiseForward<T> FromRow(PointwiseForward<T> pass, int64_t rows) {
    pass.pre += rows * pass.pre_ld;
    if (pass.saved) pass.saved += rows * pass.saved_ld;
    for (int s = 0; s < 2; ++s) {
      if (pass.prev[s]) pass.prev[s] += rows * pass.prev_ld[s];
      for (int d = 0; d < kStateDestinations; ++d)
        if (pass.out[s][d]) pass.out[s][d] += rows * pass.out_ld[s][d];
    }
    return pass;
  }

  static void Run(const ForwardArgs<T>& a, const ParallelFor& parallel_for) {
    const Shape& shape = a.shape;
    const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
    if (B == 0) return;
    if (TT == 0) {
      std::copy_n(a.initial_states, L * NS * B * H, a.final_states);
      return;
    }
    const bool tokens = a.inputs.tokens != nullptr;
    const Modifiers<T>& mod = a.modifiers;
    const uint8_t* mask = mod.mask;
    const std::vector<int64_t> first_taken = FirstTakenSteps(mask, B, TT);
    // Operand copies per tile: one per distinct dropout mask of the input and recurrent products.
    const int x_copies = mod.input_dropout ? mod.input_masks : 1;
    const int h_copies = mod.recurrent_dropout ? mod.recurrent_masks : 1;
    auto x_copy_of = [&](int gate) { return x_copies == G ? gate : 0; };
    auto h_copy_of = [&](int gate) { return h_copies == G ? gate : 0; };

    // Per layer and gate, packed once and reused by all T steps: wx[G l + g], wh[G l + g] (layer 0's input kernel
    // is not packed for token inputs: its rows are gathered).
    std::vector<PackedMatrix<T>> wx_storage(L * G), wh_storage(L * G);
    std::vector<PackedB<T>> wx(L * G), wh(L * G);
    for (int64_t l = 0; l < L; ++l)
      for (int g = 0; g < G; ++g) {
        const int64_t i = l * G + g;
        if (!(tokens && l == 0)) {
          wx_storage[i] = PackedMatrix<T>(a.weights.kernels[l] + g * H, G * H, false, l == 0 ? D : H, H, P::kNr);
          wx[i] = wx_storage[i].view();
        }
        wh_storage[i] = PackedMatrix<T>(a.weights.recurrent_kernels[l] + g * H, G * H, false, H, H, P::kNr);
        wh[i] = wh_storage[i].view();
      }
    // The bias of every slot: the sum of its bias blocks, per layer (z and r of the GRU add both of theirs).
    std::vector<T> slot_bias(L * NP * H, T(0));
    for (int64_t l = 0; l < L; ++l)
      for (int p = 0; p < NP; ++p)
        for (int block : {Cell::kPre[p].x_bias, Cell::kPre[p].h_bias})
          if (block >= 0 && a.weights.biases[l] != nullptr)
            for (int64_t j = 0; j < H; ++j) slot_bias[(l * NP + p) * H + j] += a.weights.biases[l][block * H + j];

    // The dropped operands (see the top of this file): copy c of layer l's recurrent operand made from h(l, t), and
    // of its input operand made from h(l - 1, t), in the buffer of t's parity (t = -1, the initial state: parity 1).
    // Layer 0's dense inputs are dropped by each tile that reads them (they have no producing tile).
    // Their rows are HP apart: H, or more where H values are a multiple of 4 KB (AliasFreeRowStride), and then the
    // tiles also read h as a copy with HP-apart rows: padded(l, t) in the buffer of t's parity, written by the tile
    // that produces h(l, t) as one more destination (the initial states before the wavefront). Layer 0's dense
    // inputs, whose rows are T D apart, are read from a time-major copy where that stride is a multiple of 4 KB.
    const bool drop_x = mod.input_dropout != nullptr || mod.between_dropout != nullptr;
    const bool drop_h = mod.recurrent_dropout != nullptr;
    const int64_t HP = AliasFreeRowStride(H, sizeof(T));
    const bool pad = HP != H;
    std::vector<T> dropped_h(drop_h ? L * 2 * h_copies * B * HP : 0);
    std::vector<T> dropped_x(drop_x ? L * 2 * x_copies * B * HP : 0);
    std::vector<T> padded(pad ? L * 2 * B * HP : 0);
    auto parity = [](int64_t t) { return (t + 2) % 2; };
    auto dropped_h_of = [&](int64_t l, int64_t t, int c) {
      return dropped_h.data() + ((l * 2 + parity(t)) * h_copies + c) * B * HP;
    };
    auto dropped_x_of = [&](int64_t l, int64_t t, int c) {
      return dropped_x.data() + ((l * 2 + parity(t)) * x_copies + c) * B * HP;
    };
    auto padded_of = [&](int64_t l, int64_t t) { return padded.data() + (l * 2 + parity(t)) * B * HP; };
    if (drop_h)
      for (int64_t l = 0; l < L; ++l)
        for (int c = 0; c < h_copies; ++c)
          P::Multiply(dropped_h_of(l, -1, c), HP, a.initial_states + l * NS * B * H, H,
                      mod.recurrent_dropout[l] + c * B * H, H, nullptr, 0, B, 0, H);
    if (pad)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t b = 0; b < B; ++b)
          std::copy_n(a.initial_states + (l * NS * B + b) * H, H, padded_of(l, -1) + b * HP);
    const int64_t DP = AliasFreeRowStride(D, sizeof(T));
    std::vector<T> inputs_tm;
    if (!tokens && AliasFreeRowStride(TT * D, sizeof(T)) != TT * D) {
      inputs_tm.resize(TT * B * DP);
      for (int64_t t = 0; t < TT; ++t)
        for (int64_t b = 0; b < B; ++b)
          std::copy_n(a.inputs.dense + (b * TT + t) * D, D, inputs_tm.data() + (t * B + b) * DP);
    }
    // What cell (l, t)'s tile writes of them once its states are final: its rows and units of h(l, t) times the
    // masks of the two cells that read it.
    auto drop_outputs = [&](int64_t l, int64_t t, int64_t r0, int64_t m, int64_t j0, int64_t j1) {
      const T* h_rows = a.activations + (l * TT + t) * B * H + r0 * H;
      if (drop_h)
        for (int c = 0; c < h_copies; ++c)
          P::Multiply(dropped_h_of(l, t, c) + r0 * HP, HP, h_rows, H, mod.recurrent_dropout[l] + (c * B + r0) * H, H,
                      nullptr, 0, m, j0, j1);
      if (!drop_x || l + 1 == L) return;
      const T* between = mod.between_dropout ? mod.between_dropout + (l * TT + t) * B * H + r0 * H : nullptr;
      for (int c = 0; c < x_copies; ++c) {
        const T* drop = mod.input_dropout ? mod.input_dropout[l + 1] + (c * B + r0) * H : nullptr;
        P::Multiply(dropped_x_of(l + 1, t, c) + r0 * HP, HP, h_rows, H, drop ? drop : between, H,
                    drop ? between : nullptr, H, m, j0, j1);
      }
    };

    // State s of cell (l, t): h in the activations, a second state in a slot of the saved gates; t = -1 is the
    // initial state.
    auto state = [&](int64_t l, int64_t t, int s) -> T* {
      if (t < 0) return const_cast<T*>(a.initial_states) + (l * NS + s) * B * H;
      if (s == 0) return a.activations + (l * TT + t) * B * H;
      return a.saved + (l * TT + t) * B * SS * H + Cell::kStateSlot[s] * H;
    };
    auto state_ld = [&](int64_t t, int s) -> int64_t { return t < 0 || s == 0 ? H : SS * H; };

    // One tile of cell (l, t): the products of every slot into `pre` (the tile's rows, [m, NP H], still in cache
    // when the pointwise pass reads them), then the pointwise pass over the same rows and units.
    auto cell_tile = [&](int64_t l, int64_t t, const Tile& tile, UnitScratch& ws) {
      const int64_t r0 = tile.row_begin, m = tile.row_end - r0;
      const int64_t j0 = tile.panel_begin * P::kNr, j1 = std::min(H, tile.panel_end * P::kNr);
      const std::vector<RowRun> runs = TakenRuns(mask, TT, r0, tile.row_end, t, false, P::kMr);
      const bool top = l == L - 1, last = t == TT - 1;

      // The operands: the layer below at step t (layer 0: the batch-major inputs at time t, or its kernel's rows
      // for the tokens) and this layer at step t - 1, each times its dropout masks where there are any.
      GemmA<T> x[4], h[4];
      const T** gathered = nullptr;  // [2m]: each row's kernel row, then the same shifted to the slot's gate
      const T* scales[4] = {nullptr, nullptr, nullptr, nullptr};
      const T* x_base = l > 0 ? (pad ? padded_of(l - 1, t) + r0 * HP : state(l - 1, t, 0) + r0 * H)
                        : !inputs_tm.empty() ? inputs_tm.data() + (t * B + r0) * DP
                                             : a.inputs.dense + r0 * TT * D + t * D;
      const int64_t x_ld = l > 0 ? (pad ? HP : H) : !inputs_tm.empty() ? DP : TT * D;
      if (l == 0 && tokens) {
        gathered = ws.gathered.get(2 * m);
        for (int64_t i = 0; i < m; ++i)
          gathered[i] = a.weights.kernels[0] + static_cast<int64_t>(a.inputs.tokens[(r0 + i) * TT + t]) * G * H;
        if (mod.input_dropout) {
          T* s = ws.scales.get(x_copies * m);
          for (int c = 0; c < x_copies; ++c) {
            const T* drop = mod.input_dropout[0] + c * B * D;
            for (int64_t i = 0; i < m; ++i) s[c * m + i] = drop[(r0 + i) * D + a.inputs.tokens[(r0 + i) * TT + t]];
            scales[c] = s + c * m;
          }
        }
      } else if (l == 0 && mod.input_dropout) {
        T* copies = ws.operands.get(x_copies * m * D);
        for (int c = 0; c < x_copies; ++c) {
          P::Multiply(copies + c * m * D, D, x_base, x_ld, mod.input_dropout[0] + (c * B + r0) * D, D, nullptr, 0, m,
                      0, D);
          x[c] = {copies + c * m * D, D, 1};
        }
      } else if (l > 0 && drop_x) {
        for (int c = 0; c < x_copies; ++c) x[c] = {dropped_x_of(l, t, c) + r0 * HP, HP, 1};
      } else {
        x[0] = {x_base, x_ld, 1};
      }
      if (drop_h) {
        for (int c = 0; c < h_copies; ++c) h[c] = {dropped_h_of(l, t - 1, c) + r0 * HP, HP, 1};
      } else if (pad) {
        h[0] = {padded_of(l, t - 1) + r0 * HP, HP, 1};
      } else {
        h[0] = {state(l, t - 1, 0) + r0 * H, H, 1};
      }

      auto products = [&](int p, TileSpec<T>& spec) {
        const PreSlot& slot = Cell::kPre[p];
        if (slot.x_gate >= 0) {
          if (l == 0 && tokens) {
            for (int64_t i = 0; i < m; ++i) gathered[m + i] = gathered[i] + slot.x_gate * H;
            spec.gather = gathered + m;
            spec.gather_scale = scales[x_copy_of(slot.x_gate)];
          } else {
            spec.products[spec.num_products++] = {x[x_copy_of(slot.x_gate)], &wx[l * G + slot.x_gate]};
          }
        }
        if (slot.h_gate >= 0) spec.products[spec.num_products++] = {h[h_copy_of(slot.h_gate)], &wh[l * G + slot.h_gate]};
        spec.bias = slot_bias.data() + (l * NP + p) * H;
      };

      PointwiseForward<T> pass;
      if constexpr (Cell::kFusedEpilogue) {
        TileSpec<T> spec;
        products(0, spec);
        spec.epilogue = Epilogue::kActivate;
        spec.activation = Cell::kActivation;
        spec.dst[0] = state(l, t, 0) + r0 * H;
        spec.dst_ld[0] = H;
        if (top) {
          spec.dst[1] = a.outputs + (r0 * TT + t) * H;
          spec.dst_ld[1] = TT * H;
        }
        if (last) {
          spec.dst[2] = a.final_states + (l * NS * B + r0) * H;
          spec.dst_ld[2] = H;
        }
        if (pad) {
          spec.dst[3] = padded_of(l, t) + r0 * HP;
          spec.dst_ld[3] = HP;
        }
        for (const RowRun& run : runs)
          P::CellTile(FromRow(spec, run.begin), run.end - run.begin, H, tile.panel_begin, tile.panel_end);
      } else {
        T* pre = ws.pre.get(m * NP * H);
        pass.pre = pre;
        pass.pre_ld = NP * H;
        pass.saved = a.saved + (l * TT + t) * B * SS * H + r0 * SS * H;
        pass.saved_ld = SS * H;
        pass.stream_saved = true;
        pass.hidden = H;
        for (int s = 0; s < NS; ++s) {
          pass.prev[s] = state(l, t - 1, s) + r0 * state_ld(t - 1, s);
          pass.prev_ld[s] = state_ld(t - 1, s);
          pass.out[s][0] = state(l, t, s) + r0 * state_ld(t, s);
          pass.out_ld[s][0] = state_ld(t, s);
          if (last) {
            pass.out[s][2] = a.final_states + ((l * NS + s) * B + r0) * H;
            pass.out_ld[s][2] = H;
          }
        }
        if (top) {
          pass.out[0][1] = a.outputs + (r0 * TT + t) * H;
          pass.out_ld[0][1] = TT * H;
        }
        if (pad) {
          pass.out[0][3] = padded_of(l, t) + r0 * HP;
          pass.out_ld[0][3] = HP;
        }
        for (const RowRun& run : runs) {
          for (int p = 0; p < NP; ++p) {
            TileSpec<T> spec;
            products(p, spec);
            spec.dst[0] = pre + p * H;
            spec.dst_ld[0] = NP * H;
            P::CellTile(FromRow(spec, run.begin), run.end - run.begin, H, tile.panel_begin, tile.panel_end);
          }
          Cell::template Cpu<Isa, T>::Forward(FromRow(pass, run.begin), run.end - run.begin, j0, j1);
        }
      }

      // Rows that do not take step t keep their states; their output repeats the last one (zeros before the first
      // step taken, or always with zero_output_for_mask).
      for (int64_t i = 0; mask != nullptr && i < m; ++i) {
        const int64_t b = r0 + i;
        if (mask[b * TT + t]) continue;
        for (int s = 0; s < NS; ++s) {
          const T* prev = state(l, t - 1, s) + b * state_ld(t - 1, s);
          std::copy(prev + j0, prev + j1, state(l, t, s) + b * state_ld(t, s) + j0);
          if (last) std::copy(prev + j0, prev + j1, a.final_states + ((l * NS + s) * B + b) * H + j0);
          if (s == 0 && pad) std::copy(prev + j0, prev + j1, padded_of(l, t) + b * HP + j0);
        }
        if (top) {
          T* out = a.outputs + (b * TT + t) * H;
          const T* prev = state(l, t - 1, 0) + b * H;
          if (mod.zero_output_for_mask || t <= first_taken[b]) {
            std::fill(out + j0, out + j1, T(0));
          } else {
            std::copy(prev + j0, prev + j1, out + j0);
          }
        }
      }
      if (drop_x || drop_h) drop_outputs(l, t, r0, m, j0, j1);
    };

    const int64_t panels = NumPanels(H, P::kNr);
    // The wavefront over rows [row_begin, row_end) (RunOverBatch in wavefront.h).
    auto wavefront = [&](int64_t row_begin, int64_t row_end, bool split, const ParallelFor& step_for) {
      std::vector<CellTile> work;
      UnitScratch serial;  // a block's, reused by all its steps
      for (int64_t s = 0; s < NumWavefrontSteps(TT, L); ++s) {
        const WavefrontStep step = ActiveLayers(s, TT, L);
        work.clear();
        for (int64_t l = step.first_layer; l <= step.last_layer; ++l) {
          const double flops = 2.0 * (row_end - row_begin) * G * H * ((l == 0 ? D : H) + H);
          const int64_t parts = split ? PartsForWork(flops) : 1;
          for (const Tile& tile : SplitRowRange(row_begin, row_end, panels, parts, P::kMr)) work.push_back({l, tile});
        }
        step_for(static_cast<int64_t>(work.size()), [&](int64_t begin, int64_t end) {
          UnitScratch unit;
          UnitScratch& ws = split ? unit : serial;
          for (int64_t u = begin; u < end; ++u) cell_tile(work[u].layer, s - work[u].layer, work[u].tile, ws);
        });
      }
    };
    const int64_t weight_bytes = static_cast<int64_t>(sizeof(T)) * LargestLayerWeights(shape, G);
    RunOverBatch(B, BatchBlocks(B, weight_bytes, P::kMr), parallel_for, wavefront);
  }
};

}  // namespace cpu
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CPU_FORWARD_H_
