// Instantiates the forward wavefront kernels (all tiles, float and double) and their launch functions.
#include "cuda/wavefront_kernel.cuh"

namespace deeprnn {
namespace cuda {

template CudaStatus WavefrontOccupancy<float, false>(int, int64_t, int*);
template CudaStatus WavefrontOccupancy<double, false>(int, int64_t, int*);
template CudaStatus LaunchWavefront<float, false>(const WavefrontParams<float>&, const WavefrontPlan&, cudaStream_t,
                                                  int64_t*);
template CudaStatus LaunchWavefront<double, false>(const WavefrontParams<double>&, const WavefrontPlan&,
                                                   cudaStream_t, int64_t*);

}  // namespace cuda
}  // namespace deeprnn
