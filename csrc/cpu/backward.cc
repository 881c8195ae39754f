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
  constexpr int64_t nr = cpu::kNr<T>;

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

  struct CellTile {
    int64_t layer;
    Tile tile;
  };
  std::vector<CellTile> work;
  for (int64_t s = NumWavefrontSteps(TT, L) - 1; s >= 0; --s) {
    const WavefrontStep step = ActiveLayers(s, TT, L);
    work.clear();
    for (int64_t l = step.first_layer; l <= step.last_layer; ++l)
      for (const Tile& tile : SplitTiles(B, panels, PartsForWork(4.0 * B * H * H), cpu::kGemmMr))
        work.push_back({l, tile});
    parallel_for(static_cast<int64_t>(work.size()), [&](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end; ++u) {
        const int64_t l = work[u].layer, t = s - l;
        const Tile& tile = work[u].tile;
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
      }
    });
  }

  // The first layer's inputs, time major, so that dW_x(0) is one product over all (t, b) like the other layers'.
  std::vector<T> inputs_tb(TT * B * D);
  for (int64_t t = 0; t < TT; ++t)
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(inputs_tb.data() + (t * B + b) * D, inputs + (b * TT + t) * D, sizeof(T) * D);

  std::vector<std::function<void()>> tasks;
  // C[tile] = A op(B) for a pre-packed op(B), C overwritten.
  auto add_packed_product = [&](cpu::GemmA<T> a, int64_t m, const cpu::PackedB<T>* b, T* c, int64_t ldc, int64_t n) {
    for (const Tile& tile : SplitTiles(m, cpu::NumPanels<T>(n), PartsForWork(2.0 * m * n * b->k), cpu::kGemmMr))
      tasks.push_back([=, &k] {
        cpu::TileSpec<T> spec;
        spec.products[0] = {{a.data + tile.row_begin * a.rs, a.rs, a.cs}, b};
        spec.num_products = 1;
        spec.dst[0] = c + tile.row_begin * ldc;
        spec.dst_ld[0] = ldc;
        k.cell_tile(spec, tile.row_end - tile.row_begin, n, tile.panel_begin, tile.panel_end);
      });
  };
  for (int64_t t = 0; t < TT; ++t) add_packed_product({dz(0, t), H, 1}, B, &wx_t[0], grad_inputs + t * D, TT * D, D);
  for (int64_t l = 0; l < L; ++l)
    add_packed_product({dz(l, 0), H, 1}, B, &wh_t[l], grad_initial_states + l * B * H, H, H);

  // Weight gradients, one task per layer (and column-panel group): dW_x(l) = sum_t in(l, t)^T dZ(l, t) and
  // dW_h(l) = sum_t H(l, t-1)^T dZ(l, t) read the same dZ(l), so both are accumulated from each packed slab of it,
  // and the bias gradient db(l) = sum over rows of dZ(l) comes out of the packing. Rows t = 0 pair dZ with the
  // initial states, the others with the previous step's states. These products stream all T * B rows from memory:
  // reading each operand once matters more than splitting them finely.
  const int64_t groups = std::min<int64_t>(panels, (2 + L - 1) / L);
  for (int64_t l = 0; l < L; ++l) {
    const T* in = l == 0 ? inputs_tb.data() : h(l - 1, 0);
    const int64_t in_rs = in_size(l);
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t p0 = panels * g / groups, p1 = panels * (g + 1) / groups;
      tasks.push_back([=, &k] {
        std::vector<T> scratch(cpu::GemmScratchSize<T>(p1 - p0));
        std::vector<double> bias_sum(H, 0.0);
        const cpu::GemmOutput<T> first[2] = {{{in, 1, in_rs}, in_size(l), grad_weights.kernels[l], H},
                                             {{initial_states + l * B * H, 1, H}, H, grad_weights.recurrent_kernels[l], H}};
        k.gemm_shared_b(first, 2, B, dz(l, 0), H, H, p0, p1, scratch.data(), bias_sum.data());
        if (TT > 1) {
          const cpu::GemmOutput<T> rest[2] = {{{in + B * in_rs, 1, in_rs}, in_size(l), grad_weights.kernels[l], H},
                                              {{h(l, 0), 1, H}, H, grad_weights.recurrent_kernels[l], H}};
          k.gemm_shared_b(rest, 2, (TT - 1) * B, dz(l, 1), H, H, p0, p1, scratch.data(), bias_sum.data());
        }
        for (int64_t j = p0 * nr; j < std::min(H, p1 * nr); ++j) grad_weights.biases[l][j] = static_cast<T>(bias_sum[j]);
      });
    }
  }
  parallel_for(static_cast<int64_t>(tasks.size()), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) tasks[i]();
  });
}

template void StackedRnnBackwardCpu<float>(const Shape&, Activation, const float*, const Weights<float>&, const float*,
                                           const float*, const float*, const float*, float*,
                                           const WeightGrads<float>&, float*, float*, const ParallelFor&);
template void StackedRnnBackwardCpu<double>(const Shape&, Activation, const double*, const Weights<double>&,
                                            const double*, const double*, const double*, const double*, double*,
                                            const WeightGrads<double>&, double*, double*, const ParallelFor&);

}  // namespace deeprnn
