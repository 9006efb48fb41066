"""sysgate: deny-by-default seccomp-bpf policies, compiler, emulator and jail, in pure Python.

Imports are lazy so that ``sysgate`` on the command line starts fast; the public names
below load their modules on first use.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

from . import _startup as _startup  # noqa: E402 - the run path's modules from one file (see _startup)

_startup.install_bundle()

_LAZY = {
    "Policy": "sysgate.policy", "Rule": "sysgate.policy", "Condition": "sysgate.policy",
    "Action": "sysgate.policy", "Op": "sysgate.policy", "PolicyError": "sysgate.policy",
    "compile_policy": "sysgate.compiler", "CompileError": "sysgate.compiler",
    "evaluate": "sysgate.reference",
    "run": "sysgate.jail.sandbox", "Sandbox": "sysgate.jail.sandbox",
    "UserError": "sysgate.errors", "BadArgument": "sysgate.errors",
    "record": "sysgate.recorder",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'sysgate' has no attribute {name!r}")
    # The import statement's own function, not importlib.import_module: the importlib package
    # imports warnings, half a millisecond of a script's first sandbox.
    import sys

    __import__(mod)
    return getattr(sys.modules[mod], name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
