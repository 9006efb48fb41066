"""Security audit of a seccomp filter, built on the exact decompilation of :mod:`.explain`.

Each :class:`Finding` has a severity (``high``, ``medium``, ``low``, ``info``), a short code,
the architectures it concerns and a one-line reason. Checks:

* ``no-arch-check`` / ``arch-check-incomplete``: syscall numbers mean different syscalls on
  each ABI, so a filter that lets unchecked arch tokens through is bypassable;
* ``x32-reachable`` / ``compat-reachable``: x32 (same token as x86_64, numbers with bit 30) or
  a 32-bit compat ABI (i386 via ``int 0x80``, arm on aarch64) reachable next to a 64-bit arch;
  high when it allows a syscall the 64-bit rules deny (a bypass), low when it mirrors them;
* ``default-allow``: numbers no rule names are allowed (a deny-list);
* ``dangerous``: syscall families that widen the kernel attack surface or escape containment,
  reachable (allowed or logged) — conditionally reachable ones are reported one level lower,
  with the condition; ``clone``/``unshare`` count only with ``CLONE_NEW*`` flags allowed;
* ``kill-thread``: denied calls kill only the calling thread (``SECCOMP_RET_KILL_THREAD``,
  libseccomp's ``SCMP_ACT_KILL``), leaving the rest of the process running;
* ``cve-history``: allowed syscalls with a well-known kernel CVE (table :data:`CVE_HISTORY`);
* ``int-high-word``: on a 64-bit ABI, a call is allowed because of the high word of an argument
  the kernel reads as 32 bits (an ``int``: the handler never sees that word), while the same call
  with that word 0 is refused — libseccomp's reading, which lets ``socket(0x1_00000028, ...)``
  (AF_VSOCK to the kernel) past ``family != 40`` (sysgate's compiler decides on the low word).
  The same on every ABI for an argument the kernel reads as 16 bits (``umode_t`` modes, the
  ``old_uid_t``/``old_gid_t`` of x86's, arm's, ... ``setuid``/``chown``): allowed because of its
  bits 16-63, refused with them 0 — ``fchmod(fd, 0x10000 | 04755)`` past a rule refusing
  ``mode == 04755`` on the low word, ``setuid(0x10000)`` (root) past ``uid != 0`` on i386.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Any

from ..policy import ActionKind
from .domain import M32, WordSet, iv_and, iv_norm
from .explain import Explanation
from .regions import Behaviour, Region
from .render import argname, behaviour_text, region_text
from .views import View, names_in
from .words import arg_words

__all__ = ["Finding", "AuditReport", "audit", "FAMILIES", "CVE_HISTORY", "SEVERITIES"]

SEVERITIES = ("high", "medium", "low", "info")
_LOWER = {"high": "medium", "medium": "low", "low": "info", "info": "info"}

# family -> (severity, syscalls, why)
FAMILIES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "mount": ("high", ("mount", "umount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsconfig",
                       "fsmount", "fspick", "mount_setattr", "open_tree_attr"),
              "changes the mount table (container escape, hiding files)"),
    "namespaces": ("high", ("unshare", "setns", "clone", "clone3"),
                   "creates or joins namespaces (user namespaces unlock root-only kernel code)"),
    "modules": ("high", ("init_module", "finit_module", "delete_module", "create_module"),
                "loads or unloads kernel code"),
    "kexec": ("high", ("kexec_load", "kexec_file_load"), "replaces the running kernel"),
    "keyring": ("medium", ("add_key", "request_key", "keyctl"), "kernel keyring, not namespaced"),
    "bpf": ("high", ("bpf",), "loads eBPF programs into the kernel"),
    "perf": ("medium", ("perf_event_open",), "performance events: kernel info leaks and a large attack surface"),
    "ptrace": ("medium", ("ptrace", "process_vm_readv", "process_vm_writev", "kcmp"),
               "reads or changes other processes' memory"),
    "io_uring": ("medium", ("io_uring_setup", "io_uring_enter", "io_uring_register"),
                 "asynchronous syscalls that seccomp does not see"),
    "userfaultfd": ("medium", ("userfaultfd",), "stalls kernel page faults at will (race-exploit primitive)"),
    "raw-io": ("high", ("iopl", "ioperm"), "raw access to I/O ports"),
    "clock": ("low", ("clock_settime", "settimeofday", "stime", "clock_settime64"), "sets the system clock"),
    "reboot": ("high", ("reboot",), "reboots or halts the machine"),
    "swap": ("medium", ("swapon", "swapoff"), "changes swap devices"),
    "accounting": ("medium", ("acct", "quotactl", "quotactl_fd"), "process accounting and disk quotas"),
    "file-handles": ("high", ("open_by_handle_at",), "opens files by handle, bypassing the mount namespace "
                                                        "(the 'shocker' container escape)"),
    "file-handle-names": ("low", ("name_to_handle_at",), "leaks file handles for open_by_handle_at"),
    "kernel-info": ("low", ("syslog", "lookup_dcookie", "_sysctl", "sysfs", "nfsservctl"),
                    "kernel log and obsolete kernel interfaces"),
    "tty": ("low", ("vhangup",), "hangs up the controlling terminal"),
    "x86-legacy": ("medium", ("vm86", "vm86old", "modify_ldt"), "legacy x86 CPU modes with a history of bugs"),
    "personality": ("medium", ("personality",), "changes the execution domain"),
    "numa": ("low", ("mbind", "migrate_pages", "move_pages", "set_mempolicy"), "NUMA placement (host layout info)"),
}

# CLONE_NEW* (NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET); unshare also takes NEWTIME.
CLONE_NEW_MASK = 0x7E020000
UNSHARE_NEW_MASK = 0x7E020080

# Syscalls with a well-known kernel CVE, each checked against a public record:
#   waitid CVE-2017-5123: github.com/xyongcn/exploit (waitid_syscall), secwiki/linux-kernel-exploits
#   keyctl CVE-2016-0728: cvelogic.com/cve/CVE-2016-0728 (join_session_keyring refcount overflow)
#   perf_event_open CVE-2013-2094, bpf CVE-2017-16995, futex CVE-2014-3153: CVEProject/cvelistV5 records
#   vmsplice CVE-2008-0600, mremap CVE-2004-0077, prctl CVE-2006-2451, uselib CVE-2004-1235,
#     epoll_wait CVE-2005-0736: github.com/Snoopy-Sec/Localroot-ALL-CVE (exploit-db index)
#   io_uring CVE-2024-0582: openwall.com/lists/oss-security/2024/04/24/3
#   ptrace CVE-2019-13272: github.com/bcoles/kernel-exploits
#   unshare/clone (user namespaces) CVE-2018-18955: GHSA-c6xj-3c77-g5rg (map_write, nested user namespaces)
#   userfaultfd CVE-2024-41027: osv.dev/vulnerability/CVE-2024-41027
CVE_HISTORY: dict[str, tuple[str, str]] = {
    "waitid": ("CVE-2017-5123", "missing access_ok: write to kernel memory (4.13)"),
    "keyctl": ("CVE-2016-0728", "keyring refcount overflow, use-after-free"),
    "perf_event_open": ("CVE-2013-2094", "perf_swevent_init integer type: local root"),
    "bpf": ("CVE-2017-16995", "verifier sign extension: kernel memory corruption"),
    "futex": ("CVE-2014-3153", "futex_requeue: local root (towelroot)"),
    "vmsplice": ("CVE-2008-0600", "missing checks in vmsplice: local root"),
    "mremap": ("CVE-2004-0077", "do_mremap: local root"),
    "prctl": ("CVE-2006-2451", "PR_SET_DUMPABLE core dumps: local root"),
    "uselib": ("CVE-2004-1235", "uselib race: local root"),
    "epoll_wait": ("CVE-2005-0736", "integer overflow: local root"),
    "io_uring_setup": ("CVE-2024-0582", "io_uring buffer ring use-after-free"),
    "io_uring_register": ("CVE-2024-0582", "io_uring buffer ring use-after-free"),
    "ptrace": ("CVE-2019-13272", "PTRACE_TRACEME credentials: local root"),
    "unshare": ("CVE-2018-18955", "nested user namespace id maps: privilege escalation"),
    "userfaultfd": ("CVE-2024-41027", "userfaultfd_api feature check (kernel warning)"),
}

_REACH = (ActionKind.ALLOW, ActionKind.LOG)
_COMPAT = {"x86_64": ("x86", "x32"), "aarch64": ("arm",), "ppc64": ("ppc",), "s390x": ("s390",),
           "mips64": ("mips",), "mips64el": ("mipsel",), "parisc64": ("parisc",)}


class Finding:
    __slots__ = ("severity", "code", "arches", "message", "syscalls")

    def __init__(self, severity: str, code: str, arches: Iterable[str], message: str,
                 syscalls: Iterable[str] = ()) -> None:
        self.severity = severity
        self.code = code
        self.arches = list(arches)
        self.message = message
        self.syscalls = list(syscalls)

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "code": self.code, "arches": self.arches, "message": self.message,
                "syscalls": self.syscalls}

    def __str__(self) -> str:
        where = f" [{', '.join(self.arches)}]" if self.arches else ""
        return f"{self.severity:>6}: {self.code}{where}: {self.message}"

    def __repr__(self) -> str:
        return f"Finding({self})"


class AuditReport:
    def __init__(self, findings: list[Finding], source: str = "") -> None:
        order = {s: i for i, s in enumerate(SEVERITIES)}
        self.findings = sorted(findings, key=lambda f: (order[f.severity], f.code, f.message))
        self.source = source

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in SEVERITIES}
        for f in self.findings:
            out[f.severity] += 1
        return out

    def summary(self) -> str:
        c = self.counts()
        return ", ".join(f"{c[s]} {s}" for s in SEVERITIES)

    def worst(self) -> str | None:
        return self.findings[0].severity if self.findings else None

    def render(self, baseline: AuditReport | None = None, baseline_name: str = "docker-default") -> str:
        lines = [str(f) for f in self.findings] or ["no findings"]
        lines.append(f"summary: {self.summary()}")
        if baseline is not None:
            lines.append(f"for scale, {baseline_name}: {baseline.summary()}")
        return "\n".join(lines) + "\n"

    def to_json(self, baseline: AuditReport | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.source, "findings": [f.to_json() for f in self.findings],
                             "counts": self.counts()}
        if baseline is not None:
            d["baseline"] = {"name": "docker-default", "counts": baseline.counts()}
        return d


# ---------------------------------------------------------------------------- helpers

def _reach(r: Region) -> bool:
    k = r.action_kind
    return k is None or k in _REACH  # a return value of unknown action may allow


def _allowed_regions(b: Behaviour) -> list[Region]:
    return [r for r in b.regions if _reach(r)]


def _syscall_behaviours(e: Explanation, view: View) -> dict[str, Behaviour]:
    t = e.table(view)
    out: dict[str, Behaviour] = {}
    for lo, hi, bi in t.ranges():
        for _nr, name in names_in(view, lo, hi):
            out[name] = t.behaviours[bi]
    return out


def _flags_region(view: View, byteorder: str, arg: int, mask: int) -> Region:
    lo_w, _ = arg_words(arg, byteorder)
    return Region(((lo_w, WordSet.make(((0, M32),), nes=[(mask, 0)])),), (), 0)


def _is_allowish(b: Behaviour) -> bool:
    return any(_reach(r) for r in b.regions)


def _int_high_words(e: Explanation, view: View, bo: str) -> list[tuple[str, str]]:
    """(syscall, message) for each call ``view`` allows only with bits set above what the kernel
    reads of an argument, whose twin without those bits (the same value to the handler) it refuses.

    Two widths: on a 64-bit ABI, an argument read as 32 bits (an ``int``: the high word is never
    seen); on every ABI, one read as 16 bits (``umode_t``, and the ``old_uid_t``/``old_gid_t`` of
    the 16-bit uid calls: bits 16-63 are never seen). Regions are products of word sets: for the
    high word, an allowed region whose high-word set holds 0 contains the twin itself, so only
    regions that exclude 0 can differ; bits 16-31 share the low word with the bits the kernel
    reads, so :func:`_short_witness` searches that word for an allowed value whose low 16 bits
    are a refused one. Each twin is checked against every refusing region."""
    from ..compiler.lower import narrow_args, short_args

    assert view.arch is not None
    wide = view.arch.compare_bits == 64  # the high word of a 32-bit argument is in the filter's input
    zero = WordSet.make(((0, 0),))
    out = []
    for name, b in _syscall_behaviours(e, view).items():
        nr = view.arch.syscalls.get(name)
        low = narrow_args(view.arch, nr) if nr is not None and wide else frozenset()
        short = short_args(view.arch, nr) if nr is not None else frozenset()
        if not (low or short):
            continue
        refused = [dict(q.conds) for q in b.regions if not _reach(q)]
        if not refused:
            continue
        found = None
        for r in b.regions:
            if not _reach(r) or found:
                continue
            conds = dict(r.conds)
            for i in sorted(low | short):
                lo_w, hi_w = arg_words(i, bo)
                hs = conds.get(hi_w)
                if i in low and hs is not None and not hs.contains(0):
                    twin = dict(conds)
                    twin[hi_w] = zero
                    for q in refused:
                        meet = {w: (twin[w].intersect(q[w]) if w in twin and w in q else twin.get(w) or q.get(w))
                                for w in set(twin) | set(q)}
                        if all(ws is not None for ws in meet.values()):
                            lo = meet.get(lo_w)
                            v = (hs.first() or 1) << 32 | (lo.first() or 0 if lo is not None else 0)
                            found = (i, v, v & M32)
                            break
                if not found and i in short:
                    found = _short_twin(conds, refused, i, lo_w, hi_w)
                if found:
                    break
        if found:
            i, value, seen = found
            arg = argname(name, i, view)
            bits, ignored, read = ((16, "all but the low 16 bits", "low 16 bits") if i in short
                                   else (32, "the high word", "low word"))
            out.append((name, f"{name}'s {arg} is {bits} bits to the kernel (it ignores {ignored}), yet the filter "
                              f"allows {arg}={value:#x} and refuses {arg}={seen:#x}, the same value to the "
                              f"kernel (libseccomp compares all {view.arch.bits} bits; sysgate's compiler decides "
                              f"on the {read})"))
    return out


U16 = 0xFFFF
_FULL16 = WordSet.make(((0, U16),))


def _short_twin(conds: dict, refused: list[dict], i: int, lo_w: int, hi_w: int) -> tuple[int, int, int] | None:
    """(arg, value, twin) for an allowed region (``conds``) holding a value of 16-bit argument
    ``i`` with bits set in 16-31 of its low word whose low 16 bits, high word 0 (``twin``) and
    other words are in a refusing region; None if there is none."""
    assert _FULL16 is not None
    r_lo, r_hi = conds.get(lo_w), conds.get(hi_w)
    h = 0 if r_hi is None or r_hi.contains(0) else r_hi.first() or 0
    for q in refused:
        q_hi = q.get(hi_w)
        if q_hi is not None and not q_hi.contains(0):
            continue
        if any(w in conds and conds[w].intersect(ws) is None for w, ws in q.items() if w not in (lo_w, hi_w)):
            continue
        q_lo = q.get(lo_w)
        twins = _FULL16 if q_lo is None else q_lo.restrict(((0, U16),))
        if twins is None:
            continue
        v = _short_witness(r_lo if r_lo is not None else WordSet(), twins)
        if v is not None:
            return i, h << 32 | v, v & U16
    return None


def _slice16(ws: WordSet, k: int, ivs: tuple, dead: frozenset = frozenset()) -> WordSet | None:
    """``{t < 2**16 : k << 16 | t in ws}`` within ``ivs`` (16-bit intervals), assuming the
    constraints ``dead`` of ``ws.nes`` hold through the bits above 16 (None if ``k``'s block
    is already refused by the fixed bits)."""
    base = k << 16
    if (base ^ ws.fval) & ws.fmask & ~U16:
        return None
    nes = []
    for m, v in ws.nes:
        if (m, v) in dead or (base ^ v) & m & ~U16:
            continue  # holds through the bits above 16
        nes.append((m & U16, v & U16))  # a mask of 0 there: violated, the set is empty
    return WordSet.make(ivs, ws.fmask & U16, ws.fval & U16, nes)


def _short_witness(ws: WordSet, twins: WordSet) -> int | None:
    """A member ``v`` of the 32-bit word set ``ws`` with ``v >> 16 != 0`` and ``v & 0xffff`` in
    ``twins`` (a set of 16-bit values), or None. Exact.

    Blocks ``k`` (values ``k << 16 | t``) that an interval of ``ws`` covers in part are sliced one
    by one; in the blocks it covers whole, the slice depends on ``k`` only through the fixed
    bits and through which ``nes`` constraints the bits of ``k`` already satisfy, so each choice
    of satisfied constraints is one search for a ``k`` (a 16-bit word set) and one for a ``t``."""
    edges: set[int] = set()
    whole: list[tuple[int, int]] = []
    for lo, hi in ws.ivs:
        a = max(lo, 1 << 16)
        if a > hi:
            continue
        ka, kb = a >> 16, hi >> 16
        first = ka if a & U16 == 0 else ka + 1
        last = kb if hi & U16 == U16 else kb - 1
        if first <= last:
            whole.append((first, last))
        edges.update(k for k in (ka, kb) if not first <= k <= last)
    for k in sorted(edges):
        base = k << 16
        part = iv_and(ws.ivs, ((base, base | U16),))
        s = _slice16(ws, k, tuple((x - base, y - base) for x, y in part))
        s = s.intersect(twins) if s is not None else None
        t = s.first() if s is not None else None
        if t is not None:
            return base | t
    if not whole:
        return None
    # Constraints that look at bits above 16; more than a dozen never come out of one comparison
    # chain, and leaving the rest out of the choices only loses witnesses, never makes one up.
    upper = [(m, v) for m, v in sorted(ws.nes) if m & ~U16][:12]
    for size in range(len(upper) + 1):
        for dead in combinations(upper, size):
            ks = WordSet.make(iv_norm(whole), ws.fmask >> 16, ws.fval >> 16, [(m >> 16, v >> 16) for m, v in dead])
            kk = ks.first() if ks is not None else None
            if kk is None:
                continue
            s = _slice16(ws, kk, ((0, U16),), frozenset(dead))
            s = s.intersect(twins) if s is not None else None
            t = s.first() if s is not None else None
            if t is not None:
                return kk << 16 | t
    return None


# ---------------------------------------------------------------------------- the audit

def audit(e: Explanation, arches: Sequence[str] | None = None) -> AuditReport:
    """Findings for the program(s) explained by ``e`` (on ``arches``' views, default all)."""
    bo = e.byteorder
    views = e.views(arches)
    findings: list[Finding] = []
    known = [v for v in views if v.arch is not None and v.token is not None and v.arch.byteorder == bo]
    multi = [v for v in views if v not in known and not (v.arch is not None and v.token is not None)]
    anything_allowed = any(_is_allowish(b) for v in views for b in e.table(v).behaviours)

    # -- architecture checks
    if not e.checks_arch and anything_allowed and not arches:
        findings.append(Finding("high", "no-arch-check", [], "the filter never checks the architecture: the same "
                                "numbers are other syscalls on x32, i386 (int 0x80) and other ABIs, so its "
                                "rules can be bypassed"))
    elif not arches:
        for v in multi:
            t = e.table(v)
            if any(_is_allowish(b) for b in t.behaviours):
                what = behaviour_text(t.behaviours[0], v, bo) if len(t.behaviours) == 1 else "some syscalls"
                findings.append(Finding("high", "arch-check-incomplete", [v.label],
                                        f"calls from architectures the filter does not check reach allow "
                                        f"({what}); syscall numbers mean other syscalls there"))
    # -- x32 / compat ABIs next to a 64-bit one
    by_label = {v.label: v for v in known}
    for main, compats in _COMPAT.items():
        mv = by_label.get(main)
        if mv is None:
            continue
        main_b = _syscall_behaviours(e, mv)
        for c in compats:
            cv = by_label.get(c)
            if cv is None:
                continue
            t = e.table(cv)
            # Number -1 is no syscall (the kernel skips it with ENOSYS); libseccomp lets it through
            # on every ABI it guards, for tracers, so allowing it alone does not make the ABI reachable.
            if not any(_is_allowish(t.behaviours[bi]) for lo, hi, bi in t.ranges() if not lo == hi == M32):
                continue
            comp_b = _syscall_behaviours(e, cv)
            allowed = sorted(n for n, b in comp_b.items() if _is_allowish(b))
            bypass = [n for n in allowed if n in main_b and not _is_allowish(main_b[n])]
            code = "x32-reachable" if c == "x32" else "compat-reachable"
            if bypass:
                findings.append(Finding("high", code, [c], f"{c} calls are allowed that {main} denies: "
                                        + ", ".join(bypass[:12]) + (" ..." if len(bypass) > 12 else ""), bypass))
            elif allowed:
                findings.append(Finding("low", code, [c], f"the {c} ABI is reachable from {main} processes "
                                        f"({len(allowed)} syscalls allowed, mirroring {main}'s rules)"))
            else:
                findings.append(Finding("medium", code, [c], f"the {c} ABI is reachable from {main} processes"))
    # -- default allow
    for v in known + multi:
        t = e.table(v)
        d = t.behaviours[t.default_index()]
        act = d.unconditional
        if act is not None and act.kind in _REACH:
            findings.append(Finding("high", "default-allow", [v.label], f"{act} for every syscall the filter does "
                                    "not name (a deny-list: new and forgotten syscalls are allowed)"))
        elif act is not None and act.kind in (ActionKind.TRACE, ActionKind.USER_NOTIF):
            findings.append(Finding("medium", "default-supervised", [v.label],
                                    f"{act} for every syscall the filter does not name: safe only if the "
                                    "supervisor denies them"))
    # -- dangerous families and CVE history (one finding per syscall, listing the arches)
    hits: dict[tuple[str, str, str, str], list[str]] = {}
    cves: dict[str, list[str]] = {}
    for v in known + [m for m in multi if m.arch is not None]:
        beh = _syscall_behaviours(e, v)
        for fam, (sev, names, _why) in FAMILIES.items():
            for name in names:
                b = beh.get(name)
                if b is None:
                    continue
                got = _dangerous(name, b, v, bo)
                if got is None:
                    continue
                hint, detail = got
                severity = sev if hint == "high" else _LOWER[sev]
                hits.setdefault((severity, fam, name, detail), []).append(v.label)
        for name, b in beh.items():
            if name in CVE_HISTORY and _is_allowish(b):
                cves.setdefault(name, []).append(v.label)
    # One finding per family and severity, naming its syscalls (with their conditions).
    fams: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    for (severity, fam, name, detail), hit_labels in hits.items():
        fams.setdefault((severity, fam, tuple(hit_labels)), []).append(name + detail)
    for (severity, fam, labels), fam_names in fams.items():
        why = FAMILIES[fam][2]
        findings.append(Finding(severity, f"dangerous:{fam}", labels, f"{', '.join(fam_names)} allowed: {why}",
                                [n.split(" ")[0] for n in fam_names]))
    by_arches: dict[tuple[str, ...], list[str]] = {}
    for name, cve_labels in cves.items():
        by_arches.setdefault(tuple(cve_labels), []).append(name)
    for arch_labels, cve_names in by_arches.items():
        findings.append(Finding("info", "cve-history", arch_labels, "allowed syscalls with a kernel CVE history: "
                                + ", ".join(f"{n} ({CVE_HISTORY[n][0]})" for n in cve_names), cve_names))
    # -- an int argument's high word lets a call through that the low word alone would refuse
    ints: dict[tuple[str, str], list[str]] = {}
    for v in known:
        if v.arch is not None:
            for name, text in _int_high_words(e, v, bo):
                ints.setdefault((name, text), []).append(v.label)
    for (name, text), int_labels in ints.items():
        findings.append(Finding("high", "int-high-word", int_labels, text, [name]))
    # -- kill-thread where kill-process was likely meant
    kt = []
    for v in views:
        for b in e.table(v).behaviours:
            for r in b.regions:
                a = r.action
                if a is not None and a.kind is ActionKind.KILL_THREAD:
                    kt.append(v.label)
                    break
            else:
                continue
            break
    if kt:
        findings.append(Finding("medium", "kill-thread", sorted(set(kt), key=kt.index),
                                "denied calls kill only the calling thread (SECCOMP_RET_KILL_THREAD, libseccomp's "
                                "SCMP_ACT_KILL); the other threads run on in an unknown state: use kill-process"))
    # The same finding on several arches is one finding.
    merged: dict[tuple[str, str, str], Finding] = {}
    for f in findings:
        key = (f.severity, f.code, f.message)
        if key in merged:
            merged[key].arches += [a for a in f.arches if a not in merged[key].arches]
        else:
            merged[key] = f
    return AuditReport(list(merged.values()), ", ".join(e.sources))


def _dangerous(name: str, b: Behaviour, view: View, bo: str) -> tuple[str, str] | None:
    """(severity hint, detail) if ``name`` is reachable in a dangerous way, else None.

    The hint is "high" for unconditional reach, "lower" when only some arguments reach it.
    """
    allowed = _allowed_regions(b)
    if not allowed:
        return None
    if name in ("clone", "unshare"):
        arg = 1 if name == "clone" and view.arch is not None and view.arch.name in ("s390", "s390x") else 0
        mask = CLONE_NEW_MASK if name == "clone" else UNSHARE_NEW_MASK
        probe = _flags_region(view, bo, arg, mask)
        if not any(r.intersect(probe) is not None for r in allowed):
            return None  # namespaces cannot be created through it
        return "high", " (with CLONE_NEW* flags)"
    if name == "personality":
        if len(allowed) == len(b.regions) and all(not r.conds and not r.opaque for r in allowed):
            return "high", " (unrestricted: ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...)"
        return None  # restricted to some personas, as Docker does
    if len(allowed) == len(b.regions):
        return "high", ""
    conds = [region_text(r, view, bo, name) for r in allowed]
    text = " || ".join(conds)
    return "lower", f" (when {text if len(text) <= 100 else text[:97] + '...'})"
