#!/usr/bin/env python3
"""The example file plugin, except that its lock is fcntl.lockf (a POSIX record lock) instead
of flock. A POSIX lock belongs to the process, not to the open file: it excludes other
processes, but a second handle in the same process takes it again (and closing any
descriptor of the file drops it). With one process per handle only lock::not_reentrant
noticed (one handle locking twice); with two handles in one process (`handles`), the cases
of in-process exclusion catch it.

RULE = "while one handle holds the lock, no other handle gets it"
EXPECTED_CASE = "lock::excludes_other_handle"
ALSO = "lock::excludes_across_threads, lock::waiter_enters_after_release, lock::not_reentrant"
"""

import fcntl
import os
import threading
import time

import _base

plugin = _base.load_example()
ids = threading.Lock()


class LockfPerProcess(plugin.FilePlugin):
    def lock(self, wait_ms):
        self._make_dir()
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise plugin.os_error("open lock file", self.lock_path, err)
        deadline = time.monotonic() + wait_ms / 1000.0
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise plugin.PluginError("lock_timeout", "waited %d ms" % wait_ms)
                time.sleep(0.001)
        with ids:
            lock_id = "L%d" % self.next_lock
            self.next_lock += 1
            self.locks[lock_id] = fd
        return lock_id


if __name__ == "__main__":
    _base.run(plugin, LockfPerProcess)
