#!/usr/bin/env python3
"""The example file plugin, except that save writes a debug line with the blob to stderr.

RULE = "nothing the plugin logs (a plugin process's stderr) contains the blob"
EXPECTED_CASE = "security::blob_not_in_logs"
"""

import sys

import _base

plugin = _base.load_example()


class LogsBlobToStderr(plugin.FilePlugin):
    def save(self, data):
        print(f"debug: saving {bytes(data)!r}", file=sys.stderr, flush=True)
        return super().save(data)


if __name__ == "__main__":
    _base.run(plugin, LogsBlobToStderr)
