"""One training epoch of the book's language model with and without XLA (`tf.function(jit_compile=True)` around the
whole step), the project's fused layers and Keras' own cells side by side (issue 11's measurement).

Inside an XLA cluster the fused op cannot run: the layers then compute with the plain-TensorFlow reference (one
warning), so what this shows is what XLA does to each implementation's whole step, readout and optimizer included.
Not a pytest benchmark: one process, a few epochs, the median printed.

Usage: python benchmarks/xla_epoch.py [--cell tanh|gru] [--epochs 3] [--text PATH]
(the text: --text, else $DEEPRNN_FAST_DATA, else the command line's cache; `make train` points the variable at
../shared/data/timemachine.txt)."""
import argparse, statistics, time
import numpy as np, keras, tensorflow as tf
from deeprnn_fast.language_model import data as lm_data
from deeprnn_fast.language_model.model import ModelConfig, build_model, mean_token_loss

parser = argparse.ArgumentParser()
parser.add_argument("--cell", default="tanh"); parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--text", default=None); parser.add_argument("--batch", type=int, default=1024)
args = parser.parse_args()
data = lm_data.load(args.text)
x, y = np.ascontiguousarray(data.train[:, :-1], np.int32), np.ascontiguousarray(data.train[:, 1:], np.int32)
for implementation in ("fused", "keras"):
    for jit in (False, True):
        model = build_model(ModelConfig(data.vocab.idx_to_token, cell=args.cell, implementation=implementation))
        optimizer = keras.optimizers.SGD(2.0, global_clipnorm=1.0)
        optimizer.build(model.trainable_variables)
        spec = tf.TensorSpec([None, data.num_steps], tf.int32)

        @tf.function(input_signature=[spec, spec], jit_compile=jit)
        def step(xb, yb):
            with tf.GradientTape() as tape:
                loss = mean_token_loss(yb, model(xb, training=True)[0])
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        seconds = []
        for epoch in range(args.epochs + 1):  # epoch 0 compiles (XLA: once per batch shape)
            start = time.perf_counter()
            for i in range(0, len(x), args.batch):
                loss = float(step(x[i:i + args.batch], y[i:i + args.batch]))
            seconds.append(time.perf_counter() - start)
        print(f"{args.cell} {implementation:5s} jit_compile={jit!s:5s}: {statistics.median(seconds[1:]):.3f} s/epoch "
              f"(first {seconds[0]:.1f} s), last loss {loss:.4f}")
