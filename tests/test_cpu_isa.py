"""Every CPU instruction set the engine dispatches to, each forced with DEEPRNN_FAST_CPU_ISA in a fresh process, against
the float64 reference: all four cells, float32 and float64, hidden sizes that leave ragged tails of the 16- and
32-wide panels, a batch large enough for batch blocks, token inputs, and masks and dropout. An instruction set this
processor lacks is skipped with the reason ("avx512emu" runs the AVX-512 kernels' code through AVX2, so that code is
checked on processors without AVX-512 too)."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

kernels = pytest.importorskip("deeprnn_fast._kernels",
                              reason="deeprnn_fast._kernels is not built (python setup.py build_ext --inplace)")

REPO = Path(__file__).resolve().parents[1]
ISAS = ["avx512", "avx2", "avx512emu", "generic"]

# Prints {"isa": ..., "errors": {case: largest relative error over outputs, final states and every gradient}}.
CHECK = textwrap.dedent('''
    import json, os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf
    import deeprnn_fast
    from deeprnn_fast import _kernels, _validate, reference

    FUSED = {"tanh": deeprnn_fast.stacked_rnn, "relu": deeprnn_fast.stacked_rnn, "gru": deeprnn_fast.stacked_gru,
             "lstm": deeprnn_fast.stacked_lstm}
    REFERENCE = {"tanh": reference.stacked_rnn, "relu": reference.stacked_rnn, "gru": reference.stacked_gru,
                 "lstm": reference.stacked_lstm}

    def case(cell, shape, dtype, tokens=False, modified=False, masked=False, seed=0):
        B, T, D, H, L = shape
        rng = np.random.default_rng(seed)
        layout = _validate.CELLS[cell]
        g = layout.gates
        draw = lambda *s, std=1.0: rng.normal(0.0, std, s)
        x = rng.integers(0, D, (B, T)) if tokens else draw(B, T, D)
        k = [draw(D if l == 0 else H, g * H, std=0.6 / np.sqrt(D if l == 0 else H)) for l in range(L)]
        r = [draw(H, g * H, std=0.6 / np.sqrt(H)) for _ in range(L)]
        b = [draw(*((g * H,) if layout.bias_rows is None else (2, g * H)), std=0.3) for _ in range(L)]
        h0 = [draw(B, H, std=0.5) if layout.states == 1 else (draw(B, H, std=0.5), draw(B, H, std=0.5))
              for _ in range(L)]
        mods = {}
        if modified:
            keep = lambda *s: (rng.random(s) > 0.3) / 0.7
            mods = dict(mask=rng.random((B, T)) > 0.25, input_dropout=[keep(g, B, D if l == 0 else H) for l in range(L)],
                        recurrent_dropout=[keep(1, B, H) for _ in range(L)])
            if L > 1:
                mods["between_dropout"] = keep(L - 1, T, B, H)
        elif masked:  # a mask alone: the states' own operand copies carry the masked rows (no dropped copies)
            mods = dict(mask=rng.random((B, T)) > 0.25)

        def run(fn, dt):
            as_t = lambda a: tf.constant(a, dt)
            inputs = tf.constant(x, tf.int32) if tokens else as_t(x)
            ks, rs, bs = [as_t(a) for a in k], [as_t(a) for a in r], [as_t(a) for a in b]
            hs = [tuple(as_t(p) for p in s) if isinstance(s, tuple) else as_t(s) for s in h0]
            m = {n: (tf.constant(v) if n == "mask" else
                     [as_t(a) for a in v] if isinstance(v, list) else as_t(v)) for n, v in mods.items()}
            watched = ([] if tokens else [inputs]) + ks + rs + bs + tf.nest.flatten(hs)
            extra = {"activation": cell} if cell in ("tanh", "relu") else {}
            with tf.GradientTape() as tape:
                tape.watch(watched)
                y, finals = fn(inputs, ks, rs, bs, hs, **extra, **m)
                w = tf.cast(tf.reshape(tf.range(tf.size(y)) % 7 + 1, tf.shape(y)), y.dtype) / 7.0
                loss = tf.reduce_sum(w * y * tf.cos(y)) + sum(tf.reduce_sum(s * s) for s in tf.nest.flatten(finals))
            grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, watched)]
            return [np.asarray(t, np.float64) for t in [y] + tf.nest.flatten(finals) + grads]

        expected = run(REFERENCE[cell], tf.float64)
        got = run(FUSED[cell], {"float32": tf.float32, "float64": tf.float64}[dtype])
        return max(float(np.max(np.abs(a - e)) / max(1.0, float(np.max(np.abs(e))))) for a, e in zip(got, expected))

    errors = {}
    for cell in ("tanh", "relu", "gru", "lstm"):
        for dtype in ("float32", "float64"):
            # Ragged tails of every panel width (H = 37, 9), a deep narrow stack, batch blocks (B = 301), feature
            # counts whose last register tile of the weight gradients has 2, 3, 10 or 11 rows (with the other
            # shapes here, every row count of AVX-512's 12-row tile occurs), and chunked weight gradients whose
            # ring of grad slots wraps (B = 100: chunks of 6 steps, [0, 6), [6, 12), [12, 15), in a ring of 12), and
            # chunk products cut into row parts (B = 32: a 16-step chunk's 512 rows against 40 + 256 and 256 + 256
            # weight rows, 78 and 134 MFLOP a layer for tanh: 3 and 5 parts of kChunkPartFlops, wavefront.h, with
            # part boundaries inside dWx's rows and dWh's; the GRU's and LSTM's grad slots are 4 KB rows there),
            # and rows of 4 KB or 8 KB (H = 1024; T D = 1024 for the batch-major inputs): the forward reads padded
            # copies of h and of the inputs (AliasFreeRowStride), the backward pads its grad slots.
            for name, shape in (("ragged", (13, 4, 7, 37, 2)), ("narrow", (5, 3, 4, 9, 3)),
                                ("blocks", (301, 3, 5, 9, 2)), ("tails", (6, 3, 10, 11, 2)),
                                ("short tails", (6, 3, 2, 3, 2)), ("chunks", (100, 15, 7, 16, 2)),
                                ("row parts", (32, 17, 40, 256, 2)), ("4 KB rows", (3, 8, 128, 1024, 2))):
                errors[f"{cell}-{dtype}-{name}"] = case(cell, shape, dtype)
            errors[f"{cell}-{dtype}-tokens"] = case(cell, (260, 3, 11, 20, 2), dtype, tokens=True)
            errors[f"{cell}-{dtype}-chunked-tokens"] = case(cell, (100, 15, 11, 20, 2), dtype, tokens=True)
            errors[f"{cell}-{dtype}-masks-dropout"] = case(cell, (9, 5, 6, 21, 2), dtype, modified=True)
            errors[f"{cell}-{dtype}-chunked-masks-dropout"] = case(cell, (100, 15, 6, 21, 2), dtype, modified=True)
            errors[f"{cell}-{dtype}-row-parts-masks-dropout"] = case(cell, (32, 17, 40, 256, 2), dtype, modified=True)
            errors[f"{cell}-{dtype}-4KB-rows-masks-dropout"] = case(cell, (3, 8, 128, 1024, 2), dtype, modified=True)
            errors[f"{cell}-{dtype}-4KB-rows-masks"] = case(cell, (3, 8, 128, 1024, 2), dtype, masked=True)
    print(json.dumps({"isa": _kernels.cpu_isa(), "errors": errors}))
''')


def run_check(isa):
    env = dict(os.environ, DEEPRNN_FAST_CPU_ISA=isa, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("isa", ISAS)
def test_each_instruction_set_matches_the_float64_reference(isa):
    if isa not in kernels.cpu_isas():
        pytest.skip(f"this processor cannot run the {isa} kernels (it runs {', '.join(kernels.cpu_isas())})")
    result = run_check(isa)
    assert result["isa"] == isa
    for case, error in result["errors"].items():
        limit = 3e-5 if "float32" in case else 1e-11
        assert error <= limit, f"{isa} {case}: largest relative error {error:.3g} > {limit}"


def test_a_forced_instruction_set_the_processor_lacks_is_an_error_not_a_crash():
    missing = [isa for isa in ISAS if isa not in kernels.cpu_isas()]
    if not missing:
        pytest.skip("this processor runs every instruction set the engine has")
    env = dict(os.environ, DEEPRNN_FAST_CPU_ISA=missing[0], PYTHONPATH=str(REPO))
    code = ("from deeprnn_fast import _kernels\n"
            "try:\n    _kernels.cpu_isa()\nexcept RuntimeError as e:\n    print('error:', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"error: DEEPRNN_FAST_CPU_ISA={missing[0]}: this processor cannot run the {missing[0]} kernels" in proc.stdout


def test_an_unknown_instruction_set_name_is_an_error():
    env = dict(os.environ, DEEPRNN_FAST_CPU_ISA="avx3", PYTHONPATH=str(REPO))
    code = ("from deeprnn_fast import _kernels\n"
            "try:\n    _kernels.cpu_isa()\nexcept RuntimeError as e:\n    print('error:', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert "DEEPRNN_FAST_CPU_ISA must be one of avx512, avx2, generic, avx512emu; got 'avx3'" in proc.stdout


@pytest.mark.skipif(bool(os.environ.get("DEEPRNN_FAST_CPU_ISA")), reason="DEEPRNN_FAST_CPU_ISA forces one here")
def test_the_default_is_the_best_instruction_set_of_this_processor():
    assert kernels.cpu_isa() == kernels.cpu_isas()[0]
    assert "generic" in kernels.cpu_isas()
