#!/usr/bin/env python3
"""The example file plugin, except that the lock is a lock file created with O_EXCL and
removed on unlock: it names no holder, and nothing recovers it when the holder dies.

RULE = "the lock of a killed holder is free again within the recovery bound"
EXPECTED_CASE = "crash::killed_holder_frees_lock"
"""

import os
import time

import _base

plugin = _base.load_example()


class LockWithoutRecovery(plugin.FilePlugin):
    def lock(self, wait_ms):
        self._make_dir()
        deadline = time.monotonic() + wait_ms / 1000.0
        while True:
            try:
                os.close(os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                break
            except FileExistsError:
                pass
            except OSError as err:
                raise plugin.os_error("create lock file", self.lock_path, err)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise plugin.PluginError(
                    "lock_timeout", "waited %d ms for the lock %s" % (wait_ms, self.lock_path)
                )
            time.sleep(min(0.005, remaining))
        lock_id = "L%d" % self.next_lock
        self.next_lock += 1
        self.locks[lock_id] = None
        return lock_id

    def unlock(self, lock_id):
        if lock_id not in self.locks:
            raise plugin.PluginError("other", "no lock with id %r is held" % lock_id[:64])
        del self.locks[lock_id]
        os.unlink(self.lock_path)

    def release_all(self):
        for lock_id in list(self.locks):
            self.unlock(lock_id)


if __name__ == "__main__":
    _base.run(plugin, LockWithoutRecovery)
