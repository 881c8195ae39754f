// Instantiates the GRU's backward (reverse) wavefront kernels (all tiles, float and double) and their launch
// functions.
#include "cuda/gru_wavefront_kernel.cuh"

namespace deeprnn {
namespace cuda {

template CudaStatus GruWavefrontOccupancy<float, true>(int, int64_t, int*);
template CudaStatus GruWavefrontOccupancy<double, true>(int, int64_t, int*);
template CudaStatus LaunchGruWavefront<float, true>(const GruWavefrontParams<float>&, const WavefrontPlan&,
                                                    cudaStream_t, int64_t*);
template CudaStatus LaunchGruWavefront<double, true>(const GruWavefrontParams<double>&, const WavefrontPlan&,
                                                     cudaStream_t, int64_t*);

}  // namespace cuda
}  // namespace deeprnn
