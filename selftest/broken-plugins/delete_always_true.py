#!/usr/bin/env python3
"""The example file plugin, except that delete answers true also when nothing was stored.

RULE = "delete answers false when nothing was stored"
EXPECTED_CASE = "contract::delete_absent_is_false"
"""

import _base

plugin = _base.load_example()


class DeleteAlwaysTrue(plugin.FilePlugin):
    def delete(self):
        super().delete()
        return True


if __name__ == "__main__":
    _base.run(plugin, DeleteAlwaysTrue)
