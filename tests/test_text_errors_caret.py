"""A parse error in any text format shows the offending line with a caret under the place.

Minijail and Kafel did; systemd drop-ins, Kubernetes YAML, broken JSON and seccomp-tools
assembly gave ``FILE:LINE`` alone. Each case below puts a mistake at a known place and checks that
the caret sits under it (the quoted line ends the first line of the message; the caret is the
only character of the second).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jail_support import TESTS

SRC = os.path.join(os.path.dirname(TESTS), "src")

CASES = [
    # (file name, text, FILE:LINE the message names, what the caret must point at)
    ("s.conf", "[Service]\nSystemCallFilter=read nosuch write\n", ":2:", "nosuch"),
    ("s.conf", "[Service]\nSystemCallFilter=read \\\n   write bogus \\\n  exit\n", ":2:", "bogus"),
    ("s.conf", "[Service]\nSystemCallArchitectures=native arm99\n", ":2:", "arm99"),
    ("s.conf", "[Service]\n  SystemCallErrorNumber=EWHAT\n", ":2:", "EWHAT"),
    ("s.conf", "[Service]\nSystemCallFilter=~mount:EBOGUS\n", ":2:", "mount:EBOGUS"),
    ("y.yaml", "kind: SeccompProfile\nspec:\n  defaultAction: &a SCMP_ACT_ERRNO\n", ":3:", "&a"),
    ("y.yaml", "kind: SeccompProfile\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  defaultAction: X\n", ":4:",
     "defaultAction: X"),
    ("y.yaml", "kind: SeccompProfile\nspec:\n  syscalls: [a, [b]]\n", ":3:", "[b]"),
    ("y.yaml", "kind: SeccompProfile\nspec:\n  x: 'open\n", ":3:", "'open"),
    ("j.json", '{"defaultAction": "SCMP_ACT_ERRNO",\n  "syscalls": [{"names": ["read"], "action": ALLOW}]}',
     ":2:46:", "ALLOW"),
    ("a.asm", "A = sys_number\nif (A === read) goto ok\nreturn ALLOW\n", ":2:", "= read"),
    ("a.asm", "A = args[7]\nreturn ALLOW\n", ":1:", "7]"),
    ("a.asm", "A = mem[16]\nreturn A\n", ":1:", "16]"),
    ("a.asm", "A = 0x1ffffffff\nreturn ALLOW\n", ":1:", "0x1ffffffff"),
    ("a.asm", "A = sys_number $\n", ":1:", "$"),
    ("a.asm", "A = mem[3]\nreturn A\n", ":1:", "A = mem[3]"),  # the kernel's refusal: the statement
    ("m.policy", "read: allow\nwrite: arg9 == 1\n", ":2:", "arg9"),  # (minijail, as before)
]


@pytest.mark.parametrize("name,text,where,at", CASES, ids=[f"{n}:{a}" for n, _, _, a in CASES])
def test_caret_under_the_place(tmp_path, name: str, text: str, where: str, at: str) -> None:
    f = tmp_path / name
    f.write_text(text)
    cmd = ["asm", str(f), "--format", "hex"] if name.endswith(".asm") else ["compile", str(f), "--format", "hex"]
    r = subprocess.run([sys.executable, "-m", "sysgate", *cmd], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=SRC), cwd="/")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    first, caret = r.stderr.rstrip("\n").split("\n")
    assert f"{f}{where}" in first, first
    assert caret.strip() == "^", caret
    assert first[len(caret) - 1:].startswith(at), (first, caret)
