"""Writing a command's output: all of it, or nothing.

Every command that writes ``-o FILE`` goes through :func:`write_output`. The data goes to a
temporary file in the same directory, is flushed to disk, and is renamed over FILE, so that

* FILE is never left half-written (a full disk, ``ulimit -f``, a crash): it holds the old
  contents or the new, and the temporary file is removed on failure;
* a symlink planted at FILE is replaced, not written through to whatever it points at;
* an existing FILE keeps its permission bits; a new one gets 0666 less the umask, as ``>`` would.

Streams are written in place, since they cannot be renamed over: an existing FIFO, device or
socket, and any path under /dev/ or /proc/ (``-o /dev/stdout`` is the system's symlink, not a
planted one; replacing it would break the system).

Python ignores SIGXFSZ, so exceeding ``ulimit -f`` is the write error EFBIG rather than death
by signal mid-write. Errors are one :class:`OutputError` line naming the file.
"""
from __future__ import annotations

import os
import sys

from .errors import UserError, one_line

__all__ = ["OutputError", "write_output", "write_atomic"]


class OutputError(UserError):  # a ValueError
    """Output that could not be written; the message names the file and the reason."""


def _name(path: str) -> str:
    return one_line(path)


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (see the module docstring)."""
    import stat  # (os has imported it already)

    if not path:
        raise OutputError("-o: empty file name (use - for standard output)")
    directory = os.path.dirname(path) or "."
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OutputError(f"{_name(path)}: cannot write: {e.strerror}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{_name(path)}: cannot write: is a directory")
    if os.path.abspath(path).startswith(("/dev/", "/proc/")) or (
            st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode)):
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
