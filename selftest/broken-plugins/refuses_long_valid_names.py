#!/usr/bin/env python3
"""The example file plugin, except that it refuses names over 128 bytes as invalid, though
names up to MAX_NAME_LEN (225 bytes) are valid.

RULE = "every valid cache name can be saved, loaded, locked and deleted"
EXPECTED_CASE = "names::every_valid_name_works"
"""

import _base

plugin = _base.load_example()


class RefusesLongValidNames(plugin.FilePlugin):
    def __init__(self, directory, name):
        if len(name.encode("utf-8", "surrogatepass")) > 128:
            raise plugin.PluginError("invalid_name", "names are at most 128 bytes here")
        super().__init__(directory, name)


if __name__ == "__main__":
    _base.run(plugin, RefusesLongValidNames)
