"""``sysgate record --buffer SIZE``: the tracefs recorder's ring buffer, per CPU.

A storm of calls can fill the default buffer before the reader narrows the filters; the
recording then fails closed (events lost: no profile). ``--buffer`` asks for more. Checked here:
a bad SIZE is one line and exit 2 before anything runs; a size asked for is the one the kernel
reports for the trace instance (read back from ``buffer_size_kb`` into the report); the overflow
error names ``--buffer``; the ptrace recorder, which has no buffer, refuses it.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sysgate
from sysgate.commands.record import buffer_size
from sysgate.errors import UserError
from sysgate.recorder import BUFFER_MAX, BUFFER_MIN, record, tracefs
from sysgate.recorder.observations import RecordError

SRC = str(Path(sysgate.__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": SRC}
needs_tracefs = pytest.mark.skipif(tracefs.available() is not None, reason="tracefs needs root")


def _sysgate(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sysgate", *args], env=ENV, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("text,want", [("16M", 16 << 20), ("64K", 64 << 10), ("1g", 1 << 30), ("512KiB", 512 << 10),
                                       ("2mb", 2 << 20), ("65536", 65536), (" 8M ", 8 << 20)])
def test_sizes(text: str, want: int) -> None:
    assert buffer_size(text) == want


@pytest.mark.parametrize("text", ["16X", "", "M", "-1M", "1.5M", "0x10M", "٣M", "1K", "0", "2G", "1025M",
                                  "9" * 5000])
def test_bad_sizes_are_user_errors(text: str) -> None:
    with pytest.raises(UserError) as ei:
        buffer_size(text)
    assert "--buffer" in str(ei.value) and "\n" not in str(ei.value)


@pytest.mark.parametrize("text", ["16X", "1K", "2G"])
def test_cli_refuses_a_bad_size_before_running_anything(tmp_path: Path, text: str) -> None:
    r = _sysgate("record", "--buffer", text, "-o", "p.json", "--", "sh", "-c", "touch ran", cwd=tmp_path)
    assert r.returncode == 2, r
    assert r.stderr.count("\n") == 1 and "--buffer" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "ran").exists() and not (tmp_path / "p.json").exists()


def test_ptrace_has_no_buffer(tmp_path: Path) -> None:
    r = _sysgate("record", "--method", "ptrace", "--buffer", "16M", "--", "sh", "-c", "touch ran", cwd=tmp_path)
    assert r.returncode == 2 and "ptrace" in r.stderr and r.stderr.count("\n") == 1, r
    assert not (tmp_path / "ran").exists()


def test_api_checks_the_range() -> None:
    for n in (BUFFER_MIN - 1, BUFFER_MAX + 1, 0):
        with pytest.raises(RecordError, match="out of range"):
            record(["true"], buffer=n)


@needs_tracefs
def test_the_kernel_gets_the_size_asked_for(tmp_path: Path) -> None:
    """The report notes the instance's buffer as the kernel reports it back: 16 MiB a CPU (the
    kernel rounds up to whole pages of its own), not the default (1410 KB a CPU on 6.x kernels,
    at least 1 MiB)."""
    r = _sysgate("record", "--buffer", "16M", "--report", "r.json", "-o", "p.json", "--", "true", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    notes = json.loads((tmp_path / "r.json").read_text())["notes"]
    got = [int(m[1]) for n in notes if (m := re.fullmatch(r"tracefs ring buffer: (\d+) KB per CPU \(--buffer\)", n))]
    assert len(got) == 1 and 16384 <= got[0] < 16384 + 256, notes
    # without --buffer, nothing is said (and the default is not 16 MiB)
    r = _sysgate("record", "--report", "r2.json", "-o", "p.json", "--", "true", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not [n for n in json.loads((tmp_path / "r2.json").read_text())["notes"] if "ring buffer" in n]


@needs_tracefs
def test_overflow_error_names_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """Events lost (here the overrun counters say 7) fail the recording, and the message says
    how big the buffer was and that --buffer makes it bigger."""
    monkeypatch.setattr(tracefs, "_overruns", lambda inst: 7)
    with pytest.raises(RecordError) as ei:
        record(["true"], method="tracefs", timeout=60, buffer=2 << 20)
    msg = str(ei.value)
    assert "lost 7 events" in msg and re.search(r"\(20[45]\d KB per CPU\)", msg) and "--buffer 16M" in msg, msg
    with pytest.raises(RecordError) as ei:
        record(["true"], method="tracefs", timeout=60, buffer=32 << 20)
    assert "--buffer 128M" in str(ei.value), ei.value
