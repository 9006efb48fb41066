#!/usr/bin/env python3
"""Write the precompiled built-in programs sysgate ships (the jail's and ``sysgate compile NAME``'s, see
sysgate.precompiled): src/sysgate/profiles/compiled/STEM.MACHINE.bpf.

Run after changing a built-in profile, the hardening overlay or the compiler:

    PYTHONPATH=src python3 tools/gen_precompiled.py

tests/test_precompiled.py recompiles every shipped file and compares, so a stale one fails CI.
"""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from sysgate.jail.filters import precompile  # noqa: E402
from sysgate.precompiled import SHIPPED  # noqa: E402
from sysgate.precompiled import path as precompiled_path

#: Machines (``uname -m``) programs are shipped for; elsewhere the jail compiles and caches.
MACHINES = ("x86_64", "aarch64")


def main() -> int:
    for machine in MACHINES:
        for stem in SHIPPED:
            path = precompiled_path(stem, machine)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            data = precompile(stem, machine)
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
            print(f"{os.path.relpath(path, ROOT)}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
