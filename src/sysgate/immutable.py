"""A small immutable record base, used instead of ``dataclasses`` on the compile path.

``dataclasses`` pulls in ``inspect`` and builds classes with ``exec`` at import time, which
costs several milliseconds on every ``sysgate`` start; these records cost nothing.
Subclasses list their fields in ``__slots__`` and optional defaults in ``_defaults``, and
may define ``_check()`` to validate (and normalise with ``_set``) after construction.
"""
from __future__ import annotations

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    from typing import Any, TypeVar

    _R = TypeVar("_R", bound="Record")

__all__ = ["Record"]

_setattr = object.__setattr__


class Record:
    __slots__: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}
    # The field values as a tuple (an attrgetter, made per subclass on first use): equality and
    # hashing run in C. Made lazily: the run path builds records but never compares them, and
    # importing operator costs ~0.3 ms of every `sysgate run`.
    _get_values: Any = None

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls._get_values = None  # this class's own, made by _values_of

    @classmethod
    def _values_of(cls) -> Any:
        from operator import attrgetter

        fields = tuple(cls.__slots__)
        get: Any
        if len(fields) == 1:
            one = attrgetter(fields[0])
            get = lambda self: (one(self),)  # noqa: E731
        elif fields:
            get = attrgetter(*fields)
        else:
            get = lambda self: ()  # noqa: E731
        cls._get_values = staticmethod(get)
        return get

    def __init__(self, *args: Any, **kw: Any) -> None:
        fields = self.__slots__
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(fields)} arguments")
        if not kw:  # the common case (positional arguments only): no keyword dict to fill and empty
            for name, val in zip(fields, args):
                _setattr(self, name, val)
            for name in fields[len(args):]:
                if name not in self._defaults:
                    raise TypeError(f"{type(self).__name__} missing {name!r}")
                val = self._defaults[name]
                if callable(val) and isinstance(val, type):
                    val = val()
                _setattr(self, name, val)
            self._check()
            return
        for name, val in zip(fields, args):
            if name in kw:
                raise TypeError(f"{type(self).__name__} got {name!r} twice")
            kw[name] = val
        for name in fields:
            if name in kw:
                val = kw.pop(name)
            elif name in self._defaults:
                val = self._defaults[name]
                if callable(val) and isinstance(val, type):
                    val = val()
            else:
                raise TypeError(f"{type(self).__name__} missing {name!r}")
            object.__setattr__(self, name, val)
        if kw:
            raise TypeError(f"{type(self).__name__} got unknown field {next(iter(kw))!r}")
        self._check()

    def _check(self) -> None:
        pass

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple:
        return (self._get_values or self._values_of())(self)

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(other) is not type(self):
            return False
        get = self._get_values or self._values_of()
        return bool(get(self) == get(other))

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((type(self).__name__, (self._get_values or self._values_of())(self)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"

    def replace(self: _R, **changes: Any) -> _R:
        """A copy with some fields changed (validated again)."""
        vals = {n: getattr(self, n) for n in self.__slots__}
        vals.update(changes)
        return type(self)(**vals)

    def __reduce__(self) -> tuple:
        return (type(self), self._values())
