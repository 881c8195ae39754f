// Checks of the emulation itself (cuda_runtime.h, fibers.h), run by tests/test_cuda_emulation.py: that barriers
// order shared memory, that a missing barrier shows, that a barrier some threads skip is reported instead of
// hanging, and that grid.sync() orders the blocks of a cooperative launch.
//   fiber_selftest ok          exits 0 when the correct kernels give the right sums and the racy one a wrong one
//   fiber_selftest deadlock    runs a kernel whose threads wait at barriers that cannot complete (expected: abort)
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

namespace {

constexpr int kThreads = 128;

// out[b] = sum of in[b * kThreads + i]: every thread writes its value to shared memory, then thread i adds its
// right-hand neighbour's value (written by another thread) into its own, in halving strides.
template <bool kBarriers>
__global__ void BlockSum(const float* in, float* out) {
  float* s = reinterpret_cast<float*>(emulation::BlockSharedMemory());
  const int i = threadIdx.x;
  s[i] = in[blockIdx.x * kThreads + i];
  if (kBarriers) __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (i < stride) s[i] += s[i + stride];
    if (kBarriers) __syncthreads();
  }
  if (i == 0) out[blockIdx.x] = s[0];
}

// Half of block 0 waits at the block's barrier while every other thread waits at the grid's: neither can complete
// (a GPU hangs here; threads that exit would drop out of the barriers, but none does).
__global__ void CrossedBarriers(float* out) {
  auto grid = cooperative_groups::this_grid();
  if (blockIdx.x == 0 && threadIdx.x < kThreads / 2) __syncthreads();
  grid.sync();
  out[blockIdx.x * kThreads + threadIdx.x] = 1.0f;
}

// Block b writes step values that block (b + 1) % grid reads after the grid barrier.
__global__ void GridRing(float* slots, float* out, int steps) {
  auto grid = cooperative_groups::this_grid();
  const int b = blockIdx.x, n = gridDim.x, i = threadIdx.x;
  float acc = 0.0f;
  for (int t = 0; t < steps; ++t) {
    slots[(t % 2) * n * kThreads + b * kThreads + i] = static_cast<float>(b * 1000 + t) + i * 0.5f;
    grid.sync();
    acc += slots[(t % 2) * n * kThreads + ((b + 1) % n) * kThreads + i];
  }
  out[b * kThreads + i] = acc;
}

template <typename K>
bool Launch(K kernel, dim3 grid, size_t smem, void** args, bool cooperative) {
  const cudaError_t e = cooperative ? cudaLaunchCooperativeKernel(kernel, grid, dim3(kThreads), args, smem)
                                    : cudaLaunchKernel(kernel, grid, dim3(kThreads), args, smem);
  if (e != cudaSuccess) std::printf("launch failed: %s\n", cudaGetErrorName(e));
  return e == cudaSuccess;
}

int CheckSums() {
  const int blocks = 3;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(0.5f, 1.5f);
  std::vector<float> in(blocks * kThreads), out(blocks), want(blocks, 0.0f);
  for (int k = 0; k < blocks * kThreads; ++k) {
    in[k] = dist(rng);
    want[k / kThreads] += in[k];
  }
  const float* in_p = in.data();
  float* out_p = out.data();
  void* args[] = {&in_p, &out_p};
  int failures = 0;
  if (!Launch(BlockSum<true>, dim3(blocks), kThreads * sizeof(float), args, false)) return 1;
  for (int b = 0; b < blocks; ++b)
    if (std::fabs(out[b] - want[b]) > 1e-3f * want[b]) {
      std::printf("FAIL with barriers: block %d sum %g, expected %g\n", b, out[b], want[b]);
      ++failures;
    }
  // Without barriers, the first round of fibers runs in index order and thread i reads s[i + stride] before thread
  // i + stride has written it (0xff bytes: NaN), so the result must differ.
  if (!Launch(BlockSum<false>, dim3(blocks), kThreads * sizeof(float), args, false)) return 1;
  bool any_wrong = false;
  for (int b = 0; b < blocks; ++b) any_wrong |= !(std::fabs(out[b] - want[b]) <= 1e-3f * want[b]);
  if (!any_wrong) {
    std::printf("FAIL: the kernel without barriers gave the right sums: the emulation hides missing barriers\n");
    ++failures;
  }
  // The ring: every block reads what its neighbour wrote before the same grid barrier.
  const int ring = 4, steps = 5;
  std::vector<float> slots(2 * ring * kThreads, std::nanf("")), ring_out(ring * kThreads);
  float* slots_p = slots.data();
  float* ring_p = ring_out.data();
  int steps_v = steps;
  void* ring_args[] = {&slots_p, &ring_p, &steps_v};
  if (!Launch(GridRing, dim3(ring), 0, ring_args, true)) return 1;
  for (int b = 0; b < ring; ++b)
    for (int i = 0; i < kThreads; ++i) {
      float expect = 0.0f;
      for (int t = 0; t < steps; ++t) expect += static_cast<float>(((b + 1) % ring) * 1000 + t) + i * 0.5f;
      if (ring_out[b * kThreads + i] != expect) {
        std::printf("FAIL grid ring: block %d thread %d got %g, expected %g\n", b, i, ring_out[b * kThreads + i],
                    expect);
        return failures + 1;
      }
    }
  std::printf(failures == 0 ? "PASSED\n" : "FAILED\n");
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "ok") == 0) return CheckSums() == 0 ? 0 : 1;
  if (argc == 2 && std::strcmp(argv[1], "deadlock") == 0) {
    std::vector<float> out(2 * kThreads);
    float* out_p = out.data();
    void* args[] = {&out_p};
    Launch(CrossedBarriers, dim3(2), 0, args, true);
    std::printf("the crossed barriers returned\n");
    return 0;
  }
  std::fprintf(stderr, "usage: fiber_selftest ok|deadlock\n");
  return 2;
}
