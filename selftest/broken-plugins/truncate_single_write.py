#!/usr/bin/env python3
"""The example file plugin, except that save works the way msal-extensions 1.3.1's
FilePersistence.save does: open the blob file with truncation (O_TRUNC, mode 0600), hand
it the whole blob in ONE write, close. No temporary file, no rename, no fsync. (msal writes
a str in text mode; the blobs here are bytes, so binary mode.)

Its torn window is short (truncate, then one write to the page cache) and sits behind the
request's decoding, so only kills aimed inside the save land in it. Measured directly,
81 % of SIGKILLs during such a save leave an empty or torn file.

RULE = "a save killed half-way leaves the old or the new blob whole"
EXPECTED_CASE = "crash::kill_during_save_leaves_whole_blob"
ALSO = "crash::kill_during_save_racing_reader"
"""

import os

import _base

plugin = _base.load_example()


def private(path, flags):
    # Mode 0600, as msal-extensions 1.3.1 opens it (os.open with O_TRUNC, 0o600).
    return os.open(path, flags, 0o600)


class TruncateSingleWrite(plugin.FilePlugin):
    def save(self, data):
        self._make_dir()
        mtime = self._next_mtime_ns()
        try:
            with open(self.path, "wb", opener=private) as handle:
                handle.write(data)
            # The example's change token includes the mtime: keep it moving as the example
            # does, so that only the torn window differs.
            os.utime(self.path, ns=(mtime, mtime))
        except OSError as err:
            raise plugin.os_error("save", self.path, err)


if __name__ == "__main__":
    _base.run(plugin, TruncateSingleWrite)
