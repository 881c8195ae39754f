// Internal CPU building blocks of the kernel library: a small register-blocked matrix product tuned for the shapes
// of an RNN cell (a few hundred rows or fewer, weights reused across every time step) and the activation loops.
// Not part of the public API (that is deeprnn/stacked_rnn.h).
#ifndef DEEPRNN_CPU_GEMM_H_
#define DEEPRNN_CPU_GEMM_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "deeprnn/stacked_rnn.h"

namespace deeprnn {
namespace cpu {

// Register tile of the micro kernel: kGemmMr rows of C by kNr<T> columns (two 256-bit vectors).
constexpr int kGemmMr = 6;
template <typename T>
constexpr int kNr = 64 / static_cast<int>(sizeof(T));
// Depth of one k block: one packed panel block (kKc x kNr) is 16 KB and stays in L1.
template <typename T>
constexpr int64_t kKc = 256 * 4 / static_cast<int64_t>(sizeof(T));

// Rows of A packed per block by the weight-gradient product (a multiple of kGemmMr; 192 x kKc is 192 KB, in L2).
constexpr int64_t kMc = 192;

// Scratch the weight-gradient product needs for `panels` column panels.
template <typename T>
constexpr int64_t GemmScratchSize(int64_t panels) {
  return (panels * kNr<T> + kMc) * kKc<T>;
}

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

// The right operand op(B) [k, n], copied once into panels of kNr columns: data[p][k][kNr], zero padded past n.
// Weights are packed once per call and then reused by every time step.
template <typename T>
struct PackedB {
  int64_t k = 0;
  int64_t n = 0;
  int64_t panels = 0;
  const T* data = nullptr;
};

template <typename T>
class PackedMatrix {
 public:
  // op(B)(k, j) = transpose ? b[j * ldb + k] : b[k * ldb + j], for k < rows, j < cols.
  PackedMatrix(const T* b, int64_t ldb, bool transpose, int64_t rows, int64_t cols);
  PackedB<T> view() const { return {k_, n_, panels_, storage_.data()}; }

 private:
  int64_t k_, n_, panels_;
  std::vector<T> storage_;
};

template <typename T>
inline int64_t NumPanels(int64_t n) {
  return (n + kNr<T> - 1) / kNr<T>;
}

// One fused pass over a tile of a cell's output [rows, n]: sum of up to two products A_s op(B_s) (op(B_s) pre-packed),
// plus a broadcast bias row and up to two added matrices, then an elementwise epilogue, stored to up to three
// destinations. A forward cell is bias + two products -> phi -> (state, output, final state); a backward cell is
// two added gradients + two products -> times phi'(z) -> dZ. Nothing is written twice and no pass re-reads the tile.
enum class Epilogue : int { kNone = 0, kActivate = 1, kActivationGrad = 2 };

template <typename T>
struct TileProduct {
  GemmA<T> a;          // rows of the tile's A, row 0 = the tile's first row
  const PackedB<T>* b;  // op(B), packed
};

template <typename T>
struct TileSpec {
  TileProduct<T> products[2];
  int num_products = 0;
  const T* bias = nullptr;         // [n] broadcast to every row, or null
  const T* add[2] = {nullptr, nullptr};  // matrices added to the result (row 0 = tile row 0), or null
  int64_t add_ld[2] = {0, 0};
  Epilogue epilogue = Epilogue::kNone;
  Activation activation = Activation::kTanh;
  const T* h = nullptr;  // kActivationGrad: the activation's outputs, row 0 = tile row 0
  int64_t h_ld = 0;
  T* dst[3] = {nullptr, nullptr, nullptr};  // overwritten; dst[0] is required
  int64_t dst_ld[3] = {0, 0, 0};
};

// The hot loops, chosen once at run time for the best instruction set the processor has.
template <typename T>
struct CpuKernelTable {
  // The fused tile pass above over rows [0, m) and column panels [p0, p1) of an output with n columns.
  void (*cell_tile)(const TileSpec<T>& spec, int64_t m, int64_t n, int64_t p0, int64_t p1);
  // C[0:m, panels p0..p1) += A[0:m, 0:k] B, B row major with row stride b_rs and n columns; both operands are
  // packed into scratch (GemmScratchSize(p1 - p0) values) block by block. For the weight gradients.
  void (*gemm)(const GemmA<T>& a, int64_t m, int64_t k, const T* b, int64_t b_rs, int64_t n, int64_t p0, int64_t p1,
               T* c, int64_t ldc, T* scratch);
  // The same for several products that share B (num_outs of them, each with its own A, m and C); scratch:
  // GemmScratchSize(p1 - p0) values. If col_sums is not null, B's column sums over the panels are added to it.
  void (*gemm_shared_b)(const GemmOutput<T>* outs, int num_outs, int64_t k, const T* b, int64_t b_rs, int64_t n,
                        int64_t p0, int64_t p1, T* scratch, double* col_sums);
};

template <typename T>
const CpuKernelTable<T>& Kernels();

// Name of the instruction set Kernels() runs on ("avx2+fma" or "generic").
const char* KernelIsa();

}  // namespace cpu
}  // namespace deeprnn

#endif  // DEEPRNN_CPU_GEMM_H_
