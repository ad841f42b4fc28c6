#!/usr/bin/env python3
"""The example file plugin, except that the lock's deadline is a datetime, now plus a
timedelta of the wait: the largest wait (the suite's Duration::MAX, "no deadline") does
not fit in a timedelta, and the request fails with OverflowError.

RULE = "a wait too long to add to the clock has no deadline"
EXPECTED_CASE = "lock::unbounded_wait_enters_after_release"
"""

import datetime

import _base

plugin = _base.load_example()


class DeadlineAsDatetime(plugin.FilePlugin):
    def lock(self, wait_ms):
        deadline = datetime.datetime.now() + datetime.timedelta(milliseconds=wait_ms)
        left = deadline - datetime.datetime.now()
        return super().lock(max(0, left // datetime.timedelta(milliseconds=1)))


if __name__ == "__main__":
    _base.run(plugin, DeadlineAsDatetime)
