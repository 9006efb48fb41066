"""Compatibility layers for code written against other seccomp libraries.

:mod:`sysgate.compat.seccomp` is a pure-Python stand-in for libseccomp's Python bindings
(``import seccomp``). Code that cannot change its imports can get it two ways:

* put the shim directory on the module path: ``PYTHONPATH=$(python3 -c 'import sysgate.compat as
  c; print(c.shim_path())')`` (the directory holds a one-line ``seccomp.py``), or
* call :func:`install_import_hook` before the first ``import seccomp``.

See ``docs/compat.md``.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["install_import_hook", "uninstall_import_hook", "shim_path", "SeccompFinder"]


def shim_path() -> str:
    """The directory to put on ``PYTHONPATH`` so that ``import seccomp`` gets sysgate's module."""
    return str(Path(__file__).resolve().parent / "shim")


class SeccompFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A meta path finder that answers ``import seccomp`` with :mod:`sysgate.compat.seccomp`."""

    name = "seccomp"
    target = "sysgate.compat.seccomp"

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        # the very module object, so state (notification fd, API level) is shared by both names
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        pass


def install_import_hook() -> None:
    """Make ``import seccomp`` resolve to :mod:`sysgate.compat.seccomp`, ahead of any installed
    libseccomp bindings. Has no effect on a ``seccomp`` module that is already imported; call it
    early. Idempotent."""
    if not any(isinstance(f, SeccompFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, SeccompFinder())


def uninstall_import_hook() -> None:
    """Undo :func:`install_import_hook` (an already imported ``seccomp`` stays imported)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, SeccompFinder)]
