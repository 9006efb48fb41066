"""Checked reading of the fields of a JSON profile (Docker/OCI, Kubernetes, Firecracker).

Every value is type-checked before use: a wrong type is one :class:`ProfileError` line naming the
file and the field path (``profile.json: syscalls[3].args: expected a list, got an object``), never
a Python error or a silent "no conditions" (``"args": {}`` is not an empty list). JSON ``null`` reads
as an absent field, as Go's ``encoding/json`` (Docker, runc, SPO) reads it.

Keys a reader does not know follow one rule (:func:`check_keys`): a key that is a near miss of a
known one (a different case, or within a small edit distance: ``sycalls``, ``defualtAction``) is an
error, because the field it was meant to be would silently not apply; any other key is ignored with
a :class:`~sysgate.formats.ProfileWarning`, as the format's own tool ignores it (``--strict``: an
error).
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

from . import ProfileError, warn

__all__ = ["at", "err", "check_keys", "near_miss", "get", "get_str", "get_list",
           "str_list", "type_name"]


def at(path: str, key: str | int) -> str:
    """``path`` extended by an object key or a list index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def err(source: str, path: str, msg: str) -> ProfileError:
    return ProfileError(f"{source}: {path}: {msg}" if path else f"{source}: {msg}")


def type_name(v: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _distance(a: str, b: str, cap: int) -> int:
    """Edit distance with adjacent transpositions (optimal string alignment), stopping past ``cap``."""
    if abs(len(a) - len(b)) > cap:
        return cap + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > cap:
            return cap + 1
        prev2, prev = prev, cur
    return prev[-1]


def near_miss(key: str, known: Iterable[str]) -> str | None:
    """The known key ``key`` is a near miss of: the same but for case, or within edit distance 2
    (1 for known keys of up to 4 letters, where 2 edits reach unrelated words), else None."""
    low = key.lower()
    best: tuple[int, str] | None = None
    for k in known:
        if k.lower() == low:
            return k
        cap = 1 if len(k) <= 4 else 2
        d = _distance(low, k.lower(), cap)
        if d <= cap and (best is None or d < best[0]):
            best = (d, k)
    return best[1] if best else None


def check_keys(source: str, path: str, obj: dict, known: Iterable[str], *, ignored_by: str) -> None:
    """Refuse near misses of ``known`` keys; warn about (and so ignore) any other unknown key.
    ``ignored_by`` names the tool that ignores unknown keys too (for the warning)."""
    known = tuple(known)
    for key in obj:
        if key in known:
            continue
        close = near_miss(key, known)
        if close is not None:
            raise err(source, at(path, key), f"unknown field (did you mean {close!r}?)")
        warn(f"{source}: {at(path, key)}: unknown field, ignored as {ignored_by} ignores it "
             f"(--strict makes it an error)")


def get(source: str, path: str, obj: dict, key: str, types: tuple[type, ...], what: str,
        required: bool = False) -> Any:
    """``obj[key]`` when it has one of ``types`` (bool is never an int); None when absent or null;
    a missing required field or a wrong type is an error naming ``path.key``."""
    v = obj.get(key)
    if v is None:
        if required:
            raise err(source, at(path, key), "missing")
        return None
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
        raise err(source, at(path, key), f"expected {what}, got {type_name(v)}")
    return v


def get_str(source: str, path: str, obj: dict, key: str, required: bool = False) -> str | None:
    v: str | None = get(source, path, obj, key, (str,), "a string", required)
    return v


def get_list(source: str, path: str, obj: dict, key: str, required: bool = False) -> list | None:
    v: list | None = get(source, path, obj, key, (list,), "a list", required)
    return v


def str_list(source: str, path: str, v: list, what: str = "a string", nonempty: bool = True) -> list[str]:
    """The items of a list that must all be strings (each checked, so no item is misread)."""
    for i, item in enumerate(v):
        if not isinstance(item, str) or (nonempty and not item):
            got = "an empty string" if item == "" else type_name(item)
            raise err(source, at(path, i), f"expected {what}, got {got}")
    return v
