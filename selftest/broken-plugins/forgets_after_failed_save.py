#!/usr/bin/env python3
"""The example file plugin, except that after a save fails, the handle takes the cache
for gone: its next load answers "nothing stored" although the old cache is still there.

RULE = "a save the OS refused loses nothing stored"
EXPECTED_CASE = "faults::access_denied_keeps_blob"
ALSO = "faults::storage_unavailable_keeps_blob, faults::disk_full_keeps_blob"
"""

import _base

plugin = _base.load_example()


class ForgetsAfterFailedSave(plugin.FilePlugin):
    failed = False

    def save(self, data):
        try:
            super().save(data)
            self.failed = False
        except plugin.PluginError:
            self.failed = True
            raise

    def load(self):
        if self.failed:
            return None
        return super().load()


if __name__ == "__main__":
    _base.run(plugin, ForgetsAfterFailedSave)
