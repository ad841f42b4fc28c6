#!/usr/bin/env python3
"""Writes BENCHMARKS.md from criterion's estimates and the bench log.

Convention: in each criterion group, benchmark ids whose function name starts with
"baseline" (or names the reference tool, "secret-tool ...") are baselines; every other benchmark is compared with the baselines of the
same parameter (e.g. save/FilePersistence/2KiB against save/baseline/2KiB). Lines of the
bench log that start with "RESULT " or "lock_contention/summary" (printed by the
non-criterion benches, such as the multi-process contention runs) are copied as they are.
"""
import json
import pathlib
import platform
import subprocess
import sys


BASELINE_PREFIXES = ("baseline", "secret-tool")


def mean_ns(bench_dir: pathlib.Path) -> float:
    estimates = json.loads((bench_dir / "new" / "estimates.json").read_text())
    return estimates["mean"]["point_estimate"]


def benchmarks(criterion: pathlib.Path):
    """(group, function, parameter, mean ns) for every benchmark criterion recorded."""
    for benchmark_json in sorted(criterion.glob("**/new/benchmark.json")):
        meta = json.loads(benchmark_json.read_text())
        yield (
            meta["group_id"],
            meta.get("function_id") or "",
            meta.get("value_str") or "",
            mean_ns(benchmark_json.parent.parent),
        )


def fmt(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    cores = len(__import__("os").sched_getaffinity(0))
    return f"{platform.system()} {platform.release()} {platform.machine()}, {cores} cores, {cpu}; {rustc}"


def main() -> int:
    criterion = pathlib.Path(sys.argv[1])
    log = pathlib.Path(sys.argv[2]).read_text(errors="replace") if len(sys.argv) > 2 else ""
    rows = list(benchmarks(criterion))
    baselines = {(g, p): [] for g, _, p, _ in rows}
    for g, f, p, ns in rows:
        if f.startswith(BASELINE_PREFIXES):
            baselines[(g, p)].append((f, ns))
    out = [
        "# Benchmarks",
        "",
        f"Measured on: {machine()}.",
        "",
        "Produced by `ci/bench.sh` (`cargo bench -p identity-cache-persistence`). Every",
        "figure is compared with a baseline measured in the same run; the ratio is what",
        "carries over to other machines, the absolute times do not.",
        "",
        "| group | benchmark | parameter | mean | baseline | baseline mean | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for g, f, p, ns in rows:
        if f.startswith(BASELINE_PREFIXES):
            continue
        for base_name, base_ns in baselines.get((g, p), []) or [("—", None)]:
            ratio = f"{ns / base_ns:.2f}x" if base_ns else "—"
            base = fmt(base_ns) if base_ns else "—"
            out.append(f"| {g} | {f} | {p} | {fmt(ns)} | {base_name} | {base} | {ratio} |")
    results = [
        line.removeprefix("RESULT ")
        for line in log.splitlines()
        if line.startswith(("RESULT ", "lock_contention/summary"))
    ]
    if results:
        out += ["", "## Multi-process and whole-suite runs", ""]
        out += [f"- {r}" for r in results]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
