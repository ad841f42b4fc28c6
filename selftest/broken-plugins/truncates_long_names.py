#!/usr/bin/env python3
"""The example file plugin, except that it keeps a cache (and its lock) under the first 64
bytes of its name, as a store with a short key or attribute limit might.

RULE = "two names in one directory are two caches, also when they differ only in their last byte"
EXPECTED_CASE = "names::long_common_prefix_isolated"
"""

import os

import _base

plugin = _base.load_example()


class TruncatesLongNames(plugin.FilePlugin):
    def __init__(self, directory, name):
        super().__init__(directory, name)
        self.path = os.path.join(directory, name[:64])
        self.lock_path = self.path + plugin.LOCK_SUFFIX


if __name__ == "__main__":
    _base.run(plugin, TruncatesLongNames)
