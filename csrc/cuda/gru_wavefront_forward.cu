// Instantiates the GRU's forward wavefront kernels (all tiles, float and double) and their launch functions.
#include "cuda/gru_wavefront_kernel.cuh"

namespace deeprnn {
namespace cuda {

template CudaStatus GruWavefrontOccupancy<float, false>(int, int64_t, int*);
template CudaStatus GruWavefrontOccupancy<double, false>(int, int64_t, int*);
template CudaStatus LaunchGruWavefront<float, false>(const GruWavefrontParams<float>&, const WavefrontPlan&,
                                                     cudaStream_t, int64_t*);
template CudaStatus LaunchGruWavefront<double, false>(const GruWavefrontParams<double>&, const WavefrontPlan&,
                                                      cudaStream_t, int64_t*);

}  // namespace cuda
}  // namespace deeprnn
