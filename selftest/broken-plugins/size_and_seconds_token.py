#!/usr/bin/env python3
"""The example file plugin, except that the change token is the blob's size and its
modification time in whole seconds.

RULE = "the change token moves on a save of the same size within the same second"
EXPECTED_CASE = "change::moves_on_same_size_saves"
"""

import os

import _base

plugin = _base.load_example()


class SizeAndSecondsToken(plugin.FilePlugin):
    def version(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise plugin.os_error("inspect", self.path, err)
        return "%d:%d" % (st.st_size, int(st.st_mtime))


if __name__ == "__main__":
    _base.run(plugin, SizeAndSecondsToken)
