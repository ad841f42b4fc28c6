"""Takes an MSAL lock file the way another SDK does, for the interop tests in ../lock.rs.

    msal_lock.py hold VARIANT LOCKFILE SECONDS
        Takes the lock once, holds it SECONDS, releases it.
    msal_lock.py nest VARIANT LOCKFILE LOGFILE COUNT
        COUNT times: takes the lock, appends "< PID" and "> PID" lines to LOGFILE with a
        short sleep in between, releases it, pauses.

VARIANT:
    portalocker  msal_extensions.cache_lock.CrossPlatLock (O_EXCL for up to 5 s, then the
                 OS lock through portalocker; what msal-extensions uses when portalocker
                 is installed)
    filelock     msal_extensions.filelock.CrossPlatLock (O_EXCL only; the fallback
                 without portalocker)
    node         the protocol of MSAL Node's CrossPlatformLock, emulated: open "wx+"
                 (O_CREAT|O_EXCL), write the pid, retry every 50 ms (azure-identity's
                 retryDelay), unlink on release; no OS lock

Every event is printed as "EVENT NANOSECONDS" (time.time_ns()), flushed at once.
"""
import contextlib
import errno
import os
import sys
import time


def report(event):
    print("{} {}".format(event, time.time_ns()), flush=True)


@contextlib.contextmanager
def node_lock(path, retries=100, delay=0.05):
    for _ in range(retries):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o666)
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.EPERM):
                time.sleep(delay)
                continue
            raise
        os.write(fd, str(os.getpid()).encode())
        try:
            yield
        finally:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            os.close(fd)
        return
    raise RuntimeError("CrossPlatformLockError: Not able to acquire lock")


def lock_for(variant, path):
    if variant == "portalocker":
        from msal_extensions.cache_lock import CrossPlatLock
        return CrossPlatLock(path)
    if variant == "filelock":
        from msal_extensions.filelock import CrossPlatLock
        return CrossPlatLock(path)
    if variant == "node":
        return node_lock(path)
    raise SystemExit("unknown variant " + variant)


def hold(variant, path, seconds):
    lock = lock_for(variant, path)  # imports msal first: that takes a while
    report("waiting")
    with lock:
        report("acquired")
        time.sleep(seconds)
        report("releasing")
    report("released")


def nest(variant, path, log, count):
    pid = os.getpid()
    lock_for(variant, path)  # import before the loop
    for _ in range(count):
        with lock_for(variant, path):
            with open(log, "a") as f:
                f.write("< {}\n".format(pid))
            time.sleep(0.005)
            with open(log, "a") as f:
                f.write("> {}\n".format(pid))
        time.sleep(0.01)
    report("finished")


def main(argv):
    if argv[1] == "hold":
        hold(argv[2], argv[3], float(argv[4]))
    elif argv[1] == "nest":
        nest(argv[2], argv[3], argv[4], int(argv[5]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
