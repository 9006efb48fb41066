"""The format table (sysgate.formats.catalog) is what the command line, detection, reading and
writing use: every format it lists is implemented as it declares, and nothing else lists formats."""
from __future__ import annotations

import inspect
import json

import pytest

from sysgate import cli
from sysgate.formats import ProfileError, catalog
from sysgate.formats.detect import POLICY_FORMATS, detect
from sysgate.formats.registry import FORMATS, read_bytes


@pytest.mark.parametrize("fmt", catalog.FORMATS, ids=catalog.NAMES)
def test_each_module_implements_what_its_line_declares(fmt: catalog.Format) -> None:
    mod = fmt.impl()
    assert callable(mod.loads) and callable(mod.export)
    assert hasattr(mod, "detect_json") == fmt.json and hasattr(mod, "detect_text") == fmt.text
    loads = inspect.signature(mod.loads).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in loads.values()):
        assert fmt.load_options <= set(loads), sorted(fmt.load_options - set(loads))
    export = inspect.signature(mod.export).parameters
    assert set(fmt.export_options) <= set(export), fmt.export_options


def test_the_command_line_and_detection_list_the_table() -> None:
    assert FORMATS == POLICY_FORMATS == catalog.NAMES
    parser = cli.build_parser("convert")
    sub = next(a for a in parser._actions if a.dest == "command")  # noqa: SLF001 - argparse has no API for it
    convert = sub.choices["convert"]
    for dest in ("to", "from_format"):
        action = next(a for a in convert._actions if a.dest == dest)  # noqa: SLF001
        assert list(action.choices) == list(catalog.NAMES)


def test_unknown_format_is_one_line() -> None:
    with pytest.raises(ProfileError, match="unknown format 'yaml' \\(expected one of docker, oci, "):
        catalog.get("yaml")


@pytest.mark.parametrize("doc, want", [
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}, "docker"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "comment": "extra"}, "docker"),  # not certain, but the only one
    ({"ociVersion": "1.2.0", "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}}}, "oci"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "linux": {}}, "oci"),  # a wrapper's key: the wrapper is surer
    ({"kind": "SeccompProfile", "apiVersion": "x/v1", "spec": {}}, "k8s"),
    ({"linux": {}, "kind": "x"}, "oci"),  # both certain: the first in the table
    ({"vmm": {"default_action": "allow", "filter_action": "trap", "filter": []}}, "firecracker"),
])
def test_json_detection_takes_the_surest_format(doc: dict, want: str) -> None:
    assert detect(json.dumps(doc).encode(), "p.json") == want


@pytest.mark.parametrize("text, name, want", [
    ("[Service]\nSystemCallFilter=@system-service\n", None, "systemd"),
    ("SystemCallFilter=@system-service\n", "x.conf", "systemd"),
    ("kind: SeccompProfile\n# [Service]\n# SystemCallFilter=read\n", None, "k8s"),
    ("POLICY p { ALLOW { read } }\nUSE p DEFAULT KILL\n", None, "kafel"),
    ("read: 1\nwrite: 1\n", None, "minijail"),
    ("# only a comment\n", "empty.policy", "minijail"),
])
def test_text_detection_takes_the_surest_format(text: str, name: str | None, want: str) -> None:
    assert detect(text.encode(), name) == want


def test_reading_keeps_extras_only_for_formats_that_carry_them() -> None:
    doc = {"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
           "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    loaded = read_bytes(json.dumps(doc).encode(), "p.json", arch="x86_64")
    assert loaded.format == "docker" and loaded.extras is not None and loaded.extras.flags
    from sysgate.formats.registry import write

    out = write(loaded, "systemd")
    assert any("has no filter flags" in n for n in out.notes)
    assert write(loaded, "docker").notes == ()
