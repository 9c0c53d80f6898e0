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
    t = row["cpu_time"]
    first = ", ".join(f"{k} {v:.2f} s" for k, v in row["first"].items())
    return (f"{row['name']}: metal {m * 1e3:.1f} ms, mlx {x * 1e3:.1f} ms, cpu {c * 1e3:.1f} ms;"
            f" metal/mlx {m / x:.2f}, cpu/mlx {c / x:.2f}; process CPU time metal "
            f"{t['metal'] * 1e3:.1f} ms, mlx {t['mlx'] * 1e3:.1f} ms, cpu {t['cpu'] * 1e3:.1f} ms,"
            f" metal/mlx {t['metal'] / t['mlx']:.2f}; first call {first}; step memory metal "
            f"{_mb(peak['metal'])}, mlx {_mb(peak['mlx'])} (ratio {mem}); first loss {losses}")


def _plot(rows: list[dict], path: str) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot"
    names = [r["name"].split(",")[0] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 1.2 + 0.7 * len(rows)), sharey=True)
    ys = range(len(rows))
    for ax, title, get in ((axes[0], "wall time", lambda r, c: r[c]),
                           (axes[1], "process CPU time", lambda r, c: r["cpu_time"][c])):
        ax.barh([y + 0.2 for y in ys], [get(r, "metal") / get(r, "mlx") for r in rows], 0.4,
                label="JAX on metal / native MLX")
        ax.barh([y - 0.2 for y in ys], [get(r, "cpu") / get(r, "mlx") for r in rows], 0.4,
                label="JAX on XLA:CPU / native MLX")
        ax.axvline(1.0, color="k", lw=0.8)
        ax.axvline(1.05, color="r", lw=0.8, ls="--", label="target 1.05")
        ax.set_title(f"{title} per training step relative to native MLX", fontsize=9)
        ax.set_xlabel("lower is faster")
    axes[0].set_yticks(list(ys), names)
    axes[1].legend(fontsize=8, loc="lower right")
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
             "Step time is the median over repeats of the mean time of a repeat's training "
             "steps (--steps-per-repeat, each waited for); the three contenders alternate "
             "between repeats. 'metal' = JAX on our plugin, 'mlx' = the "
             "same model in native MLX under mx.compile, 'cpu' = JAX on XLA:CPU. Step memory = "
             "MLX's peak memory during one step minus the memory held before it.", "",
             "Wall time (median):", "",
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
    lines += ["", "Process CPU time per step (median; all threads of the process, so less "
              "disturbed by other work on the machine) and first call (compile + run):", "",
              "| workload | metal | native MLX | XLA:CPU | metal / MLX | CPU / MLX "
              "| first call metal | native MLX | XLA:CPU |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        t, f = r["cpu_time"], r["first"]
        lines.append(f"| {r['name']} | {t['metal'] * 1e3:.1f} ms | {t['mlx'] * 1e3:.1f} ms | "
                     f"{t['cpu'] * 1e3:.1f} ms | {t['metal'] / t['mlx']:.2f} | "
                     f"{t['cpu'] / t['mlx']:.2f} | {f['metal']:.2f} s | {f['mlx']:.2f} s | "
                     f"{f['cpu']:.2f} s |")
    lines += ["", "First-step losses (the same parameters and data go to all three):", ""]
    lines += [f"- {r['name']}: " + ", ".join(f"{k} {v:.6g}" for k, v in r["loss"].items())
              for r in rows]
    lines += ["", "Other measurements:", ""] + [f"- {n}" for n in notes] + ["", plot, ""]
    with open(md, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {md}; {plot}")
