"""``sysgate run``: its argument parser and the command itself.

``sysgate run [OPTIONS] [--] CMD [ARGS...]``. Exit status like bubblewrap: the command's
code, 128+N when signal N killed it (159: a seccomp kill), 124 on ``--timeout``, 125 with a
one-line reason when the sandbox could not be set up, 126/127 when the command could not be
executed / was not found inside; 2 for bad options.

Starting a sandbox takes a few milliseconds, about what importing argparse and building this
parser costs; so :func:`run_args` reads an ordinary ``sysgate run`` command line (full option
names, values that do not start with ``-``) without argparse, into the same namespace the
parser would produce (the tests compare the two). Anything else, including every error and
help request, goes to argparse, which so decides all messages.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing and argparse cost milliseconds on the CLI's start-up path
if TYPE_CHECKING:
    import argparse
    from typing import Any, Sequence

__all__ = ["add_run_parser", "run_command", "run_args"]


def add_run_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``run`` on an argparse subparsers object; sets ``func`` to :func:`run_command`."""
    import argparse

    p = subparsers.add_parser(
        "run", help="run a command in a sandbox (namespaces, limits, no privileges, seccomp)",
        usage="sysgate run [OPTIONS] -- CMD [ARGS...]", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run CMD in a sandbox: user, mount, PID, network, IPC, UTS and cgroup namespaces, a\n"
                    "read-only view of the host root with private /tmp, minimal /dev and fresh /proc, all\n"
                    "capabilities dropped, no_new_privs, every fd but 0-2 closed, a cleared environment,\n"
                    "and a seccomp filter (docker-default) loaded last. Works as root and unprivileged.",
        epilog="sizes take K, M or G (64M); cgroup limits use cgroup v2 or v1 (--json says which).\n\n"
               "exit status: the command's own; 128+N when signal N killed it (159: SIGSYS, a seccomp\n"
               "kill); 124 when --timeout expired; 125 when the sandbox could not be set up (one line on\n"
               "stderr); 126/127 when CMD could not be executed / was not found inside; 2 for bad options.\n\n"
               "examples:\n"
               "  sysgate run -- sh -c 'echo hi; id'\n"
               "  sysgate run --memory 64M --pids 32 --timeout 5 -- python3 job.py\n"
               "  sysgate run --bind ./work:/work --chdir /work --net host -- make\n"
               "  sysgate run --json --deny ptrace:kill-process -- gdb -p 1\n"
               "  sysgate run --profile strict -- /bin/true    # dies of SIGSYS at execve: status 159")
    a = p.add_argument
    g = p.add_argument_group("seccomp")
    g.add_argument("--profile", default="docker-default", metavar="NAME|FILE",
                   help="seccomp profile: a built-in name or a profile file (default: docker-default)")
    g.add_argument("--no-seccomp", action="store_true", help="load no seccomp filter")
    g.add_argument("--allow", action="append", default=[], metavar="NAME",
                   help="allow this syscall or @group whatever the profile says (repeatable, comma-separated)")
    g.add_argument("--deny", action="append", default=[], metavar="NAME[:ERRNO]",
                   help="make this syscall or @group fail with ERRNO (default EPERM) or take an action, "
                        "e.g. ptrace:kill-process (repeatable, comma-separated)")
    g.add_argument("--seccomp-action", metavar="ACTION",
                   help="replace the profile's default action (e.g. kill-process, errno:EPERM, log)")
    g.add_argument("--skip-unknown", action="store_true",
                   help="leave out syscall names no architecture has (Docker/OCI/k8s profiles), reporting each")
    g.add_argument("--strict", action="store_true",
                   help="refuse profile fields the format's own tool would ignore (default: one warning line each)")
    g = p.add_argument_group("supervision (seccomp user notification; see docs/jail.md)")
    g.add_argument("--allow-socket", action="append", default=[], metavar="PATH",
                   help="allow connect() and sends to this unix socket (path inside the sandbox, or @NAME); every other "
                        "pathname socket is refused with EACCES")
    g.add_argument("--allow-connect", action="append", default=[], metavar="HOST:PORT",
                   help="allow inet connect() and addressed sends to HOST:PORT only (repeatable; port * for any)")
    g.add_argument("--allow-path", action="append", default=[], metavar="PATH[:ro|rw]",
                   help="open/openat/openat2 only under these paths (repeatable; ro by default)")
    g.add_argument("--log-denials", action="store_true",
                   help="report every call the profile denies (name, arch, arguments) on stderr and in --json")
    g.add_argument("--ask", action="store_true", help="ask on the terminal before denying a call (first of each name)")
    g.add_argument("--no-mediate", action="store_true", help="do not mediate connect() and addressed sends (host unix sockets reachable)")
    g = p.add_argument_group("filesystem")
    g.add_argument("--rootfs", metavar="DIR", help="root directory of the sandbox (default: the host's /, read-only)")
    g.add_argument("--bind", action="append", default=[], metavar="SRC[:DST]", help="bind SRC read-write at DST")
    g.add_argument("--ro-bind", action="append", default=[], metavar="SRC[:DST]", help="bind SRC read-only at DST")
    g.add_argument("--tmpfs", action="append", default=[], metavar="DST[:SIZE]",
                   help="mount a fresh tmpfs at DST, hiding what is there (SIZE with K/M/G)")
    g.add_argument("--tmp-size", metavar="SIZE", help="size of the private /tmp (a tmpfs)")
    g.add_argument("--chdir", metavar="DIR",
                   help="working directory inside; missing: a set-up failure (default: the current one if "
                        "visible inside, else / with a note)")
    g.add_argument("--ro", action="append", default=[], metavar="PATH",
                   help="Landlock: allow reading PATH; with any --ro/--rw nothing else is reachable")
    g.add_argument("--rw", action="append", default=[], metavar="PATH", help="Landlock: allow full access to PATH")
    g = p.add_argument_group("namespaces and identity")
    g.add_argument("--share", action="append", default=[], metavar="NS",
                   help="keep the host's namespace NS: user, pid, net, ipc, uts, cgroup (repeatable, comma-separated). "
                        "pid gives up the sandbox's own init: processes the command leaves in the background "
                        "outlive it and sysgate (killed only with a cgroup limit, by the group), and the command "
                        "does not die with sysgate; user needs --keep-host-root as root")
    g.add_argument("--net", choices=["none", "host"], default="none",
                   help="none: a private network with only loopback (default); host: share the host's")
    g.add_argument("--hostname", default="sysgate", help="hostname inside (default: sysgate)")
    g.add_argument("--uid", type=int, help="user id inside (default: yours)")
    g.add_argument("--gid", type=int, help="group id inside (default: yours)")
    g.add_argument("--host-uid", type=int, metavar="N",
                   help="root callers: the unprivileged host uid the sandbox runs as (default: the last of root's "
                        "/etc/subuid range, else 65534)")
    g.add_argument("--host-gid", type=int, metavar="N", help="root callers: the host gid likewise (/etc/subgid)")
    g.add_argument("--keep-host-root", action="store_true",
                   help="root callers: let the sandbox's root be host root (files it creates are root's, root-only "
                        "files readable); a warning is printed")
    g.add_argument("--cap-add", action="append", default=[], metavar="CAP",
                   help="keep this capability (inside the sandbox's user namespace)")
    g = p.add_argument_group("limits")
    g.add_argument("--rlimit", action="append", default=[], metavar="NAME=N[:HARD]",
                   help="resource limit (nofile, nproc, cpu, as, fsize, ...; core is 0 unless set)")
    g.add_argument("--memory", metavar="SIZE", help="cgroup memory limit, e.g. 64M (no swap); reported as oom")
    g.add_argument("--pids", type=int, metavar="N", help="cgroup limit on processes and threads")
    g.add_argument("--cpus", type=float, metavar="X", help="cgroup CPU quota in CPUs, e.g. 0.5")
    g.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="kill the whole sandbox after this long (exit status 124)")
    g = p.add_argument_group("process")
    g.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="set a variable")
    g.add_argument("--keep-env", action="append", default=[], metavar="NAME", help="keep this variable of yours")
    g.add_argument("--inherit-env", action="store_true", help="keep your whole environment")
    g.add_argument("--pass-fd", action="append", default=[], type=int, metavar="N", help="keep fd N open")
    g.add_argument("--new-session", action="store_true",
                   help="accepted for compatibility: the command always has a session of its own (and a "
                        "pseudo-terminal of its own when yours is a terminal)")
    g.add_argument("--no-die-with-parent", action="store_true", help="let the sandbox outlive sysgate")
    g = p.add_argument_group("reporting")
    g.add_argument("--json", action="store_true", help="print the result as one JSON line on stdout at the end")
    g.add_argument("--status-fd", type=int, metavar="FD", help="write the JSON result to this fd")
    g.add_argument("-q", "--quiet", action="store_true", help="no note on stderr when the command is killed")
    a("--launcher", choices=["auto", "vfork", "fork"], default="auto", help=argparse.SUPPRESS)
    a("command", nargs=argparse.REMAINDER, metavar="CMD [ARGS...]", help="the command (after --)")
    p.set_defaults(func=run_command)
    return p


# What run_args reads: option -> (dest, conversion or None); appended ones; flags; choices.
_VALUES = {
    "--profile": ("profile", None), "--seccomp-action": ("seccomp_action", None), "--rootfs": ("rootfs", None),
    "--tmp-size": ("tmp_size", None), "--chdir": ("chdir", None), "--net": ("net", None),
    "--hostname": ("hostname", None), "--uid": ("uid", int), "--gid": ("gid", int),
    "--host-uid": ("host_uid", int), "--host-gid": ("host_gid", int), "--memory": ("memory", None),
    "--pids": ("pids", int), "--cpus": ("cpus", float), "--timeout": ("timeout", float),
    "--status-fd": ("status_fd", int), "--launcher": ("launcher", None),
    "--allow": ("allow", None), "--deny": ("deny", None), "--bind": ("bind", None), "--ro-bind": ("ro_bind", None),
    "--tmpfs": ("tmpfs", None), "--ro": ("ro", None), "--rw": ("rw", None), "--share": ("share", None),
    "--cap-add": ("cap_add", None), "--rlimit": ("rlimit", None), "--env": ("env", None),
    "--keep-env": ("keep_env", None), "--pass-fd": ("pass_fd", int),
    "--allow-socket": ("allow_socket", None), "--allow-connect": ("allow_connect", None),
    "--allow-path": ("allow_path", None),
}
_APPENDED = frozenset({"allow", "deny", "bind", "ro_bind", "tmpfs", "ro", "rw", "share", "cap_add", "rlimit", "env",
                       "keep_env", "pass_fd", "allow_socket", "allow_connect", "allow_path"})
_FLAGS = {"--no-seccomp": "no_seccomp", "--skip-unknown": "skip_unknown", "--strict": "strict", "--inherit-env": "inherit_env",
          "--new-session": "new_session", "--no-die-with-parent": "no_die_with_parent",
          "--keep-host-root": "keep_host_root", "--json": "json", "-q": "quiet", "--quiet": "quiet",
          "--log-denials": "log_denials", "--ask": "ask", "--no-mediate": "no_mediate"}
_CHOICES = {"net": ("none", "host"), "launcher": ("auto", "vfork", "fork")}
_DEFAULTS = {"profile": "docker-default", "seccomp_action": None, "rootfs": None, "tmp_size": None, "chdir": None,
             "net": "none", "hostname": "sysgate", "uid": None, "gid": None, "host_uid": None, "host_gid": None, "memory": None, "pids": None,
             "cpus": None, "timeout": None, "status_fd": None, "launcher": "auto"}


class _Args:
    """What argparse's Namespace is to :func:`run_command` (``types`` costs an import here)."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def run_args(words: Sequence[str]) -> Any:
    """The arguments after ``sysgate run`` as the argparse parser reads them, or None when this
    reader leaves the command line to argparse (help, abbreviations, ``--opt`` with a value that
    starts with ``-``, a value argparse would reject, an unknown option: argparse's to report)."""
    ns: dict[str, Any] = dict(_DEFAULTS)
    for dest in _APPENDED:
        ns[dest] = []
    for dest in _FLAGS.values():
        ns[dest] = False
    i, n = 0, len(words)
    while i < n:
        word = words[i]
        if not word.startswith("-") or word == "--":
            break  # the command: argparse's REMAINDER keeps a leading "--" too
        i += 1
        if word in _FLAGS:
            ns[_FLAGS[word]] = True
            continue
        if word in _VALUES:
            if i == n or words[i].startswith("-"):
                return None
            value = words[i]
            i += 1
        elif word.startswith("--") and word.partition("=")[0] in _VALUES:
            word, _, value = word.partition("=")
        else:
            return None
        dest, conv = _VALUES[word]
        if conv is not None:
            try:
                value = conv(value)
            except ValueError:
                return None
        if dest in _CHOICES and value not in _CHOICES[dest]:
            return None
        if dest in _APPENDED:
            ns[dest].append(value)
        else:
            ns[dest] = value
    ns["command"] = list(words[i:])
    if ns["command"][:1] == ["-"]:
        return None
    return _Args(func=run_command, **ns)


def _split(values: list[str]) -> list[str]:
    return [x.strip() for v in values for x in v.split(",") if x.strip()]


def options_from_args(args: Any) -> Any:
    from .options import Bind, Options, parse_bind, parse_tmpfs

    share = set(_split(args.share))
    if args.net == "host":
        share.add("net")
    binds: list[Bind] = [parse_bind(b, readonly=False) for b in args.bind]
    binds += [parse_bind(b, readonly=True) for b in args.ro_bind]
    return Options(
        profile=None if args.no_seccomp else args.profile, allow=tuple(args.allow), deny=tuple(args.deny),
        seccomp_action=args.seccomp_action, rootfs=args.rootfs, binds=tuple(binds),
        tmpfs=tuple(parse_tmpfs(t) for t in args.tmpfs), tmp_size=args.tmp_size, share=frozenset(share),
        hostname=args.hostname, uid=args.uid, gid=args.gid, rlimits=list(args.rlimit), memory=args.memory,
        pids=args.pids, cpus=args.cpus, cap_add=tuple(_split(args.cap_add)), pass_fds=tuple(args.pass_fd),
        env=list(args.env), keep_env=tuple(args.keep_env), clear_env=not args.inherit_env, timeout=args.timeout,
        cwd=args.chdir, landlock_ro=tuple(args.ro), landlock_rw=tuple(args.rw),
        die_with_parent=not args.no_die_with_parent, new_session=args.new_session, launcher=args.launcher,
        skip_unknown=args.skip_unknown, keep_host_root=args.keep_host_root, host_uid=args.host_uid,
        host_gid=args.host_gid,
        mediate=not args.no_mediate, allow_sockets=tuple(args.allow_socket), allow_connect=tuple(args.allow_connect),
        allow_paths=tuple(args.allow_path), log_denials=args.log_denials, ask=args.ask,
    )


def run_command(args: Any) -> int:
    """Run the sandbox; returns the exit status. Bad options raise ValueError (the CLI's status 2)."""
    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise ValueError("run: no command given (sysgate run [OPTIONS] -- CMD [ARGS...])")
    opts = options_from_args(args)
    if args.status_fd is not None:  # checked before the command runs, not when its result is written
        from .options import JailConfigError

        if not 0 <= args.status_fd < 1 << 31:
            raise JailConfigError(f"--status-fd: {args.status_fd} is not a file descriptor number")
        try:
            os.fstat(args.status_fd)
        except OSError as e:
            raise JailConfigError(f"--status-fd: {args.status_fd}: {e.strerror}") from None
    from .result import SandboxError
    from .sandbox import run

    import _signal

    # ^C reaches the sandbox (same process group) and ends the command; this process just reports
    # how it ended. Default handling rather than KeyboardInterrupt: never a traceback.
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
    try:
        res = run(cmd, options=opts, forward_signals=True)
    except SandboxError as e:
        print(f"sysgate: {e}", file=sys.stderr)
        return e.exit_code
    if not args.quiet and res.status != "exited":
        print(f"sysgate: {cmd[0]}: {res.describe()}", file=sys.stderr)
    if args.json or args.status_fd is not None:
        line = (res.to_json() + "\n").encode()
        if args.status_fd is not None:
            try:
                os.write(args.status_fd, line)
            except OSError as e:
                print(f"sysgate: --status-fd {args.status_fd}: {e.strerror}", file=sys.stderr)
        if args.json:
            sys.stdout.flush()
            os.write(1, line)
    return res.exit_code
