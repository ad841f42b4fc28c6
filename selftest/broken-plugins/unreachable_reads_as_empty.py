#!/usr/bin/env python3
"""The example file plugin, except that a load while its directory cannot be reached
answers "nothing stored" instead of an error.

RULE = "a load while the storage cannot be reached fails with StorageUnavailable (never None: the caller would take the cache for empty)"
EXPECTED_CASE = "faults::storage_unavailable_load_kind"
"""

import _base

plugin = _base.load_example()


class UnreachableReadsAsEmpty(plugin.FilePlugin):
    def load(self):
        try:
            return super().load()
        except plugin.PluginError as err:
            if err.kind == "storage_unavailable":
                return None
            raise


if __name__ == "__main__":
    _base.run(plugin, UnreachableReadsAsEmpty)
