"""Tell a file's format from its content, with the file name only as a tiebreak.

Policy formats: ``docker`` (Docker/moby seccomp JSON, also a bare OCI ``linux.seccomp``
object), ``oci`` (a whole runtime-spec ``config.json``), ``firecracker``, ``minijail``,
``kafel``, ``systemd`` (a unit drop-in) and ``k8s`` (a SeccompProfile manifest). Programs:
``bpf`` (raw ``struct sock_filter`` bytes) and ``asm`` (seccomp-tools style assembly or a
disassembly listing, which must never be taken for a policy: ``0000: 0x20 ...`` and
``ok: return ALLOW`` look a little like minijail's ``name: filter``).
"""
from __future__ import annotations

import os

from . import ProfileError, jsondecode

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    import re

__all__ = ["POLICY_FORMATS", "PROGRAM_KINDS", "detect", "detect_json", "detect_file", "is_policy"]

POLICY_FORMATS = ("docker", "oci", "firecracker", "minijail", "kafel", "systemd", "k8s")
PROGRAM_KINDS = ("bpf", "asm")

# Compiled on first use (see _pattern): a JSON profile, the common case, never needs them.
_PATTERNS: dict[str, re.Pattern[str]] = {}
_SOURCES: dict[str, str] = {  # inline flags: (?m) multi-line, (?x) verbose
    "asm": r"""(?xm)^\s*(?:
        line\s+CODE\s+JT\s+JF\s+K                                   # listing header
      | [0-9a-fA-F]{4}:\s+0x[0-9a-fA-F]{2}\s                        # listing line
      | (?:[A-Za-z_]\w*:\s*)?(?:A|X)\s*(?:[-+*/&|^%]|<<|>>)?=(?!=)  # A = ..., X = ..., A += ...
      | (?:[A-Za-z_]\w*:\s*)?A\s*(?:==|!=|>=|<=|>|<|&)\s*\S+\s*\?  # A == x ? a : b
      | (?:[A-Za-z_]\w*:\s*)?if\s*\(                                # if (A == x) goto ...
      | (?:[A-Za-z_]\w*:\s*)?goto\s+\w+                            # goto label
      | (?:[A-Za-z_]\w*:\s*)?else\b                                 # else goto
      | (?:[A-Za-z_]\w*:\s*)?mem\[\d+\]\s*=                         # mem[0] = A
      | (?:[A-Za-z_]\w*:\s*)?return\s+(?:ALLOW|KILL|KILL_PROCESS|KILL_THREAD|TRAP|LOG|USER_NOTIF
                                         |TRACE|ERRNO\s*\(|A\b|X\b|0x)
    )""",
    "k8s": r"(?m)^\s*kind:\s*['\"]?SeccompProfile\b",
    "systemd_section": r"(?m)^\s*\[[A-Za-z][A-Za-z0-9-]*\]\s*$",
    "systemd_key": r"(?m)^\s*SystemCall(?:Filter|ErrorNumber|Architectures|Log)\s*=",
    "kafel": r"""(?m)\bPOLICY\s+\w+\s*\{|^\s*USE\s+\w+|^\s*\#\s*(?:define|include)\b|^\s*DEFAULT\s+[A-Z]""",
    "minijail": r"""(?xm)^\s*(?:@(?:include|default|denylist|frequency)\b
             | (?:\{[^}\n]*\}|[A-Za-z_][\w-]*(?:@[\w-]+)?|@[a-z][\w-]*)\s*(?:\[[^\]\n]*\])?\s*:\s*\S)""",
}


def _pattern(name: str) -> re.Pattern[str]:
    pat = _PATTERNS.get(name)
    if pat is None:
        import re

        pat = _PATTERNS[name] = re.compile(_SOURCES[name])
    return pat


_NOT_JSON = object()
_BY_EXTENSION = {".json": "docker", ".conf": "systemd", ".yaml": "k8s", ".yml": "k8s", ".bpf": "bpf",
                 ".asm": "asm", ".s": "asm"}


def is_policy(kind: str) -> bool:
    return kind in POLICY_FORMATS


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("#", ";")))


def _json_format(doc: object) -> str | None:
    if isinstance(doc, dict):
        if "linux" in doc or "ociVersion" in doc:
            return "oci"
        if "kind" in doc or "apiVersion" in doc:
            return "k8s"
        if "defaultAction" in doc or isinstance(doc.get("syscalls"), list):
            return "docker"
        if doc and all(isinstance(v, dict) and ({"default_action", "filter_action", "mismatch_action", "match_action", "filter"} & set(v))
                       for v in doc.values()):
            return "firecracker"
    return None


def detect(data: bytes, name: str | None = None) -> str:
    """The format of ``data`` (a policy format or a program kind); :class:`ProfileError` if unknown."""
    return detect_json(data, name)[0]


def detect_json(data: bytes, name: str | None = None) -> tuple[str, object]:
    """:func:`detect`, plus the decoded JSON document when the format was told from it (else
    None), so that a reader need not decode the same text again."""
    where = name or "<input>"
    ext = os.path.splitext(name or "")[1].lower()
    if not data.strip():
        raise ProfileError(f"{where}: empty file")
    if b"\0" in data:
        # Every seccomp program has a NUL byte (a return's 16-bit opcode is 0x0006 or 0x0016, in
        # either byte order); text never does. A stray non-UTF-8 byte does not make text BPF.
        return "bpf", None
    from . import decode_text

    text = decode_text(data, where)
    if data.lstrip()[:1] in (b"{", b"["):  # bytes.lstrip() strips what regex \s matches
        try:
            doc = jsondecode.loads(text)  # json.loads, without importing json for valid text
        except (ValueError, RecursionError):
            if text.lstrip().startswith("{") or not _pattern("systemd_section").match(text.lstrip()):
                return "docker", None  # its reader reports where the JSON is broken
            doc = _NOT_JSON  # "[Service]": an INI section, not a JSON array
        if doc is not _NOT_JSON:
            fmt = _json_format(doc)
            if fmt is None:
                raise ProfileError(f"{where}: JSON, but not a seccomp profile sysgate knows (Docker/OCI, "
                                   f"Firecracker or a Kubernetes SeccompProfile)")
            return fmt, doc
    if _pattern("asm").search(text):
        return "asm", None
    if _pattern("k8s").search(text):
        return "k8s", None
    if _pattern("systemd_key").search(text) and (_pattern("systemd_section").search(text) or ext == ".conf"):
        return "systemd", None
    if _pattern("kafel").search(text):
        return "kafel", None
    if _pattern("minijail").search(_strip_comments(text)):
        return "minijail", None
    if ext == ".policy":  # only comments: an empty policy; minijail and Kafel both use .policy
        return "minijail", None
    if ext in _BY_EXTENSION:
        return _BY_EXTENSION[ext], None
    raise ProfileError(f"{where}: cannot tell the format (expected a Docker/OCI, Firecracker, minijail, "
                       f"Kafel, systemd or Kubernetes profile, or a BPF program)")


def detect_file(path: str) -> str:
    try:
        from . import read_limited

        data = read_limited(path)[:1 << 20]
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror}") from None
    return detect(data, path)
