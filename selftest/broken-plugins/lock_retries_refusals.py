#!/usr/bin/env python3
"""The example file plugin, except that any error of its lock (a directory that refuses the
lock file, say) is taken for "someone holds it" and retried until the wait runs out, which
then ends in lock_timeout: the caller goes looking for a holder that does not exist.

RULE = "a request for a free lock that the storage refuses fails with access_denied, not lock_timeout"
EXPECTED_CASE = "faults::refused_lock_is_not_a_timeout"
"""

import time

import _base

plugin = _base.load_example()


class LockRetriesRefusals(plugin.FilePlugin):
    def lock(self, wait_ms):
        deadline = time.monotonic() + wait_ms / 1000.0
        while True:
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            try:
                return super().lock(left_ms)
            except plugin.PluginError as err:
                if err.kind == "lock_timeout":
                    raise
                if left_ms == 0:
                    raise plugin.PluginError(
                        "lock_timeout", "waited %d ms for the lock %s" % (wait_ms, self.lock_path)
                    )
            time.sleep(0.01)


if __name__ == "__main__":
    _base.run(plugin, LockRetriesRefusals)
