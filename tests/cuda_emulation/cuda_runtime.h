// A CPU emulation of the part of the CUDA runtime that the CUDA sources (csrc/engine/cuda, csrc/cells/*/cuda_*.cu) use,
// for tests on machines without a GPU.
//
// Those kernels compile unchanged as C++ against this header (g++ -x c++ -DDEEPRNN_CUDA_EMULATION
// -Itests/cuda_emulation): every CUDA thread becomes a fiber (fibers.h: a user-space thread on the launching OS
// thread), __syncthreads() a barrier of its block's fibers, and a cooperative launch runs all blocks' fibers together
// with a grid-wide barrier for grid.sync(). Ordinary launches run their blocks one at a time in a shuffled order
// (blocks of one launch must be independent). Fibers switch only at barriers, in an order that alternates between
// rounds, so that a missing barrier shows as a read of unwritten memory; a barrier some thread never reaches aborts
// with "deadlock" instead of hanging. "Device memory" is host memory, so AddressSanitizer sees out-of-bounds
// accesses of the kernels, shared memory included (each block gets its own exactly-sized heap buffer, filled with
// 0xff bytes, NaN as floats, so that reading unwritten shared memory shows). Launches are synchronous; streams and
// events only keep their API.
//
// DEEPRNN_FAST_EMULATION_FAULT injects a fault, so that checks of the kernels' results (deeprnn_fast's GPU
// self-check) can be tested against a real wrong result: "corrupt" makes the first floating-point global load
// (__ldg / __ldcg, the wavefront kernels' reads of weights, biases and states) of every launch return its value
// plus one, as a wrong index would; "launch_error" makes every kernel launch return cudaErrorLaunchFailure. Unset
// (or empty), the emulation behaves exactly as without it; any other value aborts with a message.
//
// Warps: the 32 consecutive threads of a block that share threadIdx.x / 32 get a barrier of their own, which the
// collective WMMA operations of mma.h beside this file use (every lane takes part; the product is computed once).
//
// It checks what the runtime would refuse: dynamic shared memory above 48 KB without cudaFuncSetAttribute, a
// cooperative launch with more blocks than fit at once, grid.sync() outside a cooperative launch. It says nothing
// about timing, memory ordering between real SMs or the L1 cache.
#ifndef DEEPRNN_TESTS_CUDA_EMULATION_CUDA_RUNTIME_H_
#define DEEPRNN_TESTS_CUDA_EMULATION_CUDA_RUNTIME_H_

#ifndef DEEPRNN_CUDA_EMULATION
#define DEEPRNN_CUDA_EMULATION 1
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "fibers.h"

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorCooperativeLaunchTooLarge = 720,
  cudaErrorLaunchFailure = 719,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
                      cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4 };
constexpr unsigned cudaEventDisableTiming = 2;

struct CUstream_st {};
struct CUevent_st {};
using cudaStream_t = CUstream_st*;
using cudaEvent_t = CUevent_st*;

struct cudaDeviceProp {
  char name[256];
  int multiProcessorCount;
  size_t sharedMemPerBlockOptin;
  size_t sharedMemPerMultiprocessor;
  size_t reservedSharedMemPerBlock;
  int maxThreadsPerMultiProcessor;
  int maxBlocksPerMultiProcessor;
  int regsPerMultiprocessor;
  int cooperativeLaunch;
  int major;
  int minor;
};

namespace emulation {

constexpr size_t kDefaultSmemLimit = 48 * 1024;
constexpr size_t kSmemOptin = 227 * 1024;
constexpr size_t kSmemPerSm = 228 * 1024;
constexpr size_t kReservedSmem = 1024;
constexpr int kRegsPerThread = 128;  // what __launch_bounds__(256, 2) allows the wavefront kernels

// Emulated multiprocessors: few, so that small test shapes already fill the "device" and cooperative grids stay
// a few thousand threads. DEEPRNN_EMULATION_SMS overrides.
inline int NumSms() {
  const char* env = std::getenv("DEEPRNN_EMULATION_SMS");
  return env != nullptr ? std::max(1, std::atoi(env)) : 4;
}

constexpr int kWarpSize = 32;
// Floats of one warp's exchange area for mma.h's collective operations: A, B, C and D of one product.
constexpr size_t kWarpScratchFloats = 4 * 256;

// The warps of one block: a barrier per 32 threads (fewer for a last partial warp) and their exchange areas.
struct BlockWarps {
  std::vector<FiberBarrier> barriers;
  std::vector<unsigned> sizes;
  std::vector<float> scratch;
  explicit BlockWarps(unsigned threads) {
    for (unsigned first = 0; first < threads; first += kWarpSize) {
      const unsigned n = std::min<unsigned>(kWarpSize, threads - first);
      barriers.emplace_back();
      barriers.back().expected = static_cast<int>(n);
      sizes.push_back(n);
    }
    scratch.assign(barriers.size() * kWarpScratchFloats, 0.0f);
  }
};

struct ThreadState {
  dim3 thread_idx, block_idx, grid_dim, block_dim;
  unsigned char* smem = nullptr;
  FiberScheduler* scheduler = nullptr;
  FiberBarrier* block_barrier = nullptr;
  FiberBarrier* grid_barrier = nullptr;
  BlockWarps* warps = nullptr;
  FiberBarrier* warp_barrier = nullptr;  // this thread's warp's
};
// The emulated thread running now on this OS thread (set by the scheduler before it resumes a fiber).
inline thread_local ThreadState* current_thread = nullptr;
inline ThreadState& Current() { return *current_thread; }

inline unsigned LinearThreadIndex() {
  const ThreadState& s = Current();
  return s.thread_idx.x + s.block_dim.x * (s.thread_idx.y + s.block_dim.y * s.thread_idx.z);
}

inline unsigned char* BlockSharedMemory() { return Current().smem; }

inline void Fail(const char* message) {
  std::fprintf(stderr, "CUDA emulation: %s\n", message);
  std::abort();
}

inline std::mutex& AttributeMutex() {
  static std::mutex mu;
  return mu;
}
inline std::map<const void*, size_t>& SmemLimits() {
  static std::map<const void*, size_t> limits;
  return limits;
}
inline size_t SmemLimit(const void* func) {
  std::lock_guard<std::mutex> lock(AttributeMutex());
  auto it = SmemLimits().find(func);
  return it == SmemLimits().end() ? kDefaultSmemLimit : it->second;
}

inline int BlocksPerSm(int threads, size_t smem) {
  if (threads <= 0 || smem > kSmemOptin) return 0;
  int blocks = 32;
  blocks = std::min(blocks, 2048 / threads);
  blocks = std::min(blocks, 65536 / (kRegsPerThread * threads));
  blocks = std::min<int>(blocks, static_cast<int>(kSmemPerSm / (smem + kReservedSmem)));
  return blocks;
}

// A block's shared memory: 128-byte aligned, as the base of a GPU block's dynamic shared memory is (WMMA operands
// need 32 bytes), exactly `bytes` long so that AddressSanitizer sees overruns.
struct FreeDeleter {
  void operator()(unsigned char* p) const { std::free(p); }
};
using SharedMemory = std::unique_ptr<unsigned char[], FreeDeleter>;
inline SharedMemory AllocateSharedMemory(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 128, std::max<size_t>(bytes, 1)) != 0) Fail("posix_memalign failed");
  return SharedMemory(static_cast<unsigned char*>(p));
}

// Runs the blocks in `blocks` together, every thread of every block a fiber of one scheduler (fibers.h), and
// returns when all have finished. A cooperative launch passes all its blocks (grid.sync() is a barrier of all their
// threads); an ordinary one passes one block at a time.
inline void RunBlocks(const std::function<void()>& kernel, dim3 grid, dim3 block, size_t smem,
                      const std::vector<dim3>& blocks, bool cooperative) {
  const unsigned threads_per_block = block.x * block.y * block.z;
  const size_t total = blocks.size() * threads_per_block;
  std::vector<FiberBarrier> block_barriers(blocks.size());
  std::vector<std::unique_ptr<BlockWarps>> block_warps;
  std::vector<SharedMemory> smems;
  FiberBarrier grid_barrier;
  grid_barrier.expected = static_cast<int>(total);
  FiberScheduler scheduler(total);
  std::vector<ThreadState> states(total);
  size_t i = 0;
  for (size_t k = 0; k < blocks.size(); ++k) {
    block_barriers[k].expected = static_cast<int>(threads_per_block);
    block_warps.push_back(std::make_unique<BlockWarps>(threads_per_block));
    smems.push_back(AllocateSharedMemory(smem));
    std::memset(smems.back().get(), 0xff, std::max<size_t>(smem, 1));
    for (unsigned z = 0; z < block.z; ++z)
      for (unsigned y = 0; y < block.y; ++y)
        for (unsigned x = 0; x < block.x; ++x, ++i) {
          ThreadState& st = states[i];
          st.thread_idx = dim3(x, y, z);
          st.block_idx = blocks[k];
          st.grid_dim = grid;
          st.block_dim = block;
          st.smem = smem > 0 ? smems.back().get() : nullptr;
          st.scheduler = &scheduler;
          st.block_barrier = &block_barriers[k];
          st.grid_barrier = cooperative ? &grid_barrier : nullptr;
          st.warps = block_warps.back().get();
          st.warp_barrier = &st.warps->barriers[(x + block.x * (y + block.y * z)) / kWarpSize];
          Fiber& f = scheduler.fiber(i);
          f.body = &kernel;
          f.barriers = {st.block_barrier, st.warp_barrier};
          if (cooperative) f.barriers.push_back(&grid_barrier);
        }
  }
  ThreadState* const saved = current_thread;
  scheduler.Run([&](size_t index) { current_thread = &states[index]; });
  current_thread = saved;
}

enum class Fault { kNone, kCorrupt, kLaunchError };

inline Fault InjectedFault() {
  static const Fault fault = [] {
    const char* env = std::getenv("DEEPRNN_FAST_EMULATION_FAULT");
    if (env == nullptr || *env == '\0') return Fault::kNone;
    if (std::strcmp(env, "corrupt") == 0) return Fault::kCorrupt;
    if (std::strcmp(env, "launch_error") == 0) return Fault::kLaunchError;
    Fail("DEEPRNN_FAST_EMULATION_FAULT must be corrupt or launch_error (or unset)");
    return Fault::kNone;
  }();
  return fault;
}

// Armed at each launch under the "corrupt" fault; the first floating-point load that finds it armed disarms it.
inline std::atomic<bool>& CorruptNextLoad() {
  static std::atomic<bool> armed{false};
  return armed;
}

template <typename T>
inline T Loaded(T value) {
  if constexpr (std::is_floating_point_v<T>) {
    if (InjectedFault() == Fault::kCorrupt && CorruptNextLoad().exchange(false)) return value + T(1);
  }
  return value;
}

inline uint64_t& LaunchCounter() {
  static uint64_t counter = 0;
  return counter;
}

inline cudaError_t Launch(const void* func, const std::function<void()>& kernel, dim3 grid, dim3 block, size_t smem,
                          bool cooperative) {
  const unsigned threads = block.x * block.y * block.z;
  if (threads == 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 ||
      grid.z > 65535)
    return cudaErrorInvalidConfiguration;
  if (smem > SmemLimit(func)) return cudaErrorInvalidValue;
  if (InjectedFault() == Fault::kLaunchError) return cudaErrorLaunchFailure;
  if (InjectedFault() == Fault::kCorrupt) CorruptNextLoad().store(true);
  std::vector<dim3> blocks;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) blocks.emplace_back(x, y, z);
  ++LaunchCounter();
  if (cooperative) {
    if (static_cast<int64_t>(blocks.size()) > static_cast<int64_t>(BlocksPerSm(threads, smem)) * NumSms())
      return cudaErrorCooperativeLaunchTooLarge;
    RunBlocks(kernel, grid, block, smem, blocks, true);
  } else {
    std::mt19937 rng(static_cast<unsigned>(LaunchCounter()));
    std::shuffle(blocks.begin(), blocks.end(), rng);
    for (const dim3& b : blocks) RunBlocks(kernel, grid, block, smem, {b}, false);
  }
  return cudaSuccess;
}

template <typename... A, size_t... I>
void Invoke(void (*f)(A...), void** args, std::index_sequence<I...>) {
  f(*static_cast<std::decay_t<A>*>(args[I])...);
}

inline void GridSync() {
  ThreadState& t = Current();
  if (t.grid_barrier == nullptr) Fail("grid.sync() outside a cooperative launch");
  t.scheduler->Wait(t.grid_barrier);
}

}  // namespace emulation

#define threadIdx (::emulation::Current().thread_idx)
#define blockIdx (::emulation::Current().block_idx)
#define gridDim (::emulation::Current().grid_dim)
#define blockDim (::emulation::Current().block_dim)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __shared__ static  // only kernels launched block by block use static shared memory

inline void __syncthreads() { emulation::Current().scheduler->Wait(emulation::Current().block_barrier); }
template <typename T>
inline T __ldg(const T* p) { return emulation::Loaded(*p); }
template <typename T>
inline T __ldcg(const T* p) { return emulation::Loaded(*p); }
template <typename T>
inline T atomicAdd(T* p, T v) { return std::atomic_ref<T>(*p).fetch_add(v); }
using std::max;
using std::min;

inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorCooperativeLaunchTooLarge: return "cudaErrorCooperativeLaunchTooLarge";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    default: return "cudaErrorUnknown";
  }
}
inline const char* cudaGetErrorString(cudaError_t e) { return cudaGetErrorName(e); }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }

template <typename... A>
cudaError_t cudaLaunchKernel(void (*f)(A...), dim3 grid, dim3 block, void** args, size_t smem = 0,
                             cudaStream_t = nullptr) {
  return emulation::Launch(reinterpret_cast<const void*>(f),
                           [&] { emulation::Invoke(f, args, std::index_sequence_for<A...>{}); }, grid, block, smem,
                           false);
}
template <typename... A>
cudaError_t cudaLaunchCooperativeKernel(void (*f)(A...), dim3 grid, dim3 block, void** args, size_t smem = 0,
                                        cudaStream_t = nullptr) {
  return emulation::Launch(reinterpret_cast<const void*>(f),
                           [&] { emulation::Invoke(f, args, std::index_sequence_for<A...>{}); }, grid, block, smem,
                           true);
}
template <typename... A>
cudaError_t cudaFuncSetAttribute(void (*f)(A...), cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
      static_cast<size_t>(value) > emulation::kSmemOptin)
    return cudaErrorInvalidValue;
  std::lock_guard<std::mutex> lock(emulation::AttributeMutex());
  emulation::SmemLimits()[reinterpret_cast<const void*>(f)] = static_cast<size_t>(value);
  return cudaSuccess;
}
template <typename... A>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, void (*f)(A...), int threads, size_t smem) {
  *blocks = smem > emulation::SmemLimit(reinterpret_cast<const void*>(f)) ? 0 : emulation::BlocksPerSm(threads, smem);
  return cudaSuccess;
}

inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
  std::memset(prop, 0, sizeof(*prop));
  std::snprintf(prop->name, sizeof(prop->name), "CPU emulation (%d SMs)", emulation::NumSms());
  prop->multiProcessorCount = emulation::NumSms();
  prop->sharedMemPerBlockOptin = emulation::kSmemOptin;
  prop->sharedMemPerMultiprocessor = emulation::kSmemPerSm;
  prop->reservedSharedMemPerBlock = emulation::kReservedSmem;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->maxBlocksPerMultiProcessor = 32;
  prop->regsPerMultiprocessor = 65536;
  prop->cooperativeLaunch = 1;
  prop->major = 9;
  prop->minor = 0;
  return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaMalloc(void** p, size_t bytes) {  // 256-byte aligned, as the real one
  *p = std::aligned_alloc(256, (std::max<size_t>(bytes, 1) + 255) / 256 * 256);
  return *p != nullptr ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t = nullptr) {
  if (bytes > 0) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, bytes, kind);
}
inline cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t = nullptr) {
  if (bytes > 0) std::memset(dst, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* dst, int value, size_t bytes) { return cudaMemsetAsync(dst, value, bytes); }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  static CUevent_st event;
  *e = &event;
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t = nullptr) { return cudaSuccess; }
inline cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
inline cudaError_t cudaEventDestroy(cudaEvent_t) { return cudaSuccess; }

#endif  // DEEPRNN_TESTS_CUDA_EMULATION_CUDA_RUNTIME_H_
