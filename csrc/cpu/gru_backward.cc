// Backward pass of the stacked GRU on the CPU.
//
// Notation of deeprnn/stacked_gru.h; per cell a_z, a_r, a_n are the arguments of the gates' nonlinearities
// (a_n = xn + r q). With dh = dLoss/dH_t^(l) summed over every path:
//   da_n = dh (1 - z) (1 - n^2),  da_z = dh (h - n) z (1 - z),  da_r = da_n q r (1 - r)
// The input side of the cell sees (da_z, da_r, da_n) and the recurrent side (da_z, da_r, da_n r). They are stored
// per row as [da_n | da_z | da_r | da_n r] (grad_gates), so that both are contiguous: the input side ("grad_x") is
// columns [0, 3H) in the gate order (n, z, r), the recurrent side ("grad_h") columns [H, 4H) in the order (z, r, n).
// The input kernels are packed with their gate blocks in that (n, z, r) order to match.
//
// 1. A reverse wavefront computes grad_gates cell by cell:
//      dh(l, t) = dY_t [top layer] + dH_final(l) [t = T-1]
//               + dh(l, t+1) z(l, t+1) + grad_h(l, t+1) Wh(l)^T + grad_x(l+1, t) Wx(l+1)^T
//    The direct term dh z is kept per layer in a two-slot rolling buffer `carry` (slot t mod 2). One work unit
//    computes its tile of dh (products + adds, one cell_tile call), then the elementwise pass over the same rows
//    and units, as the forward pass does.
// 2. The weight gradients
//      dWx(l) = sum_t in(l, t)^T grad_x(l, t),  dWh(l) = sum_t H(l, t-1)^T grad_h(l, t),
//      dbx(l) = sum_{t,b} grad_x(l, t),  dbh(l) = sum_{t,b} grad_h(l, t)
//    and the data gradients dX_t = grad_x(0, t) Wx(0)^T,  dH_init(l) = dh(l, 0) z(l, 0) + grad_h(l, 0) Wh(l)^T.
//    Two schedules, as for the tanh RNN (backward.cc):
//    - streamed (large batches, small weights: the book's B = 1024, H = 32): while step s runs, the cells of step
//      s + 1 are folded into the weight gradients and dX, as their rows are still in cache. grad_gates is then only
//      needed for two steps and is itself a rolling buffer (two slots per layer), so the pass never writes the
//      [L,T,B,4H] gradients to memory and reads them back.
//    - batched (wide layers, small batches): one product per layer and column block over all T * B rows after the
//      wavefront (K large, efficient), where accumulating per step would re-read the weight gradients T times.
//    Either way every element is accumulated in a fixed order (t descending, or over all rows), so the results do
//    not depend on the threads.
// 3. Large batches with small weights (the book's B = 1024, H = 32) run both as batch blocks (cpu/wavefront.h): each
//    block of rows runs the streamed reverse wavefront alone on one thread, into its own partial weight gradients,
//    which are then added in block order. grad_gates and carry keep their [.., B, ..] layouts; a block uses its rows.
#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/gru_pointwise.h"
#include "cpu/wavefront.h"
#include "cpu/weight_grad_sink.h"
#include "deeprnn/stacked_gru.h"

namespace deeprnn {

namespace {

// The weight gradients come in three column blocks of grad_gates, each read once (packed, shared by the products
// that use it, the bias sums taken from the packing: gemm_shared_b) and written to the columns of dWx / dWh and of
// both bias rows it belongs to:
//   grad_gates columns [H, 3H) (dz, dr) -> dWx[:, 0:2H],  dWh[:, 0:2H],  bx_zr = bh_zr
//                      [0, H) (dn)      -> dWx[:, 2H:3H],                bx_n
//                      [3H, 4H) (dn r)  ->                dWh[:, 2H:3H], bh_n
// (Splitting z from r would balance two threads slightly better but read the long operands once more; measured,
// it was no faster.)
struct WeightBlock {
  int64_t column;    // first column in grad_gates
  int64_t width;     // columns
  int64_t x_column;  // first column in dWx and in bias row 0, or -1
  int64_t h_column;  // first column in dWh and in bias row 1, or -1
};

std::vector<WeightBlock> WeightBlocks(int64_t H) { return {{H, 2 * H, 0, 0}, {0, H, 2 * H, -1}, {3 * H, H, -1, 2 * H}}; }

template <typename T>
int64_t WeightBytes(const Shape& shape) {
  return static_cast<int64_t>(sizeof(T)) * LargestLayerWeights(shape, 3);
}

// The streamed schedule: for large batches with small weights.
template <typename T>
bool Streamed(const Shape& shape) {
  return StreamedWeightGrads(shape.batch, WeightBytes<T>(shape));
}

}  // namespace

template <typename T>
int64_t StackedGruBackwardCpuScratchSize(const Shape& shape) {
  const int64_t cells = Streamed<T>(shape) ? std::min<int64_t>(2, shape.time) : shape.time;
  return shape.layers * cells * shape.batch * kGruGateSlots * shape.hidden;
}
template int64_t StackedGruBackwardCpuScratchSize<float>(const Shape&);
template int64_t StackedGruBackwardCpuScratchSize<double>(const Shape&);

template <typename T>
void StackedGruBackwardCpu(const Shape& shape, const T* inputs, const GruWeights<T>& weights, const T* initial_states,
                           const T* activations, const T* gates, const T* grad_outputs, const T* grad_final_states,
                           T* grad_inputs, const GruWeightGrads<T>& grad_weights, T* grad_initial_states,
                           T* grad_gates, const ParallelFor& parallel_for) {
  const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
  const int64_t G = kGruGateSlots * H;
  auto in_size = [&](int64_t l) { return l == 0 ? D : H; };
  for (int64_t l = 0; l < L; ++l) {
    std::fill_n(grad_weights.kernels[l], in_size(l) * 3 * H, T(0));
    std::fill_n(grad_weights.recurrent_kernels[l], H * 3 * H, T(0));
    std::fill_n(grad_weights.biases[l], 2 * 3 * H, T(0));
  }
  if (B == 0) return;
  if (TT == 0) {
    std::memcpy(grad_initial_states, grad_final_states, sizeof(T) * L * B * H);
    return;
  }
  const cpu::CpuKernelTable<T>& k = cpu::Kernels<T>();
  const cpu::GruKernelTable<T>& gru = cpu::GruKernels<T>();

  // op(B) = Wh^T [3H, H] (rows in the gate order z, r, n) and Wx^T [3H, in] with rows in the order n, z, r.
  std::vector<cpu::PackedMatrix<T>> wx_t_storage, wh_t_storage;
  std::vector<T> reordered;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t in = in_size(l);
    reordered.resize(in * 3 * H);
    for (int64_t i = 0; i < in; ++i) {
      const T* row = weights.kernels[l] + i * 3 * H;
      T* out = reordered.data() + i * 3 * H;
      std::copy(row + 2 * H, row + 3 * H, out);
      std::copy(row, row + 2 * H, out + H);
    }
    wx_t_storage.emplace_back(reordered.data(), 3 * H, true, 3 * H, in);
    wh_t_storage.emplace_back(weights.recurrent_kernels[l], 3 * H, true, 3 * H, H);
  }
  std::vector<cpu::PackedB<T>> wx_t, wh_t;
  for (int64_t l = 0; l < L; ++l) {
    wx_t.push_back(wx_t_storage[l].view());
    wh_t.push_back(wh_t_storage[l].view());
  }

  const bool streamed = Streamed<T>(shape);
  const std::vector<RowBlock> row_blocks = BatchBlocks(B, WeightBytes<T>(shape), cpu::kGemmMr);  // streamed if any

  auto h = [&](int64_t l, int64_t t) { return activations + (l * TT + t) * B * H; };
  auto h_prev = [&](int64_t l, int64_t t) { return t == 0 ? initial_states + l * B * H : h(l, t - 1); };
  auto cell_gates = [&](int64_t l, int64_t t) { return gates + (l * TT + t) * B * G; };
  // Streamed, cell (l, t) is read by step s - 1 only (by the cells (l, t-1), (l-1, t) and the streamed units), so
  // two slots per layer suffice; slot 0 keeps t = 0 to the end, for dH_init.
  const int64_t gg_slots = streamed ? std::min<int64_t>(2, TT) : TT;
  auto gg = [&](int64_t l, int64_t t) { return grad_gates + (l * gg_slots + (streamed ? t % gg_slots : t)) * B * G; };
  // dh of the cell being computed, then dh z for the cell before it in time: slot t mod 2 of each layer.
  std::vector<T> carry_storage(L * 2 * B * H);
  auto carry = [&](int64_t l, int64_t t) { return carry_storage.data() + (l * 2 + t % 2) * B * H; };

  const std::vector<WeightBlock> blocks = WeightBlocks(H);
  const int64_t num_blocks = static_cast<int64_t>(blocks.size());
  // Weight gradients accumulate into grad_weights (arrays 2 l and 2 l + 1: dWx(l), dWh(l)) or, per batch block,
  // a zeroed copy (cpu/weight_grad_sink.h); bias gradients into column sums in double, sums l * num_blocks + i for
  // block i of layer l.
  using Sink = cpu::WeightGradSink<T>;
  std::vector<typename Sink::Array> grad_arrays;
  std::vector<int64_t> sum_sizes;
  for (int64_t l = 0; l < L; ++l) {
    grad_arrays.push_back({grad_weights.kernels[l], in_size(l) * 3 * H});
    grad_arrays.push_back({grad_weights.recurrent_kernels[l], H * 3 * H});
    for (int64_t i = 0; i < num_blocks; ++i) sum_sizes.push_back(blocks[i].width);
  }
  Sink sink(grad_arrays, sum_sizes);
  // Block i of layer l's weight gradients over k_rows rows: in and prev [k_rows, in] / [k_rows, H] (read
  // transposed), gg_rows [k_rows, G].
  auto accumulate_weight_grads = [&](Sink& sink, int64_t l, int64_t i, const cpu::GemmA<T>& in, int64_t k_rows,
                                     const T* prev, const T* gg_rows, cpu::ScratchBuffer<T>* scratch) {
    const WeightBlock& block = blocks[i];
    cpu::GemmOutput<T> outs[2];
    int num_outs = 0;
    if (block.x_column >= 0) outs[num_outs++] = {in, in_size(l), sink.array(2 * l) + block.x_column, 3 * H};
    if (block.h_column >= 0) outs[num_outs++] = {{prev, 1, H}, H, sink.array(2 * l + 1) + block.h_column, 3 * H};
    const int64_t block_panels = cpu::NumPanels<T>(block.width);
    k.gemm_shared_b(outs, num_outs, k_rows, gg_rows + block.column, G, block.width, 0, block_panels,
                    scratch->get(cpu::GemmScratchSize<T>(block_panels)),
                    sink.sums(l * num_blocks + i));
  };
  // C[rows of tile] = A op(B) (+ add) for a pre-packed op(B), C overwritten: the data gradients.
  auto packed_product = [&](const Tile& tile, cpu::GemmA<T> a, const cpu::PackedB<T>* b, const T* add, T* c,
                            int64_t ldc, int64_t n) {
    cpu::TileSpec<T> spec;
    spec.products[0] = {{a.data + tile.row_begin * a.rs, a.rs, a.cs}, b};
    spec.num_products = 1;
    if (add) {
      spec.add[0] = add + tile.row_begin * ldc;
      spec.add_ld[0] = ldc;
    }
    spec.dst[0] = c + tile.row_begin * ldc;
    spec.dst_ld[0] = ldc;
    k.cell_tile(spec, tile.row_end - tile.row_begin, n, tile.panel_begin, tile.panel_end);
  };
  auto input_grad = [&](const Tile& tile, int64_t t) {
    packed_product(tile, {gg(0, t), G, 1}, &wx_t[0], nullptr, grad_inputs + t * D, TT * D, D);
  };
  auto initial_state_grad = [&](int64_t l, const Tile& tile) {
    packed_product(tile, {gg(l, 0) + H, G, 1}, &wh_t[l], carry(l, 0), grad_initial_states + l * B * H, H, H);
  };
  // Tiles of rows [row_begin, row_end) of an [B, n] output: about `parts` of them, one when parts is 1.
  auto row_tiles = [](int64_t row_begin, int64_t row_end, int64_t n, int64_t parts) {
    return SplitRowRange(row_begin, row_end, cpu::NumPanels<T>(n), parts, cpu::kGemmMr);
  };

  // The cell (l, t) = (layer, s - layer) of step s: dh tile, then the elementwise pass.
  auto cell = [&](int64_t l, int64_t t, const Tile& tile) {
    const int64_t r0 = tile.row_begin, m = tile.row_end - r0;
    cpu::TileSpec<T> spec;
    if (t + 1 < TT) spec.products[spec.num_products++] = {{gg(l, t + 1) + r0 * G + H, G, 1}, &wh_t[l]};
    if (l + 1 < L) spec.products[spec.num_products++] = {{gg(l + 1, t) + r0 * G, G, 1}, &wx_t[l + 1]};
    if (l == L - 1) {
      spec.add[0] = grad_outputs + (r0 * TT + t) * H;
      spec.add_ld[0] = TT * H;
    }
    // The final state's gradient enters at t = T-1; the direct path dh z from t + 1 everywhere else.
    spec.add[1] = t == TT - 1 ? grad_final_states + (l * B + r0) * H : carry(l, t + 1) + r0 * H;
    spec.add_ld[1] = H;
    spec.dst[0] = carry(l, t) + r0 * H;
    spec.dst_ld[0] = H;
    k.cell_tile(spec, m, H, tile.panel_begin, tile.panel_end);

    cpu::GruBackwardTile<T> pass;
    pass.gates = cell_gates(l, t) + r0 * G;
    pass.gates_ld = G;
    pass.h_prev = h_prev(l, t) + r0 * H;
    pass.h_prev_ld = H;
    pass.dh = carry(l, t) + r0 * H;
    pass.dh_ld = H;
    pass.grad_gates = gg(l, t) + r0 * G;
    pass.grad_gates_ld = G;
    pass.hidden = H;
    gru.backward(pass, m, tile.panel_begin * cpu::kNr<T>, std::min(H, tile.panel_end * cpu::kNr<T>));
  };

  // The reverse wavefront over rows [row_begin, row_end): each step's cells split into tiles (one per cell when
  // `split` is false) that `step_for` runs; streamed, with the weight gradients of the step before into `sink`.
  enum Kind : int { kCell, kWeights, kInputGrad };
  struct Unit {
    Kind kind;
    int64_t layer;
    Tile tile;          // kCell, kInputGrad
    int64_t block = 0;  // kWeights: which WeightBlock
  };
  auto wavefront = [&](int64_t row_begin, int64_t row_end, bool split, Sink& sink, const ParallelFor& step_for) {
    const int64_t rows = row_end - row_begin;
    const std::vector<Tile> cell_tiles =
        row_tiles(row_begin, row_end, H, split ? PartsForWork(2.0 * 2 * rows * 3 * H * H) : 1);
    const std::vector<Tile> input_grad_tiles =
        row_tiles(row_begin, row_end, D, split ? PartsForWork(2.0 * rows * D * 3 * H) : 1);
    std::vector<Unit> work;
    cpu::ScratchBuffer<T> serial_scratch;  // a block's, reused by all its steps
    for (int64_t s = NumWavefrontSteps(TT, L) - 1; s >= -1; --s) {
      work.clear();
      // Streamed: the cells of step s + 1, finished, into the weight gradients and (layer 0) dX.
      if (streamed && s + 1 < NumWavefrontSteps(TT, L)) {
        const WavefrontStep done = ActiveLayers(s + 1, TT, L);
        for (int64_t l = done.first_layer; l <= done.last_layer; ++l)
          for (int64_t i = 0; i < num_blocks; ++i) work.push_back({kWeights, l, {}, i});
        if (done.first_layer == 0)
          for (const Tile& tile : input_grad_tiles) work.push_back({kInputGrad, 0, tile});
      }
      if (s >= 0) {
        const WavefrontStep step = ActiveLayers(s, TT, L);
        for (int64_t l = step.first_layer; l <= step.last_layer; ++l)
          for (const Tile& tile : cell_tiles) work.push_back({kCell, l, tile});
      }
      step_for(static_cast<int64_t>(work.size()), [&](int64_t begin, int64_t end) {
        cpu::ScratchBuffer<T> step_scratch;
        cpu::ScratchBuffer<T>& scratch = split ? step_scratch : serial_scratch;
        for (int64_t u = begin; u < end; ++u) {
          const Unit& unit = work[u];
          const int64_t l = unit.layer;
          if (unit.kind == kCell) {
            cell(l, s - l, unit.tile);
          } else if (unit.kind == kInputGrad) {
            input_grad(unit.tile, s + 1);
          } else {
            const int64_t t = s + 1 - l;
            const cpu::GemmA<T> in = l == 0 ? cpu::GemmA<T>{inputs + row_begin * TT * D + t * D, 1, TT * D}
                                            : cpu::GemmA<T>{h(l - 1, t) + row_begin * H, 1, H};
            accumulate_weight_grads(sink, l, unit.block, in, rows, h_prev(l, t) + row_begin * H,
                                    gg(l, t) + row_begin * G, &scratch);
          }
        }
      });
    }
  };

  if (!row_blocks.empty()) {
    // Each batch block runs the whole reverse wavefront and its dH_init on one thread.
    cpu::RunBlocksIntoSink(row_blocks, sink, parallel_for, [&](int64_t row_begin, int64_t row_end, Sink& partial) {
      wavefront(row_begin, row_end, false, partial, SerialFor);
      for (int64_t l = 0; l < L; ++l)
        for (const Tile& tile : row_tiles(row_begin, row_end, H, 1)) initial_state_grad(l, tile);
    });
  } else {
    wavefront(0, B, true, sink, parallel_for);

    std::vector<std::function<void()>> tasks;
    for (int64_t l = 0; l < L; ++l)
      for (const Tile& tile : row_tiles(0, B, H, PartsForWork(2.0 * B * H * 3 * H)))
        tasks.push_back([=, &initial_state_grad] { initial_state_grad(l, tile); });
    // Batched: dX for every step, and the weight gradients, one task per layer and block over all T * B rows. Rows
    // t = 0 pair grad_gates with the initial states, the others with the previous step's states; layer 0's inputs
    // are first copied time major so that its rows line up with grad_gates'.
    std::vector<T> inputs_tb;
    if (!streamed) {
      for (int64_t t = 0; t < TT; ++t)
        for (const Tile& tile : row_tiles(0, B, D, PartsForWork(2.0 * B * D * 3 * H)))
          tasks.push_back([=, &input_grad] { input_grad(tile, t); });
      inputs_tb.resize(TT * B * D);
      for (int64_t t = 0; t < TT; ++t)
        for (int64_t b = 0; b < B; ++b)
          std::copy_n(inputs + (b * TT + t) * D, D, inputs_tb.data() + (t * B + b) * D);
      for (int64_t l = 0; l < L; ++l)
        for (int64_t i = 0; i < num_blocks; ++i)
          tasks.push_back([=, &inputs_tb, &accumulate_weight_grads, &sink] {
            cpu::ScratchBuffer<T> scratch;
            const T* in = l == 0 ? inputs_tb.data() : h(l - 1, 0);
            const int64_t in_rs = in_size(l);
            accumulate_weight_grads(sink, l, i, {in, 1, in_rs}, B, initial_states + l * B * H, gg(l, 0), &scratch);
            if (TT > 1)
              accumulate_weight_grads(sink, l, i, {in + B * in_rs, 1, in_rs}, (TT - 1) * B, h(l, 0), gg(l, 1),
                                      &scratch);
          });
    }
    parallel_for(static_cast<int64_t>(tasks.size()), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) tasks[i]();
    });
  }
  for (int64_t l = 0; l < L; ++l)
    for (int64_t i = 0; i < num_blocks; ++i) {
      const WeightBlock& block = blocks[i];
      const std::vector<double>& sums = sink.sums_of(l * num_blocks + i);
      for (int64_t j = 0; j < block.width; ++j) {
        if (block.x_column >= 0) grad_weights.biases[l][block.x_column + j] = static_cast<T>(sums[j]);
        if (block.h_column >= 0) grad_weights.biases[l][3 * H + block.h_column + j] = static_cast<T>(sums[j]);
      }
    }
}

template void StackedGruBackwardCpu<float>(const Shape&, const float*, const GruWeights<float>&, const float*,
                                           const float*, const float*, const float*, const float*, float*,
                                           const GruWeightGrads<float>&, float*, float*, const ParallelFor&);
template void StackedGruBackwardCpu<double>(const Shape&, const double*, const GruWeights<double>&, const double*,
                                            const double*, const double*, const double*, const double*, double*,
                                            const GruWeightGrads<double>&, double*, double*, const ParallelFor&);

}  // namespace deeprnn
