"""Tell a file's format from its content, with the file name only as a tiebreak.

Policy formats: those of the format table (:mod:`.catalog`); each format's module says how
sure it is that a decoded JSON document or a text is its own (``detect_json``/``detect_text``),
and the surest wins, ties going to the first in the table. Programs:
``bpf`` (raw ``struct sock_filter`` bytes) and ``asm`` (seccomp-tools style assembly or a
disassembly listing, which must never be taken for a policy: ``0000: 0x20 ...`` and
``ok: return ALLOW`` look a little like minijail's ``name: filter``).
"""
from __future__ import annotations

import os

from . import ProfileError, catalog

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    import re

__all__ = ["POLICY_FORMATS", "PROGRAM_KINDS", "detect", "detect_json", "detect_file", "is_policy"]

POLICY_FORMATS = catalog.NAMES
PROGRAM_KINDS = ("bpf", "asm")
_PROGRAM_EXTENSIONS = {".bpf": "bpf", ".asm": "asm", ".s": "asm"}

# Compiled on first use: a JSON profile, the common case, never needs it.
_ASM: re.Pattern[str] | None = None
_ASM_SOURCE = r"""(?xm)^\s*(?:
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
    )"""


def _is_asm(text: str) -> bool:
    global _ASM
    if _ASM is None:
        import re

        _ASM = re.compile(_ASM_SOURCE)
    return bool(_ASM.search(text))


def is_policy(kind: str) -> bool:
    return kind in POLICY_FORMATS


def _best(formats: list[catalog.Format], sure: object) -> str | None:
    """The format most sure of the input (``sure(format)`` -> 0..1), asked in table order; the
    first that is certain ends the search, so that no other module is imported for it."""
    best, best_conf = None, 0.0
    for f in formats:
        conf = sure(f)  # type: ignore[operator]
        if conf >= 1.0:
            return f.name
        if conf > best_conf:
            best, best_conf = f.name, conf
    return best


def _json_reader(ext: str) -> str:
    """The format whose reader reports what is wrong with broken JSON: the extension's, else the first."""
    f = catalog.by_extension(ext)
    return f.name if f is not None and f.json else next(g.name for g in catalog.FORMATS if g.json)


def _titles(formats: list[catalog.Format]) -> str:
    titles = [f.title for f in formats]
    return ", ".join(titles[:-1]) + " or " + titles[-1] if len(titles) > 1 else "".join(titles)


def nul_in_text(data: bytes, where: str) -> ProfileError | None:
    """The error for text with a NUL byte in it, or None when ``data`` may be a BPF program.

    Every classic BPF opcode is below 0x100, so a program's first instruction has a NUL byte in
    its first two bytes, in either byte order. A NUL after a run of text is a damaged profile:
    told at its line and column, not read as a program that was never meant."""
    i = data.find(b"\0")
    if i < 2:
        return None
    try:
        head = data[:i].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not all(c.isprintable() or c in "\t\n\r" for c in head):
        return None
    line = head.count("\n") + 1
    col = len(head) - (head.rfind("\n") + 1) + 1
    return ProfileError(f"{where}:{line}:{col}: a NUL byte in text (a profile holds none; is the file damaged?)")


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
        bad = nul_in_text(data, where)
        if bad is not None:
            raise bad
        return "bpf", None
    from . import decode_text

    text = decode_text(data, where)
    broken_json = False
    if data.lstrip()[:1] in (b"{", b"["):  # bytes.lstrip() strips what regex \s matches
        import json

        try:
            from . import json_int

            doc = json.loads(text, parse_int=json_int)
        except (ValueError, RecursionError):
            if text.lstrip().startswith("{"):
                return _json_reader(ext), None  # its reader reports where the JSON is broken
            broken_json = True  # "[Service]" is an INI section, not a JSON array: ask the text formats
        else:
            json_formats = [f for f in catalog.FORMATS if f.json]
            fmt = _best(json_formats, lambda f: f.detect_json(doc))
            if fmt is None:
                raise ProfileError(f"{where}: JSON, but not a seccomp profile sysgate knows "
                                   f"({_titles(json_formats)})")
            return fmt, doc
    if _is_asm(text):
        return "asm", None
    text_formats = [f for f in catalog.FORMATS if f.text]
    fmt = _best(text_formats, lambda f: f.detect_text(text, name))
    if fmt is not None:
        return fmt, None
    if broken_json:
        return _json_reader(ext), None
    if ext in _PROGRAM_EXTENSIONS:
        return _PROGRAM_EXTENSIONS[ext], None
    by_ext = catalog.by_extension(ext)
    if by_ext is not None:
        return by_ext.name, None
    raise ProfileError(f"{where}: cannot tell the format (expected a profile: {_titles(list(catalog.FORMATS))}; "
                       f"or a BPF program)")


def detect_file(path: str) -> str:
    try:
        from . import read_limited

        data = read_limited(path)[:1 << 20]
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror}") from None
    return detect(data, path)
