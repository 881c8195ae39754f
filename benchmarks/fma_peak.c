/* The machine's floating-point peak, float32, per instruction set: compiled on the fly by fma_peak.py (gcc -O2)
 * and called through ctypes.
 *
 * Each kernel runs ACC independent accumulator chains acc = acc * a + b. A chain is latency-bound (an FMA takes
 * 4-5 cycles and the next one of the chain waits for it); with at least as many chains as latency x FMA pipes in
 * flight the pipes stay full, which is the peak. 12 chains cover 2 pipes x 5 cycles with room to spare; AVX-512 has
 * 32 registers and gets 24 (a CPU with 2 full-width 512-bit pipes of latency 4 needs 8; the rest is margin). The
 * AVX2 kernels keep 12 because 16 ymm registers hold 12 accumulators plus the two constants without spilling.
 *
 * Functions are compiled for their instruction set with target attributes, so the file builds with plain -O2 on
 * any x86-64 compiler; whether the CPU (and the OS, for the wider registers) supports a set is asked at run time
 * with __builtin_cpu_supports before a kernel is called.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* Instruction sets, as fma_peak.py numbers them. */
enum { ISA_AVX512F = 0, ISA_AVX2_FMA = 1, ISA_SSE2 = 2, ISA_COUNT = 3 };

/* FLOPs one iteration of a kernel's loop does: chains x lanes x 2 (a multiply and an add, fused or not). */
static const int64_t kFlopsPerIteration[ISA_COUNT] = {24 * 16 * 2, 12 * 8 * 2, 12 * 4 * 2};

int fma_peak_flops_per_iteration(int isa) { return (isa >= 0 && isa < ISA_COUNT) ? (int)kFlopsPerIteration[isa] : 0; }

/* 1 when the CPU and the OS support the instruction set, else 0. */
int fma_peak_supported(int isa) {
  __builtin_cpu_init();
  switch (isa) {
    case ISA_AVX512F: return __builtin_cpu_supports("avx512f") ? 1 : 0;
    case ISA_AVX2_FMA: return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
    case ISA_SSE2: return __builtin_cpu_supports("sse2") ? 1 : 0;
    default: return 0;
  }
}

/* The constants keep every chain bounded (a < 1, so acc tends to b / (1 - a)): no overflow or denormals to slow
 * the loop down, however long it runs. The result is returned so that the compiler cannot drop the loop. */
#define A_VALUE 0.999999f
#define B_VALUE 0.000001f

__attribute__((target("avx512f"))) static float KernelAvx512(int64_t iterations) {
  const __m512 a = _mm512_set1_ps(A_VALUE), b = _mm512_set1_ps(B_VALUE);
  __m512 c[24];
  for (int i = 0; i < 24; ++i) c[i] = _mm512_set1_ps((float)i);
  for (int64_t n = 0; n < iterations; ++n) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) c[i] = _mm512_fmadd_ps(c[i], a, b);
  }
  __m512 sum = c[0];
  for (int i = 1; i < 24; ++i) sum = _mm512_add_ps(sum, c[i]);
  return _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx2,fma"))) static float KernelAvx2(int64_t iterations) {
  const __m256 a = _mm256_set1_ps(A_VALUE), b = _mm256_set1_ps(B_VALUE);
  __m256 c[12];
  for (int i = 0; i < 12; ++i) c[i] = _mm256_set1_ps((float)i);
  for (int64_t n = 0; n < iterations; ++n) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) c[i] = _mm256_fmadd_ps(c[i], a, b);
  }
  __m256 sum = c[0];
  for (int i = 1; i < 12; ++i) sum = _mm256_add_ps(sum, c[i]);
  float lanes[8];
  _mm256_storeu_ps(lanes, sum);
  float total = 0.0f;
  for (int i = 0; i < 8; ++i) total += lanes[i];
  return total;
}

/* Baseline x86-64: no FMA instruction, so a multiply and a separate add, as the project's generic kernels do. */
static float KernelSse2(int64_t iterations) {
  const __m128 a = _mm_set1_ps(A_VALUE), b = _mm_set1_ps(B_VALUE);
  __m128 c[12];
  for (int i = 0; i < 12; ++i) c[i] = _mm_set1_ps((float)i);
  for (int64_t n = 0; n < iterations; ++n) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) c[i] = _mm_add_ps(_mm_mul_ps(c[i], a), b);
  }
  __m128 sum = c[0];
  for (int i = 1; i < 12; ++i) sum = _mm_add_ps(sum, c[i]);
  float lanes[4];
  _mm_storeu_ps(lanes, sum);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

static float RunKernel(int isa, int64_t iterations) {
  switch (isa) {
    case ISA_AVX512F: return KernelAvx512(iterations);
    case ISA_AVX2_FMA: return KernelAvx2(iterations);
    default: return KernelSse2(iterations);
  }
}

/* Releases all workers at once, so that the timed span starts with every thread ready (creation excluded). */
typedef struct {
  pthread_mutex_t mutex;
  pthread_cond_t changed;
  int ready;  /* workers waiting to start */
  int go;     /* set once: start (or, with abort, return at once) */
  int abort;
} StartLine;

typedef struct {
  int isa;
  int64_t iterations;
  StartLine* start;
  float result;
} Worker;

static void* WorkerMain(void* arg) {
  Worker* w = (Worker*)arg;
  StartLine* s = w->start;
  pthread_mutex_lock(&s->mutex);
  s->ready += 1;
  pthread_cond_broadcast(&s->changed);
  while (!s->go) pthread_cond_wait(&s->changed, &s->mutex);
  const int abort_run = s->abort;
  pthread_mutex_unlock(&s->mutex);
  if (!abort_run) w->result = RunKernel(w->isa, w->iterations);
  return NULL;
}

static double Now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void Release(StartLine* s, int abort_run) {
  pthread_mutex_lock(&s->mutex);
  s->go = 1;
  s->abort = abort_run;
  pthread_cond_broadcast(&s->changed);
  pthread_mutex_unlock(&s->mutex);
}

/* Runs the kernel of `isa` for `iterations` on each of `threads` threads at once and returns the wall time in
 * seconds from the moment all threads are released until the last one finishes; -1 when the arguments are out of
 * range, -2 when the set is unsupported, -3 when memory or threads cannot be had. *checksum receives the sum of the
 * kernels' results (which keeps them alive). */
double fma_peak_run(int isa, int threads, int64_t iterations, double* checksum) {
  if (isa < 0 || isa >= ISA_COUNT || threads < 1 || threads > 4096 || iterations < 1) return -1.0;
  if (!fma_peak_supported(isa)) return -2.0;
  Worker* workers = (Worker*)calloc((size_t)threads, sizeof(Worker));
  pthread_t* ids = (pthread_t*)calloc((size_t)threads, sizeof(pthread_t));
  if (workers == NULL || ids == NULL) {
    free(workers);
    free(ids);
    return -3.0;
  }
  StartLine start = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
  int created = 0;
  for (; created < threads; ++created) {
    workers[created] = (Worker){isa, iterations, &start, 0.0f};
    if (pthread_create(&ids[created], NULL, WorkerMain, &workers[created]) != 0) break;
  }
  double elapsed = -3.0;
  if (created == threads) {
    pthread_mutex_lock(&start.mutex);
    while (start.ready < threads) pthread_cond_wait(&start.changed, &start.mutex);
    pthread_mutex_unlock(&start.mutex);
    const double begin = Now();
    Release(&start, 0);
    for (int i = 0; i < threads; ++i) pthread_join(ids[i], NULL);
    elapsed = Now() - begin;
    double total = 0.0;
    for (int i = 0; i < threads; ++i) total += workers[i].result;
    if (checksum != NULL) *checksum = total;
  } else {
    Release(&start, 1);  /* the threads that exist return without running */
    for (int i = 0; i < created; ++i) pthread_join(ids[i], NULL);
  }
  pthread_mutex_destroy(&start.mutex);
  pthread_cond_destroy(&start.changed);
  free(workers);
  free(ids);
  return elapsed;
}
