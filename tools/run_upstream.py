"""Runs JAX's own upstream test files against the 'metal' platform and reports pass rates.

    git -C <jax mirror> archive jax-v0.10.2 tests | tar -x -C /tmp/jax-upstream
    python tools/run_upstream.py --tests /tmp/jax-upstream/tests [--cases 1] [--budget 900]

One process per file (a crash loses one file, and is reported as such), JAX_PLATFORMS=metal,cpu
(a CPU device exists for tests that need one), JUnit XML parsed into a per-file table:
passed, failed, errors, skipped, rate = passed / (passed + failed + errors). The report is
written to docs/upstream-<date>.md. The tests are never patched and no failure is re-labelled.
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

CORE_FILES = [
    "lax_test", "lax_numpy_test", "lax_numpy_operators_test", "lax_numpy_reducers_test",
    "lax_numpy_indexing_test", "lax_numpy_einsum_test", "lax_numpy_setops_test",
    "lax_numpy_ufuncs_test", "lax_control_flow_test", "lax_autodiff_test", "lax_vmap_test",
    "lax_vmap_op_test", "random_lax_test", "linalg_test", "fft_test", "lax_scipy_test",
    "lax_scipy_special_functions_test", "scipy_signal_test", "scipy_ndimage_test",
    "scipy_stats_test", "nn_test", "image_test", "dtypes_test", "polynomial_test",
    "custom_linear_solve_test", "custom_root_test", "ode_test", "batching_test", "api_test",
]


@dataclass
class FileResult:
    name: str
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    status: str = "ok"  # ok, crashed (signal N), timed out, no report
    failures: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        total = self.passed + self.failed + self.errors
        return self.passed / total if total else 0.0


def parse_junit(path: Path, result: FileResult) -> None:
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}.{case.get('name', '')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            if problem.tag == "failure":
                result.failed += 1
            else:
                result.errors += 1
            cause = " ".join((problem.get("message") or "").split())[:160]
            result.failures.append(f"{name} — {cause}")
        elif case.find("skipped") is not None:
            result.skipped += 1
        else:
            result.passed += 1


def run_file(tests: Path, name: str, cases: int, budget: int, out: Path) -> FileResult:
    result = FileResult(name)
    xml = out / f"{name}.xml"
    env = dict(os.environ, JAX_PLATFORMS="metal,cpu", JAX_NUM_GENERATED_CASES=str(cases))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
           str(tests / f"{name}.py")]
    xml.unlink(missing_ok=True)  # never parse a previous run's report
    log = open(out / f"{name}.log", "w")
    proc = subprocess.Popen(cmd, env=env, cwd=tests.parent, stdout=log, stderr=subprocess.STDOUT)
    try:
        if proc.wait(timeout=budget) < 0:
            result.status = f"crashed (signal {-proc.returncode})"
    except subprocess.TimeoutExpired:
        # SIGINT lets pytest finish the session and write the cases it completed to the XML.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        result.status = f"timed out after {budget}s"
    log.close()
    if xml.exists():
        parse_junit(xml, result)
    elif result.status == "ok":
        result.status = "no report"
    return result


def _collected(folder: Path, name: str) -> FileResult:
    """A file's result from a JUnit file pytest finished writing (pytest writes it at the end
    of the session, so a file still running has none)."""
    result = FileResult(name)
    xml = folder / f"{name}.xml"
    if xml.exists():
        parse_junit(xml, result)
    else:
        result.status = "not completed"
    return result


def report(results: list[FileResult], cases: int) -> str:
    lines = [f"# JAX upstream tests on 'metal' ({datetime.date.today()})", "",
             f"JAX_NUM_GENERATED_CASES={cases}; JAX_PLATFORMS=metal,cpu; command: "
             f"`python tools/run_upstream.py --tests <jax tests> --cases {cases}`", "",
             "| file | passed | failed | errors | skipped | rate | status |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        lines.append(f"| {r.name} | {r.passed} | {r.failed} | {r.errors} | {r.skipped} | "
                     f"{r.rate:.2%} | {r.status} |")
    total = FileResult("total")
    for r in results:
        total.passed += r.passed
        total.failed += r.failed
        total.errors += r.errors
        total.skipped += r.skipped
    lines.append(f"| **total** | {total.passed} | {total.failed} | {total.errors} | "
                 f"{total.skipped} | {total.rate:.2%} | |")
    causes: dict[str, int] = {}
    for r in results:
        for f in r.failures:
            cause = f.split(" — ", 1)[-1][:90]
            causes[cause] = causes.get(cause, 0) + 1
    lines += ["", "## Causes (first 90 characters of the message, by count)", ""]
    lines += [f"- {n} × {c}" for c, n in sorted(causes.items(), key=lambda kv: -kv[1])]
    lines += ["", "## Failures", ""]
    for r in results:
        for f in r.failures:
            lines.append(f"- {r.name}: {f}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=Path, required=True, help="jax's tests/ folder")
    parser.add_argument("--files", nargs="*", default=CORE_FILES)
    parser.add_argument("--cases", type=int, default=1)
    parser.add_argument("--budget", type=int, default=900, help="seconds per file")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--jobs", type=int, default=1, help="files run at once")
    parser.add_argument("--from-xml", type=Path,
                        help="write the report from a run's JUnit files in this folder (a run "
                             "still going, or one that was stopped) instead of running; files "
                             "without one are listed as not completed")
    args = parser.parse_args()
    results = [_collected(args.from_xml, name) for name in args.files] if args.from_xml \
        else _run(args)
    args.out.mkdir(exist_ok=True)
    path = args.out / f"upstream-{datetime.date.today()}.md"
    path.write_text(report(results, args.cases))
    print(f"report: {path}")


def _run(args: argparse.Namespace) -> list[FileResult]:
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "xla-metal-upstream"
    work.mkdir(parents=True, exist_ok=True)

    def run_one(name: str) -> FileResult:
        r = run_file(args.tests.resolve(), name, args.cases, args.budget, work)
        print(f"{name:36s} {r.passed:6d} passed {r.failed:5d} failed {r.errors:5d} errors "
              f"{r.skipped:5d} skipped  {r.rate:7.2%}  {r.status}", flush=True)
        return r

    # Files are independent processes; --jobs runs several at once (results keep file order).
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        return list(pool.map(run_one, args.files))

if __name__ == "__main__":
    main()
