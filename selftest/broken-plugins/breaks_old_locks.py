#!/usr/bin/env python3
"""The example file plugin, except that a waiter that has waited 3 s takes the lock anyway
(flock on a fresh file after unlinking the old one), whether its holder lives or not: the
way MSAL Python's portalocker variant enters after 5 s.

RULE = "a live process holding the lock keeps it however long another waits"
EXPECTED_CASE = "lock::live_holder_kept_through_long_wait"
"""

import fcntl
import os
import time

import _base

plugin = _base.load_example()

GIVE_UP_AFTER = 3.0


class BreaksOldLocks(plugin.FilePlugin):
    def lock(self, wait_ms):
        started = time.monotonic()
        while True:
            remaining_ms = wait_ms - (time.monotonic() - started) * 1000
            try:
                return super().lock(max(0, min(remaining_ms, GIVE_UP_AFTER * 1000)))
            except plugin.PluginError as err:
                if err.kind != "lock_timeout" or remaining_ms <= GIVE_UP_AFTER * 1000:
                    raise
            # Waited long enough: the holder "must be stuck". Replace its lock file.
            try:
                os.unlink(self.lock_path)
            except FileNotFoundError:
                pass


if __name__ == "__main__":
    _base.run(plugin, BreaksOldLocks)
