// The emulated CUDA threads of one launch as fibers: cooperative user-space threads that all run on the launching
// OS thread and switch only at barriers (__syncthreads, grid.sync, and the warp-wide collectives of mma.h). Before
// this, every CUDA thread was an OS thread: a cooperative grid of a few thousand threads on a 2-core machine spent
// most of its time in the kernel's scheduler and in futex storms at every barrier. A fiber switch here is a few
// register moves (x86-64 System V: the callee-saved registers and the stack pointer).
//
// Determinism and what it catches: the scheduler resumes the runnable fibers in index order on even rounds and in
// reverse order on odd ones, so a read of shared memory that another thread writes without a barrier in between
// sees the unwritten value (0xff bytes: NaN) for one of the two orders. A barrier some threads never reach, which
// hangs a GPU, is reported as a deadlock (abort with a message) instead of hanging the tests.
//
// AddressSanitizer is told about every stack switch (its fiber annotations), so that it keeps checking the fibers'
// stacks.
#ifndef DEEPRNN_TESTS_CUDA_EMULATION_FIBERS_H_
#define DEEPRNN_TESTS_CUDA_EMULATION_FIBERS_H_

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define DEEPRNN_EMULATION_ASAN_FIBERS 1
#endif

#if !defined(__x86_64__)
#error "the CUDA emulation's fibers switch stacks with x86-64 assembly"
#endif

// Saves the callee-saved registers on the current stack, stores the stack pointer in *save, loads `next` as the
// stack pointer and restores the registers saved there. A new fiber's stack is laid out so that the first switch
// to it "returns" into deeprnn_emulation_fiber_start, which calls r12(rbx). Weak: every translation unit that
// includes this header emits the same code, and the linker keeps one copy.
extern "C" void deeprnn_emulation_switch(void** save, void* next);
asm(R"(
    .text
    .weak deeprnn_emulation_switch
    .type deeprnn_emulation_switch, @function
deeprnn_emulation_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size deeprnn_emulation_switch, .-deeprnn_emulation_switch

    .weak deeprnn_emulation_fiber_start
    .type deeprnn_emulation_fiber_start, @function
deeprnn_emulation_fiber_start:
    movq %rbx, %rdi
    callq *%r12
    ud2
    .size deeprnn_emulation_fiber_start, .-deeprnn_emulation_fiber_start
)");
extern "C" void deeprnn_emulation_fiber_start();

namespace emulation {

inline void FiberFail(const char* message) {
  std::fprintf(stderr, "CUDA emulation: %s\n", message);
  std::abort();
}

// A barrier among the fibers of one launch: `expected` participants; the last to arrive releases the others by
// advancing the generation. A fiber that finishes drops out of the barriers it belongs to (as exited threads do on
// sm_70+).
struct FiberBarrier {
  int expected = 0;
  int arrived = 0;
  uint64_t generation = 0;

  // Returns true when this arrival released the barrier.
  bool Arrive() {
    if (++arrived < expected) return false;
    arrived = 0;
    ++generation;
    return true;
  }
  void Drop() {
    --expected;
    if (arrived > 0 && arrived >= expected) {
      arrived = 0;
      ++generation;
    }
  }
};

class FiberScheduler;

struct Fiber {
  FiberScheduler* scheduler = nullptr;
  const std::function<void()>* body = nullptr;  // the launch's kernel call, shared by its fibers
  std::vector<FiberBarrier*> barriers;  // the barriers it drops out of when it finishes
  void* sp = nullptr;
  unsigned char* stack = nullptr;
  size_t stack_bytes = 0;
  const FiberBarrier* waiting_on = nullptr;  // null: runnable
  uint64_t waiting_generation = 0;
  bool done = false;
#if defined(DEEPRNN_EMULATION_ASAN_FIBERS)
  void* fake_stack = nullptr;
#endif
};

// Runs a set of fibers to completion on the calling thread.
class FiberScheduler {
 public:
  // Stacks are reserved, not committed: only the pages a kernel touches cost memory.
#if defined(DEEPRNN_EMULATION_ASAN_FIBERS)
  static constexpr size_t kStackBytes = 1 << 20;
#else
  static constexpr size_t kStackBytes = 256 << 10;
#endif

  explicit FiberScheduler(size_t count) : fibers_(count) {}
  ~FiberScheduler() {
    for (Fiber& f : fibers_)
      if (f.stack != nullptr) FreeStacks().push_back(f.stack);
  }

  Fiber& fiber(size_t i) { return fibers_[i]; }

  // Runs every fiber until all have finished; `on_resume(i)` is called before fiber i runs (it sets the emulated
  // thread's indices).
  void Run(const std::function<void(size_t)>& on_resume) {
    for (Fiber& f : fibers_) Prepare(f);
    size_t left = fibers_.size();
    for (uint64_t round = 0; left > 0; ++round) {
      bool progress = false;
      const size_t n = fibers_.size();
      for (size_t k = 0; k < n; ++k) {
        const size_t i = round % 2 == 0 ? k : n - 1 - k;
        Fiber& f = fibers_[i];
        if (f.done) continue;
        if (f.waiting_on != nullptr) {
          if (f.waiting_on->generation == f.waiting_generation) continue;
          f.waiting_on = nullptr;
        }
        progress = true;
        on_resume(i);
        Resume(f);
        if (f.done) --left;
      }
      if (!progress) FiberFail("deadlock: every unfinished thread waits at a barrier that some thread never reaches");
    }
  }

  // Called by the running fiber: waits at `barrier` unless this arrival releases it.
  void Wait(FiberBarrier* barrier) {
    Fiber& f = *current_;
    const uint64_t generation = barrier->generation;
    if (barrier->Arrive()) return;
    f.waiting_on = barrier;
    f.waiting_generation = generation;
    Yield(f);
  }

 private:
  // Stacks of finished launches, reused by the next ones on this OS thread (mapping and first-touching fresh ones
  // was most of the emulation's system time). Kept until the thread exits.
  static std::vector<unsigned char*>& FreeStacks() {
    static thread_local std::vector<unsigned char*> stacks;
    return stacks;
  }

  static void Entry(Fiber* f) {
#if defined(DEEPRNN_EMULATION_ASAN_FIBERS)
    __sanitizer_finish_switch_fiber(nullptr, &f->scheduler->main_bottom_, &f->scheduler->main_size_);
#endif
    (*f->body)();
    f->done = true;
    for (FiberBarrier* b : f->barriers) b->Drop();
    f->body = nullptr;
#if defined(DEEPRNN_EMULATION_ASAN_FIBERS)
    __sanitizer_start_switch_fiber(nullptr, f->scheduler->main_bottom_, f->scheduler->main_size_);
#endif
    void* dead;
    deeprnn_emulation_switch(&dead, f->scheduler->main_sp_);
    FiberFail("a finished fiber was resumed");
  }

  void Prepare(Fiber& f) {
    f.scheduler = this;
    f.stack_bytes = kStackBytes;
    if (FreeStacks().empty()) {
      void* mem = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
      if (mem == MAP_FAILED) FiberFail("mmap of a fiber stack failed");
      FreeStacks().push_back(static_cast<unsigned char*>(mem));
    }
    f.stack = FreeStacks().back();
    FreeStacks().pop_back();
#if defined(DEEPRNN_EMULATION_ASAN_FIBERS)
    __asan_unpoison_memory_region(f.stack, f.stack_bytes);  // what the stack's last fiber left poisoned
#endif
    // The registers deeprnn_emulation_switch pops (r15, r14, r13, r12 = entry, rbx = fiber, rbp), then the
    // return address; after the `ret` the stack pointer is 16-byte aligned, as a `call` needs.
    uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack) + f.stack_bytes) & ~uintptr_t{15};
    uint64_t* sp = reinterpret_cast<uint64_t*>(top - 72);
    sp[0] = sp[1] = sp[2] = 0;
    sp[3] = reinterpret_cast<uint64_t>(&FiberScheduler::Entry);
    sp[4] = reinterpret_cast<uint64_t>(&f);
    sp[5] = 0;
    sp[6] = reinterpret_cast<uint64_t>(&deeprnn_emulation_fiber_start);
    f.sp = sp;
  }

  void Resume(Fiber& f) {
    current_ = &f;
#if defined(DEEPRNN_EMULATION_ASAN_FIBERS)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f.stack, f.stack_bytes);
#endif
    deeprnn_emulation_switch(&main_sp_, f.sp);
#if defined(DEEPRNN_EMULATION_ASAN_FIBERS)
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    current_ = nullptr;
  }

  void Yield(Fiber& f) {
#if defined(DEEPRNN_EMULATION_ASAN_FIBERS)
    __sanitizer_start_switch_fiber(&f.fake_stack, main_bottom_, main_size_);
#endif
    deeprnn_emulation_switch(&f.sp, main_sp_);
#if defined(DEEPRNN_EMULATION_ASAN_FIBERS)
    __sanitizer_finish_switch_fiber(f.fake_stack, &main_bottom_, &main_size_);
#endif
  }

  std::vector<Fiber> fibers_;
  Fiber* current_ = nullptr;
  void* main_sp_ = nullptr;
#if defined(DEEPRNN_EMULATION_ASAN_FIBERS)
  const void* main_bottom_ = nullptr;
  size_t main_size_ = 0;
#endif
};

}  // namespace emulation

#endif  // DEEPRNN_TESTS_CUDA_EMULATION_FIBERS_H_
