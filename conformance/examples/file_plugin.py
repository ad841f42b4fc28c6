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
- handles: one process serves several handles (`open`/`close`), and each request other than
  hello/open/close/shutdown runs on a thread of its own, so a `lock` that waits does not
  hold up the `unlock` of another handle. Answers are written whole under one lock.
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
import threading
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
        self.ids = threading.Lock()  # requests of one handle may run at once

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
            # Several handles per process (open/close), requests answered as they finish.
            "handles": True,
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
        with self.ids:
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


def plugin_request(plugin, request):
    """Answers one request of a handle (load, save, ...) on `plugin`; returns the ok result."""
    op = request.get("op")
    if op == "load":
        data = plugin.load()
        return {"data": None if data is None else base64.b64encode(data).decode("ascii")}
    if op == "save":
        plugin.save(decode(request.get("data")))
        return {}
    if op == "delete":
        return {"deleted": plugin.delete()}
    if op == "version":
        return {"token": plugin.version()}
    if op == "lock":
        return {"lock": plugin.lock(field(request, "wait_ms", int))}
    if op == "unlock":
        plugin.unlock(field(request, "lock", str))
        return {}
    raise PluginError("not_supported", "unknown op %r" % str(op)[:64])


def new_plugin(request):
    namespace = field(request, "namespace", dict)
    return FilePlugin(field(namespace, "dir", str), field(namespace, "name", str))


class Session:
    """The handles of this process: None is the handle of `hello`, "H1", "H2"... of `open`."""

    def __init__(self, out):
        self.out = out
        self.writing = threading.Lock()
        self.handles = {}
        self.next_handle = 1
        self.running = []

    def answer(self, message):
        line = json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\n"
        with self.writing:
            self.out.write(line)
            self.out.flush()

    def respond(self, request_id, work):
        try:
            self.answer({"id": request_id, "ok": work()})
        except PluginError as err:
            self.answer({"id": request_id, "error": {"kind": err.kind, "message": err.message}})
        except Exception as err:  # a bug here must not take the protocol down
            message = "internal error: %s" % type(err).__name__
            self.answer({"id": request_id, "error": {"kind": "other", "message": message}})

    def plugin(self, request):
        if None not in self.handles:
            raise PluginError("other", "the first request must be a successful `hello`")
        handle = request.get("handle")
        if handle not in self.handles:
            raise PluginError("other", "no open handle %r" % str(handle)[:64])
        return self.handles[handle]

    def hello(self, request):
        if None in self.handles:
            raise PluginError("other", "`hello` was already answered")
        if field(request, "protocol", int) != PROTOCOL:
            raise PluginError("not_supported", "this plugin speaks protocol %d" % PROTOCOL)
        plugin = new_plugin(request)
        self.handles[None] = plugin
        return plugin.describe()

    def open(self, request):
        self.plugin({})
        plugin = new_plugin(request)
        handle = "H%d" % self.next_handle
        self.next_handle += 1
        self.handles[handle] = plugin
        return dict(plugin.describe(), handle=handle)

    def close(self, request):
        handle = request.get("handle")
        if handle is None or handle not in self.handles:
            raise PluginError("other", "`close` needs the handle of an `open`")
        self.handles.pop(handle).release_all()
        return {}

    def end(self):
        """Waits for the requests still running, then releases every lock."""
        for thread in self.running:
            thread.join()
        for plugin in self.handles.values():
            plugin.release_all()

    def serve(self, request_id, request):
        op = request.get("op")
        inline = {"hello": self.hello, "open": self.open, "close": self.close}
        if op in inline:
            self.respond(request_id, lambda: inline[op](request))
        elif op == "shutdown":
            self.end()
            self.answer({"id": request_id, "ok": {}})
            return False
        else:
            def work():
                return plugin_request(self.plugin(request), request)

            thread = threading.Thread(target=self.respond, args=(request_id, work), daemon=True)
            self.running = [t for t in self.running if t.is_alive()] + [thread]
            thread.start()
        return True


def parse(line):
    """The request of one line and its id; PluginError (with the id if usable) otherwise."""
    try:
        request = json.loads(line)
    except ValueError:
        raise PluginError("other", "malformed request: not JSON")
    if not isinstance(request, dict):
        raise PluginError("other", "malformed request: not an object")
    request_id = request.get("id")
    if not isinstance(request_id, int) or isinstance(request_id, bool) or request_id < 0:
        raise PluginError("other", "malformed request: no usable `id`")
    return request_id, request


def main():
    stdin = sys.stdin.buffer
    session = Session(sys.stdout.buffer)
    while True:
        line = stdin.readline()
        if not line.endswith(b"\n"):
            break  # end of input (a partial last line is a request nobody waits for)
        try:
            request_id, request = parse(line)
        except PluginError as err:
            session.answer({"id": None, "error": {"kind": err.kind, "message": err.message}})
            continue
        log("request %d: %s" % (request_id, request.get("op")))
        if not session.serve(request_id, request):
            return
    session.end()


if __name__ == "__main__":
    main()
