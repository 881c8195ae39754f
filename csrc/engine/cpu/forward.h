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

  static void Run(const ForwardArgs<T>& a, const ParallelFor& parallel_for) {
    const Shape& shape = a.shape;
    const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
    if (B == 0) return;
    if (TT == 0) {
      std::copy_n(a.initial_states, L * NS * B * H, a.final_states);
      return;
    }
    const bool tokens = a.inputs.tokens != nullptr;

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
    auto cell_tile = [&](int64_t l, int64_t t, const Tile& tile, T* pre, const T** gathered) {
      const int64_t r0 = tile.row_begin, m = tile.row_end - r0;
      // The layer below at step t (layer 0: the batch-major inputs at time t, or its kernel's rows for the
      // tokens); this layer at step t - 1.
      const GemmA<T> x = l == 0 ? GemmA<T>{a.inputs.dense + r0 * TT * D + t * D, TT * D, 1}
                                : GemmA<T>{state(l - 1, t, 0) + r0 * H, H, 1};
      if (l == 0 && tokens)
        for (int64_t i = 0; i < m; ++i)
          gathered[i] = a.weights.kernels[0] + static_cast<int64_t>(a.inputs.tokens[(r0 + i) * TT + t]) * G * H;
      const GemmA<T> h = {state(l, t - 1, 0) + r0 * H, H, 1};
      const bool top = l == L - 1, last = t == TT - 1;

      auto products = [&](int p, TileSpec<T>& spec) {
        const PreSlot& slot = Cell::kPre[p];
        if (slot.x_gate >= 0) {
          if (l == 0 && tokens) {
            for (int64_t i = 0; i < m; ++i) gathered[m + i] = gathered[i] + slot.x_gate * H;
            spec.gather = gathered + m;
          } else {
            spec.products[spec.num_products++] = {x, &wx[l * G + slot.x_gate]};
          }
        }
        if (slot.h_gate >= 0) spec.products[spec.num_products++] = {h, &wh[l * G + slot.h_gate]};
        spec.bias = slot_bias.data() + (l * NP + p) * H;
      };

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
        P::CellTile(spec, m, H, tile.panel_begin, tile.panel_end);
      } else {
        for (int p = 0; p < NP; ++p) {
          TileSpec<T> spec;
          products(p, spec);
          spec.dst[0] = pre + p * H;
          spec.dst_ld[0] = NP * H;
          P::CellTile(spec, m, H, tile.panel_begin, tile.panel_end);
        }
        PointwiseForward<T> pass;
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
        Cell::template Cpu<Isa, T>::Forward(pass, m, tile.panel_begin * P::kNr,
                                            std::min(H, tile.panel_end * P::kNr));
      }
    };

    const int64_t panels = NumPanels(H, P::kNr);
    // The wavefront over rows [row_begin, row_end) (RunOverBatch in wavefront.h).
    auto wavefront = [&](int64_t row_begin, int64_t row_end, bool split, const ParallelFor& step_for) {
      std::vector<CellTile> work;
      ScratchBuffer<T> serial_pre;                 // a block's, reused by all its steps
      ScratchBuffer<const T*> serial_gathered;
      for (int64_t s = 0; s < NumWavefrontSteps(TT, L); ++s) {
        const WavefrontStep step = ActiveLayers(s, TT, L);
        work.clear();
        for (int64_t l = step.first_layer; l <= step.last_layer; ++l) {
          const double flops = 2.0 * (row_end - row_begin) * G * H * ((l == 0 ? D : H) + H);
          const int64_t parts = split ? PartsForWork(flops) : 1;
          for (const Tile& tile : SplitRowRange(row_begin, row_end, panels, parts, P::kMr)) work.push_back({l, tile});
        }
        step_for(static_cast<int64_t>(work.size()), [&](int64_t begin, int64_t end) {
          ScratchBuffer<T> step_pre;
          ScratchBuffer<const T*> step_gathered;
          ScratchBuffer<T>& pre = split ? step_pre : serial_pre;
          ScratchBuffer<const T*>& gathered = split ? step_gathered : serial_gathered;
          for (int64_t u = begin; u < end; ++u) {
            const Tile& tile = work[u].tile;
            const int64_t rows = tile.row_end - tile.row_begin;
            cell_tile(work[u].layer, s - work[u].layer, tile, Cell::kFusedEpilogue ? nullptr : pre.get(rows * NP * H),
                      tokens ? gathered.get(2 * rows) : nullptr);
          }
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
