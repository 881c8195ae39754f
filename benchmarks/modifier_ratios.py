"""Issue 13's ratios measured interleaved: each masked or dropout training step against the plain project step (and,
with --keras, against Keras' stack), round by round.

test_bench_modifiers.py times its cases one after another, a few seconds each; on the project's shared 2-core
machines the speed drifts by 30 % or more within minutes, so a ratio of two such medians can say 1.6x where the
steps differ by 1.1x. Here every round runs each step once, in turn, and a ratio is the median over rounds of that
round's ratio: a drift slower than a round cancels out. It reuses modifier_steps.py's cases (same layers, masks,
rates and loss), so its figures stand for the same steps. Plain script, no pytest:

    .venv/bin/python benchmarks/modifier_ratios.py --configs seed,small --rounds 20 [--keras] [--cells gru,lstm]

prints one markdown table per config (the machine, the kernels' instruction set and the commit first). Run it on an
otherwise idle machine.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402

machine.apply_to_tensorflow()

import modifier_steps as ms  # noqa: E402
import workloads  # noqa: E402

VARIANTS = (ms.LENGTHS, ms.HOLES, ms.DROPOUT_VARIANT)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(ms.CONFIGS_DEFAULT), help="comma-separated workloads.py configs")
    parser.add_argument("--cells", default=",".join(ms.CELLS), help="comma-separated: " + ", ".join(ms.CELLS))
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds (each runs every step once)")
    parser.add_argument("--keras", action="store_true", help="also Keras' stacks (slow on `small`)")
    args = parser.parse_args(argv)
    args.configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    args.cells = [name.strip() for name in args.cells.split(",") if name.strip()]
    unknown = [c for c in args.configs if c not in workloads.CONFIGS] + [c for c in args.cells if c not in ms.CELLS]
    if unknown:
        parser.error(f"unknown config or cell {unknown}; configs: {sorted(workloads.CONFIGS)}, cells: {ms.CELLS}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure(config, cells, rounds, keras):
    """{case id: [seconds per round]} for the config's steps, every round running each step once in turn."""
    inputs = workloads.make_inputs(config)
    steps = {}
    for cell in cells:
        for variant in (ms.PLAIN,) + VARIANTS:
            implementations = [ms.PROJECT_IMPL] + ([ms.KERAS_IMPL] if keras and variant != ms.PLAIN else [])
            for implementation in implementations:
                case = ms.ModifierCase(config, cell, variant, implementation)
                step = ms.build_step(case, inputs)
                step()  # traces
                step()  # warms up
                steps[case.id] = step
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            float(step())
            times[name].append(time.perf_counter() - start)
    return times


def table(config, cells, times, keras):
    def ratio(a, b):  # the median of the rounds' ratios
        return float(np.median(np.asarray(times[a]) / np.asarray(times[b])))

    head = "| cell | variant | project median ms | project / plain project |"
    rule = "| --- | --- | --- | --- |"
    if keras:
        head += " Keras median ms | Keras / project |"
        rule += " --- | --- |"
    lines = [f"#### {config.name}: {config.describe()}", "", head, rule]
    for cell in cells:
        plain = ms.ModifierCase(config, cell, ms.PLAIN, ms.PROJECT_IMPL).id
        for variant in (ms.PLAIN,) + VARIANTS:
            project = ms.ModifierCase(config, cell, variant, ms.PROJECT_IMPL).id
            row = f"| {cell} | {variant} | {np.median(times[project]) * 1e3:.1f} | {ratio(project, plain):.2f}x |"
            if keras:
                other = ms.ModifierCase(config, cell, variant, ms.KERAS_IMPL).id
                row += (" — | — |" if variant == ms.PLAIN else
                        f" {np.median(times[other]) * 1e3:.1f} | {ratio(other, project):.2f}x |")
            lines.append(row)
    return lines


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    m = machine.describe()
    flags = ", ".join(f"{flag}:{'yes' if on else 'no'}" for flag, on in m["isa_flags"].items())
    print(f"Interleaved, {args.rounds} rounds, commit {commit()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
          f": {m['cpu_model']}, {m['usable_cores']} cores, flags {flags}, project kernels {m['kernel_isa']}, "
          f"{m['threads']} threads")
    print()
    for name in args.configs:
        config = workloads.CONFIGS[name]
        print("\n".join(table(config, args.cells, measure(config, args.cells, args.rounds, args.keras), args.keras)))
        print()


if __name__ == "__main__":
    main()
