#!/usr/bin/env python3
"""A token-cache persistence plugin in plain Python, speaking conformance protocol 1.

It stores the cache blob in a file and passes the conformance suite:

    CONFORMANCE_PLUGIN='exec:python3 conformance/examples/file_plugin.py' \\
        cargo test -p conformance

The protocol is described in conformance/PROTOCOL.md. Standard library only (Unix: it
uses fcntl.flock). Layout inside the namespace directory given in `hello`:

    <dir>/                  created with mode 0700 if it is missing
    <dir>/<name>            the blob, mode 0600
    <dir>/<name>.lockfile   the lock file (flock'ed, never deleted), mode 0600

Design, and why:
- save: write a temporary file beside the blob, fsync it, give it a modification time later
  than the blob's, rename it over the blob, fsync the directory. A reader or a crash sees
  the old or the new file, never a torn one; the rename is the commit point.
- version: device, inode, size and nanosecond mtime/ctime. A save always makes a new inode
  and a strictly later mtime, so the token moves even for same-size saves within one clock
  tick.
- lock: flock on a separate lock file that is never deleted (deleting lock files is what
  makes lock files racy). flock belongs to the open file description, so the OS releases
  it when the holder dies, however it dies, and a second lock in this same process conflicts
  with the first (not re-entrant, as the contract demands).
- Logs go to stderr (set FILE_PLUGIN_DEBUG=1); stdout carries protocol answers only.
"""

import base64
import binascii
import errno
import fcntl
import json
import os
import stat
import sys
import time

PROTOCOL = 1
NAME = "example-file-plugin"
VERSION = "1.0.0"
DEBUG = bool(os.environ.get("FILE_PLUGIN_DEBUG"))


def log(message):
    if DEBUG:
        print("file_plugin[%d]: %s" % (os.getpid(), message), file=sys.stderr, flush=True)


class PluginError(Exception):
    """An error answer: a kind from PROTOCOL.md section 3 and a message (never the blob)."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


def os_error(action, path, err):
    """Maps an OSError to the protocol's error kinds."""
    code = err.errno
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        kind = "access_denied"
    elif code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        kind = "storage_full"
    elif code == errno.ENOTDIR:
        kind = "storage_unavailable"
    else:
        kind = "io"
    return PluginError(kind, "could not %s %s: %s" % (action, path, err.strerror))


LOCK_SUFFIX = ".lockfile"
# The longest valid name, in bytes: the files named after a cache (here the temporary
# file of a save, ".<name>.<pid>.<12 hex>.tmp", and the lock file) must fit in the 255-byte
# file-name limit; 225 as in the reference plugin.
MAX_NAME_LEN = 225


def validate_name(name):
    """The reference plugin's rules: one file name, never a path, nor another lock file."""
    if not name:
        why = "it is empty"
    elif name in (".", ".."):
        why = "it names a directory"
    elif "/" in name or "\\" in name:
        why = "it contains a path separator"
    elif "\0" in name:
        why = "it contains a NUL byte"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_LEN:
        why = "it is longer than %d bytes" % MAX_NAME_LEN
    elif name.endswith(LOCK_SUFFIX):
        why = "it ends in .lockfile, the suffix of lock files"
    else:
        return
    raise PluginError("invalid_name", "invalid cache name %r: %s" % (name[:64], why))


class FilePlugin:
    def __init__(self, directory, name):
        validate_name(name)
        self.dir = directory
        self.path = os.path.join(directory, name)
        self.lock_path = self.path + LOCK_SUFFIX
        self.locks = {}  # lock id -> open lock file descriptor
        self.next_lock = 1

    def describe(self):
        return {
            "name": NAME,
            "version": VERSION,
            "protocol": PROTOCOL,
            "backend": "python-file",
            "location": self.path,
            "capabilities": {
                "encrypts_at_rest": False,
                "exclusive_lock": True,
                "change_detection": True,
                "shared_across_processes": True,
                "max_size": None,
            },
            # Everything (the cache, its temporary files, the lock file) is under dir, so
            # the suite may provoke faults and corruption there itself.
            "storage_under_dir": True,
        }

    def load(self):
        try:
            # O_NONBLOCK: a FIFO planted at the path must not hang the plugin.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise os_error("open", self.path, err)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PluginError(
                    "corrupt_data", "%s is not a regular file; left as it is" % self.path
                )
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError as err:
            raise os_error("read", self.path, err)
        finally:
            os.close(fd)

    def _make_dir(self):
        """Creates the directory (0700) if it is missing; nothing else creates it."""
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
        except FileExistsError:
            # Something that is not a directory is in the way: the storage cannot be
            # reached, as when a component of the path is a file (ENOTDIR).
            raise PluginError(
                "storage_unavailable", "%s exists and is not a directory" % self.dir
            )
        except OSError as err:
            raise os_error("create directory", self.dir, err)

    def save(self, data):
        self._make_dir()
        temp = os.path.join(
            self.dir,
            ".%s.%d.%s.tmp" % (os.path.basename(self.path), os.getpid(), os.urandom(6).hex()),
        )
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as err:
            raise os_error("create", temp, err)
        try:
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            mtime = self._next_mtime_ns()
            os.utime(temp, ns=(mtime, mtime))
            os.rename(temp, self.path)
        except OSError as err:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise os_error("save", self.path, err)
        self._sync_dir()

    def _next_mtime_ns(self):
        """A modification time strictly later than the current blob's."""
        now = time.time_ns()
        try:
            previous = os.stat(self.path).st_mtime_ns
        except OSError:
            return now
        return previous + 1 if previous >= now else now

    def _sync_dir(self):
        try:
            fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise os_error("sync directory", self.dir, err)

    def delete(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return False
        except OSError as err:
            raise os_error("delete", self.path, err)
        self._sync_dir()
        return True

    def version(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise os_error("inspect", self.path, err)
        return "%d:%d:%d:%d:%d" % (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def lock(self, wait_ms):
        self._make_dir()
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise os_error("open lock file", self.lock_path, err)
        deadline = time.monotonic() + wait_ms / 1000.0
        delay = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            except OSError as err:
                os.close(fd)
                raise os_error("lock", self.lock_path, err)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.close(fd)
                raise PluginError(
                    "lock_timeout", "waited %d ms for the lock %s" % (wait_ms, self.lock_path)
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.01)
        lock_id = "L%d" % self.next_lock
        self.next_lock += 1
        self.locks[lock_id] = fd
        return lock_id

    def unlock(self, lock_id):
        fd = self.locks.pop(lock_id, None)
        if fd is None:
            raise PluginError("other", "no lock with id %r is held" % lock_id[:64])
        # Closing the descriptor releases the flock.
        os.close(fd)

    def release_all(self):
        for fd in self.locks.values():
            os.close(fd)
        self.locks.clear()


def decode(text):
    if not isinstance(text, str):
        raise PluginError("other", "malformed request: `data` must be a string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PluginError("other", "malformed request: `data` is not base64")


def field(request, name, kind):
    value = request.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise PluginError("other", "malformed request: `%s` is missing or mistyped" % name)
    return value


def handle(plugin, request):
    """Answers one parsed request; returns (ok result, plugin after the request)."""
    op = request.get("op")
    if op == "hello":
        if plugin is not None:
            raise PluginError("other", "`hello` was already answered")
        if field(request, "protocol", int) != PROTOCOL:
            raise PluginError("not_supported", "this plugin speaks protocol %d" % PROTOCOL)
        namespace = field(request, "namespace", dict)
        plugin = FilePlugin(field(namespace, "dir", str), field(namespace, "name", str))
        return plugin.describe(), plugin
    if op == "shutdown":
        return {}, plugin
    if plugin is None:
        raise PluginError("other", "the first request must be a successful `hello`")
    if op == "load":
        data = plugin.load()
        return {"data": None if data is None else base64.b64encode(data).decode("ascii")}, plugin
    if op == "save":
        plugin.save(decode(request.get("data")))
        return {}, plugin
    if op == "delete":
        return {"deleted": plugin.delete()}, plugin
    if op == "version":
        return {"token": plugin.version()}, plugin
    if op == "lock":
        return {"lock": plugin.lock(field(request, "wait_ms", int))}, plugin
    if op == "unlock":
        plugin.unlock(field(request, "lock", str))
        return {}, plugin
    raise PluginError("not_supported", "unknown op %r" % str(op)[:64])


def answer(out, message):
    out.write(json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\n")
    out.flush()


def main():
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    plugin = None
    while True:
        line = stdin.readline()
        if not line.endswith(b"\n"):
            break  # end of input (a partial last line is a request nobody waits for)
        request_id = None
        try:
            try:
                request = json.loads(line)
            except ValueError:
                raise PluginError("other", "malformed request: not JSON")
            if not isinstance(request, dict):
                raise PluginError("other", "malformed request: not an object")
            request_id = request.get("id")
            if not isinstance(request_id, int) or isinstance(request_id, bool) or request_id < 0:
                request_id = None
                raise PluginError("other", "malformed request: no usable `id`")
            log("request %d: %s" % (request_id, request.get("op")))
            result, plugin = handle(plugin, request)
            if request.get("op") == "shutdown":
                if plugin is not None:
                    plugin.release_all()
                answer(stdout, {"id": request_id, "ok": result})
                return
            answer(stdout, {"id": request_id, "ok": result})
        except PluginError as err:
            answer(stdout, {"id": request_id, "error": {"kind": err.kind, "message": err.message}})
        except Exception as err:  # a bug here must not take the protocol down
            message = "internal error: %s" % type(err).__name__
            answer(stdout, {"id": request_id, "error": {"kind": "other", "message": message}})
    if plugin is not None:
        plugin.release_all()


if __name__ == "__main__":
    main()
