#!/usr/bin/env python3
"""The example file plugin, except that stored data it cannot read back loads as an
empty cache (None) instead of an error, so the caller would overwrite it.

RULE = "load of stored data that cannot be read back fails with CorruptData"
EXPECTED_CASE = "input::corrupt_is_corrupt_data"
ALSO = "input::corrupt_left_in_place"
"""

import _base

plugin = _base.load_example()


class CorruptReadsAsEmpty(plugin.FilePlugin):
    def load(self):
        try:
            return super().load()
        except plugin.PluginError as err:
            if err.kind == "corrupt_data":
                return None
            raise


if __name__ == "__main__":
    _base.run(plugin, CorruptReadsAsEmpty)
