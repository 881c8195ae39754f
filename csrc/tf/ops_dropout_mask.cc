// The dropout-mask op: what the layers draw their dropout masks with (deeprnn/dropout_mask.h says why and what a
// mask is, exactly). CPU only; on a GPU the layers draw the same masks with TensorFlow's own stateless ops.
#include <algorithm>
#include <string>

#include "deeprnn/dropout_mask.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/framework/tensor_util.h"
#include "tf/cpu_parallel_for.h"
#include "tf/input_checks.h"

namespace deeprnn_fast {

using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("DeeprnnFast>DropoutMask")
    .Input("shape: Tshape")
    .Input("seed: Tseed")
    .Output("mask: dtype")
    .Attr("rate: float")
    .Attr("dtype: {float, double} = DT_FLOAT")
    .Attr("Tshape: {int32, int64} = DT_INT32")
    .Attr("Tseed: {int32, int64} = DT_INT64")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle seed;
      DimensionHandle two;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &seed));
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(seed, 0), 2, &two));
      ShapeHandle out;
      TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(0, &out));
      c->set_output(0, out);
      return absl::OkStatus();
    })
    .Doc(R"doc(
A dropout mask: 0 where dropped, 1 / (1 - rate) where kept, each element kept with probability 1 - rate,
independently. Exactly `tf.random.stateless_uniform(shape, seed, minval=None, maxval=None, dtype=tf.uint32) >=
ceil(rate * 2^32)` (rate as a float32), scaled: the same bits as TensorFlow's stateless ops, drawn several times
faster.

shape: the mask's shape, 1-D.
seed: [2], a stateless seed (a Keras SeedGenerator's next()).
rate: the probability of dropping an element, in [0, 1).
mask: the mask, shaped `shape`.
)doc");

namespace {

// Elements per work unit of the intra-op pool: a multiple of the 64 numbers one Philox batch gives, large enough
// (about 15 microseconds here) that handing a unit to another thread pays.
constexpr int64_t kUnit = 16384;

template <typename T>
class DropoutMaskOp : public tensorflow::OpKernel {
 public:
  explicit DropoutMaskOp(tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {
    float rate;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rate", &rate));
    OP_REQUIRES(ctx, rate >= 0 && rate < 1,
                absl::InvalidArgumentError("rate must be in [0, 1); got " + std::to_string(rate)));
    threshold_ = deeprnn::DropoutThreshold(rate);
    scale_ = T(1) / (T(1) - T(rate));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const tensorflow::Tensor& shape_t = ctx->input(0);
    const tensorflow::Tensor& seed_t = ctx->input(1);
    OP_REQUIRES(ctx, tensorflow::TensorShapeUtils::IsVector(shape_t.shape()),
                absl::InvalidArgumentError("shape must be 1-D; got " + shape_t.shape().DebugString()));
    OP_REQUIRES_OK(ctx, internal::ExpectShape(seed_t, "seed", {2}));
    tensorflow::TensorShape shape;
    OP_REQUIRES_OK(ctx, tensorflow::tensor::MakeShape(shape_t, &shape));
    tensorflow::Tensor* mask;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, shape, &mask));
    int64_t seed0, seed1;
    if (seed_t.dtype() == tensorflow::DT_INT32) {
      seed0 = seed_t.flat<int32_t>()(0);
      seed1 = seed_t.flat<int32_t>()(1);
    } else {
      seed0 = seed_t.flat<int64_t>()(0);
      seed1 = seed_t.flat<int64_t>()(1);
    }
    const deeprnn::PhiloxStream stream = deeprnn::PhiloxStreamOfSeed(seed0, seed1);
    const int64_t count = shape.num_elements();
    T* out = mask->flat<T>().data();
    IntraOpParallelFor(ctx)((count + kUnit - 1) / kUnit, [&](int64_t first, int64_t last) {
      const int64_t begin = first * kUnit, end = std::min(last * kUnit, count);
      deeprnn::DropoutMaskCpu<T>(stream, threshold_, scale_, begin, end, out + begin);
    });
  }

 private:
  uint32_t threshold_;
  T scale_;
};

}  // namespace

#define DEEPRNN_FAST_REGISTER_DROPOUT_MASK(T)                                                           \
  REGISTER_KERNEL_BUILDER(                                                                              \
      Name("DeeprnnFast>DropoutMask").Device(tensorflow::DEVICE_CPU).HostMemory("shape").TypeConstraint<T>("dtype"), \
      DropoutMaskOp<T>);
DEEPRNN_FAST_REGISTER_DROPOUT_MASK(float)
DEEPRNN_FAST_REGISTER_DROPOUT_MASK(double)
#undef DEEPRNN_FAST_REGISTER_DROPOUT_MASK

}  // namespace deeprnn_fast
