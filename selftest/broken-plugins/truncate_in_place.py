#!/usr/bin/env python3
"""The example file plugin, except that save truncates the blob file and writes the new
blob into it in small pieces: no temporary file, no rename.

RULE = "a concurrent load sees the old or the new blob, never a truncated or partly written one"
EXPECTED_CASE = "concurrency::no_torn_reads_threads"
ALSO = "crash::kill_during_save_leaves_whole_blob, crash::kill_during_save_racing_reader"
"""

import os

import _base

plugin = _base.load_example()


class TruncateInPlace(plugin.FilePlugin):
    def save(self, data):
        self._make_dir()
        mtime = self._next_mtime_ns()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view[:64])
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.utime(self.path, ns=(mtime, mtime))
        except OSError as err:
            raise plugin.os_error("save", self.path, err)


if __name__ == "__main__":
    _base.run(plugin, TruncateInPlace)
