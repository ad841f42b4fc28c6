#!/usr/bin/env python3
"""The example file plugin, except that a save removes the old cache file before it
writes the new one, so a save that then fails has lost the stored cache.

RULE = "a save that failed on a full disk loses nothing stored"
EXPECTED_CASE = "faults::disk_full_keeps_blob"
"""

import os

import _base

plugin = _base.load_example()


class UnlinksBeforeSave(plugin.FilePlugin):
    def save(self, data):
        try:
            os.unlink(self.path)
        except OSError:
            pass
        super().save(data)


if __name__ == "__main__":
    _base.run(plugin, UnlinksBeforeSave)
