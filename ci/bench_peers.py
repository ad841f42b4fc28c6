#!/usr/bin/env python3
"""The peer of this project's benchmarks: Python msal-extensions, on the operations
`ci/bench.sh` measures for us, in the same run, so that BENCHMARKS.md and the README
can give ratios.

    bench_peers.py DIR

Run with the python of a venv that has `msal-extensions[portalocker]` (ci/bench.sh
makes a throwaway one); DIR is a scratch directory. Prints one `METRIC peer.<name> <value>`
line per figure (nanoseconds, or a count), which ci/bench_report.py reads from the log,
and a readable `RESULT` line per operation.

What is measured, with msal-extensions' own classes:
- save / load: `msal_extensions.persistence.FilePersistence` with 2 KiB, 100 KiB and
  1 MiB of text (a truncate-and-write: neither atomic nor durable, where ours writes a
  temporary file, fsyncs it and renames it);
- lock + unlock, uncontended: `msal_extensions.cache_lock.CrossPlatLock` (portalocker,
  the variant used whenever portalocker is installed) and `msal_extensions.filelock`;
- hand-off: a process waits in `CrossPlatLock` while another holds it; the time from the
  holder's release to the waiter's return (both poll every 0.25 s);
- read-modify-write: 4 processes incrementing a counter in the cache file under
  `CrossPlatLock` against 1 process doing as many; throughput, longest wait, and the
  updates lost (portalocker's variant goes ahead after 5 s of waiting, whoever holds
  the lock).
"""
import os
import subprocess
import sys
import time

SIZES = ((2 * 1024, "2KiB"), (100 * 1024, "100KiB"), (1024 * 1024, "1MiB"))
HANDOFF_ROUNDS = 20
# Each waiter polls every 0.25 s, so few increments already take seconds.
RMW_TOTAL = 100
RMW_PROCESSES = 4


def metric(name, value):
    print("METRIC peer.{} {}".format(name, value), flush=True)


def mean_ns(fn, seconds=2.0, min_runs=20):
    """Mean time of fn() in ns, over at least `seconds` after a warm-up."""
    for _ in range(5):
        fn()
    runs, start = 0, time.perf_counter_ns()
    while runs < min_runs or time.perf_counter_ns() - start < seconds * 1e9:
        fn()
        runs += 1
    return (time.perf_counter_ns() - start) / runs


def lock_for(variant, path):
    if variant == "portalocker":
        from msal_extensions.cache_lock import CrossPlatLock
    else:
        from msal_extensions.filelock import CrossPlatLock
    return CrossPlatLock(path)


def save_load(scratch):
    from msal_extensions.persistence import FilePersistence

    for size, label in SIZES:
        persistence = FilePersistence(os.path.join(scratch, "save-" + label + ".cache"))
        content = "x" * size
        save = mean_ns(lambda: persistence.save(content))
        load = mean_ns(persistence.load)
        metric("save." + label, round(save))
        metric("load." + label, round(load))
        print("RESULT peer msal-extensions FilePersistence {}: save {:.1f} µs, load {:.1f} µs".format(
            label, save / 1e3, load / 1e3), flush=True)


def lock_unlock(scratch):
    for variant in ("portalocker", "filelock"):
        path = os.path.join(scratch, "uncontended-" + variant + ".lockfile")

        def once():
            with lock_for(variant, path):
                pass

        ns = mean_ns(once)
        metric("lock." + variant, round(ns))
        print("RESULT peer msal-extensions CrossPlatLock ({}) lock + unlock: {:.1f} µs".format(
            variant, ns / 1e3), flush=True)


def percentile(values, p):
    """The p-th percentile, as the Rust benches take it (100: the maximum)."""
    ordered = sorted(values)
    return ordered[-(-(len(ordered) - 1) * p // 100)]


def handoff(scratch):
    """The parent holds; a child process waits and reports when it got the lock."""
    path = os.path.join(scratch, "handoff.lockfile")
    child = subprocess.Popen(
        [sys.executable, __file__, "--handoff-waiter", path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    latencies = []
    for _ in range(HANDOFF_ROUNDS):
        with lock_for("portalocker", path):
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "waiting"
            # Let the waiter find the lock taken and start polling.
            time.sleep(0.02)
            released = time.time_ns()
        acquired = int(child.stdout.readline())
        latencies.append(acquired - released)
    child.stdin.close()
    child.wait()
    median, p99 = percentile(latencies, 50), percentile(latencies, 99)
    metric("handoff.median_ns", median)
    metric("handoff.p99_ns", p99)
    print("RESULT peer msal-extensions CrossPlatLock (portalocker) hand-off between two processes "
          "({} rounds): median {:.1f} ms, p99 {:.1f} ms".format(HANDOFF_ROUNDS, median / 1e6, p99 / 1e6),
          flush=True)


def handoff_waiter(path):
    for line in sys.stdin:
        if line.strip() != "go":
            break
        lock = lock_for("portalocker", path)
        print("waiting", flush=True)
        with lock:
            acquired = time.time_ns()
        print(acquired, flush=True)


def rmw_run(scratch, processes):
    cache = os.path.join(scratch, "rmw-{}.cache".format(processes))
    with open(cache, "w") as f:
        f.write("0")
    for stale in (cache + ".lockfile",):
        if os.path.exists(stale):
            os.remove(stale)
    workers = [subprocess.Popen(
        [sys.executable, __file__, "--rmw-worker", cache, str(RMW_TOTAL // processes)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(processes)]
    waits, starts, ends = [], [], []
    for worker in workers:
        out, _ = worker.communicate()
        span, wait_line = out.split("\n", 1)
        start, end = span.split()
        starts.append(int(start))
        ends.append(int(end))
        waits += [int(w) for w in wait_line.split()]
    # From the first worker's first increment to the last one's last: Python's start-up
    # (about 0.1 s per process) is not the lock's.
    elapsed = (max(ends) - min(starts)) / 1e9
    with open(cache) as f:
        total = int(f.read() or 0)
    return RMW_TOTAL / elapsed, max(waits), RMW_TOTAL - total


def rmw(scratch):
    one_rate, one_wait, one_lost = rmw_run(scratch, 1)
    four_rate, four_wait, four_lost = rmw_run(scratch, RMW_PROCESSES)
    metric("rmw.one_per_s", round(one_rate, 1))
    metric("rmw.four_per_s", round(four_rate, 1))
    metric("rmw.ratio", round(four_rate / one_rate, 3))
    metric("rmw.longest_wait_ns", four_wait)
    metric("rmw.lost", one_lost + four_lost)
    print("RESULT peer msal-extensions read-modify-write under CrossPlatLock (portalocker), {} increments: "
          "1 process {:.0f}/s, {} processes {:.0f}/s (ratio {:.2f}), longest wait {:.0f} ms, lost updates {}".format(
              RMW_TOTAL, one_rate, RMW_PROCESSES, four_rate, four_rate / one_rate, four_wait / 1e6,
              one_lost + four_lost), flush=True)


def rmw_worker(cache, count):
    """`count` increments; prints its start and end (ns, a clock all processes share),
    then every wait for the lock in ns."""
    from msal_extensions.persistence import FilePersistence

    persistence = FilePersistence(cache)
    lock_path = cache + ".lockfile"
    waits = []
    start = time.monotonic_ns()
    for _ in range(count):
        asked = time.monotonic_ns()
        with lock_for("portalocker", lock_path):
            waits.append(time.monotonic_ns() - asked)
            persistence.save(str(int(persistence.load()) + 1))
    print(start, time.monotonic_ns())
    print(" ".join(str(w) for w in waits), flush=True)


def main(argv):
    if argv[1] == "--handoff-waiter":
        handoff_waiter(argv[2])
        return 0
    if argv[1] == "--rmw-worker":
        rmw_worker(argv[2], int(argv[3]))
        return 0
    scratch = argv[1]
    os.makedirs(scratch, exist_ok=True)
    import msal_extensions
    print("RESULT peer: msal-extensions {} on Python {}".format(
        msal_extensions.__version__, sys.version.split()[0]), flush=True)
    save_load(scratch)
    lock_unlock(scratch)
    handoff(scratch)
    rmw(scratch)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
