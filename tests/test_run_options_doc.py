"""docs/jail.md lists every ``sysgate run`` option as tools/gen_run_options.py writes it from the
option table: a new or changed option without a regenerated list fails here."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_run_options", ROOT / "tools" / "gen_run_options.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_option_list_in_the_docs_is_current() -> None:
    tool = _tool()
    block = tool.current((ROOT / "docs" / "jail.md").read_text(encoding="utf-8"))
    assert block is not None, "docs/jail.md has lost its generated option list"
    assert block == tool.render(), "docs/jail.md: run PYTHONPATH=src python3 tools/gen_run_options.py"


def test_the_list_names_every_visible_option() -> None:
    from sysgate.commands.run import flags

    block = _tool().render()
    for f in flags():
        assert (f"`{f.name}" in block) != f.hidden, f.name
