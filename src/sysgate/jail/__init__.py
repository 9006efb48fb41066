"""The jail: run a command under seccomp on top of namespaces, limits and dropped privileges.

``sysgate.jail.run(argv, **options)`` runs one command and returns a :class:`RunResult`;
:class:`Sandbox` starts one and lets the caller stream its I/O, signal and wait for it.
Options are the fields of :class:`Options`; see ``docs/jail.md``. Imports are lazy.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds on the CLI's start-up path
if TYPE_CHECKING:
    from typing import Any

__all__ = ["run", "Sandbox", "RunResult", "SandboxError", "Options", "JailConfigError", "Bind", "Tmpfs",
           "PIPE", "DEVNULL", "STDOUT"]

_LAZY = {
    "run": "sandbox", "Sandbox": "sandbox", "PIPE": "options", "DEVNULL": "options", "STDOUT": "options",
    "RunResult": "result", "SandboxError": "result", "Options": "options", "JailConfigError": "options",
    "Bind": "options", "Tmpfs": "options",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'sysgate.jail' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
