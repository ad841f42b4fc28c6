#!/usr/bin/env python3
"""The example file plugin, except that a save that fails answers success anyway, as a
plugin that catches and logs I/O errors instead of reporting them.

RULE = "a save the OS refuses fails with AccessDenied"
EXPECTED_CASE = "faults::access_denied_kind"
ALSO = "faults::storage_unavailable_kind, faults::disk_full_kind"
"""

import _base

plugin = _base.load_example()


class SwallowsSaveErrors(plugin.FilePlugin):
    def save(self, data):
        try:
            super().save(data)
        except plugin.PluginError as err:
            plugin.log("save failed, ignored: %s" % err.kind)


if __name__ == "__main__":
    _base.run(plugin, SwallowsSaveErrors)
