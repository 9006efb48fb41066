"""Installing a filter *after* the interpreter has started, for profiles that refuse execve.

The built-in ``python`` profile refuses ``execve``/``execveat`` (a CPython program may not
start other programs). A filter cannot tell the jail's own ``execve`` of the interpreter
from a later one, so it cannot be installed before that ``execve``. Instead the
interpreter installs it first thing, before any of the program's code runs:
:func:`python_argv` rewrites ``python3 SCRIPT ARGS`` (or ``-c CODE``, ``-m MODULE``) into
``python3 -c BOOTSTRAP FD SCRIPT ARGS``, where ``BOOTSTRAP`` is a few lines of standard
library code (no sysgate import: the jail's root may not have sysgate) that reads the
compiled filter from file descriptor ``FD``, sets no_new_privs, installs the filter with
``prctl(PR_SET_SECCOMP)`` and then runs the program as ``python3`` would (``__main__``,
``sys.argv``). If the filter cannot be installed the program does not run (exit 126).

From inside Python, :func:`install_in_process` does the same for the current process.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds on the run path, which imports this module
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["BOOTSTRAP", "python_argv", "install_in_process", "DEFERRED"]

# Built-in profiles that must be installed after the interpreter's execve.
DEFERRED = frozenset({"python"})

BOOTSTRAP = r"""
import sys, posix
def _refuse(msg):
    sys.stderr.write("sysgate: %s\n" % msg)
    posix._exit(126)
def _writable(path):
    while path and not posix.access(path, posix.F_OK):
        path = path.rpartition("/")[0]
    return posix.access(path or "/", posix.W_OK)
def _pyc(path):
    d, _, f = path.rpartition("/")
    tag = sys.implementation.cache_tag
    opt = ("", ".opt-1", ".opt-2")[min(sys.flags.optimize, 2)]
    return [d + "/__pycache__", "%s/__pycache__/%s.%s%s.pyc" % (d, f.rpartition(".")[0], tag, opt)]
if sys.argv[2] == "checked":
    # Nothing this process could write may be imported before the filter holds: the interpreter,
    # every path entry (-I -S left only the standard library's) and each file imported below.
    for p in [sys.executable] + list(sys.path):
        if _writable(p):
            _refuse("python: %s is writable from the sandbox; nothing is imported from a writable place before "
                    "the seccomp filter holds" % p)
    todo = []
    for name in ("ctypes", "_ctypes", "struct", "_struct"):
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, None) if find else None
            if spec is not None:
                break
        if spec is None:
            _refuse("python: cannot find module %s" % name)
        if spec.origin and spec.origin.startswith("/"):
            todo += [spec.origin] + _pyc(spec.origin)
            if spec.submodule_search_locations:
                endian = spec.origin.rpartition("/")[0] + "/_endian.py"
                todo += [endian] + _pyc(endian)
    for p in todo:
        if _writable(p):
            _refuse("python: %s is writable from the sandbox; nothing is imported from a writable place before "
                    "the seccomp filter holds" % p)
import ctypes
fd = int(sys.argv[1])
chunks = []
while True:
    b = posix.read(fd, 1 << 16)
    if not b:
        break
    chunks.append(b)
posix.close(fd)
data = b"".join(chunks)
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
buf = ctypes.create_string_buffer(data, len(data))
prog = Prog(len(data) // 8, ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
if len(data) % 8 or libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(prog), 0, 0):
    sys.stderr.write("sysgate: cannot install the seccomp filter: %s\n" % posix.strerror(ctypes.get_errno()))
    posix._exit(126)
# The filter holds: from here on Python behaves as the user's command line asked (-I -S were ours).
isolated, nosite, noenv = sys.argv[3] == "1", sys.argv[4] == "1", sys.argv[5] == "1"
del sys.argv[:6]
del Prog, buf, prog, libc, data, chunks
import os, runpy  # still from the standard library only: the user's path comes next
if not nosite:
    import site
    site.main()
if not noenv and not isolated and os.environ.get("PYTHONPATH"):
    sys.path[0:0] = [p for p in os.environ["PYTHONPATH"].split(os.pathsep) if p]
if sys.argv[0] == "-c":
    code = sys.argv.pop(1)
    sys.argv[0] = "-c"
    if not isolated:
        sys.path.insert(0, "")
    import __main__
    exec(compile(code, "<string>", "exec"), __main__.__dict__)
elif sys.argv[0] == "-m":
    mod = sys.argv.pop(1)
    if not isolated:
        sys.path.insert(0, os.getcwd())
    runpy.run_module(mod, run_name="__main__", alter_sys=True)
else:
    if not isolated:
        sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def python_argv(argv: Sequence[str], fd: int, *, check_paths: bool = True) -> list[str]:
    """``argv`` (``python3 [OPTIONS] SCRIPT|-c CODE|-m MODULE [ARGS]``) rewritten so that the
    interpreter installs the filter it reads from ``fd`` (raw ``struct sock_filter`` bytes in
    native byte order; the descriptor must be inherited) before running the program.

    The interpreter starts isolated (``-I -S``: no current directory, script directory,
    ``PYTHON*`` variable, user or site directory on the path) and, with ``check_paths`` (what the
    jail uses), refuses to run (exit 126) if the process could write the interpreter, any path
    entry, or any file the bootstrap imports (``ctypes``, ``_ctypes``, ``struct``, their caches):
    nothing importable from a writable place runs before the filter holds. Afterwards ``site``,
    ``PYTHONPATH`` and the usual first path entry are restored unless the user's own options
    (``-S``, ``-E``, ``-I``) said otherwise.
    """
    from ..errors import BadArgument

    if not argv:
        raise BadArgument("python_argv: empty command line")
    interp, rest = argv[0], list(argv[1:])
    opts: list[str] = []
    while rest and rest[0].startswith("-") and rest[0] not in ("-c", "-m", "-", "--"):
        opt = rest.pop(0)
        opts.append(opt)
        if opt in ("-X", "-W", "--check-hash-based-pycs") and rest:  # options that take a value
            opts.append(rest.pop(0))
    if rest and rest[0] == "--":
        rest.pop(0)
    if not rest or rest[0] == "-":
        raise BadArgument("python_argv: give a script, -c CODE or -m MODULE (reading the program from "
                          "standard input is not supported)")
    if rest[0] in ("-c", "-m") and len(rest) < 2:
        raise BadArgument(f"python_argv: {rest[0]} needs an argument")
    flags = "".join(o[1:] for o in opts if o[:1] == "-" and o[1:2] not in ("-", "W", "X") and o[1:].isalpha())
    marks = ["1" if "I" in flags or "P" in flags else "0", "1" if "S" in flags else "0",
             "1" if "E" in flags or "I" in flags else "0"]
    return [interp, "-I", "-S", *opts, "-c", BOOTSTRAP, str(fd), "checked" if check_paths else "unchecked",
            *marks, *rest]


def install_in_process(name_or_policy: object = "python", *, arch: str | None = None) -> None:
    """Compile a profile (built-in name, file or Policy) for this process and install it here, now.

    Irreversible: everything this process does afterwards is filtered.
    """
    from ..compiler import compile_policy
    from ..kernel.seccomp import install
    from ..policy import Policy
    from . import resolve

    policy = name_or_policy if isinstance(name_or_policy, Policy) else resolve(str(name_or_policy), arch=arch)
    install(compile_policy(policy).insns)
