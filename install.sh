#!/usr/bin/env bash
# Install sysgate for `sysgate run` and the other commands: Python 3 (>= 3.10) and nothing else at run
# time. On Debian/Ubuntu as root, missing python3/python3-venv are installed with apt. sysgate goes
# into a virtual environment at .venv beside this file (Debian's python3 is "externally managed",
# PEP 668, and has no pip); the command is then .venv/bin/sysgate. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
if command -v dpkg >/dev/null 2>&1; then
  need=()
  for p in python3 python3-venv; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "install.sh: needs Debian packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
      exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi
if ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
  rm -rf .venv
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check .
