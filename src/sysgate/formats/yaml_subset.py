"""The small part of YAML that Kubernetes manifests use, written and read without a YAML library.

Writing: block mappings and sequences (``kubectl`` style), plain scalars where they cannot be
mistaken for anything else, JSON-quoted strings otherwise. Reading: that, plus comments,
``---`` document separators, single quotes, and flow sequences/mappings of scalars
(``[a, b]``, ``{}``). Anchors, tags, multi-line strings and the like are refused with a
clear error rather than misread.
"""
from __future__ import annotations

import json
import re
from typing import Any

from . import ProfileError

__all__ = ["dump", "load_all"]

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}
_MAX_DIGITS = 40
_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*|0x[0-9a-fA-F]+|0o[0-7]+)$")


def _scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _RESERVED:
        return s
    return json.dumps(s)


def _emit(obj: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = _scalar(k)
            if isinstance(v, dict) and v:
                out.append(f"{pad}{key}:")
                _emit(v, indent + 2, out)
            elif isinstance(v, list) and v:
                out.append(f"{pad}{key}:")
                _emit(v, indent, out)
            else:
                out.append(f"{pad}{key}: {'{}' if v == {} else '[]' if v == [] else _scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                sub: list[str] = []
                _emit(item, indent + 2, sub)
                out.append(f"{pad}- " + sub[0][indent + 2:])
                out.extend(sub[1:])
            else:
                out.append(f"{pad}- {'{}' if item == {} else '[]' if item == [] else _scalar(item)}")
    else:
        out.append(pad + _scalar(obj))


def dump(obj: Any) -> str:
    out: list[str] = []
    _emit(obj, 0, out)
    return "\n".join(out) + "\n"


class _Line:
    __slots__ = ("indent", "text", "no")

    def __init__(self, indent: int, text: str, no: int) -> None:
        self.indent, self.text, self.no = indent, text, no


def _strip_comment(s: str) -> str:
    quote = None
    for i, ch in enumerate(s):
        if quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"':
                continue
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or s[i - 1] in " \t"):
            return s[:i].rstrip()
    return s.rstrip()


class _Reader:
    def __init__(self, lines: list[_Line], source: str) -> None:
        self.lines, self.source = lines, source

    def err(self, no: int, msg: str, near: str | None = None) -> ProfileError:
        """``FILE:LINE: msg``; :func:`load_all` adds line ``no`` with a caret under ``near`` (else
        under the line's first character)."""
        e = ProfileError(f"{self.source}:{no}: {msg}")
        e.yaml_place = (no, near)  # type: ignore[attr-defined]
        return e

    def value(self, text: str, no: int) -> Any:
        t = text.strip()
        if not t:
            return None
        if t[0] in "&*!|>%@`":
            raise self.err(no, f"unsupported YAML ({t[:20]!r}): anchors, tags and block scalars are not read", t)
        if t.startswith('"'):
            try:
                v, end = json.JSONDecoder().raw_decode(t)
            except ValueError:
                raise self.err(no, f"bad double-quoted string {t[:30]!r}", t) from None
            if t[end:].strip():
                raise self.err(no, f"unexpected text after string: {t[end:][:20]!r}", t[end:].strip())
            return v
        if t.startswith("'"):
            if len(t) < 2 or not t.endswith("'"):
                raise self.err(no, f"unterminated single-quoted string {t[:30]!r}", t)
            return t[1:-1].replace("''", "'")
        if t.startswith("["):
            if not t.endswith("]"):
                raise self.err(no, "unterminated flow sequence", t)
            inner = t[1:-1].strip()
            return [self.value(x, no) for x in _split_flow(inner, no, self)] if inner else []
        if t.startswith("{"):
            if t == "{}":
                return {}
            raise self.err(no, "flow mappings other than {} are not read", t)
        if _INT.match(t):
            body = t.lstrip("+-")
            if len(body) > _MAX_DIGITS:  # no value a profile holds (and int() refuses 4,300 digits)
                raise self.err(no, f"a number of {len(body)} digits: no profile value is that large", t)
            sign = -1 if t.startswith("-") else 1
            return sign * (int(body, 0) if body[:2] in ("0x", "0o") else int(body, 10))
        low = t.lower()
        if low in ("true", "yes", "on"):
            return True
        if low in ("false", "no", "off"):
            return False
        if low in ("null", "~"):
            return None
        return t

    def block(self, i: int, indent: int) -> tuple[Any, int]:
        line = self.lines[i]
        if line.text == "-" or line.text.startswith("- "):
            return self.sequence(i, indent)
        return self.mapping(i, indent)

    def sequence(self, i: int, indent: int) -> tuple[list, int]:
        out: list[Any] = []
        while i < len(self.lines) and self.lines[i].indent == indent and \
                (self.lines[i].text == "-" or self.lines[i].text.startswith("- ")):
            line = self.lines[i]
            rest = line.text[1:].lstrip()
            if not rest:
                if i + 1 < len(self.lines) and self.lines[i + 1].indent > indent:
                    v, i = self.block(i + 1, self.lines[i + 1].indent)
                else:
                    v, i = None, i + 1
                out.append(v)
                continue
            if _key_of(rest) is not None:
                col = indent + (len(line.text) - len(rest))
                self.lines[i] = _Line(col, rest, line.no)
                v, i = self.mapping(i, col)
                out.append(v)
                continue
            out.append(self.value(rest, line.no))
            i += 1
        return out, i

    def mapping(self, i: int, indent: int) -> tuple[dict, int]:
        out: dict[str, Any] = {}
        while i < len(self.lines) and self.lines[i].indent == indent:
            line = self.lines[i]
            if line.text.startswith("- ") or line.text == "-":
                break
            kv = _key_of(line.text)
            if kv is None:
                raise self.err(line.no, f"expected 'key: value', got {line.text[:40]!r}")
            key, rest = kv
            if key.startswith(('"', "'")):
                key = self.value(key, line.no)
            if key in out:
                raise self.err(line.no, f"duplicate key {key!r}", kv[0])
            i += 1
            if rest.strip():
                out[key] = self.value(rest, line.no)
            elif i < len(self.lines) and self.lines[i].indent > indent:
                out[key], i = self.block(i, self.lines[i].indent)
            elif i < len(self.lines) and self.lines[i].indent == indent and \
                    (self.lines[i].text == "-" or self.lines[i].text.startswith("- ")):
                out[key], i = self.sequence(i, indent)
            else:
                out[key] = None
        if i < len(self.lines) and self.lines[i].indent > indent:
            raise self.err(self.lines[i].no, "bad indentation")
        return out, i


def _key_of(text: str) -> tuple[str, str] | None:
    m = re.match(r"""^("(?:[^"\\]|\\.)*"|'[^']*'|[^\s:'"\[\]{}#,-][^:#]*?|-[^\s:][^:#]*?)\s*:(?:\s+(.*)|$)""", text)
    if m is None:
        return None
    return m.group(1).strip(), m.group(2) or ""


def _split_flow(inner: str, no: int, r: _Reader) -> list[str]:
    parts, cur, quote = [], "", None
    for ch in inner:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            cur += ch
        elif ch in "[]{}":
            raise r.err(no, "nested flow collections are not read", inner[inner.index(ch):])
        elif ch == ",":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def load_all(text: str, source: str = "<yaml>") -> list[Any]:
    """Every document of ``text``; :class:`ProfileError` (with the line, and the line shown with a
    caret under the place) for what is not read."""
    raws = text.splitlines()
    try:
        return _load_all(raws, source)
    except ProfileError as e:
        no, near = getattr(e, "yaml_place", (None, None))
        if e.source_line is None and no is not None and 0 < no <= len(raws):
            raw = raws[no - 1]
            i = raw.find(near) if near else -1
            e.at(raw, i + 1 if i >= 0 else 0)
        raise


def _load_all(raws: list[str], source: str) -> list[Any]:
    docs: list[list[_Line]] = [[]]
    for no, raw in enumerate(raws, 1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ProfileError(f"{source}:{no}: tabs are not allowed in YAML indentation").at(raw, 1)
        s = _strip_comment(raw)
        if not s.strip():
            continue
        if s.strip() in ("---", "..."):
            docs.append([])
            continue
        if s.startswith("%"):
            raise ProfileError(f"{source}:{no}: YAML directives are not read").at(raw, raw.index("%") + 1)
        docs[-1].append(_Line(len(s) - len(s.lstrip()), s.strip(), no))
    out = []
    for lines in docs:
        if not lines:
            continue
        r = _Reader(lines, source)
        if lines[0].indent != 0:
            raise r.err(lines[0].no, "bad indentation")
        if len(lines) == 1 and _key_of(lines[0].text) is None and not lines[0].text.startswith("-"):
            out.append(r.value(lines[0].text, lines[0].no))
            continue
        v, i = r.block(0, 0)
        if i < len(lines):
            raise r.err(lines[i].no, "bad indentation")
        out.append(v)
    return out
