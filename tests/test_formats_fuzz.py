"""Fuzzing every reader (and format detection) with hypothesis: random bytes, corpus files with
bytes flipped, cut, duplicated or spliced with tokens of the language, and JSON profiles with
values replaced at random places. The only acceptable failure is a ProfileError/UserError with
a one-line message; nothing else may escape, and no input may take long (each call runs under
an alarm)."""
from __future__ import annotations

import copy
import json
import os
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysgate.errors import UserError
from sysgate.formats.detect import detect
from sysgate.formats.registry import FORMATS, read_bytes

# ../shared beside the checkout (CI), or SYSGATE_SHARED (a worktree elsewhere), as the other tests do.
CORPUS = Path(os.environ.get("SYSGATE_SHARED") or Path(__file__).resolve().parents[2] / "shared") / "corpus"
LIMIT_S = 5  # any single parse taking longer is a hang
SETTINGS = dict(derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
EMPTY_DIR = tempfile.mkdtemp(prefix="sysgate-fuzz-")  # includes resolve here: nothing to find

SEEDS: dict[str, list[str]] = {
    "docker": ["moby-profiles-seccomp-default.json", "moby-profiles-seccomp-fixtures-conditional_include.json",
               "moby-profiles-seccomp-fixtures-default-old-format.json"],
    "oci": ["moby-profiles-seccomp-fixtures-conditional_include.json"],
    "firecracker": ["firecracker-x86_64-unknown-linux-musl.json"],
    "minijail": ["minijail/examples_cat.policy", "minijail/test_stdin_stdout.policy",
                 "minijail/policies_cros_default_v0.policy"],
    "kafel": ["kafel/samples_sample_basic.policy", "kafel/samples_sample_composition.policy",
              "kafel/samples_sample_or_flags.policy", "kafel/samples_sample_and_eq_long.policy"],
}
BUILTIN_SEEDS: dict[str, str | list[str]] = {
    "systemd": ["[Service]\nSystemCallArchitectures=native x86\nSystemCallFilter=@system-service\n"
                "SystemCallFilter=~@privileged mount\nSystemCallErrorNumber=EPERM\n",
                "[Unit]\nDescription=x\n[Service]\nSystemCallFilter=~@privileged mount:EACCES \\\n  @obsolete\n"
                "SystemCallFilter=~@swap\nSystemCallErrorNumber=kill\nUser=nobody\n"],
    "k8s": "apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\nmetadata:\n"
           "  name: x\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  architectures:\n  - SCMP_ARCH_X86_64\n"
           "  syscalls:\n  - names:\n    - read\n    action: SCMP_ACT_ALLOW\n  - names: [personality]\n"
           "    action: SCMP_ACT_ERRNO\n    errnoRet: \"13\"\n    args:\n    - index: 0\n      value: 8\n"
           "      op: SCMP_CMP_EQ\n",
}
TOKENS = [b"{", b"}", b"(", b")", b"[", b"]", b",", b";", b":", b'"', b"\\\n", b"\n", b"#", b"//", b"/*",
          b"@include ./x.policy", b"@include /dev/zero", b'#include "x"', b"#define X -1", b"@default trap",
          b"@denylist", b"@frequency ./f", b"arg9 == 1", b"arg0 & 0xffffffffffffffff", b"arg1 in ~0",
          b"||", b"&&", b"!", b"~", b"|", b"0x10000000000000000", b"-9223372036854775809", b"return 70000",
          b"SYSCALL[-1]", b"ERRNO(65536)", b"TRAP(3)", b"USE", b"POLICY p {", b"DEFAULT", b"ON x86_64",
          b"@system-service", b"@nonexistent", b"system-service@systemd", b"O_RDONLY|O_CLOEXEC",
          b"SystemCallFilter=", b"SystemCallFilter=~", b"SystemCallArchitectures=native",
          b"SystemCallErrorNumber=99999", b"\t", b"- ", b"  ", b": ", b"&anchor", b"---", b"'", b"\xff",
          b"\x00", "é".encode()]


@contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def fire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"parse took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def cli_compile_and_convert(blob: bytes, name: str, to: str) -> None:
    """``blob`` as file ``name`` through ``sysgate compile`` and ``sysgate convert --to to`` (in-process):
    status 0 and an output file, or status 2 with exactly one ``sysgate: error:`` line and no output
    file; never a traceback, and bounded in time."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from sysgate.cli import main

    with tempfile.TemporaryDirectory(prefix="sysgate-fuzz-") as d:
        src, out = os.path.join(d, name), os.path.join(d, "out")
        with open(src, "wb") as fh:
            fh.write(blob)
        for argv in (["compile", src, "--arch", "x86_64", "--thread", "vmm", "--format", "hex", "-o", out],
                     ["convert", src, "--to", to, "--arch", "x86_64", "--thread", "vmm", "--lossy", "-o", out]):
            err = io.StringIO()
            with alarm(LIMIT_S), redirect_stderr(err), redirect_stdout(io.StringIO()):
                status = main(argv)
            lines = [x for x in err.getvalue().splitlines() if not x.startswith(("sysgate: note:", "sysgate: loss:", "sysgate: warning:"))]
            if len(lines) == 2 and lines[1].strip() == "^":
                lines.pop()  # a text format's parse error: the caret under the quoted source (cli.caret_lines)
            if status == 0:
                assert os.path.exists(out) and not lines, (argv, err.getvalue())
                os.unlink(out)
            else:
                assert status == 2 and len(lines) == 1 and lines[0].startswith("sysgate: error: "), \
                    (argv, status, err.getvalue())
                assert not os.path.exists(out)


def parse(fmt: str | None, data: bytes) -> None:
    """Parse ``data``; anything but a one-line UserError (ProfileError and friends: what the CLI
    reports as bad input, exit 2) fails the test."""
    with alarm(LIMIT_S):
        try:
            if fmt is None:
                detect(data, "fuzz")
            else:
                read_bytes(data, "fuzz", fmt, arch="x86_64", thread="vmm" if fmt == "firecracker" else None,
                           base_dir=EMPTY_DIR)
        except UserError as e:  # ProfileError, PolicyError, UnknownArch, ... : bad input, said in one line
            assert "\n" not in str(e) and str(e), repr(e)


def _seed(fmt: str) -> list[bytes]:
    if fmt in BUILTIN_SEEDS:
        seeds = BUILTIN_SEEDS[fmt]
        return [x.encode() for x in (seeds if isinstance(seeds, list) else [seeds])]
    if not CORPUS.is_dir():
        return [b""]
    return [(CORPUS / name).read_bytes() for name in SEEDS[fmt]]


@st.composite
def mutated(draw: st.DrawFn, fmt: str) -> bytes:
    seeds = _seed(fmt)
    data = bytearray(draw(st.sampled_from(seeds)))
    if len(data) > 6000:  # keep big seeds fast: a window of them
        start = draw(st.integers(0, len(data) - 6000))
        data = data[start:start + 6000]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 4))
        pos = draw(st.integers(0, len(data)))
        if kind == 0 and data:  # flip a byte
            pos = min(pos, len(data) - 1)
            data[pos] = draw(st.integers(0, 255))
        elif kind == 1:  # cut a slice
            end = draw(st.integers(pos, min(len(data), pos + 40)))
            del data[pos:end]
        elif kind == 2:  # splice a token of some language
            data[pos:pos] = draw(st.sampled_from(TOKENS))
        elif kind == 3:  # duplicate a slice
            end = draw(st.integers(pos, min(len(data), pos + 60)))
            data[pos:pos] = data[pos:end]
        else:  # random bytes
            data[pos:pos] = draw(st.binary(max_size=8))
    return bytes(data)


@pytest.mark.parametrize("fmt", list(FORMATS) + [None])
@settings(max_examples=60, **SETTINGS)
@given(data=st.binary(max_size=200))
def test_random_bytes(fmt: str | None, data: bytes) -> None:
    parse(fmt, data)


@pytest.mark.parametrize("fmt", list(FORMATS))
@settings(max_examples=80, **SETTINGS)
@given(data=st.data())
def test_mutated_files(fmt: str, data: st.DataObject) -> None:
    seed_fmt = "docker" if fmt == "oci" else fmt
    blob = data.draw(mutated(seed_fmt))
    parse(fmt, blob)
    parse(None, blob)


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from([2**64, 2**64 - 1, 4096, 6, -1]),
                        st.sampled_from(["", "read", "SCMP_ACT_ERRNO", "SCMP_CMP_MASKED_EQ", "dword", "x86_64",
                                         "@default", "eq", "SCMP_ARCH_NATIVE"]),
                        st.just([]), st.just({}), st.just([{"index": 9}]), st.just({"masked_eq": -1}))


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:6]):
            out += _paths(v, prefix + (i,))
    return out


@pytest.mark.parametrize("fmt,seed", [("docker", "moby-profiles-seccomp-fixtures-default-old-format.json"),
                                      ("docker", "moby-profiles-seccomp-fixtures-conditional_include.json"),
                                      ("firecracker", "firecracker-x86_64-unknown-linux-musl.json")])
@settings(max_examples=80, **SETTINGS)
@given(data=st.data())
def test_json_values_replaced(fmt: str, seed: str, data: st.DataObject) -> None:
    if not CORPUS.is_dir():
        pytest.skip("shared corpus not present")
    doc = json.loads((CORPUS / seed).read_text())
    if fmt == "docker":
        doc["syscalls"] = doc["syscalls"][:12]
    paths = _paths(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        value = copy.deepcopy(data.draw(JSON_VALUES))  # st.just() hands out one shared object
        if not path:
            doc = value
            break
        node = doc
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    parse(fmt, json.dumps(doc).encode())


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    for fmt, data in [("docker", b"[" * 100000), ("kafel", b"POLICY a { ALLOW { write { " + b"(" * 5000 + b"fd"),
                      ("minijail", b"read: arg0 == " + b"(" * 5000 + b"1"),
                      ("k8s", b"".join(b" " * i + b"a:\n" for i in range(3000)))]:
        parse(fmt, data)


_OCI_SEED = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
             "flags": ["SECCOMP_FILTER_FLAG_LOG"], "listenerPath": "/run/x.sock",
             "syscalls": [{"names": ["read", "write", "@basic-io"], "action": "SCMP_ACT_ALLOW"},
                          {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                           "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                          {"names": ["clone"], "action": "SCMP_ACT_TRACE", "errnoRet": 3,
                           "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                          {"names": ["mmap"], "action": "SCMP_ACT_KILL_PROCESS",
                           "args": [{"index": 2, "value": 4, "op": "SCMP_CMP_GE"},
                                    {"index": 2, "value": 9, "op": "SCMP_CMP_LT"}]}]}


def _json_seed(fmt: str) -> Any:
    """A small, valid document of a JSON-shaped format (corpus-based where the corpus is here)."""
    if fmt == "firecracker":
        if CORPUS.is_dir():
            doc = json.loads((CORPUS / "firecracker-x86_64-unknown-linux-musl.json").read_text())
            for f in doc.values():
                f["filter"] = f["filter"][:8]
            return doc
        return {"vmm": {"default_action": "trap", "filter_action": "allow", "filter": [
            {"syscall": "ioctl", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 21505}]}]}}
    if fmt == "docker" and CORPUS.is_dir():
        doc = json.loads((CORPUS / "moby-profiles-seccomp-fixtures-conditional_include.json").read_text())
        doc["syscalls"] = doc["syscalls"][:12]
        return doc
    if fmt == "k8s":
        return {"apiVersion": "security-profiles-operator.x-k8s.io/v1beta1", "kind": "SeccompProfile",
                "metadata": {"name": "x"},
                "spec": {k: copy.deepcopy(v) for k, v in _OCI_SEED.items() if k != "defaultErrnoRet"}}
    return copy.deepcopy(_OCI_SEED)


@st.composite
def json_mutant(draw: st.DrawFn, fmt: str) -> bytes:
    """A JSON document of ``fmt`` with 0-2 values replaced at random places (0: valid input, so the
    CLI's success path is fuzzed too)."""
    doc = _json_seed(fmt)
    paths = _paths(doc)
    for _ in range(draw(st.integers(0, 2))):
        path = draw(st.sampled_from(paths))
        value = copy.deepcopy(draw(JSON_VALUES))
        node = doc
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    return json.dumps(doc).encode()


@pytest.mark.parametrize("fmt", list(FORMATS))
@settings(max_examples=25, **SETTINGS)
@given(data=st.data())
def test_cli_on_mutated_files(fmt: str, data: st.DataObject) -> None:
    """Through ``sysgate compile`` and ``sysgate convert`` (in-process): status 0, or status 2 with
    exactly one ``sysgate: error:`` line and no output file; never a traceback."""
    structured = fmt in ("docker", "oci", "firecracker", "k8s") and data.draw(st.booleans())
    blob = data.draw(json_mutant(fmt) if structured else mutated("docker" if fmt == "oci" else fmt))
    to = data.draw(st.sampled_from(list(FORMATS)))
    cli_compile_and_convert(blob, f"in.{fmt}", to)
