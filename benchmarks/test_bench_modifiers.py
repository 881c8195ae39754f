"""Time of one masked or dropout training step (issue 13): the project's stacked layers against the Keras stacks of
the same cells, and against the project's own step without mask or dropout ("plain"). The cases are in
modifier_steps.py; ids "<config>-<cell>-<variant>-<implementation>", e.g. -k "seed and gru and holes".

Configurations: $DEEPRNN_FAST_BENCH_CONFIGS, default seed and small only (Keras' masked and dropout loops on `wide`
take many seconds a step). Each case builds its layer and compiled step, calls it once to trace it (never timed),
then benchmark.pedantic runs one warm-up round and $DEEPRNN_FAST_BENCH_ROUNDS (default 5) timed rounds of one step
each; report.py takes the medians. With --benchmark-disable every case runs its step twice: a smoke test.

A project layer that falls back to its step-by-step loop (the fused op cannot take the mask or the recurrent
dropout yet) warns while tracing; the warnings are stored in extra_info["fallbacks"] so the report can say which
figures are the fallback's, and re-issued so pytest's summary shows them.
"""
import gc
import warnings

import numpy as np
import pytest

import machine
import modifier_steps
import workloads

KIND = "modifier_step"
_CASES = modifier_steps.cases(modifier_steps.selected_configs())


@pytest.mark.parametrize("modifier_case", _CASES, ids=[c.id for c in _CASES])
def test_modifier_step(benchmark, modifier_case, rounds):
    case = modifier_case
    c = case.config
    try:
        step = modifier_steps.build_step(case, workloads.make_inputs(c))
    except modifier_steps.Unavailable as e:
        pytest.skip(str(e))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = float(step())  # trace; never timed
    fallbacks = sorted({str(w.message) for w in caught if "instead" in str(w.message)})
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    assert np.isfinite(loss) and loss > 0.0, f"loss {loss!r}: a step that computes nothing would time nothing"
    benchmark.group = f"{KIND} {c.name} ({c.describe()}) {case.cell}"
    benchmark.extra_info.update(machine.record(
        kind=KIND, config=c.name,
        shape={"batch": c.batch, "time": c.time, "features": c.features, "hidden": c.hidden, "layers": c.layers},
        cell=case.cell, variant=case.variant, implementation=case.implementation, role=case.role,
        framework="tensorflow", train_step_flops=c.train_step_flops(case.cell), first_loss=loss,
        fallbacks=fallbacks))
    gc.collect()  # leave no garbage of the tracing to be collected inside a timed round
    benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=1)
