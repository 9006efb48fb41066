"""``json.loads`` for profile files, without importing the ``json`` package when the text is valid.

``import json`` also imports ``re`` and json's encoder: several milliseconds of every
``sysgate compile`` of a JSON profile, more than decoding the profile takes. What ``json.loads``
runs on a ``str`` is json's C scanner (``_json``) between two skips of JSON whitespace; this module
runs the same scanner with the same settings, so a valid text decodes to the same objects. Any text
the scanner rejects is handed to ``json.loads``, so errors are exactly json's (``JSONDecodeError``
with its message, line and column; ``RecursionError`` for absurd nesting).
"""
from __future__ import annotations

__all__ = ["loads"]

_WHITESPACE = " \t\n\r"  # json.decoder.WHITESPACE: [ \t\n\r]*
_scan_once: object = None  # the scanner, made on first use; False when _json is unavailable


class _Settings:
    """What json.decoder.JSONDecoder() passes to its scanner by default."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def _scanner() -> object:
    global _scan_once
    if _scan_once is None:
        try:
            from _json import make_scanner
        except ImportError:  # not CPython: json.loads it is
            _scan_once = False
        else:
            _scan_once = make_scanner(_Settings())
    return _scan_once


def loads(text: str | bytes) -> object:
    """The JSON value ``text`` holds, as ``json.loads(text)`` returns it (and raises what it raises)."""
    if isinstance(text, (bytes, bytearray)):
        # json.loads reads bytes without a BOM or NUL in the first four as UTF-8 ("surrogatepass",
        # which decodes every text strict UTF-8 does, the same way); the rest is json's to read.
        if 0 in text[:4] or text.startswith(b"\xef\xbb\xbf"):
            return _json_loads(text)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return _json_loads(text)
    scan = _scanner()
    if scan:
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = scan(text, start)  # type: ignore[operator]
        except Exception:  # noqa: BLE001 - whatever it is, json.loads reports it as json does
            # (the scanner needs json.decoder loaded to raise its JSONDecodeError: a SystemError here)
            pass
        else:
            if not text[end:].strip(_WHITESPACE):
                return value
    return _json_loads(text)


def _json_loads(text: str | bytes) -> object:
    import json

    return json.loads(text)
