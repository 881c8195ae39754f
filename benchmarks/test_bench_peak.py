"""The machine's float32 FMA peak per instruction set (fma_peak.py), recorded into the benchmark JSON so that
report.py can state every case's fraction of it: kind "fma_peak", extra_info["isas"][name]["gflops"][threads].

Measured on 1 thread, on every usable core and on the run's thread count ($DEEPRNN_FAST_BENCH_THREADS); about
3 s per supported instruction set ($DEEPRNN_FAST_PEAK_SECONDS x ~15). The time pytest-benchmark records for it is
the whole probe's and no figure to read.
"""
import pytest

import fma_peak
import machine


def test_fma_peak(benchmark):
    thread_counts = sorted({1, machine.usable_cores(), machine.threads()})
    try:
        result = benchmark.pedantic(fma_peak.probe, kwargs={"thread_counts": thread_counts}, rounds=1, iterations=1)
    except fma_peak.ProbeError as e:
        pytest.skip(str(e))
    benchmark.group = "fma peak"
    benchmark.extra_info.update(machine.record(kind="fma_peak", **result))
    measured = {name: isa["gflops"] for name, isa in result["isas"].items() if "gflops" in isa}
    assert "sse2" in measured, "every x86-64 CPU has SSE2: the probe must have measured it"
    for name, gflops in measured.items():
        assert set(gflops) == {str(t) for t in thread_counts} and min(gflops.values()) > 0, (name, gflops)
    skipped = [isa["skipped"] for isa in result["isas"].values() if "gflops" not in isa]
    assert all(skipped), "an instruction set that was not measured must say why"
