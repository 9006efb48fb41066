#!/usr/bin/env python3
"""Generate src/sysgate/arch/constant_tables_host.py: every integer constant of the x86_64 kernel and libc
headers minijail policies use, beyond the families tools/gen_constants.py extracts for every arch.

Usage: python3 tools/gen_host_constants.py [--check]

minijail's compiler resolves any name its libconstants table has: every integer ``#define`` of a
long list of kernel and libc headers (block, loop, floppy and filesystem ioctls, audit, ELF machine
numbers, termios bits, siginfo codes, ...). ChromiumOS policies use many of them (BLKGETSIZE64,
FS_IOC_GETFLAGS, LOOP_CTL_GET_FREE, ...). This tool takes the same kind of header set, keeps every
upper-case macro whose expansion is an integer constant expression, and compiles and runs a program
on the build machine to get the values, so it covers x86_64 only (the arch minijail's own
constants.json covers); names tools/gen_constants.py already has for x86_64 are left to it.
Runs at development time (needs gcc, linux-libc-dev, libc6-dev); the output is committed.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "sysgate" / "arch" / "constant_tables_host.py"

# Like minijail's gen_constants.sh: libc first, then kernel uapi headers that do not clash with it.
HEADERS = """
errno.h fcntl.h limits.h linux/prctl.h sched.h signal.h stddef.h stdint.h sys/file.h sys/ioctl.h sys/ipc.h
sys/mman.h sys/resource.h sys/shm.h sys/socket.h sys/stat.h sys/types.h sys/xattr.h sys/wait.h termios.h
unistd.h endian.h elf.h
linux/audit.h linux/blkpg.h linux/blktrace_api.h linux/elf-em.h linux/fd.h linux/fiemap.h linux/fs.h
linux/fscrypt.h linux/kd.h linux/loop.h linux/magic.h linux/memfd.h linux/net.h linux/serial.h
linux/serial_core.h linux/serial_reg.h linux/sockios.h linux/falloc.h linux/random.h linux/if_tun.h
linux/vt.h linux/userfaultfd.h linux/sync_file.h linux/dma-buf.h linux/input.h linux/rtc.h linux/cdrom.h
linux/hdreg.h linux/if.h linux/if_packet.h linux/netlink.h linux/rtnetlink.h linux/perf_event.h
linux/videodev2.h linux/usbdevice_fs.h linux/android/binder.h linux/watchdog.h linux/ioprio.h linux/kcmp.h
linux/membarrier.h linux/nsfs.h linux/seccomp.h linux/uinput.h linux/hidraw.h linux/i2c-dev.h
linux/spi/spidev.h linux/gpio.h linux/vfio.h linux/kvm.h linux/fuse.h linux/tiocl.h linux/ppdev.h
linux/wireless.h linux/sched.h asm/prctl.h asm/sigcontext.h sys/syscall.h
""".split()
_NAME = re.compile(r"#define ([A-Z][A-Z0-9_]*)\s+(\S.*)$")
_SKIP = re.compile(r"^(__|_)|_H$|^SYS_[a-z]")  # include guards and glibc's syscall-number macros
# Kernel headers that clash with libc's: compiled on their own, their values win (the kernel ABI).
KERNEL_ONLY = "asm/termbits.h linux/limits.h linux/mman.h".split()
# Names newer than the build machine's headers, from the kernel's uapi (cited).
NEWER = {
    "MADV_GUARD_INSTALL": 102,  # include/uapi/asm-generic/mman-common.h (Linux 6.13)
    "MADV_GUARD_REMOVE": 103,
}


def _gcc(args: list[str], src: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gcc", *args], input=src, capture_output=True, text=True, check=False)


def _includes(headers: list[str]) -> str:
    libc = "" if headers == KERNEL_ONLY else "#define _GNU_SOURCE\n"
    return libc + "".join(f"#include <{h}>\n" for h in headers)


def usable_headers() -> list[str]:
    ok: list[str] = []
    for h in HEADERS:
        if _gcc(["-fsyntax-only", "-x", "c", "-"], _includes(ok + [h])).returncode == 0:
            ok.append(h)
    return ok


def values(headers: list[str]) -> dict[str, int]:
    macros = _gcc(["-E", "-dM", "-x", "c", "-", "-o", "-"], _includes(headers)).stdout
    names = sorted({m.group(1) for line in macros.splitlines() if (m := _NAME.match(line))
                    and not _SKIP.search(m.group(1)) and '"' not in m.group(2)})  # no strings
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "v"
        while True:
            body = "".join(f'  printf("{n}=%lld\\n", (long long)({n}));\n' for n in names)
            src = (_includes(headers) + "#include <stdio.h>\n"
                   + "".join(f"enum {{ v{i} = ({n}) * 0 }};\n" for i, n in enumerate(names))  # integers only
                   + "int main(void) {\n" + body + "  return 0;\n}\n")
            r = _gcc(["-x", "c", "-", "-w", "-o", str(exe)], src)
            if r.returncode == 0:
                break
            # Drop the names whose line failed (not an integer constant expression).
            bad = {int(m.group(1)) for m in re.finditer(r"<stdin>:(\d+):\d+: error", r.stderr)}
            first = _includes(headers).count("\n") + 2  # line of the first enum
            drop = {names[ln - first] for ln in bad if 0 <= ln - first < len(names)}
            if not drop:
                raise SystemExit(r.stderr[-3000:])
            names = [n for n in names if n not in drop]
        out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {n: int(v) for n, v in (line.split("=", 1) for line in out.splitlines())}


def render(vals: dict[str, int], provenance: str) -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from sysgate.arch import constant_tables as data
    from sysgate.constants import _parse

    # What tools/gen_constants.py has for x86_64 (not this file's previous output).
    have = _parse("".join(data.COMMON))
    for item in "".join(data.OVERRIDES.get("x86_64", "")).split():
        if item.startswith("-"):
            have.pop(item[1:], None)
        else:
            have.update(_parse(item))
    extra = {n: v for n, v in sorted(vals.items()) if n not in have}
    body = " ".join(f"{n}={v if -4096 < v < 4096 else (hex(v) if v >= 0 else '-' + hex(-v))}"
                    for n, v in extra.items())
    lines = ['"""More named constants for x86_64. GENERATED by tools/gen_host_constants.py: do not edit.',
             "", "Every integer macro of the kernel and libc headers minijail's constant table draws on,",
             f"compiled on x86_64 ({provenance}), beyond what tools/gen_constants.py has.", '"""', "",
             "X86_64 = ("]
    words, cur = body.split(), ""
    for w in words:
        if len(cur) + len(w) + 1 > 96:
            lines.append(f"    {cur + ' '!r}")
            cur = ""
        cur += (" " if cur else "") + w
    if cur:
        lines.append(f"    {cur!r}")
    lines += [")", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    pk = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}; ", "gcc-12", "linux-libc-dev",
                         "libc6-dev"], capture_output=True, text=True).stdout.strip().rstrip(";")
    vals = values(usable_headers())
    vals.update(values(KERNEL_ONLY))
    for n, v in NEWER.items():
        vals.setdefault(n, v)
    text = render(vals, pk)
    if "--check" in argv:
        return 0 if OUT.read_text() == text else 1
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
