"""Printing and writing the results of tools/bench_models.py: a line per workload, a dated
markdown table under docs/ and a bar plot of the ratios (when matplotlib is importable)."""

from __future__ import annotations

import datetime
import os


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def format_row(row: dict) -> str:
    m, x, c = row["metal"], row["mlx"], row["cpu"]
    peak = row["peak"]
    mem = f"{peak['metal'] / peak['mlx']:.2f}" if peak["mlx"] > 0 else "n/a"
    losses = ", ".join(f"{k} {v:.5g}" for k, v in row["loss"].items())
    return (f"{row['name']}: metal {m * 1e3:.1f} ms, mlx {x * 1e3:.1f} ms, cpu {c * 1e3:.1f} ms;"
            f" metal/mlx {m / x:.2f}, cpu/mlx {c / x:.2f}; step memory metal "
            f"{_mb(peak['metal'])}, mlx {_mb(peak['mlx'])} (ratio {mem}); first loss {losses}")


def _plot(rows: list[dict], path: str) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot"
    names = [r["name"].split(",")[0] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.8 + 0.7 * len(rows)))
    ys = range(len(rows))
    ax.barh([y + 0.2 for y in ys], [r["metal"] / r["mlx"] for r in rows], 0.4,
            label="JAX on metal / native MLX")
    ax.barh([y - 0.2 for y in ys], [r["cpu"] / r["mlx"] for r in rows], 0.4,
            label="JAX on XLA:CPU / native MLX")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.axvline(1.05, color="r", lw=0.8, ls="--", label="target 1.05")
    ax.set_yticks(list(ys), names)
    ax.set_xlabel("step time relative to native MLX (lower is faster)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return f"plot: {path}"


def write_report(args, header: str, rows: list[dict], notes: list[str],
                 argv: list[str]) -> None:
    day = datetime.date.today().isoformat()
    suffix = "" if args.device == "cpu" else f"-{args.device}"
    md = os.path.join(args.out, f"bench-{day}{suffix}.md")
    png = os.path.join(args.out, f"bench-{day}{suffix}.png")
    os.makedirs(args.out, exist_ok=True)
    plot = _plot(rows, png) if rows else "no training workloads run: no plot"
    lines = [f"# Benchmarks, {day}", "",
             "Command (repository root):", "", "```sh",
             "python tools/bench_models.py " + " ".join(argv), "```", "",
             header, "",
             "Step time is the median over repeats of one training step, waited for; the three "
             "contenders alternate within the run. 'metal' = JAX on our plugin, 'mlx' = the "
             "same model in native MLX under mx.compile, 'cpu' = JAX on XLA:CPU. Step memory = "
             "MLX's peak memory during one step minus the memory held before it.", "",
             "| workload | metal | native MLX | XLA:CPU | metal / MLX | CPU / MLX "
             "| step memory metal | step memory MLX | memory ratio |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        peak = r["peak"]
        ratio = f"{peak['metal'] / peak['mlx']:.2f}" if peak["mlx"] > 0 else "n/a"
        lines.append(f"| {r['name']} | {r['metal'] * 1e3:.1f} ms | {r['mlx'] * 1e3:.1f} ms | "
                     f"{r['cpu'] * 1e3:.1f} ms | {r['metal'] / r['mlx']:.2f} | "
                     f"{r['cpu'] / r['mlx']:.2f} | {_mb(peak['metal'])} | {_mb(peak['mlx'])} "
                     f"| {ratio} |")
    lines += ["", "First-step losses (the same parameters and data go to all three):", ""]
    lines += [f"- {r['name']}: " + ", ".join(f"{k} {v:.6g}" for k, v in r["loss"].items())
              for r in rows]
    lines += ["", "Other measurements:", ""] + [f"- {n}" for n in notes] + ["", plot, ""]
    with open(md, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {md}; {plot}")
