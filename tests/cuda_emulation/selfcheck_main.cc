// Self-check of the CUDA passes (deeprnn/stacked_cuda.h) against the CPU library (deeprnn/stacked.h) on fresh
// random inputs: every cell (tanh, relu, GRU, LSTM), dense and token inputs, every schedule, both dtypes, over small
// shapes that reach every tile and edge case; outputs are poisoned with NaN before each run. With tokens, some ids
// are out of range: the CUDA pass must read them as a zero row, drop their gradient and count them, which the CPU
// reference reproduces with an extra zero row of kernels[0] that those ids point to. Prints one line per case and
// exits non-zero when any relative error is above tolerance, any output stayed NaN, or an error check misbehaved.
//
// The same source builds two ways (benchmarks/gpu/build_kernels.py): against the CPU emulation of CUDA in this
// folder (tests/test_cuda_emulation.py runs it on machines without a GPU), and against the real CUDA runtime, where
// benchmarks/gpu/check.sh runs it on the GPU and under compute-sanitizer (--sanitize: a few small cases).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include "deeprnn/stacked.h"
#include "deeprnn/stacked_cuda.h"

namespace {

using deeprnn::Cell;
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
    if (size > 0) Check(cudaMemcpy(ptr, v.data(), sizeof(T) * size, cudaMemcpyHostToDevice), "cudaMemcpy to device");
  }
  std::vector<T> Download() const {
    std::vector<T> v(size);
    if (size > 0) Check(cudaMemcpy(v.data(), ptr, sizeof(T) * size, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
    return v;
  }
  void Poison() {
    if constexpr (std::numeric_limits<T>::has_quiet_NaN) {
      Upload(std::vector<T>(size, std::numeric_limits<T>::quiet_NaN()));
    } else {
      Upload(std::vector<T>(size, T(-7)));
    }
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

// Keras masking and dropout (deeprnn/stacked.h Modifiers) of a case: a mask pattern (every pattern has a row with no
// step taken when B > 1), and which dropouts, with one mask per gate or one for all.
enum class MaskKind { kNone, kRightPadded, kLeftPadded, kHoles };

struct ModifierCase {
  MaskKind mask = MaskKind::kNone;
  bool zero_output_for_mask = false;
  bool input = false, recurrent = false, between = false;
  bool per_gate = false;
  std::string Name() const {
    std::string n = mask == MaskKind::kNone ? "" : mask == MaskKind::kRightPadded ? "right-padded"
                                               : mask == MaskKind::kLeftPadded  ? "left-padded" : "holes";
    if (zero_output_for_mask) n += "+zero-output";
    for (auto [on, name] : {std::pair<bool, const char*>{input, "input"}, {recurrent, "recurrent"}, {between, "between"}})
      if (on) n += std::string(n.empty() ? "" : "+") + name + "-dropout";
    if (per_gate && (input || recurrent)) n += "(per gate)";
    return n.empty() ? "-" : n;
  }
};

struct Case {
  Cell cell;
  Shape shape;
  bool tokens;
  CudaSchedule schedule;
  ModifierCase mods = {};
  bool allow_tf32 = false;  // the tensor-core tile: the plan must choose it (float32, B <= 32, no modifiers)
};

// DEEPRNN_EMULATION_TF32=exact: the emulation's tensor cores compute exact fp32 (tests/cuda_emulation/mma.h).
bool ExactTensorCores() {
  const char* env = std::getenv("DEEPRNN_EMULATION_TF32");
  return env != nullptr && std::strcmp(env, "exact") == 0;
}

// Host arrays of one problem and the host pointer tables the CPU library takes.
template <typename T>
struct Problem {
  std::vector<T> x, h0, dy, dfinal;
  std::vector<int32_t> tokens;  // with tokens: ids in [0, D), a few of them D + 3 (out of range)
  int32_t invalid = 0;
  std::vector<std::vector<T>> wx, wh, bias;
  std::vector<uint8_t> mask;                  // [B,T], or empty
  std::vector<std::vector<T>> input_drop;     // per layer [masks, B, in_l], or empty
  std::vector<std::vector<T>> recurrent_drop;  // per layer [masks, B, H], or empty
  std::vector<T> between_drop;                // [L-1,T,B,H], or empty
  int input_masks = 1, recurrent_masks = 1;
};

// Dropout masks: 0 with probability 0.3, else 1 / 0.7.
template <typename T>
std::vector<T> DropoutMask(std::mt19937_64& rng, int64_t n) {
  std::bernoulli_distribution keep(0.7);
  std::vector<T> v(n);
  for (auto& x : v) x = keep(rng) ? static_cast<T>(1.0 / 0.7) : T(0);
  return v;
}

// The mask of a pattern: the last row of a batch of two or more takes no step at all.
std::vector<uint8_t> MaskOf(MaskKind kind, std::mt19937_64& rng, int64_t B, int64_t TT) {
  std::vector<uint8_t> mask(B * TT, 1);
  std::bernoulli_distribution hole(0.35);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t length = (B > 1 && b == B - 1) ? 0 : std::max<int64_t>(1, TT - b % (TT + 1));
    for (int64_t t = 0; t < TT; ++t) {
      uint8_t taken = 1;
      if (B > 1 && b == B - 1) {
        taken = 0;
      } else if (kind == MaskKind::kRightPadded) {
        taken = t < length;
      } else if (kind == MaskKind::kLeftPadded) {
        taken = t >= TT - length;
      } else {
        taken = !hole(rng);
      }
      mask[b * TT + t] = taken;
    }
  }
  return mask;
}

// Host pointer tables of a problem's modifiers; `input_width0` is the CPU's input width of layer 0's masks (one
// more than D with tokens: the extra zero row).
template <typename T>
struct ModifierTables {
  std::vector<const T*> input, recurrent;
  deeprnn::Modifiers<T> Of(const Problem<T>& p, const ModifierCase& m) const {
    deeprnn::Modifiers<T> mod;
    mod.mask = p.mask.empty() ? nullptr : p.mask.data();
    mod.zero_output_for_mask = m.zero_output_for_mask;
    mod.input_dropout = input.empty() ? nullptr : input.data();
    mod.input_masks = p.input_masks;
    mod.recurrent_dropout = recurrent.empty() ? nullptr : recurrent.data();
    mod.recurrent_masks = p.recurrent_masks;
    mod.between_dropout = p.between_drop.empty() ? nullptr : p.between_drop.data();
    return mod;
  }
};

template <typename T>
void RunCase(const Case& c, uint64_t seed) {
  const Shape& shape = c.shape;
  const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
  const deeprnn::CellLayout lay = deeprnn::LayoutOf(c.cell);
  const int64_t G = lay.gates, S = lay.states, SS = lay.saved_slots, BR = lay.bias_rows;
  std::mt19937_64 rng(seed);
  const double w_scale = (c.cell == Cell::kRelu ? 0.5 : 1.0) / std::sqrt(static_cast<double>(H));
  Problem<T> p;
  if (c.tokens) {
    std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(D) - 1);
    p.tokens.resize(B * TT);
    for (int64_t i = 0; i < B * TT; ++i) {
      p.tokens[i] = (i % 7 == 3) ? static_cast<int32_t>(D + 3) : id(rng);
      p.invalid += p.tokens[i] >= D;
    }
  } else {
    p.x = Random<T>(rng, B * TT * D, 1.0);
  }
  p.h0 = Random<T>(rng, L * S * B * H, 0.5);
  for (int64_t l = 0; l < L; ++l) {
    p.wx.push_back(Random<T>(rng, (l == 0 ? D : H) * G * H, l == 0 && c.tokens ? 1.0 : w_scale));
    p.wh.push_back(Random<T>(rng, H * G * H, w_scale));
    p.bias.push_back(Random<T>(rng, BR * G * H, 0.2));
  }
  p.dy = Random<T>(rng, B * TT * H, 1.0);
  p.dfinal = Random<T>(rng, L * S * B * H, 1.0);
  const ModifierCase& mc = c.mods;
  if (mc.mask != MaskKind::kNone) p.mask = MaskOf(mc.mask, rng, B, TT);
  const int masks = mc.per_gate ? static_cast<int>(G) : 1;
  if (mc.input) {
    p.input_masks = masks;
    for (int64_t l = 0; l < L; ++l) p.input_drop.push_back(DropoutMask<T>(rng, masks * B * (l == 0 ? D : H)));
  }
  if (mc.recurrent) {
    p.recurrent_masks = masks;
    for (int64_t l = 0; l < L; ++l) p.recurrent_drop.push_back(DropoutMask<T>(rng, masks * B * H));
  }
  if (mc.between && L > 1) p.between_drop = DropoutMask<T>(rng, (L - 1) * TT * B * H);

  // CPU reference. Out-of-range ids point at an extra zero row V of kernels[0]; its gradient row is dropped.
  Shape cpu_shape = shape;
  std::vector<T> wx0 = p.wx[0];
  std::vector<int32_t> cpu_tokens = p.tokens;
  if (c.tokens) {
    cpu_shape.input = D + 1;
    wx0.resize((D + 1) * G * H, T(0));
    for (int32_t& id : cpu_tokens) id = id >= D ? static_cast<int32_t>(D) : id;
  }
  std::vector<const T*> cwx, cwh, cb;
  for (int64_t l = 0; l < L; ++l) {
    cwx.push_back(l == 0 ? wx0.data() : p.wx[l].data());
    cwh.push_back(p.wh[l].data());
    cb.push_back(p.bias[l].data());
  }
  // The CPU's layer 0 input masks with tokens: a column for the extra zero row too (its value is never used).
  std::vector<T> cpu_drop0;
  ModifierTables<T> cpu_tables;
  if (mc.input) {
    cpu_drop0 = p.input_drop[0];
    if (c.tokens) {
      cpu_drop0.assign(p.input_masks * B * (D + 1), T(1));
      for (int64_t i = 0; i < p.input_masks * B; ++i)
        for (int64_t v = 0; v < D; ++v) cpu_drop0[i * (D + 1) + v] = p.input_drop[0][i * D + v];
    }
    for (int64_t l = 0; l < L; ++l) cpu_tables.input.push_back(l == 0 ? cpu_drop0.data() : p.input_drop[l].data());
  }
  for (const auto& m : p.recurrent_drop) cpu_tables.recurrent.push_back(m.data());
  std::vector<T> y(B * TT * H), fin(L * S * B * H), act(L * TT * B * H), saved(L * TT * B * SS * H);
  deeprnn::ForwardArgs<T> fa;
  fa.cell = c.cell;
  fa.shape = cpu_shape;
  if (c.tokens) {
    fa.inputs.tokens = cpu_tokens.data();
  } else {
    fa.inputs.dense = p.x.data();
  }
  fa.weights = {cwx.data(), cwh.data(), cb.data()};
  fa.initial_states = p.h0.data();
  fa.outputs = y.data();
  fa.final_states = fin.data();
  fa.activations = act.data();
  fa.saved = SS > 0 ? saved.data() : nullptr;
  fa.modifiers = cpu_tables.Of(p, mc);
  deeprnn::StackedForwardCpu<T>(fa, deeprnn::SerialFor);
  std::vector<T> dx(c.tokens ? 0 : B * TT * D), dh0(L * S * B * H);
  std::vector<T> scratch(deeprnn::StackedBackwardCpuScratchSize(c.cell, cpu_shape, sizeof(T)));
  std::vector<std::vector<T>> dwx, dwh, db;
  std::vector<T*> pdwx, pdwh, pdb;
  for (int64_t l = 0; l < L; ++l) {
    dwx.emplace_back((l == 0 ? cpu_shape.input : H) * G * H);
    dwh.emplace_back(H * G * H);
    db.emplace_back(BR * G * H);
  }
  for (int64_t l = 0; l < L; ++l) {
    pdwx.push_back(dwx[l].data());
    pdwh.push_back(dwh[l].data());
    pdb.push_back(db[l].data());
  }
  deeprnn::BackwardArgs<T> ba;
  ba.cell = c.cell;
  ba.shape = cpu_shape;
  ba.inputs = fa.inputs;
  ba.weights = {cwx.data(), cwh.data(), cb.data()};
  ba.initial_states = p.h0.data();
  ba.activations = act.data();
  ba.saved = fa.saved;
  ba.grad_outputs = p.dy.data();
  ba.grad_final_states = p.dfinal.data();
  ba.grad_inputs = c.tokens ? nullptr : dx.data();
  ba.grad_weights = {pdwx.data(), pdwh.data(), pdb.data()};
  ba.grad_initial_states = dh0.data();
  ba.modifiers = fa.modifiers;
  deeprnn::StackedBackwardCpu<T>(ba, scratch.data(), deeprnn::SerialFor);
  if (c.tokens) dwx[0].resize(D * G * H);  // the zero row's gradient is what the CUDA pass drops

  // "Device".
  const int64_t slots = deeprnn::StackedBackwardCudaScratchSize(c.cell, shape);
  DeviceBuffer<T> gx(c.tokens ? 0 : B * TT * D), gh0(L * S * B * H), gy(B * TT * H), gfin(L * S * B * H);
  DeviceBuffer<T> gact(L * TT * B * H), gsaved(L * TT * B * SS * H), gdy(B * TT * H), gdfin(L * S * B * H);
  DeviceBuffer<T> gdx(c.tokens ? 0 : B * TT * D), gdh0(L * S * B * H), gslots(slots);
  DeviceBuffer<int32_t> gtokens(c.tokens ? B * TT : 0), ginvalid(1);
  if (c.tokens) {
    gtokens.Upload(p.tokens);
  } else {
    gx.Upload(p.x);
  }
  gh0.Upload(p.h0);
  gdy.Upload(p.dy);
  gdfin.Upload(p.dfinal);
  ginvalid.Upload({0});
  std::vector<std::unique_ptr<DeviceBuffer<T>>> bufs;
  auto upload = [&](const std::vector<T>& v) {
    bufs.push_back(std::make_unique<DeviceBuffer<T>>(static_cast<int64_t>(v.size())));
    bufs.back()->Upload(v);
    return static_cast<const T*>(bufs.back()->ptr);
  };
  std::vector<const T*> dwx_in, dwh_in, db_in;
  for (int64_t l = 0; l < L; ++l) {
    dwx_in.push_back(upload(p.wx[l]));
    dwh_in.push_back(upload(p.wh[l]));
    db_in.push_back(upload(p.bias[l]));
  }
  // The modifiers on the device: the same masks (with tokens, layer 0's input masks without the extra column).
  ModifierTables<T> device_tables;
  for (const auto& m : p.input_drop) device_tables.input.push_back(upload(m));
  for (const auto& m : p.recurrent_drop) device_tables.recurrent.push_back(upload(m));
  DeviceBuffer<uint8_t> gmask(static_cast<int64_t>(p.mask.size()));
  if (!p.mask.empty()) Check(cudaMemcpy(gmask.ptr, p.mask.data(), p.mask.size(), cudaMemcpyHostToDevice), "cudaMemcpy");
  deeprnn::Modifiers<T> device_mods = device_tables.Of(p, mc);
  if (!p.mask.empty()) device_mods.mask = gmask.ptr;
  if (!p.between_drop.empty()) device_mods.between_dropout = upload(p.between_drop);
  std::vector<T*> gdwx, gdwh, gdb;
  std::vector<DeviceBuffer<T>*> grad_bufs;
  for (int64_t l = 0; l < L; ++l)
    for (int which = 0; which < 3; ++which) {
      const int64_t n = which == 0 ? (l == 0 ? D : H) * G * H : which == 1 ? H * G * H : BR * G * H;
      bufs.push_back(std::make_unique<DeviceBuffer<T>>(n));
      bufs.back()->Poison();
      grad_bufs.push_back(bufs.back().get());
      (which == 0 ? gdwx : which == 1 ? gdwh : gdb).push_back(bufs.back()->ptr);
    }
  for (auto* b : {&gy, &gfin, &gact, &gsaved, &gdx, &gdh0, &gslots}) b->Poison();

  const int64_t fws = deeprnn::StackedForwardCudaWorkspaceBytes(c.cell, shape, sizeof(T));
  const int64_t bws = deeprnn::StackedBackwardCudaWorkspaceBytes(c.cell, shape, sizeof(T), c.tokens);
  DeviceBuffer<unsigned char> fwork(fws), bwork(bws);
  Check(cudaMemset(fwork.ptr, 0xff, fws), "cudaMemset");
  Check(cudaMemset(bwork.ptr, 0xff, bws), "cudaMemset");
  deeprnn::CudaLaunchInfo finfo, binfo;
  deeprnn::CudaLaunch launch;
  launch.schedule = c.schedule;
  launch.allow_tf32 = c.allow_tf32;
  launch.invalid_tokens = ginvalid.ptr;

  deeprnn::ForwardArgs<T> cf;
  cf.cell = c.cell;
  cf.shape = shape;
  if (c.tokens) {
    cf.inputs.tokens = gtokens.ptr;
  } else {
    cf.inputs.dense = gx.ptr;
  }
  cf.weights = {dwx_in.data(), dwh_in.data(), db_in.data()};
  cf.initial_states = gh0.ptr;
  cf.outputs = gy.ptr;
  cf.final_states = gfin.ptr;
  cf.activations = gact.ptr;
  cf.saved = SS > 0 ? gsaved.ptr : nullptr;
  cf.modifiers = device_mods;
  launch.workspace = fwork.ptr;
  launch.workspace_bytes = fws;
  launch.info = &finfo;
  char head[384];
  std::snprintf(head, sizeof(head), "%-4s %-6s B=%ld T=%ld D=%ld H=%ld L=%ld %s %-20s %s", deeprnn::CellName(c.cell),
                c.tokens ? "tokens" : "dense", (long)B, (long)TT, (long)D, (long)H, (long)L,
                sizeof(T) == 4 ? (c.allow_tf32 ? "tf32   " : "float32") : "float64",
                deeprnn::ScheduleName(c.schedule), mc.Name().c_str());
  deeprnn::CudaStatus st = deeprnn::StackedForwardCuda<T>(cf, launch);
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
  deeprnn::BackwardArgs<T> cb_args;
  cb_args.cell = c.cell;
  cb_args.shape = shape;
  cb_args.inputs = cf.inputs;
  cb_args.weights = {dwx_in.data(), dwh_in.data(), nullptr};
  cb_args.initial_states = gh0.ptr;
  cb_args.activations = gact.ptr;
  cb_args.saved = cf.saved;
  cb_args.grad_outputs = gdy.ptr;
  cb_args.grad_final_states = gdfin.ptr;
  cb_args.grad_inputs = c.tokens ? nullptr : gdx.ptr;
  cb_args.grad_weights = {gdwx.data(), gdwh.data(), gdb.data()};
  cb_args.grad_initial_states = gdh0.ptr;
  cb_args.modifiers = device_mods;
  launch.workspace = bwork.ptr;
  launch.workspace_bytes = bws;
  launch.info = &binfo;
  st = deeprnn::StackedBackwardCuda<T>(cb_args, gslots.ptr, launch);
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
  // The CPU passes of the gated cells use float approximations of exp (engine/cpu/simd.h); the kernels use expf.
  // TF32 products (10-bit mantissas) on these short sequences stay near 1e-3 relative; the emulation's exact mode
  // holds the tensor-core tile to the float32 tolerance, which a wrong index or a missing partial sum would break.
  double tol = sizeof(T) == 4 ? (G == 1 ? 2e-5 : 5e-5) : 1e-12;
  if (c.allow_tf32 && !ExactTensorCores()) tol = 3e-3;
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
  // Where a row skips a step the saved gates other than a state are not specified (the CPU skips whole row chunks).
  if (SS > 0 && p.mask.empty()) check("saved", gsaved.Download(), saved);
  if (!c.tokens) check("grad_inputs", gdx.Download(), dx);
  check("grad_initial_states", gdh0.Download(), dh0);
  for (int64_t l = 0; l < L; ++l) {
    check("grad_kernels", grad_bufs[3 * l]->Download(), dwx[l]);
    check("grad_recurrent_kernels", grad_bufs[3 * l + 1]->Download(), dwh[l]);
    check("grad_biases", grad_bufs[3 * l + 2]->Download(), db[l]);
  }
  // With B < 128 the CPU pass of tanh / relu keeps dLoss/dZ of every cell in its scratch: [L,T,B,H], the CUDA
  // pass's grad slots. Every other cell's grad slots must at least all have been written.
  if (G == 1 && B < 128 && TT > 0) {
    check("grad_slots", gslots.Download(), std::vector<T>(scratch.begin(), scratch.begin() + slots));
  } else {
    for (T v : gslots.Download())
      if (std::isnan(static_cast<double>(v))) {
        worst = std::numeric_limits<double>::infinity();
        worst_name = "grad_slots (unwritten)";
        break;
      }
  }
  // Each pass counts the out-of-range ids it met.
  const int32_t counted = ginvalid.Download()[0];
  const int32_t expected = (B > 0 && TT > 0) ? 2 * p.invalid : 0;
  if (counted != expected) {
    worst = std::numeric_limits<double>::infinity();
    worst_name = "invalid_tokens " + std::to_string(counted) + " != " + std::to_string(expected);
  }
  const deeprnn::WavefrontPlan& fp = finfo.wavefront;
  const deeprnn::WavefrontPlan& bp = binfo.wavefront;
  if (c.allow_tf32 && B > 0 && TT > 0 && (!fp.tensor_cores || !bp.tensor_cores)) {
    worst = std::numeric_limits<double>::infinity();
    worst_name = "tensor-core tile not planned: " + fp.reason + " | " + bp.reason;
  }
  const bool ok = worst <= tol;
  if (!ok) ++failures;
  std::printf("%s %s worst rel err %.2e (%s) | fwd %s%s tile %d grid %ld | bwd %s%s tile %d grid %ld\n", head,
              ok ? "ok  " : "FAIL", worst, worst_name.c_str(), deeprnn::ScheduleName(fp.schedule),
              fp.tensor_cores ? "+tc" : fp.weights_on_chip ? "+chip" : "", fp.tile, (long)fp.grid,
              deeprnn::ScheduleName(bp.schedule), bp.tensor_cores ? "+tc" : bp.weights_on_chip ? "+chip" : "", bp.tile,
              (long)bp.grid);
}

void Expect(bool condition, const std::string& what) {
  std::printf("%s %s\n", condition ? "ok  " : "FAIL", what.c_str());
  if (!condition) ++failures;
}

// Errors the library must report instead of running.
void CheckErrors() {
  const Shape shape{2, 3, 4, 5, 2};
  float dummy[256] = {};
  int32_t ids[6] = {};
  const float* w[2] = {dummy, dummy};
  alignas(256) static unsigned char work[1 << 12];
  for (Cell cell : {Cell::kTanh, Cell::kGru, Cell::kLstm}) {
    const std::string name = deeprnn::CellName(cell);
    const int64_t need = deeprnn::StackedForwardCudaWorkspaceBytes(cell, shape, 4);
    deeprnn::ForwardArgs<float> a;
    a.cell = cell;
    a.shape = shape;
    a.inputs.dense = dummy;
    a.weights = {w, w, w};
    a.initial_states = a.outputs = a.final_states = a.activations = dummy;
    a.saved = deeprnn::LayoutOf(cell).saved_slots > 0 ? dummy : nullptr;
    deeprnn::CudaLaunch launch;
    launch.workspace = work;
    launch.workspace_bytes = need - 1;
    deeprnn::CudaStatus st = deeprnn::StackedForwardCuda<float>(a, launch);
    Expect(!st.ok() && st.error.find("StackedForwardCudaWorkspaceBytes") != std::string::npos,
           name + ": too small workspace: " + st.error);
    launch.workspace_bytes = need;
    deeprnn::ForwardArgs<float> bad = a;
    bad.inputs.dense = nullptr;
    st = deeprnn::StackedForwardCuda<float>(bad, launch);
    Expect(!st.ok() && st.error.find("inputs.dense") != std::string::npos, name + ": null inputs: " + st.error);
    bad = a;
    bad.inputs.tokens = ids;
    st = deeprnn::StackedForwardCuda<float>(bad, launch);
    Expect(!st.ok() && st.error.find("not both") != std::string::npos, name + ": dense and tokens: " + st.error);
    if (a.saved != nullptr) {
      bad = a;
      bad.saved = nullptr;
      st = deeprnn::StackedForwardCuda<float>(bad, launch);
      Expect(!st.ok() && st.error.find("saved") != std::string::npos, name + ": null saved gates: " + st.error);
    }
    // Dropout masks: 1 or G per layer, and a pointer for every layer.
    const float* drops[2] = {dummy, dummy};
    bad = a;
    bad.modifiers.input_dropout = drops;
    bad.modifiers.input_masks = 2;
    st = deeprnn::StackedForwardCuda<float>(bad, launch);
    Expect(!st.ok() && st.error.find("input_masks is 2") != std::string::npos,
           name + ": two input masks: " + st.error);
    const float* missing[2] = {dummy, nullptr};
    bad = a;
    bad.modifiers.recurrent_dropout = missing;
    st = deeprnn::StackedForwardCuda<float>(bad, launch);
    Expect(!st.ok() && st.error.find("recurrent_dropout[1]") != std::string::npos,
           name + ": a layer without its recurrent masks: " + st.error);
    bad = a;
    bad.shape.hidden = 0;
    st = deeprnn::StackedForwardCuda<float>(bad, launch);
    Expect(!st.ok() && st.error.find("hidden") != std::string::npos, name + ": hidden 0: " + st.error);
    // Token inputs without dX: a grad_inputs pointer is refused.
    deeprnn::BackwardArgs<float> b;
    b.cell = cell;
    b.shape = shape;
    b.inputs.tokens = ids;
    b.grad_inputs = dummy;
    launch.workspace_bytes = sizeof(work);
    st = deeprnn::StackedBackwardCuda<float>(b, dummy, launch);
    Expect(!st.ok() && st.error.find("grad_inputs") != std::string::npos, name + ": tokens with dX: " + st.error);
  }
  // Weights too big for the chip: H = 4096 (tanh), 1024 (GRU), 512 (LSTM), 2 layers: a 16-unit slice of both
  // segments is 2 * H * (G * 16 + 1) * 4 bytes > 227 KB.
  deeprnn::WavefrontPlan plan;
  for (auto [cell, hidden] : {std::pair<Cell, int64_t>{Cell::kTanh, 4096}, {Cell::kGru, 1024}, {Cell::kLstm, 512}}) {
    const deeprnn::CudaStatus st = deeprnn::PlanStackedCuda(cell, Shape{1, 3, 4, hidden, 2}, 4,
                                                            deeprnn::Direction::kForward,
                                                            CudaSchedule::kPersistentResident, &plan);
    Expect(!st.ok() && st.error.find("shared memory") != std::string::npos,
           std::string(deeprnn::CellName(cell)) + ": weights too big for chip: " + st.error);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "" && mode != "--quick" && mode != "--sanitize" && mode != "--tensor-cores") {
    std::fprintf(stderr, "usage: %s [--quick | --sanitize | --tensor-cores]\n", argv[0]);
    return 2;
  }
  const bool quick = mode == "--quick", sanitize = mode == "--sanitize";
  // Fresh inputs every run; the seed is printed so that a failure can be replayed (DEEPRNN_SELFCHECK_SEED).
  const char* seed_env = std::getenv("DEEPRNN_SELFCHECK_SEED");
  uint64_t seed = seed_env != nullptr ? std::strtoull(seed_env, nullptr, 10)
                                      : static_cast<uint64_t>(std::random_device{}()) * 2;
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  if (mode == "--tensor-cores") {
    // The tensor-core tile (TF32 allowed, float32, planner's choice), every cell. In the exact mode
    // (DEEPRNN_EMULATION_TF32=exact), which checks the indexing to float32 accuracy: B = 1, 5, 17, 32 (one and two
    // row fragments, rows past B; B = 5 for the tanh RNN only), H off the 16-unit slices and the 8-deep fragments
    // (20, 9, 24, 90: padding; the gated cells' backward G*H = 270 and 360 take two staged chunks of 256), L = 1
    // and 3, token inputs once per cell. With TF32 rounding, which checks the tolerance, the B = 32, L = 3 shape
    // per cell. The relu RNN runs only in the exact mode: TF32 rounding moves pre-activations near 0 across the
    // kink, whose gradient jumps from 0 to 1, so its TF32 results differ from float32 by more than rounding
    // wherever that happens. On the emulated device's 8 SMs (DEEPRNN_EMULATION_SMS=8) all these grids fit.
    const bool exact = ExactTensorCores();
    const Shape tc_shapes[] = {{1, 3, 3, 20, 3}, {5, 2, 4, 9, 1}, {32, 2, 5, 24, 3}, {17, 2, 3, 90, 1}};
    for (Cell cell : {Cell::kTanh, Cell::kRelu, Cell::kGru, Cell::kLstm})
      for (const Shape& shape : tc_shapes) {
        const bool gated = cell == Cell::kGru || cell == Cell::kLstm;
        if (!exact && (cell == Cell::kRelu || shape.batch != 32)) continue;
        if (cell == Cell::kRelu && shape.batch != 32) continue;  // relu shares tanh's maths but its kink
        if (gated && shape.batch == 5) continue;
        const bool tokens = cell == Cell::kRelu || (gated ? shape.batch == 1 : shape.batch == 5);
        RunCase<float>({cell, shape, tokens, CudaSchedule::kAuto, {}, true}, seed++);
      }
    std::printf("%s: %d failure(s)\n", failures == 0 ? "PASSED" : "FAILED", failures);
    return failures == 0 ? 0 : 1;
  }
  const CudaSchedule schedules[] = {CudaSchedule::kStepwise, CudaSchedule::kPersistentResident,
                                    CudaSchedule::kPersistentStreaming, CudaSchedule::kAuto};
  // Shapes: every tile (B = 1, 3, 9, 20, 40, 70), H off the tile widths, one layer, T = 1, L > T, empty batch and
  // sequence, and T * B >= 512 so that the weight and bias gradients' reductions are split (partial sums).
  std::vector<Shape> shapes = {{1, 4, 3, 17, 3}, {3, 5, 7, 9, 2}, {9, 3, 5, 33, 2}, {20, 2, 6, 16, 3},
                               {40, 3, 4, 20, 2}, {70, 2, 3, 65, 2}, {2, 1, 2, 3, 1}, {2, 2, 3, 5, 4},
                               {0, 3, 2, 4, 2}, {2, 0, 3, 4, 2}, {40, 13, 3, 5, 2}};
  // --quick (the emulation test, which must stay near a minute or two on two cores) takes fewer shapes and one dtype
  // per case, alternating, so that every schedule and cell still meets both.
  if (quick) shapes = {{1, 4, 3, 17, 3}, {70, 2, 3, 65, 2}, {2, 2, 3, 5, 4}, {40, 13, 3, 5, 2}, {2, 0, 3, 4, 2}};
  // --sanitize (compute-sanitizer's fixed slot in benchmarks/gpu/check.sh): the B = 32 tile (BM = 32) and blocks
  // above the default 48 KB of shared memory (the opt-in path): with H = 128 the GRU's and the LSTM's resident
  // persistent blocks take 54-71 KB, with H = 384 the tanh / relu ones about 56 KB (plan() on an H200); one small
  // shape with L > T. Token inputs on the H = 128 shape.
  if (sanitize) shapes = {{1, 4, 3, 17, 3}, {32, 3, 5, 128, 2}, {32, 2, 4, 384, 2}};
  int index = 0;
  for (Cell cell : {Cell::kTanh, Cell::kRelu, Cell::kGru, Cell::kLstm}) {
    for (size_t i = 0; i < shapes.size(); ++i) {
      const Shape& shape = shapes[i];
      const bool empty = shape.batch == 0 || shape.time == 0;
      for (CudaSchedule schedule : schedules) {
        if ((quick || sanitize) && schedule == CudaSchedule::kAuto) continue;
        if (empty && schedule != CudaSchedule::kAuto && schedule != CudaSchedule::kStepwise) continue;
        ++index;
        // Token inputs on every other case (quick: every third), so that each cell and schedule meets them.
        const bool tokens = sanitize ? i == 1 : (quick ? index % 3 == 0 : index % 2 == 0);
        const bool only_double = quick && index % 2 == 1;
        if (!only_double) RunCase<float>({cell, shape, tokens, schedule}, seed++);
        if (sanitize || (quick && !only_double)) continue;
        RunCase<double>({cell, shape, tokens, schedule}, seed++);
      }
    }
  }
  // The sanitizers' slot covers the tensor-core tile too: B = 32 (two row fragments), above 48 KB of shared
  // memory (H = 128: 70-110 KB). Not the relu RNN: TF32 moves its kink (see --tensor-cores).
  if (sanitize)
    for (Cell cell : {Cell::kTanh, Cell::kGru, Cell::kLstm})
      RunCase<float>({cell, Shape{32, 3, 5, 128, 2}, false, CudaSchedule::kAuto, {}, true}, seed++);
  // Masks and dropout: every cell meets each mask pattern, each dropout alone (one mask for all gates and one per
  // gate), and all of them together, on a small shape and on one of several row and column tiles, over the three
  // schedules in turn and both dtypes in turn (dense and token inputs in turn).
  if (!sanitize) {
    std::vector<ModifierCase> variants;
    for (MaskKind kind : {MaskKind::kRightPadded, MaskKind::kLeftPadded, MaskKind::kHoles}) {
      ModifierCase m;
      m.mask = kind;
      m.zero_output_for_mask = kind == MaskKind::kHoles;
      variants.push_back(m);
    }
    for (int which = 0; which < 3; ++which)
      for (bool per_gate : {false, true}) {
        if (which == 2 && per_gate) continue;
        ModifierCase m;
        m.input = which == 0;
        m.recurrent = which == 1;
        m.between = which == 2;
        m.per_gate = per_gate;
        variants.push_back(m);
      }
    for (bool per_gate : {false, true}) {
      ModifierCase m;
      m.mask = per_gate ? MaskKind::kHoles : MaskKind::kLeftPadded;
      m.input = m.recurrent = m.between = true;
      m.per_gate = per_gate;
      variants.push_back(m);
    }
    const Shape modifier_shapes[] = {{5, 6, 4, 9, 3}, {70, 3, 3, 33, 2}};
    const CudaSchedule modifier_schedules[] = {CudaSchedule::kStepwise, CudaSchedule::kPersistentResident,
                                               CudaSchedule::kPersistentStreaming};
    int k = 0;
    for (Cell cell : {Cell::kTanh, Cell::kRelu, Cell::kGru, Cell::kLstm})
      for (const ModifierCase& m : variants) {
        ++k;
        if (m.per_gate && deeprnn::LayoutOf(cell).gates == 1) continue;  // one gate: the same as one mask
        // --quick: relu (which differs from tanh in the pointwise maths only) and the multi-tile shape less often.
        if (quick && cell == Cell::kRelu && k % 2 == 0) continue;
        const bool multi_tile = quick ? k % 4 == 0 : k % 2 == 0;
        const Case c{cell, modifier_shapes[multi_tile ? 1 : 0], k % 3 == 1, modifier_schedules[k % 3], m};
        if (k % 2 == 0 || !quick) RunCase<float>(c, seed++);
        if (k % 2 == 1 || !quick) RunCase<double>(c, seed++);
      }
  }
  CheckErrors();
  std::printf("%s: %d failure(s)\n", failures == 0 ? "PASSED" : "FAILED", failures);
  return failures == 0 ? 0 : 1;
}
