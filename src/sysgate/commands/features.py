"""``sysgate features``: what the running kernel offers to seccomp filters and to the jail.

Read-only probes: nothing is installed, no namespace or cgroup is made.
"""
from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["cmd_features", "collect"]


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def collect() -> dict[str, Any]:
    """Seccomp features (actions, flags, user notification) and the jail's kernel prerequisites."""
    return _probe()[1]


def _probe() -> tuple[Any, dict[str, Any]]:
    """The kernel's :class:`~sysgate.kernel.seccomp.Features` (for its text) and :func:`collect`'s dict."""
    from ..jail import cgroups, landlock
    from ..kernel import seccomp

    f = seccomp.features()
    try:
        h = cgroups.detect()
        cg: dict[str, Any] = {"v2": h.v2, "v1": dict(h.v1)}
    except OSError as e:
        cg = {"error": e.strerror}
    return f, {
        "seccomp": {
            "available": f.available, "filter_mode": f.filter_mode, "syscall": f.syscall,
            "mode": f.mode, "filters": f.filters, "no_new_privs": f.no_new_privs,
            "actions_avail": list(f.actions), "actions_logged": list(f.actions_logged),
            "actions_probed": dict(f.actions_probed), "flags": dict(f.flags),
            "user_notification": f.user_notif,
            "notif_sizes": None if f.notif_sizes is None else
            {"notif": f.notif_sizes.notif, "resp": f.notif_sizes.resp, "data": f.notif_sizes.data},
        },
        "landlock_abi": landlock.abi_version(),
        "max_user_namespaces": _read_int("/proc/sys/user/max_user_namespaces"),
        "unprivileged_userns_clone": _read_int("/proc/sys/kernel/unprivileged_userns_clone"),
        "cgroups": cg,
        "kernel": os.uname().release,
    }


def cmd_features(args: Any) -> int:
    features, info = _probe()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    cg = info["cgroups"]
    if "error" in cg:
        cgtext = f"unreadable ({cg['error']})"
    else:
        parts = []
        if cg["v2"]:
            parts.append(f"v2 at {cg['v2']}")
        if cg["v1"]:
            parts.append("v1 " + ", ".join(f"{c} at {p}" for c, p in sorted(cg["v1"].items())))
        cgtext = "; ".join(parts) or "none mounted for this process"
    userns = info["max_user_namespaces"]
    print(f"kernel: {info['kernel']}")
    print(features.describe())
    print("landlock: " + (f"ABI {info['landlock_abi']}" if info["landlock_abi"] else "not available"))
    print("user namespaces: " + ("unknown" if userns is None else ("disabled" if userns == 0 else f"up to {userns}"))
          + ("" if info["unprivileged_userns_clone"] != 0 else " (root only: unprivileged_userns_clone=0)"))
    print(f"cgroups: {cgtext}")
    return 0
