// The operands of the CPU engine's products: what a schedule hands to the register-tiled kernels
// (engine/cpu/products.h). Plain structs with no instruction set in them, shared by every translation unit.
#ifndef DEEPRNN_ENGINE_CPU_TILES_H_
#define DEEPRNN_ENGINE_CPU_TILES_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "deeprnn/stacked.h"

namespace deeprnn {
namespace cpu {

// The left operand: A(i, k) = data[i * rs + k * cs]. Strides let one routine read row-major activations, strided
// time slices of a batch-major input, and transposed operands for the weight gradients, without copies.
template <typename T>
struct GemmA {
  const T* data;
  int64_t rs;
  int64_t cs;
};

// One product of the weight-gradient routine: C[0:m, ...] += A[0:m, :] B.
template <typename T>
struct GemmOutput {
  GemmA<T> a;
  int64_t m;
  T* c;
  int64_t ldc;
};

// The right operand op(B) [k, n], copied once into panels of `nr` columns: data[p][k][nr], zero padded past n. The
// panel width is the instruction set's (two vectors), so a matrix is packed for the kernels that read it.
template <typename T>
struct PackedB {
  int64_t k = 0;
  int64_t n = 0;
  int64_t nr = 0;
  const T* data = nullptr;
  int64_t panel_stride = 0;  // values from one panel to the next: k * nr, or more for a view of rows [k0, k0 + k)

  int64_t stride() const { return panel_stride ? panel_stride : k * nr; }
  // Rows [k0, k0 + rows) of op(B), e.g. one gate's block of a transposed weight matrix.
  PackedB rows(int64_t k0, int64_t count) const { return {count, n, nr, data + k0 * nr, stride()}; }
};

template <typename T>
class PackedMatrix {
 public:
  PackedMatrix() = default;
  // op(B)(k, j) = transpose ? b[j * ldb + k] : b[k * ldb + j], for k < rows, j < cols, in panels of nr columns.
  PackedMatrix(const T* b, int64_t ldb, bool transpose, int64_t rows, int64_t cols, int64_t nr);
  // The same for op(B) assembled from column blocks of `block` columns: block i of op(B) is block order[i] of the
  // source (for transpose: its row block), so that a cell's gates can be packed in the order a schedule reads them.
  PackedMatrix(const T* b, int64_t ldb, bool transpose, int64_t rows, int64_t block, const std::vector<int>& order,
               int64_t nr);
  PackedB<T> view() const { return {k_, n_, nr_, storage_.data(), k_ * nr_}; }

 private:
  void Pack(const T* b, int64_t ldb, bool transpose, const std::vector<int>& order, int64_t block);
  int64_t k_ = 0, n_ = 0, nr_ = 0;
  std::vector<T> storage_;
};

// Scratch for the products, grown on demand and never zero filled: they write it before reading it, and a
// zero-filled std::vector per wavefront step (a quarter of a megabyte each) cost several percent of a small
// config's backward pass.
template <typename T>
class ScratchBuffer {
 public:
  T* get(int64_t size) {
    if (size > size_) {
      data_.reset(new T[size]);
      size_ = size;
    }
    return data_.get();
  }

 private:
  std::unique_ptr<T[]> data_;
  int64_t size_ = 0;
};

// One fused pass over a tile of a product's output [rows, n]: the sum of up to kMaxTileProducts products
// A_s op(B_s) (op(B_s) packed), each optionally scaled elementwise by up to two matrices, plus a broadcast bias row,
// up to two added matrices and up to one gathered row per output row, then an elementwise epilogue, stored to up to
// kTileDestinations destinations. A tanh/relu forward cell is bias + two products -> phi -> (state, output, final
// state, padded copy); its backward cell is two added gradients + two products (each through its dropout masks, if any) -> times phi'(z) ->
// dZ. Nothing is written twice and no pass re-reads the tile.
// kMaskedActivationGrad: a masked backward step. A row that takes the step stores dZ = result * phi'(z) to dst[0]
// and zero to dst[1] (its h_{t-1} gets its gradient through the products only); a row that does not stores zero
// to dst[0] and the result, its whole dh, to dst[1] (passed on to step t - 1).
enum class Epilogue : int { kNone = 0, kActivate = 1, kActivationGrad = 2, kMaskedActivationGrad = 3 };
enum class Activation : int { kTanh = 0, kRelu = 1 };

template <typename T>
struct TileProduct {
  GemmA<T> a;           // rows of the tile's A, row 0 = the tile's first row
  const PackedB<T>* b;  // op(B), packed
  // The product's result times these [rows, n] matrices elementwise (row 0 = the tile's first row), or null: the
  // gradient through a product whose operand was dropped out (its dropout mask, then the between-layer mask).
  const T* scale[2] = {nullptr, nullptr};
  int64_t scale_ld[2] = {0, 0};
};

// Both sides of a GRU or LSTM backward cell with one dropout mask per gate: 2 x 4 products.
constexpr int kMaxTileProducts = 8;
// Where a tile's result goes (TileSpec::dst).
constexpr int kTileDestinations = 4;

template <typename T>
struct TileSpec {
  TileProduct<T> products[kMaxTileProducts];
  int num_products = 0;
  const T* bias = nullptr;               // [n] broadcast to every row, or null
  const T* add[2] = {nullptr, nullptr};  // matrices added to the result (row 0 = tile row 0), or null
  int64_t add_ld[2] = {0, 0};
  const T* const* gather = nullptr;      // row r of the tile adds gather[r][0:n], or null (token inputs)
  const T* gather_scale = nullptr;       // row r's gathered row times gather_scale[r] (input dropout), or null
  Epilogue epilogue = Epilogue::kNone;
  Activation activation = Activation::kTanh;
  const T* h = nullptr;  // k*ActivationGrad: the activation's outputs, row 0 = tile row 0
  int64_t h_ld = 0;
  const uint8_t* takes = nullptr;  // kMaskedActivationGrad: row r takes the step if takes[r * takes_stride] != 0
  int64_t takes_stride = 0;
  // Overwritten; dst[0] is required. The forward's: the state, the output, the final state and the state's
  // padded operand copy (forward.h).
  T* dst[kTileDestinations] = {nullptr, nullptr, nullptr, nullptr};
  int64_t dst_ld[kTileDestinations] = {0, 0, 0, 0};

  // Appends a product through up to two scales (null: none). The engine's tiles have at most 2 G products.
  void AddProduct(const GemmA<T>& a, const PackedB<T>* b, const T* scale0 = nullptr, int64_t scale0_ld = 0,
                  const T* scale1 = nullptr, int64_t scale1_ld = 0) {
    TileProduct<T>& prod = products[num_products++];
    prod.a = a;
    prod.b = b;
    prod.scale[0] = scale0 ? scale0 : scale1;
    prod.scale_ld[0] = scale0 ? scale0_ld : scale1_ld;
    prod.scale[1] = scale0 ? scale1 : nullptr;
    prod.scale_ld[1] = scale0 ? scale1_ld : 0;
  }
};

// Values of scratch the weight-gradient product needs for `panels` column panels of width nr and register tiles of
// mr rows (see Products::GemmSharedB).
int64_t GemmScratchSize(int64_t panels, int64_t nr, int64_t mr, int element_bytes);

inline int64_t NumPanels(int64_t n, int64_t nr) { return (n + nr - 1) / nr; }

}  // namespace cpu
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CPU_TILES_H_
