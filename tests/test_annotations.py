"""Every annotation in the package names something that exists.

Modules write ``from __future__ import annotations`` and import typing-only names under
``if TYPE_CHECKING:``, so an annotation naming nothing (``-> tuple[str, Action]`` with ``Action``
imported nowhere) runs fine and breaks only ``typing.get_type_hints`` and type checkers. This
evaluates each public function's and class's annotations with the module's globals plus what it
defines under ``TYPE_CHECKING``, as a type checker would see them.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
import typing

import pytest

import sysgate

# Entry points that run something when imported.
SKIP = {"sysgate.__main__"}


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(sysgate.__path__, "sysgate.") if m.name not in SKIP)


def _checker_namespace(mod: object) -> dict[str, object]:
    """The module's globals plus what it defines under ``if TYPE_CHECKING:`` (imports, aliases, TypeVars)."""
    ns = dict(vars(mod))
    path = getattr(mod, "__file__", None)
    if not path or not path.endswith(".py"):
        return ns
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            exec(compile(ast.Module(body=node.body, type_ignores=[]), path, "exec"), ns)
    return ns


def _annotated(mod: object) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for name, obj in vars(mod).items():
        if getattr(obj, "__module__", None) != mod.__name__:  # type: ignore[attr-defined]
            continue  # imported from elsewhere: checked in its own module
        if inspect.isfunction(obj):
            out.append((name, obj))
        elif inspect.isclass(obj):
            out.append((name, obj))
            out += [(f"{name}.{k}", v) for k, v in vars(obj).items() if inspect.isfunction(v)]
    return out


@pytest.mark.skipif(sys.version_info < (3, 10), reason="X | Y annotations evaluate from 3.10")
@pytest.mark.parametrize("modname", _modules())
def test_annotations_name_existing_things(modname: str) -> None:
    mod = importlib.import_module(modname)
    ns = _checker_namespace(mod)
    bad = []
    for name, obj in _annotated(mod):
        try:
            if inspect.isclass(obj):
                # class-level annotations of this class only (not its bases', checked where they live)
                for text in obj.__dict__.get("__annotations__", {}).values():
                    if isinstance(text, str):
                        eval(text, ns)  # the package's own annotation text
            else:
                typing.get_type_hints(obj, globalns=ns)
        except NameError as e:
            bad.append(f"{name}: {e}")
    assert not bad, f"{modname}: " + "; ".join(bad)


def test_the_check_sees_an_undefined_name() -> None:
    """The check can fail: an annotation naming nothing is a NameError here."""
    def f() -> NoSuchName:  # type: ignore[name-defined]  # noqa: F821
        ...
    with pytest.raises(NameError):
        typing.get_type_hints(f, globalns={})
