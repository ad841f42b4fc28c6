#!/usr/bin/env python3
"""The example file plugin, except that lock grants every request at once: a no-op.

RULE = "while one handle holds the lock, no other handle gets it"
EXPECTED_CASE = "lock::excludes_other_handle"
"""

import _base

plugin = _base.load_example()


class NoOpLock(plugin.FilePlugin):
    def lock(self, wait_ms):
        lock_id = "L%d" % self.next_lock
        self.next_lock += 1
        self.locks[lock_id] = None
        return lock_id

    def unlock(self, lock_id):
        if self.locks.pop(lock_id, 0) == 0:
            raise plugin.PluginError("other", "no lock with id %r is held" % lock_id[:64])

    def release_all(self):
        self.locks.clear()


if __name__ == "__main__":
    _base.run(plugin, NoOpLock)
