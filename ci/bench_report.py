#!/usr/bin/env python3
"""Writes BENCHMARKS.md from criterion's estimates and the bench log, and with
`--readme README.md` also the README's table of this project against its peer.

Convention: in each criterion group, benchmark ids whose function name starts with
"baseline" (or names the reference tool, "secret-tool ...") are baselines; every other benchmark is compared with the baselines of the
same parameter (e.g. save/FilePersistence/2KiB against save/baseline/2KiB). Lines of the
bench log that start with "RESULT " or "lock_contention/summary" (printed by the
non-criterion benches, such as the multi-process contention runs) are copied as they are.

Lines "METRIC <name> <value>" are figures for the tables: the multi-process benches print
them for us, and ci/bench_peers.py prints them for the peer, Python msal-extensions, as
"METRIC peer.<name> <value>" (nanoseconds unless the name says otherwise). A criterion
benchmark with a peer figure (see PEERS) gets it in the peer columns.
"""
import json
import pathlib
import platform
import subprocess
import sys


BASELINE_PREFIXES = ("baseline", "secret-tool")

# (group, function, parameter) of ours -> (peer metric, what the peer ran).
PEERS = {
    **{
        ("save", "FilePersistence", size): (f"save.{size}", "FilePersistence.save")
        for size in ("2KiB", "100KiB", "1MiB")
    },
    **{
        ("load", "FilePersistence", size): (f"load.{size}", "FilePersistence.load")
        for size in ("2KiB", "100KiB", "1MiB")
    },
    ("lock_uncontended", "file_lock_acquire_release", ""): (
        "lock.portalocker",
        "CrossPlatLock (portalocker)",
    ),
}

# Marks around the generated table in the README.
README_START = "<!-- bench-peers:start -->"
README_END = "<!-- bench-peers:end -->"


def metrics(log: str) -> dict:
    """The METRIC lines of the log, by name (the last one wins)."""
    found = {}
    for line in log.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "METRIC":
            try:
                found[parts[1]] = float(parts[2])
            except ValueError:
                pass
    return found


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


def fmt_ratio(ratio: float) -> str:
    """Two decimals, or two significant digits for ratios far below 1."""
    return f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.2g}"


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


def mean_of(rows, group, function, parameter=""):
    for g, f, p, ns in rows:
        if (g, f, p) == (group, function, parameter):
            return ns
    return None


def targets(rows, found) -> list:
    """The lock's targets (issue #18), each met or not, from this run."""
    lock = mean_of(rows, "lock_uncontended", "file_lock_acquire_release")
    excl = mean_of(rows, "lock_uncontended", "baseline_excl_create_unlink")
    checks = []
    if lock and excl:
        checks.append((f"uncontended acquire + release {fmt_ratio(lock / excl)}x of O_EXCL create + unlink", lock / excl <= 1.3, "<= 1.3x"))
    hm, hp = found.get("handoff.ours.median_ns"), found.get("handoff.ours.p99_ns")
    fm, fp = found.get("handoff.flock.median_ns"), found.get("handoff.flock.p99_ns")
    if hm and fm:
        checks.append((f"hand-off median {fmt_ratio(hm / fm)}x of blocking flock ({fmt(hm)} / {fmt(fm)})", hm / fm <= 3, "<= 3x"))
    if hp and fp:
        checks.append((f"hand-off p99 {fmt_ratio(hp / fp)}x of blocking flock ({fmt(hp)} / {fmt(fp)})", hp / fp <= 5, "<= 5x"))
    ratio = found.get("rmw.ratio")
    if ratio is not None:
        baseline = found.get("rmw.flock_ratio")
        same_run = f"; a blocking flock around the same load and save: {baseline:.2f}" if baseline is not None else ""
        checks.append((f"4 processes reach {ratio:.2f} of one process (read-modify-write, median round{same_run})", ratio >= 0.9, ">= 0.90"))
    wait = found.get("rmw.longest_wait_ns")
    if wait is not None:
        checks.append((f"longest wait for the lock {fmt(wait)} (all rounds)", wait <= 50e6, "<= 50 ms"))
    lost = found.get("rmw.lost")
    if lost is not None:
        checks.append((f"{lost:.0f} lost updates", lost == 0, "0"))
    if not checks:
        return []
    out = ["## The lock's targets in this run", "", "| figure | target | met |", "|---|---|---|"]
    out += [f"| {text} | {target} | {'yes' if ok else '**no**'} |" for text, ok, target in checks]
    cpu, flock_cpu = found.get("rmw.cpu_per_increment_ns"), found.get("rmw.flock_cpu_per_increment_ns")
    if cpu and flock_cpu:
        out += ["", f"Where the 4-process read-modify-write time goes: the workers' CPU time (user + system) per increment "
                f"was {fmt(cpu)} with our lock and {fmt(flock_cpu)} with a blocking flock (median round). A flock waiter "
                "sleeps in the kernel until it gets the lock; ours sleep in an OS lock too (the holder's lock file, or "
                "the ticket of the waiter ahead) but wake to take the lock themselves, look at the line at least every "
                "10 ms, and join and leave it at each hand-off; on a machine with fewer cores than processes that time "
                "is taken from the holder's load and save."]
    return out


def readme_table(rows, found) -> list:
    """This project against msal-extensions, as ratios from this run."""
    lines = [
        README_START,
        "| operation | this project | msal-extensions (Python) | ours / theirs |",
        "|---|---|---|---|",
    ]

    def row(what, ours, theirs, show=fmt, lower_is_better=True):
        if ours is None or theirs is None:
            return
        ratio = ours / theirs if theirs else float("inf")
        lines.append(f"| {what} | {show(ours)} | {show(theirs)} | {fmt_ratio(ratio)}{'' if lower_is_better else ' (higher is better)'} |")

    for size in ("2KiB", "1MiB"):
        row(f"save {size} (ours atomic and fsynced; theirs neither)", mean_of(rows, "save", "FilePersistence", size), found.get(f"peer.save.{size}"))
        row(f"load {size}", mean_of(rows, "load", "FilePersistence", size), found.get(f"peer.load.{size}"))
    lock = mean_of(rows, "lock_uncontended", "file_lock_acquire_release")
    row("lock + unlock, uncontended (theirs: portalocker variant)", lock, found.get("peer.lock.portalocker"))
    row("lock + unlock, uncontended (theirs: filelock variant)", lock, found.get("peer.lock.filelock"))
    row("hand-off between two processes, median", found.get("handoff.ours.median_ns"), found.get("peer.handoff.median_ns"))
    row("hand-off between two processes, p99", found.get("handoff.ours.p99_ns"), found.get("peer.handoff.p99_ns"))
    per_s = lambda v: f"{v:.0f}/s"  # noqa: E731
    row("read-modify-write, 4 processes, increments per second", found.get("rmw.four_per_s"), found.get("peer.rmw.four_per_s"), per_s, False)
    plain = lambda v: f"{v:.2f}"  # noqa: E731
    row("read-modify-write, 4 processes against 1", found.get("rmw.ratio"), found.get("peer.rmw.ratio"), plain, False)
    row("read-modify-write, longest wait for the lock", found.get("rmw.longest_wait_ns"), found.get("peer.rmw.longest_wait_ns"))
    ours_lost, peer_lost = found.get("rmw.lost"), found.get("peer.rmw.lost")
    if ours_lost is not None and peer_lost is not None:
        lines.append(f"| read-modify-write, lost updates | {ours_lost:.0f} | {peer_lost:.0f} | — |")
    lines += ["", f"From one `ci/bench.sh` run on {machine()}; see BENCHMARKS.md.", README_END]
    return lines


def update_readme(readme: pathlib.Path, rows, found) -> None:
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise SystemExit(f"{readme}: no {README_START} ... {README_END} section to replace")
    before, rest = text.split(README_START, 1)
    _, after = rest.split(README_END, 1)
    readme.write_text(before + "\n".join(readme_table(rows, found)) + after)


def main() -> int:
    args = sys.argv[1:]
    readme = None
    if "--readme" in args:
        at = args.index("--readme")
        readme = pathlib.Path(args[at + 1])
        del args[at : at + 2]
    criterion = pathlib.Path(args[0])
    log = pathlib.Path(args[1]).read_text(errors="replace") if len(args) > 1 else ""
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
        "The peer columns are Python `msal-extensions`, measured in the same run by",
        "`ci/bench_peers.py` (see there for what it runs); a ratio below 1 means we are faster.",
        "",
        "| group | benchmark | parameter | mean | baseline | baseline mean | ratio | msal-extensions | ours / peer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    found = metrics(log)
    for g, f, p, ns in rows:
        if f.startswith(BASELINE_PREFIXES):
            continue
        peer_name, _ = PEERS.get((g, f, p), (None, None))
        peer_ns = found.get(f"peer.{peer_name}") if peer_name else None
        peer = fmt(peer_ns) if peer_ns else "—"
        peer_ratio = fmt_ratio(ns / peer_ns) if peer_ns else "—"
        for base_name, base_ns in baselines.get((g, p), []) or [("—", None)]:
            ratio = f"{ns / base_ns:.2f}x" if base_ns else "—"
            base = fmt(base_ns) if base_ns else "—"
            out.append(
                f"| {g} | {f} | {p} | {fmt(ns)} | {base_name} | {base} | {ratio} | {peer} | {peer_ratio} |"
            )
    out += ["", *targets(rows, found)]
    results = [
        line.removeprefix("RESULT ")
        for line in log.splitlines()
        if line.startswith(("RESULT ", "lock_contention/summary"))
    ]
    if results:
        out += ["", "## Multi-process, whole-suite and peer runs", ""]
        out += [f"- {r}" for r in results]
    print("\n".join(out))
    if readme:
        update_readme(readme, rows, found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
