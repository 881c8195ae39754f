"""The cost model's predictions (csrc/deeprnn/cost_model.h, explained in csrc/engine/cuda/COST_MODEL.md) as a
Markdown table, from the planner on an H200 described by hand: no GPU needed.

    python -m deeprnn_fast.testing.cost_table [--kernels path/to/_kernels.so]

For each cell, H, B and pass: the plan's tile with TF32 not allowed (today's exact kernel) and, where the planner
takes it, the tensor-core tile (TF32 allowed); per step the products, staging and total, and per sequence the
time and its ratio to (T + L - 1) grid barriers."""
import argparse

from deeprnn_fast.testing.gpu_check import H200_PROPS, load_kernels

T, L = 128, 4


def rows(kernels, cells=("tanh", "gru", "lstm"), hiddens=(256, 1024), batches=(1, 8, 32, 256)):
    """(cell, H, B, direction, exact plan, tensor-core plan or None) for the table."""
    out = []
    for cell in cells:
        for H in hiddens:
            for B in batches:
                for direction in ("forward", "backward"):
                    args = (B, T, H, H, L, "float32", direction, "auto", H200_PROPS)
                    exact = kernels.plan(*args, cell=cell, allow_tf32=False)
                    tc = kernels.plan(*args, cell=cell, allow_tf32=True)
                    out.append((cell, H, B, direction, exact, tc if tc["tensor_cores"] else None))
    return out


def _tile(p):
    return f"{p['tile']}{'+chip' if p['weights_on_chip'] else ''} {p['schedule'][:4]}"


def markdown(kernels):
    lines = ["| cell | H | B | pass | scalar tile | products | staging | step | sequence | x floor | TC products "
             "| TC staging | TC step | TC sequence | TC x floor |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for cell, H, B, direction, exact, tc in rows(kernels):
        e = exact["cost"]
        line = (f"| {cell} | {H} | {B} | {direction[:3]} | {_tile(exact)} | {e['products_us']:.2f} | "
                f"{e['staging_us']:.2f} | {e['step_us']:.2f} | {e['sequence_us']:.0f} | {e['x_floor']:.1f} |")
        if tc is None:
            line += " - | - | - | - | - |"
        else:
            c = tc["cost"]
            line += (f" {c['products_us']:.2f} | {c['staging_us']:.2f} | {c['step_us']:.2f} | "
                     f"{c['sequence_us']:.0f} | {c['x_floor']:.1f} |")
        lines.append(line)
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels", default=None, help="a _kernels module to load (default: deeprnn_fast._kernels)")
    args = ap.parse_args(argv)
    print(markdown(load_kernels(args.kernels)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
