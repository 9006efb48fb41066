"""Writing a command's output: all of it, or nothing.

Every command that writes ``-o FILE`` goes through :func:`write_output`. The data goes to a
temporary file in the same directory, is flushed to disk, and is renamed over FILE, so that

* FILE is never left half-written (a full disk, ``ulimit -f``, a crash): it holds the old
  contents or the new, and the temporary file is removed on failure;
* a symlink planted at FILE is replaced, not written through to whatever it points at;
* an existing FILE keeps its permission bits; a new one gets 0666 less the umask, as ``>`` would.

Streams are written in place, since they cannot be renamed over: an existing FIFO, device or
socket, and under /dev/ or /proc/ what leads to one or to a descriptor (``-o /dev/stdout`` is the
system's symlink, not a planted one; replacing it would break the system). A regular file there
(``/dev/shm`` is writable by everyone) is written like any other: a link planted there is replaced.

Python ignores SIGXFSZ, so exceeding ``ulimit -f`` is the write error EFBIG rather than death
by signal mid-write. Errors are one :class:`OutputError` line naming the file.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from .errors import UserError, one_line

__all__ = ["CheckedStdout", "OutputError", "preflight", "write_output", "write_atomic"]


class OutputError(UserError):  # a ValueError
    """Output that could not be written; the message names the file and the reason."""


def _name(path: str) -> str:
    return one_line(path)


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (see the module docstring)."""
    import stat  # (os has imported it already)

    directory = os.path.dirname(path) or "."
    st = _stat_or_none(path, os.lstat)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{_name(path)}: cannot write: is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode) or _system_stream(path):
        _write_stream(path, data)
        return
    fd, tmp = _temp_file(directory, os.path.basename(path), path)
    try:
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
            if st is not None and stat.S_ISREG(st.st_mode):
                mode = stat.S_IMODE(st.st_mode)
            else:
                umask = os.umask(0)
                os.umask(umask)
                mode = 0o666 & ~umask
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, path)  # rename(2): replaces a symlink at path, never follows it
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OutputError(f"{_name(path)}: cannot write: {e.strerror}") from None


def preflight(path: str | None, directory: bool = False) -> None:
    """Refuse, before a command does work that takes long or cannot be repeated (``record`` runs a
    program, ``dump`` traces one), an output it could not write at the end: a missing or read-only
    directory, a directory where a file goes, a file where a directory goes. None and ``-`` are
    standard output. What only the write can tell (a full disk) is still told then. With
    ``directory``, ``path`` is a directory, made with its parents if missing (``dump -o DIR``)."""
    import stat

    if path is None or path == "-" and not directory:
        return
    st = _stat_or_none(path, os.stat)
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        return  # a stream (FIFO, device, socket): opened when written, never waited for here
    if st is not None and stat.S_ISDIR(st.st_mode) != directory:
        raise OutputError(f"{_name(path)}: cannot write: " + ("not a directory" if directory else "is a directory"))
    where = path if st is not None and directory else os.path.dirname(os.path.normpath(path)) or "."
    while directory and st is None and not os.path.lexists(where) and where not in ("/", "."):
        where = os.path.dirname(where) or "."  # made with its parents (os.makedirs)
    try:
        if not stat.S_ISDIR(os.stat(where).st_mode):
            raise OutputError(f"{_name(path)}: cannot write: {_name(where)} is not a directory")
    except OSError as e:
        raise OutputError(f"{_name(path)}: cannot write: {e.strerror}") from None
    if not os.access(where, os.W_OK | os.X_OK):  # EROFS on a read-only mount, for root too
        reason = "read-only file system" if _read_only(where) else "permission denied"
        raise OutputError(f"{_name(path)}: cannot write: {reason} ({_name(where)})")


def _stat_or_none(path: str, how: Any) -> os.stat_result | None:
    """``how(path)`` (os.stat or os.lstat), None if nothing is there; any other error is the output's."""
    if not path:
        raise OutputError("-o: empty file name (use - for standard output)")
    try:
        return how(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise OutputError(f"{_name(path)}: cannot write: {e.strerror}") from None


def _read_only(directory: str) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _system_stream(path: str) -> bool:
    """A path under /dev/ or /proc/ that is a stream of the system's: a device, FIFO or socket, or
    a link to a descriptor (``/dev/stdout`` -> ``/proc/self/fd/1``, which may be a regular file).
    Not any file there: /dev/shm is writable by everyone, and a link planted in it must be
    replaced, like one anywhere else, never written through."""
    import stat

    if not os.path.abspath(path).startswith(("/dev/", "/proc/")):
        return False
    p = os.path.abspath(path)
    for _ in range(16):
        parts = p.split("/")
        if len(parts) >= 5 and parts[1] == "proc" and parts[3] == "fd":
            return True  # /proc/self/fd/N, /proc/PID/fd/N
        try:
            target = os.readlink(p)
        except OSError:
            break
        p = os.path.normpath(os.path.join(os.path.dirname(p), target))
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False  # a new file (in /dev/shm, say): made like any other


def _temp_file(directory: str, base: str, path: str) -> tuple[int, str]:
    """A new file ``.BASE.RANDOM.tmp`` in ``directory``, mode 0600 until written (tempfile's
    mkstemp, without importing tempfile and its dependencies on the compile path)."""
    for _ in range(100):
        tmp = os.path.join(directory, f".{base[:64]}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:
            continue
        except OSError as e:
            raise OutputError(f"{_name(path)}: cannot write: {e.strerror}") from None
    raise OutputError(f"{_name(path)}: cannot write: no free temporary name in {_name(directory)}")


def _write_stream(path: str, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOCTTY | os.O_CLOEXEC, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    except OSError as e:
        raise OutputError(f"{_name(path)}: cannot write: {e.strerror}") from None


def write_output(out: str | None, data: bytes | str) -> None:
    """Write to ``-o FILE`` atomically, or to standard output when ``out`` is None or ``-``."""
    if isinstance(data, str):
        data = data.encode()
    if out is None or out == "-":
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(f"<stdout>: cannot write: {e.strerror}") from None
        return
    write_atomic(out, data)


class CheckedStdout:
    """Standard output whose write errors (a full disk, ``> /dev/full``, EIO) are one line of ours,
    exit 2, like ``-o FILE``'s, whichever command printed: not a traceback. A closed pipe stays
    BrokenPipeError (handled as such)."""

    def __init__(self, stream: Any) -> None:
        self._s = stream

    def write(self, text: Any) -> int:
        try:
            return int(self._s.write(text))
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(f"<stdout>: cannot write: {e.strerror}") from None

    def flush(self) -> None:
        try:
            self._s.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(f"<stdout>: cannot write: {e.strerror}") from None

    @property
    def buffer(self) -> Any:  # the binary stream under it, checked alike
        return CheckedStdout(self._s.buffer)

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, ...
        return getattr(self._s, name)
