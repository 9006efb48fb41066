"""`sysgate features`: reports what this kernel really has, in text and JSON."""
from __future__ import annotations

import json
import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sysgate.cli", "features", *args], capture_output=True, text=True,
                          timeout=60)


def test_features_json_matches_proc() -> None:
    r = _run("--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    with open("/proc/sys/kernel/seccomp/actions_avail") as f:
        assert info["seccomp"]["actions_avail"] == f.read().split()
    # Each action the kernel lists is also accepted by SECCOMP_GET_ACTION_AVAIL.
    assert all(info["seccomp"]["actions_probed"][a] for a in info["seccomp"]["actions_avail"])
    assert info["seccomp"]["flags"]["TSYNC"] is True
    assert info["seccomp"]["user_notification"] == ("user_notif" in info["seccomp"]["actions_avail"])
    assert info["kernel"] == __import__("os").uname().release


def test_features_text_names_each_part() -> None:
    r = _run()
    assert r.returncode == 0, r.stderr
    for head in ("kernel:", "seccomp: available", "actions:", "filter flags:", "user notification:", "landlock:",
                 "user namespaces:", "cgroups:"):
        assert head in r.stdout
