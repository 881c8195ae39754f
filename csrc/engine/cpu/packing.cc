// Packing of right operands into the panels the products read (engine/cpu/tiles.h). Baseline code: packing runs
// once per call, outside the hot loops.
#include <algorithm>
#include <numeric>

#include "engine/cpu/tiles.h"

namespace deeprnn {
namespace cpu {

// The weight-gradient product packs a kKc-deep slab of B for its panels and a kMc-row block of A (products.h):
// kKc rows of 1 KB, kMc = 192 rows.
int64_t GemmScratchSize(int64_t panels, int64_t nr, int64_t mr, int element_bytes) {
  const int64_t kc = 1024 / element_bytes;
  const int64_t mc = 192 + mr;  // a block's rows, rounded up to whole register tiles
  return (panels * nr + mc) * kc;
}

template <typename T>
PackedMatrix<T>::PackedMatrix(const T* b, int64_t ldb, bool transpose, int64_t rows, int64_t cols, int64_t nr)
    : k_(rows), n_(cols), nr_(nr) {
  // One block holding everything: the identity order.
  const int64_t source_block = transpose ? rows : cols;
  Pack(b, ldb, transpose, {0}, source_block);
}

template <typename T>
PackedMatrix<T>::PackedMatrix(const T* b, int64_t ldb, bool transpose, int64_t rows, int64_t block,
                              const std::vector<int>& order, int64_t nr)
    : nr_(nr) {
  const int64_t blocks = static_cast<int64_t>(order.size());
  // Without transpose the blocks are column blocks of op(B) = B; with it, row blocks of op(B) = B^T.
  k_ = transpose ? blocks * block : rows;
  n_ = transpose ? rows : blocks * block;
  Pack(b, ldb, transpose, order, block);
}

template <typename T>
void PackedMatrix<T>::Pack(const T* b, int64_t ldb, bool transpose, const std::vector<int>& order, int64_t block) {
  const int64_t panels = NumPanels(n_, nr_);
  storage_.assign(panels * k_ * nr_, T(0));
  // op(B)(k, j) with the blocked index (k for transpose, j otherwise) mapped through `order`.
  auto source = [&](int64_t k, int64_t j) -> T {
    if (transpose) {
      const int64_t kk = order[k / block] * block + k % block;
      return b[j * ldb + kk];
    }
    const int64_t jj = order[j / block] * block + j % block;
    return b[k * ldb + jj];
  };
  for (int64_t p = 0; p < panels; ++p) {
    T* dst = storage_.data() + p * k_ * nr_;
    const int64_t j0 = p * nr_;
    const int64_t width = std::min<int64_t>(nr_, n_ - j0);
    for (int64_t k = 0; k < k_; ++k)
      for (int64_t j = 0; j < width; ++j) dst[k * nr_ + j] = source(k, j0 + j);
  }
}

template class PackedMatrix<float>;
template class PackedMatrix<double>;

}  // namespace cpu
}  // namespace deeprnn
