// A CPU emulation of the part of the CUDA runtime that the CUDA sources (csrc/engine/cuda, csrc/cells/*/cuda_*.cu) use,
// for tests on machines without a GPU.
//
// Those kernels compile unchanged as C++ against this header (g++ -x c++ -DDEEPRNN_CUDA_EMULATION
// -Itests/cuda_emulation): every CUDA thread becomes an OS thread, __syncthreads() a barrier of its block, and a
// cooperative launch runs all blocks at once with a grid-wide barrier for grid.sync(). Ordinary launches run their
// blocks one at a time in a shuffled order (blocks of one launch must be independent). "Device memory" is host
// memory, so AddressSanitizer sees out-of-bounds accesses of the kernels, shared memory included (each block gets
// its own exactly-sized heap buffer, filled with 0xff bytes, NaN as floats, so that reading unwritten shared memory
// shows). Launches are synchronous; streams and events only keep their API. The blocks of ordinary launches run on
// a pool of OS threads reused from block to block (creating threads was most of the tests' time); a cooperative
// launch gets fresh threads for all its blocks at once.
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

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <condition_variable>
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
  std::vector<std::unique_ptr<std::barrier<>>> barriers;
  std::vector<unsigned> sizes;
  std::vector<float> scratch;
  explicit BlockWarps(unsigned threads) {
    for (unsigned first = 0; first < threads; first += kWarpSize) {
      const unsigned n = std::min<unsigned>(kWarpSize, threads - first);
      barriers.push_back(std::make_unique<std::barrier<>>(n));
      sizes.push_back(n);
    }
    scratch.assign(barriers.size() * kWarpScratchFloats, 0.0f);
  }
};

struct ThreadState {
  dim3 thread_idx, block_idx, grid_dim, block_dim;
  unsigned char* smem = nullptr;
  std::barrier<>* block_barrier = nullptr;
  std::barrier<>* grid_barrier = nullptr;
  BlockWarps* warps = nullptr;
  std::barrier<>* warp_barrier = nullptr;  // this thread's warp (set from `warps` once the thread knows its index)
};
inline thread_local ThreadState tls;

inline unsigned char* BlockSharedMemory() { return tls.smem; }

inline unsigned LinearThreadIndex() {
  const ThreadState& s = tls;
  return s.thread_idx.x + s.block_dim.x * (s.thread_idx.y + s.block_dim.y * s.thread_idx.z);
}

// Points the thread at its warp's barrier.
inline void JoinWarp() {
  if (tls.warps != nullptr) tls.warp_barrier = tls.warps->barriers[LinearThreadIndex() / kWarpSize].get();
}

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

struct ThreadArgs {
  std::function<void()> body;
  ThreadState state;
};

inline void* ThreadMain(void* raw) {
  ThreadArgs* args = static_cast<ThreadArgs*>(raw);
  tls = args->state;
  JoinWarp();
  args->body();
  // An exited thread no longer takes part in its block's, its warp's or the grid's barriers (as on sm_70+).
  if (tls.block_barrier != nullptr) tls.block_barrier->arrive_and_drop();
  if (tls.warp_barrier != nullptr) tls.warp_barrier->arrive_and_drop();
  if (tls.grid_barrier != nullptr) tls.grid_barrier->arrive_and_drop();
  return nullptr;
}

// Runs the blocks in `blocks` concurrently (all their threads at once) and waits for them.
inline void RunBlocks(const std::function<void()>& kernel, dim3 grid, dim3 block, size_t smem,
                      const std::vector<dim3>& blocks, bool cooperative) {
  const unsigned threads_per_block = block.x * block.y * block.z;
  const size_t total = blocks.size() * threads_per_block;
  std::vector<std::unique_ptr<std::barrier<>>> block_barriers;
  std::vector<std::unique_ptr<BlockWarps>> block_warps;
  std::vector<SharedMemory> smems;
  std::unique_ptr<std::barrier<>> grid_barrier;
  if (cooperative) grid_barrier = std::make_unique<std::barrier<>>(static_cast<std::ptrdiff_t>(total));
  std::vector<ThreadArgs> args(total);
  size_t i = 0;
  for (const dim3& b : blocks) {
    block_barriers.push_back(std::make_unique<std::barrier<>>(threads_per_block));
    block_warps.push_back(std::make_unique<BlockWarps>(threads_per_block));
    smems.push_back(AllocateSharedMemory(smem));
    std::memset(smems.back().get(), 0xff, std::max<size_t>(smem, 1));
    for (unsigned z = 0; z < block.z; ++z)
      for (unsigned y = 0; y < block.y; ++y)
        for (unsigned x = 0; x < block.x; ++x, ++i) {
          args[i].body = kernel;
          args[i].state.thread_idx = dim3(x, y, z);
          args[i].state.block_idx = b;
          args[i].state.grid_dim = grid;
          args[i].state.block_dim = block;
          args[i].state.smem = smem > 0 ? smems.back().get() : nullptr;
          args[i].state.block_barrier = block_barriers.back().get();
          args[i].state.warps = block_warps.back().get();
          args[i].state.grid_barrier = grid_barrier.get();
        }
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 1 << 20);
  std::vector<pthread_t> handles(total);
  for (size_t t = 0; t < total; ++t)
    if (pthread_create(&handles[t], &attr, ThreadMain, &args[t]) != 0) Fail("pthread_create failed");
  for (size_t t = 0; t < total; ++t) pthread_join(handles[t], nullptr);
  pthread_attr_destroy(&attr);
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

// One block at a time on reused threads: worker i plays thread i of the block (in x, y, z order). A job is handed
// out under the mutex with a new generation; workers past the block's size skip it; the caller waits until every
// thread of the block has finished (and left the block's barrier).
class BlockPool {
 public:
  void Run(const std::function<void()>& kernel, const ThreadState& base, unsigned threads) {
    std::unique_lock<std::mutex> lock(mu_);
    while (workers_.size() < threads) Spawn(static_cast<unsigned>(workers_.size()));
    kernel_ = &kernel;
    base_ = base;
    active_ = threads;
    remaining_ = threads;
    ++generation_;
    work_.notify_all();
    done_.wait(lock, [this] { return remaining_ == 0; });
  }

  // Never destroyed: its threads wait for work until the process exits.
  static BlockPool& Instance() {
    static BlockPool* pool = new BlockPool;
    return *pool;
  }

 private:
  static void* Main(void* raw) {
    auto* start = static_cast<std::pair<BlockPool*, unsigned>*>(raw);
    BlockPool* pool = start->first;
    const unsigned index = start->second;
    delete start;
    uint64_t seen = 0;
    for (;;) {
      std::unique_lock<std::mutex> lock(pool->mu_);
      pool->work_.wait(lock, [&] { return pool->generation_ != seen; });
      seen = pool->generation_;
      if (index >= pool->active_) continue;
      const std::function<void()>* kernel = pool->kernel_;
      ThreadState state = pool->base_;
      lock.unlock();
      const dim3 b = state.block_dim;
      state.thread_idx = dim3(index % b.x, (index / b.x) % b.y, index / (b.x * b.y));
      tls = state;
      JoinWarp();
      (*kernel)();
      if (tls.block_barrier != nullptr) tls.block_barrier->arrive_and_drop();
      if (tls.warp_barrier != nullptr) tls.warp_barrier->arrive_and_drop();
      lock.lock();
      if (--pool->remaining_ == 0) pool->done_.notify_all();
    }
    return nullptr;
  }

  void Spawn(unsigned index) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    pthread_t handle;
    if (pthread_create(&handle, &attr, Main, new std::pair<BlockPool*, unsigned>(this, index)) != 0)
      Fail("pthread_create failed");
    pthread_detach(handle);
    pthread_attr_destroy(&attr);
    workers_.push_back(handle);
  }

  std::mutex mu_;
  std::condition_variable work_, done_;
  std::vector<pthread_t> workers_;
  uint64_t generation_ = 0;
  unsigned active_ = 0, remaining_ = 0;
  const std::function<void()>* kernel_ = nullptr;
  ThreadState base_;
};

// Runs one block of an ordinary launch on the pool.
inline void RunPooledBlock(const std::function<void()>& kernel, dim3 grid, dim3 block, size_t smem, dim3 b) {
  const unsigned threads = block.x * block.y * block.z;
  std::barrier<> block_barrier(threads);
  BlockWarps warps(threads);
  SharedMemory shared = AllocateSharedMemory(smem);
  std::memset(shared.get(), 0xff, std::max<size_t>(smem, 1));
  ThreadState base;
  base.block_idx = b;
  base.grid_dim = grid;
  base.block_dim = block;
  base.smem = smem > 0 ? shared.get() : nullptr;
  base.block_barrier = &block_barrier;
  base.warps = &warps;
  BlockPool::Instance().Run(kernel, base, threads);
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
    for (const dim3& b : blocks) RunPooledBlock(kernel, grid, block, smem, b);
  }
  return cudaSuccess;
}

template <typename... A, size_t... I>
void Invoke(void (*f)(A...), void** args, std::index_sequence<I...>) {
  f(*static_cast<std::decay_t<A>*>(args[I])...);
}

inline void GridSync() {
  if (tls.grid_barrier == nullptr) Fail("grid.sync() outside a cooperative launch");
  tls.grid_barrier->arrive_and_wait();
}

}  // namespace emulation

#define threadIdx (::emulation::tls.thread_idx)
#define blockIdx (::emulation::tls.block_idx)
#define gridDim (::emulation::tls.grid_dim)
#define blockDim (::emulation::tls.block_dim)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __shared__ static  // only kernels launched block by block use static shared memory

inline void __syncthreads() { emulation::tls.block_barrier->arrive_and_wait(); }
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
