// Self-check of the CUDA stacked RNN and GRU: runs csrc/cuda against the CPU library (csrc/cpu) on fresh random
// inputs, for every schedule, both dtypes and both activations (and the GRU), over small shapes that reach every tile
// and edge case; outputs are poisoned with NaN before each run. Prints one line per case and exits non-zero when any
// relative error is above tolerance, any output stayed NaN, or an error check misbehaved.
//
// The same source builds two ways (benchmarks/gpu/build_kernels.py): against the CPU emulation of CUDA in this
// folder (tests/test_cuda_emulation.py runs it on machines without a GPU), and against the real CUDA runtime, where
// benchmarks/gpu/check.sh runs it on the GPU and under compute-sanitizer (--sanitize: a few small cases).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include "deeprnn/stacked_gru.h"
#include "deeprnn/stacked_gru_cuda.h"
#include "deeprnn/stacked_rnn.h"
#include "deeprnn/stacked_rnn_cuda.h"

namespace {

using deeprnn::Activation;
using deeprnn::CudaSchedule;
using deeprnn::Shape;

int failures = 0;

// Every runtime call of the harness itself must succeed; a failure there is a broken machine, not a wrong kernel.
void Check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    std::fprintf(stderr, "selfcheck: %s failed: %s\n", what, cudaGetErrorString(err));
    std::exit(2);
  }
}

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  int64_t size = 0;
  explicit DeviceBuffer(int64_t n) : size(n) {
    void* p = nullptr;
    Check(cudaMalloc(&p, sizeof(T) * std::max<int64_t>(n, 1)), "cudaMalloc");
    ptr = static_cast<T*>(p);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(ptr); }
  void Upload(const std::vector<T>& v) {
    Check(cudaMemcpy(ptr, v.data(), sizeof(T) * size, cudaMemcpyHostToDevice), "cudaMemcpy to the device");
  }
  std::vector<T> Download() const {
    std::vector<T> v(size);
    Check(cudaMemcpy(v.data(), ptr, sizeof(T) * size, cudaMemcpyDeviceToHost), "cudaMemcpy to the host");
    return v;
  }
  void Poison() {
    std::vector<T> v(size, std::numeric_limits<T>::quiet_NaN());
    Upload(v);
  }
};

template <typename T>
std::vector<T> Random(std::mt19937_64& rng, int64_t n, double scale) {
  std::uniform_real_distribution<double> u(-scale, scale);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(u(rng));
  return v;
}

// ||got - want|| / ||want|| (absolute when want is 0); infinity when got has a NaN.
template <typename T>
double RelError(const std::vector<T>& got, const std::vector<T>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(static_cast<double>(got[i]))) return std::numeric_limits<double>::infinity();
    const double d = static_cast<double>(got[i]) - static_cast<double>(want[i]);
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

struct Case {
  Shape shape;
  Activation activation;
  CudaSchedule schedule;
};

template <typename T>
void RunCase(const Case& c, uint64_t seed) {
  const int64_t B = c.shape.batch, TT = c.shape.time, D = c.shape.input, H = c.shape.hidden, L = c.shape.layers;
  std::mt19937_64 rng(seed);
  const double w_scale = (c.activation == Activation::kTanh ? 1.0 : 0.5) / std::sqrt(static_cast<double>(H));
  std::vector<T> x = Random<T>(rng, B * TT * D, 1.0), h0 = Random<T>(rng, L * B * H, 0.5);
  std::vector<std::vector<T>> wx, wh, bias;
  for (int64_t l = 0; l < L; ++l) {
    wx.push_back(Random<T>(rng, (l == 0 ? D : H) * H, w_scale));
    wh.push_back(Random<T>(rng, H * H, w_scale));
    bias.push_back(Random<T>(rng, H, 0.2));
  }
  std::vector<T> dy = Random<T>(rng, B * TT * H, 1.0), dfinal = Random<T>(rng, L * B * H, 1.0);

  // CPU reference.
  std::vector<const T*> cwx, cwh, cb;
  for (int64_t l = 0; l < L; ++l) {
    cwx.push_back(wx[l].data());
    cwh.push_back(wh[l].data());
    cb.push_back(bias[l].data());
  }
  std::vector<T> y(B * TT * H), fin(L * B * H), act(L * TT * B * H);
  const deeprnn::Cell cell = c.activation == Activation::kRelu ? deeprnn::Cell::kRelu : deeprnn::Cell::kTanh;
  deeprnn::ForwardArgs<T> fa;
  fa.cell = cell;
  fa.shape = c.shape;
  fa.inputs.dense = x.data();
  fa.weights = {cwx.data(), cwh.data(), cb.data()};
  fa.initial_states = h0.data();
  fa.outputs = y.data();
  fa.final_states = fin.data();
  fa.activations = act.data();
  deeprnn::StackedForwardCpu<T>(fa, deeprnn::SerialFor);
  std::vector<T> dx(B * TT * D), dh0(L * B * H), dpre(L * TT * B * H);
  std::vector<std::vector<T>> dwx, dwh, db;
  std::vector<T*> pdwx, pdwh, pdb;
  for (int64_t l = 0; l < L; ++l) {
    dwx.emplace_back((l == 0 ? D : H) * H);
    dwh.emplace_back(H * H);
    db.emplace_back(H);
  }
  for (int64_t l = 0; l < L; ++l) {
    pdwx.push_back(dwx[l].data());
    pdwh.push_back(dwh[l].data());
    pdb.push_back(db[l].data());
  }
  // With B < 128 the CPU pass's scratch begins with dLoss/dZ of every cell, [L,T,B,H]: compared below.
  deeprnn::BackwardArgs<T> ba;
  ba.cell = cell;
  ba.shape = c.shape;
  ba.inputs.dense = x.data();
  ba.weights = {cwx.data(), cwh.data(), cb.data()};
  ba.initial_states = h0.data();
  ba.activations = act.data();
  ba.grad_outputs = dy.data();
  ba.grad_final_states = dfinal.data();
  ba.grad_inputs = dx.data();
  ba.grad_weights = {pdwx.data(), pdwh.data(), pdb.data()};
  ba.grad_initial_states = dh0.data();
  std::vector<T> scratch(deeprnn::StackedBackwardCpuScratchSize(cell, c.shape, sizeof(T)));
  deeprnn::StackedBackwardCpu<T>(ba, scratch.data(), deeprnn::SerialFor);
  std::copy_n(scratch.begin(), dpre.size(), dpre.begin());

  // "Device".
  DeviceBuffer<T> gx(B * TT * D), gh0(L * B * H), gy(B * TT * H), gfin(L * B * H), gact(L * TT * B * H);
  DeviceBuffer<T> gdy(B * TT * H), gdfin(L * B * H), gdx(B * TT * D), gdh0(L * B * H), gdpre(L * TT * B * H);
  gx.Upload(x);
  gh0.Upload(h0);
  gdy.Upload(dy);
  gdfin.Upload(dfinal);
  std::vector<std::unique_ptr<DeviceBuffer<T>>> bufs;
  std::vector<const T*> dwx_in, dwh_in, db_in;
  std::vector<T*> gdwx, gdwh, gdb;
  std::vector<DeviceBuffer<T>*> grad_bufs;
  for (int64_t l = 0; l < L; ++l) {
    bufs.push_back(std::make_unique<DeviceBuffer<T>>(wx[l].size()));
    bufs.back()->Upload(wx[l]);
    dwx_in.push_back(bufs.back()->ptr);
    bufs.push_back(std::make_unique<DeviceBuffer<T>>(H * H));
    bufs.back()->Upload(wh[l]);
    dwh_in.push_back(bufs.back()->ptr);
    bufs.push_back(std::make_unique<DeviceBuffer<T>>(H));
    bufs.back()->Upload(bias[l]);
    db_in.push_back(bufs.back()->ptr);
  }
  for (int64_t l = 0; l < L; ++l) {
    for (int which = 0; which < 3; ++which) {
      const int64_t n = which == 0 ? (l == 0 ? D : H) * H : which == 1 ? H * H : H;
      bufs.push_back(std::make_unique<DeviceBuffer<T>>(n));
      bufs.back()->Poison();
      grad_bufs.push_back(bufs.back().get());
      (which == 0 ? gdwx : which == 1 ? gdwh : gdb).push_back(bufs.back()->ptr);
    }
  }
  for (auto* b : {&gy, &gfin, &gact, &gdx, &gdh0, &gdpre}) b->Poison();

  const int64_t fws = deeprnn::StackedRnnForwardCudaWorkspaceBytes(c.shape, sizeof(T));
  const int64_t bws = deeprnn::StackedRnnBackwardCudaWorkspaceBytes(c.shape, sizeof(T));
  DeviceBuffer<unsigned char> fwork(fws), bwork(bws);
  Check(cudaMemset(fwork.ptr, 0xff, fws), "cudaMemset");
  Check(cudaMemset(bwork.ptr, 0xff, bws), "cudaMemset");
  deeprnn::CudaLaunchInfo finfo, binfo;
  deeprnn::CudaStatus st = deeprnn::StackedRnnForwardCuda<T>(
      c.shape, c.activation, gx.ptr, {dwx_in.data(), dwh_in.data(), db_in.data()}, gh0.ptr, gy.ptr, gfin.ptr,
      gact.ptr, fwork.ptr, fws, nullptr, c.schedule, &finfo);
  const char* dtype = sizeof(T) == 4 ? "float32" : "float64";
  char head[256];
  std::snprintf(head, sizeof(head), "B=%ld T=%ld D=%ld H=%ld L=%ld %s %s %-20s", (long)B, (long)TT, (long)D, (long)H,
                (long)L, dtype, c.activation == Activation::kTanh ? "tanh" : "relu",
                deeprnn::ScheduleName(c.schedule));
  if (!st.ok() && c.schedule == CudaSchedule::kPersistentResident &&
      st.error.find("cannot stay on chip") != std::string::npos) {
    std::printf("%s skip (%s)\n", head, st.error.c_str());
    return;
  }
  if (!st.ok()) {
    std::printf("%s FAIL forward error: %s\n", head, st.error.c_str());
    ++failures;
    return;
  }
  st = deeprnn::StackedRnnBackwardCuda<T>(c.shape, c.activation, gx.ptr, {dwx_in.data(), dwh_in.data(), nullptr},
                                          gh0.ptr, gact.ptr, gdy.ptr, gdfin.ptr, gdx.ptr,
                                          {gdwx.data(), gdwh.data(), gdb.data()}, gdh0.ptr, gdpre.ptr, bwork.ptr, bws,
                                          nullptr, c.schedule, &binfo);
  if (!st.ok()) {
    std::printf("%s FAIL backward error: %s\n", head, st.error.c_str());
    ++failures;
    return;
  }
  const cudaError_t async_error = cudaDeviceSynchronize();  // faults inside the kernels surface here
  if (async_error != cudaSuccess) {
    std::printf("%s FAIL asynchronous error: %s\n", head, cudaGetErrorString(async_error));
    ++failures;
    std::exit(1);  // the context is unusable after a kernel fault
  }
  const double tol = sizeof(T) == 4 ? 2e-5 : 1e-12;
  double worst = 0;
  std::string worst_name = "-";
  auto check = [&](const char* name, const std::vector<T>& got, const std::vector<T>& want) {
    const double e = RelError(got, want);
    if (!(e <= worst)) {
      worst = e;
      worst_name = name;
    }
  };
  check("outputs", gy.Download(), y);
  check("final_states", gfin.Download(), fin);
  check("activations", gact.Download(), act);
  check("grad_inputs", gdx.Download(), dx);
  check("grad_initial_states", gdh0.Download(), dh0);
  if (TT > 0) check("grad_preactivations", gdpre.Download(), dpre);
  for (int64_t l = 0; l < L; ++l) {
    check("grad_kernels", grad_bufs[3 * l]->Download(), dwx[l]);
    check("grad_recurrent_kernels", grad_bufs[3 * l + 1]->Download(), dwh[l]);
    check("grad_biases", grad_bufs[3 * l + 2]->Download(), db[l]);
  }
  const bool ok = worst <= tol;
  if (!ok) ++failures;
  const deeprnn::WavefrontPlan& fp = finfo.wavefront;
  const deeprnn::WavefrontPlan& bp = binfo.wavefront;
  std::printf("%s %s worst rel err %.2e (%s) | fwd %s%s tile %d grid %ld | bwd %s%s tile %d grid %ld\n", head,
              ok ? "ok  " : "FAIL", worst, worst_name.c_str(), deeprnn::ScheduleName(fp.schedule),
              fp.weights_on_chip ? "+chip" : "", fp.tile, (long)fp.grid, deeprnn::ScheduleName(bp.schedule),
              bp.weights_on_chip ? "+chip" : "", bp.tile, (long)bp.grid);
}

// The GRU: the same check for StackedGru{Forward,Backward}Cuda against StackedGru{Forward,Backward}Cpu.
template <typename T>
void RunGruCase(const Shape& shape, CudaSchedule schedule, uint64_t seed) {
  const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
  const int64_t G = deeprnn::kGruGateSlots * H;
  std::mt19937_64 rng(seed);
  const double w_scale = 1.0 / std::sqrt(static_cast<double>(H));
  std::vector<T> x = Random<T>(rng, B * TT * D, 1.0), h0 = Random<T>(rng, L * B * H, 0.5);
  std::vector<std::vector<T>> wx, wh, bias;
  for (int64_t l = 0; l < L; ++l) {
    wx.push_back(Random<T>(rng, (l == 0 ? D : H) * 3 * H, w_scale));
    wh.push_back(Random<T>(rng, H * 3 * H, w_scale));
    bias.push_back(Random<T>(rng, 2 * 3 * H, 0.2));
  }
  std::vector<T> dy = Random<T>(rng, B * TT * H, 1.0), dfinal = Random<T>(rng, L * B * H, 1.0);

  // CPU reference.
  std::vector<const T*> cwx, cwh, cb;
  for (int64_t l = 0; l < L; ++l) {
    cwx.push_back(wx[l].data());
    cwh.push_back(wh[l].data());
    cb.push_back(bias[l].data());
  }
  std::vector<T> y(B * TT * H), fin(L * B * H), act(L * TT * B * H), gates(L * TT * B * G);
  deeprnn::ForwardArgs<T> fa;
  fa.cell = deeprnn::Cell::kGru;
  fa.shape = shape;
  fa.inputs.dense = x.data();
  fa.weights = {cwx.data(), cwh.data(), cb.data()};
  fa.initial_states = h0.data();
  fa.outputs = y.data();
  fa.final_states = fin.data();
  fa.activations = act.data();
  fa.saved = gates.data();
  deeprnn::StackedForwardCpu<T>(fa, deeprnn::SerialFor);
  std::vector<T> dx(B * TT * D), dh0(L * B * H),
      scratch(deeprnn::StackedBackwardCpuScratchSize(deeprnn::Cell::kGru, shape, sizeof(T)));
  std::vector<std::vector<T>> dwx, dwh, db;
  std::vector<T*> pdwx, pdwh, pdb;
  for (int64_t l = 0; l < L; ++l) {
    dwx.emplace_back((l == 0 ? D : H) * 3 * H);
    dwh.emplace_back(H * 3 * H);
    db.emplace_back(2 * 3 * H);
  }
  for (int64_t l = 0; l < L; ++l) {
    pdwx.push_back(dwx[l].data());
    pdwh.push_back(dwh[l].data());
    pdb.push_back(db[l].data());
  }
  deeprnn::BackwardArgs<T> ba;
  ba.cell = deeprnn::Cell::kGru;
  ba.shape = shape;
  ba.inputs.dense = x.data();
  ba.weights = {cwx.data(), cwh.data(), cb.data()};
  ba.initial_states = h0.data();
  ba.activations = act.data();
  ba.saved = gates.data();
  ba.grad_outputs = dy.data();
  ba.grad_final_states = dfinal.data();
  ba.grad_inputs = dx.data();
  ba.grad_weights = {pdwx.data(), pdwh.data(), pdb.data()};
  ba.grad_initial_states = dh0.data();
  deeprnn::StackedBackwardCpu<T>(ba, scratch.data(), deeprnn::SerialFor);

  // "Device".
  DeviceBuffer<T> gx(B * TT * D), gh0(L * B * H), gy(B * TT * H), gfin(L * B * H), gact(L * TT * B * H);
  DeviceBuffer<T> ggates(L * TT * B * G), gdy(B * TT * H), gdfin(L * B * H), gdx(B * TT * D), gdh0(L * B * H);
  DeviceBuffer<T> ggrad_gates(L * TT * B * G);
  gx.Upload(x);
  gh0.Upload(h0);
  gdy.Upload(dy);
  gdfin.Upload(dfinal);
  std::vector<std::unique_ptr<DeviceBuffer<T>>> bufs;
  std::vector<const T*> dwx_in, dwh_in, db_in;
  std::vector<T*> gdwx, gdwh, gdb;
  std::vector<DeviceBuffer<T>*> grad_bufs;
  auto upload = [&](const std::vector<T>& v) {
    bufs.push_back(std::make_unique<DeviceBuffer<T>>(static_cast<int64_t>(v.size())));
    bufs.back()->Upload(v);
    return static_cast<const T*>(bufs.back()->ptr);
  };
  for (int64_t l = 0; l < L; ++l) {
    dwx_in.push_back(upload(wx[l]));
    dwh_in.push_back(upload(wh[l]));
    db_in.push_back(upload(bias[l]));
  }
  for (int64_t l = 0; l < L; ++l) {
    for (int which = 0; which < 3; ++which) {
      const int64_t n = which == 0 ? (l == 0 ? D : H) * 3 * H : which == 1 ? H * 3 * H : 2 * 3 * H;
      bufs.push_back(std::make_unique<DeviceBuffer<T>>(n));
      bufs.back()->Poison();
      grad_bufs.push_back(bufs.back().get());
      (which == 0 ? gdwx : which == 1 ? gdwh : gdb).push_back(bufs.back()->ptr);
    }
  }
  for (auto* b : {&gy, &gfin, &gact, &ggates, &gdx, &gdh0, &ggrad_gates}) b->Poison();

  const int64_t fws = deeprnn::StackedGruForwardCudaWorkspaceBytes(shape, sizeof(T));
  const int64_t bws = deeprnn::StackedGruBackwardCudaWorkspaceBytes(shape, sizeof(T));
  DeviceBuffer<unsigned char> fwork(fws), bwork(bws);
  Check(cudaMemset(fwork.ptr, 0xff, fws), "cudaMemset");
  Check(cudaMemset(bwork.ptr, 0xff, bws), "cudaMemset");
  deeprnn::CudaLaunchInfo finfo, binfo;
  char head[256];
  std::snprintf(head, sizeof(head), "B=%ld T=%ld D=%ld H=%ld L=%ld %s gru  %-20s", (long)B, (long)TT, (long)D,
                (long)H, (long)L, sizeof(T) == 4 ? "float32" : "float64", deeprnn::ScheduleName(schedule));
  deeprnn::CudaStatus st = deeprnn::StackedGruForwardCuda<T>(
      shape, gx.ptr, {dwx_in.data(), dwh_in.data(), db_in.data()}, gh0.ptr, gy.ptr, gfin.ptr, gact.ptr, ggates.ptr,
      fwork.ptr, fws, nullptr, schedule, &finfo);
  if (!st.ok() && schedule == CudaSchedule::kPersistentResident &&
      st.error.find("cannot stay on chip") != std::string::npos) {
    std::printf("%s skip (%s)\n", head, st.error.c_str());
    return;
  }
  if (!st.ok()) {
    std::printf("%s FAIL forward error: %s\n", head, st.error.c_str());
    ++failures;
    return;
  }
  st = deeprnn::StackedGruBackwardCuda<T>(shape, gx.ptr, {dwx_in.data(), dwh_in.data(), nullptr}, gh0.ptr, gact.ptr,
                                          ggates.ptr, gdy.ptr, gdfin.ptr, gdx.ptr,
                                          {gdwx.data(), gdwh.data(), gdb.data()}, gdh0.ptr, ggrad_gates.ptr,
                                          bwork.ptr, bws, nullptr, schedule, &binfo);
  if (!st.ok()) {
    std::printf("%s FAIL backward error: %s\n", head, st.error.c_str());
    ++failures;
    return;
  }
  const cudaError_t async_error = cudaDeviceSynchronize();
  if (async_error != cudaSuccess) {
    std::printf("%s FAIL asynchronous error: %s\n", head, cudaGetErrorString(async_error));
    ++failures;
    std::exit(1);
  }
  // The GRU's CPU pass uses a float approximation of exp (engine/cpu/simd.h); the kernels use expf.
  const double tol = sizeof(T) == 4 ? 5e-5 : 1e-12;
  double worst = 0;
  std::string worst_name = "-";
  auto check = [&](const char* name, const std::vector<T>& got, const std::vector<T>& want) {
    const double e = RelError(got, want);
    if (!(e <= worst)) {
      worst = e;
      worst_name = name;
    }
  };
  check("outputs", gy.Download(), y);
  check("final_states", gfin.Download(), fin);
  check("activations", gact.Download(), act);
  check("gates", ggates.Download(), gates);
  check("grad_inputs", gdx.Download(), dx);
  check("grad_initial_states", gdh0.Download(), dh0);
  for (int64_t l = 0; l < L; ++l) {
    check("grad_kernels", grad_bufs[3 * l]->Download(), dwx[l]);
    check("grad_recurrent_kernels", grad_bufs[3 * l + 1]->Download(), dwh[l]);
    check("grad_biases", grad_bufs[3 * l + 2]->Download(), db[l]);
  }
  // Every grad_gates value must have been written (the CPU pass may keep only part of its own, so no comparison).
  for (T v : ggrad_gates.Download())
    if (std::isnan(static_cast<double>(v))) {
      worst = std::numeric_limits<double>::infinity();
      worst_name = "grad_gates (unwritten)";
      break;
    }
  const bool ok = worst <= tol;
  if (!ok) ++failures;
  const deeprnn::WavefrontPlan& fp = finfo.wavefront;
  const deeprnn::WavefrontPlan& bp = binfo.wavefront;
  std::printf("%s %s worst rel err %.2e (%s) | fwd %s%s tile %d grid %ld | bwd %s%s tile %d grid %ld\n", head,
              ok ? "ok  " : "FAIL", worst, worst_name.c_str(), deeprnn::ScheduleName(fp.schedule),
              fp.weights_on_chip ? "+chip" : "", fp.tile, (long)fp.grid, deeprnn::ScheduleName(bp.schedule),
              bp.weights_on_chip ? "+chip" : "", bp.tile, (long)bp.grid);
}

void Expect(bool condition, const std::string& what) {
  std::printf("%s %s\n", condition ? "ok  " : "FAIL", what.c_str());
  if (!condition) ++failures;
}

// Errors the library must report instead of running.
void CheckErrors() {
  const Shape shape{2, 3, 4, 5, 2};
  float dummy[64] = {};
  const float* w[2] = {dummy, dummy};
  const int64_t need = deeprnn::StackedRnnForwardCudaWorkspaceBytes(shape, 4);
  alignas(256) static unsigned char work[1 << 12];
  deeprnn::CudaStatus st = deeprnn::StackedRnnForwardCuda<float>(shape, Activation::kTanh, dummy, {w, w, w}, dummy,
                                                                 dummy, dummy, dummy, work, need - 1, nullptr);
  Expect(!st.ok() && st.error.find("workspace") != std::string::npos, "too small workspace: " + st.error);
  st = deeprnn::StackedRnnForwardCuda<float>(shape, Activation::kTanh, nullptr, {w, w, w}, dummy, dummy, dummy, dummy,
                                             work, need, nullptr);
  Expect(!st.ok() && st.error.find("inputs") != std::string::npos, "null inputs: " + st.error);
  st = deeprnn::StackedRnnForwardCuda<float>(Shape{2, 3, 4, 0, 2}, Activation::kTanh, dummy, {w, w, w}, dummy, dummy,
                                             dummy, dummy, work, need, nullptr);
  Expect(!st.ok() && st.error.find("hidden") != std::string::npos, "hidden 0: " + st.error);
  // H = 4096 with 2 layers: a 16-column slice of [W_x; W_h] is 2 * 4096 * 17 * 4 bytes > 227 KB.
  deeprnn::WavefrontPlan plan;
  st = deeprnn::PlanStackedRnnCuda(Shape{1, 3, 4, 4096, 2}, 4, deeprnn::Direction::kForward,
                                   CudaSchedule::kPersistentResident, &plan);
  Expect(!st.ok() && st.error.find("shared memory") != std::string::npos, "weights too big for chip: " + st.error);

  // The GRU's: a too small workspace, a null gates pointer, weights too big for the chip (H = 1024, 2 layers: a
  // 16-unit slice of [Wx; Wh] is 2 * 1024 * 49 * 4 bytes > 227 KB).
  const int64_t gru_need = deeprnn::StackedGruForwardCudaWorkspaceBytes(shape, 4);
  st = deeprnn::StackedGruForwardCuda<float>(shape, dummy, {w, w, w}, dummy, dummy, dummy, dummy, dummy, work,
                                             gru_need - 1, nullptr);
  Expect(!st.ok() && st.error.find("StackedGruForwardCudaWorkspaceBytes") != std::string::npos,
         "GRU: too small workspace: " + st.error);
  st = deeprnn::StackedGruForwardCuda<float>(shape, dummy, {w, w, w}, dummy, dummy, dummy, dummy, nullptr, work,
                                             gru_need, nullptr);
  Expect(!st.ok() && st.error.find("gates") != std::string::npos, "GRU: null gates: " + st.error);
  st = deeprnn::PlanStackedGruCuda(Shape{1, 3, 4, 1024, 2}, 4, deeprnn::Direction::kForward,
                                   CudaSchedule::kPersistentResident, &plan);
  Expect(!st.ok() && st.error.find("shared memory") != std::string::npos,
         "GRU: weights too big for chip: " + st.error);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "" && mode != "--quick" && mode != "--sanitize") {
    std::fprintf(stderr, "usage: %s [--quick | --sanitize]\n", argv[0]);
    return 2;
  }
  const bool quick = mode == "--quick";
  const CudaSchedule schedules[] = {CudaSchedule::kStepwise, CudaSchedule::kPersistentResident,
                                    CudaSchedule::kPersistentStreaming, CudaSchedule::kAuto};
  // Shapes: every tile (B = 1, 3, 9, 20, 40, 70), H not a multiple of 16 or of the chunk, one layer, T = 1, L > T,
  // empty batch and empty sequence.
  std::vector<Shape> shapes = {{1, 4, 3, 17, 3}, {3, 5, 7, 9, 2}, {9, 3, 5, 33, 2}, {20, 2, 6, 16, 3},
                               {40, 3, 4, 20, 2}, {70, 2, 3, 65, 2}, {2, 1, 2, 3, 1}, {2, 2, 3, 5, 4},
                               {0, 3, 2, 4, 2}, {2, 0, 3, 4, 2}, {64, 9, 5, 8, 2}};
  if (quick) shapes = {{1, 4, 3, 17, 3}, {3, 5, 7, 9, 2}, {70, 2, 3, 65, 2}, {2, 2, 3, 5, 4}, {2, 0, 3, 4, 2}};
  if (mode == "--sanitize") shapes = {{1, 4, 3, 17, 3}, {9, 3, 5, 33, 2}, {70, 2, 3, 65, 2}};
  // Fresh inputs every run; the seed is printed so that a failure can be replayed (DEEPRNN_SELFCHECK_SEED).
  const char* seed_env = std::getenv("DEEPRNN_SELFCHECK_SEED");
  uint64_t seed = seed_env != nullptr ? std::strtoull(seed_env, nullptr, 10)
                                      : static_cast<uint64_t>(std::random_device{}()) * 2;
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  for (const Shape& shape : shapes) {
    for (CudaSchedule schedule : schedules) {
      if ((quick || mode == "--sanitize") && schedule == CudaSchedule::kAuto) continue;
      const bool empty = shape.batch == 0 || shape.time == 0;
      if (empty && schedule != CudaSchedule::kAuto && schedule != CudaSchedule::kStepwise) continue;
      const Activation act = (seed / 2) % 2 ? Activation::kRelu : Activation::kTanh;
      RunCase<float>({shape, act, schedule}, seed++);
      if (mode == "--sanitize") continue;  // float32 is enough there: sanitizers are slow
      RunCase<double>({shape, act == Activation::kTanh ? Activation::kRelu : Activation::kTanh, schedule}, seed++);
    }
  }
  // The GRU: every tile (B = 1, 3, 9, 20, 40, 70), H off the tile widths, one layer, T = 1, L > T, empty cases, and
  // T * B >= 512 so that the weight and bias gradients' reductions are split (strided partial sums).
  std::vector<Shape> gru_shapes = {{1, 4, 3, 17, 3}, {3, 5, 7, 9, 2}, {9, 3, 5, 33, 2}, {20, 2, 6, 16, 3},
                                   {40, 3, 4, 20, 2}, {70, 2, 3, 35, 2}, {2, 1, 2, 3, 1}, {2, 2, 3, 5, 4},
                                   {0, 3, 2, 4, 2}, {2, 0, 3, 4, 2}, {40, 13, 3, 5, 2}};
  // --quick (the emulation test, which must stay near a minute on two cores) runs one dtype per shape and schedule,
  // alternating, so that every schedule still meets both; the emulated gpu_check covers both dtypes and T = 0.
  if (quick) gru_shapes = {{1, 4, 3, 17, 3}, {70, 2, 3, 35, 2}, {2, 2, 3, 5, 4}, {40, 13, 3, 5, 2}};
  if (mode == "--sanitize") gru_shapes = {{1, 4, 3, 17, 3}, {9, 3, 5, 33, 2}, {70, 2, 3, 35, 2}};
  for (size_t i = 0; i < gru_shapes.size(); ++i) {
    const Shape& shape = gru_shapes[i];
    for (size_t j = 0; j < sizeof(schedules) / sizeof(schedules[0]); ++j) {
      const CudaSchedule schedule = schedules[j];
      if ((quick || mode == "--sanitize") && schedule == CudaSchedule::kAuto) continue;
      const bool empty = shape.batch == 0 || shape.time == 0;
      if (empty && schedule != CudaSchedule::kAuto && schedule != CudaSchedule::kStepwise) continue;
      const bool double_only = quick && (i + j) % 2 == 1;
      if (!double_only) RunGruCase<float>(shape, schedule, seed++);
      if (mode == "--sanitize" || (quick && !double_only)) continue;
      RunGruCase<double>(shape, schedule, seed++);
    }
  }
  CheckErrors();
  std::printf("%s: %d failure(s)\n", failures == 0 ? "PASSED" : "FAILED", failures);
  return failures == 0 ? 0 : 1;
}
