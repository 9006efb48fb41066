"""What libseccomp believes the kernel supports (``system.c``), the API level, and loading.

libseccomp probes the kernel once per process and caches the answers; ``set_api()`` overrides
them. Those beliefs decide which actions and attributes are accepted and which flags
``load()`` passes, so they are process-wide here too, as is the user-notification fd of the
first filter loaded with a listener.
"""
from __future__ import annotations

import errno as E
from dataclasses import dataclass

__all__ = ["state", "api_get", "api_set", "action_valid", "flag_supported", "load",
           "ACT_KILL_PROCESS", "ACT_KILL_THREAD", "ACT_TRAP", "ACT_ERRNO", "ACT_TRACE", "ACT_LOG",
           "ACT_ALLOW", "ACT_NOTIFY", "MAX_ERRNO"]

ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
ACT_NOTIFY = 0x7FC00000
MAX_ERRNO = 4095

# SECCOMP_FILTER_FLAG_*
F_TSYNC, F_LOG, F_SPEC_ALLOW, F_NEW_LISTENER, F_TSYNC_ESRCH, F_WAIT_KILLABLE_RECV = 1, 2, 4, 8, 16, 32


@dataclass
class _State:
    """``struct task_state``: -1 unknown (probe on first use), 0 no, 1 yes."""

    sup_syscall: int = -1
    sup_flags: dict | None = None
    sup_kill_process: int = -1
    sup_actlogged: int = -1
    sup_user_notif: int = -1
    notify_fd: int = -1
    api_level: int = 0


state = _State()


def _probe_syscall() -> int:
    """Is there a seccomp(2)? (SET_MODE_FILTER with no program: EFAULT if so, ENOSYS if not.)"""
    if state.sup_syscall < 0:
        from ..kernel import seccomp as K

        state.sup_syscall = 1 if K.flag_supported(0) else 0
    return state.sup_syscall


def flag_supported(flag: int) -> int:
    """``sys_chk_seccomp_flag``."""
    if state.sup_flags is None:
        state.sup_flags = {}
    if flag not in state.sup_flags:
        from ..kernel import seccomp as K

        ok = False
        if _probe_syscall() == 1:
            try:
                ok = bool(K.flag_supported(flag))
            except OSError:
                ok = False
        state.sup_flags[flag] = 1 if ok else 0
    return state.sup_flags[flag]


def _action_probe(ret: int) -> int:
    from ..kernel import seccomp as K

    if _probe_syscall() != 1:
        return 0
    try:
        return 1 if K.action_available(ret) else 0
    except OSError:
        return 0


def action_valid(action: int) -> bool:
    """``sys_chk_seccomp_action``: is ``action`` a valid, supported action value?"""
    action &= 0xFFFFFFFF
    data = action & 0xFFFF
    if action == ACT_KILL_PROCESS:
        if state.sup_kill_process < 0:
            state.sup_kill_process = _action_probe(ACT_KILL_PROCESS)
        return state.sup_kill_process == 1
    if action in (ACT_KILL_THREAD, ACT_TRAP, ACT_ALLOW):
        return True
    if action == ACT_ERRNO | data:
        return data < MAX_ERRNO
    if action == ACT_TRACE | data:
        return True
    if action == ACT_LOG:
        if state.sup_actlogged < 0:
            state.sup_actlogged = _action_probe(ACT_LOG)
        return state.sup_actlogged == 1
    if action == ACT_NOTIFY:
        if state.sup_user_notif < 0:
            state.sup_user_notif = 1 if (_action_probe(ACT_NOTIFY) and flag_supported(F_NEW_LISTENER)) else 0
        return state.sup_user_notif == 1
    return False


def api_get() -> int:
    """``_seccomp_api_update``: the API level, probed once (2.6 levels: up to 7)."""
    if state.api_level >= 1:
        return state.api_level
    level = 1
    if _probe_syscall() == 1 and flag_supported(F_TSYNC) == 1:
        level = 2
    if level == 2 and flag_supported(F_LOG) == 1 and action_valid(ACT_LOG) and action_valid(ACT_KILL_PROCESS):
        level = 3
    if level == 3 and flag_supported(F_SPEC_ALLOW) == 1:
        level = 4
    if level == 4 and flag_supported(F_NEW_LISTENER) == 1 and action_valid(ACT_NOTIFY):
        level = 5
    if level == 5 and flag_supported(F_TSYNC_ESRCH) == 1:
        level = 6
    if level == 6 and flag_supported(F_WAIT_KILLABLE_RECV) == 1:
        level = 7
    state.api_level = level
    return level


# What each API level promises: (seccomp(2), flags, KILL_PROCESS+LOG actions, NOTIFY action).
_LEVELS = {
    1: (0, 0, 0, 0),
    2: (1, F_TSYNC, 0, 0),
    3: (1, F_TSYNC | F_LOG, 1, 0),
    4: (1, F_TSYNC | F_LOG | F_SPEC_ALLOW, 1, 0),
    5: (1, F_TSYNC | F_LOG | F_SPEC_ALLOW | F_NEW_LISTENER, 1, 1),
    6: (1, F_TSYNC | F_LOG | F_SPEC_ALLOW | F_NEW_LISTENER | F_TSYNC_ESRCH, 1, 1),
    7: (1, F_TSYNC | F_LOG | F_SPEC_ALLOW | F_NEW_LISTENER | F_TSYNC_ESRCH | F_WAIT_KILLABLE_RECV, 1, 1),
}


def api_set(level: int) -> int:
    """``seccomp_api_set``: force the beliefs of ``level`` (0 or -EINVAL)."""
    if level not in _LEVELS:
        return -E.EINVAL
    sc, flags, kp_log, notif = _LEVELS[level]
    state.sup_syscall = sc
    state.sup_flags = {f: (1 if flags & f else 0) for f in
                       (F_TSYNC, F_LOG, F_SPEC_ALLOW, F_NEW_LISTENER, F_TSYNC_ESRCH, F_WAIT_KILLABLE_RECV)}
    state.sup_kill_process = kp_log
    state.sup_actlogged = kp_log
    state.sup_user_notif = notif
    state.api_level = level
    return 0


def load(program: bytes, *, nnp: bool, tsync: bool, log: bool, spec_allow: bool, notify_used: bool,
         wait_killable: bool, rawrc: bool) -> int:
    """``sys_filter_load``: install ``program``; 0 or a negative errno as libseccomp reports it."""
    from ..kernel import seccomp as K

    if nnp:
        try:
            K.set_no_new_privs()
        except OSError as e:
            return -(e.errno or E.EPERM) if rawrc else -E.ECANCELED
    tsync_notify = flag_supported(F_TSYNC_ESRCH) > 0 and state.notify_fd == -1
    listener_req = action_valid(ACT_NOTIFY) and notify_used and state.notify_fd == -1
    flags = 0
    if _probe_syscall() == 1:
        if tsync_notify:
            if tsync:
                flags |= F_TSYNC | F_TSYNC_ESRCH
            if listener_req:
                flags |= F_NEW_LISTENER
        elif tsync:
            if listener_req:
                return -E.EFAULT
            flags |= F_TSYNC
        elif listener_req:
            flags |= F_NEW_LISTENER
        if log:
            flags |= F_LOG
        if spec_allow:
            flags |= F_SPEC_ALLOW
        if wait_killable and flags & F_NEW_LISTENER:
            flags |= F_WAIT_KILLABLE_RECV
    try:
        fd = K.install(program, flags, no_new_privs=False)
    except K.SeccompError as e:
        err = e.errno or E.EFAULT
        if err == E.ESRCH:
            return -E.ESRCH
        return -err if rawrc else -E.ECANCELED
    if flags & F_NEW_LISTENER and fd > 0:
        state.notify_fd = fd
    return 0
