"""A seccomp filter for the sandbox: kernel interfaces model-written code has no use for,
and which carry much of the kernel's attack surface, answer EPERM.

The namespaces and the dropped capabilities already make most of these harmless (mount,
unshare, module loading need capabilities the code does not have); the filter removes
the interfaces an unprivileged process may still use and that kernel exploits favour:
io_uring, eBPF, perf events, userfaultfd, keyrings, ptrace and cross-process memory
access, plus x86_64's x32 syscall numbers. A syscall made through another ABI than the
process's own (x86_64's 32-bit `int 0x80` entry) kills the process, so no syscall can slip
past the list under a different number.

`filter_program()` returns the classic BPF program bubblewrap loads (`--seccomp FD`): an
array of `struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}` over `struct seccomp_data`
(`nr` at offset 0, `arch` at offset 4).
"""

from __future__ import annotations

import platform
import struct

# linux/audit.h
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000

# Syscall numbers (asm/unistd.h); the ones from 424 on are the same on every architecture.
DENIED = {
    # name: (x86_64, aarch64)
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "unshare": (272, 97),
    "setns": (308, 268),
    "personality": (135, 92),
    "acct": (163, 89),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "reboot": (169, 142),
    "syslog": (103, 116),
    "quotactl": (179, 60),
    "name_to_handle_at": (303, 264),
    "open_by_handle_at": (304, 265),
    "lookup_dcookie": (212, 18),
}

# BPF opcodes (linux/filter.h, linux/seccomp.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO_EPERM = 0x00050000 | 1


def supported(machine: str | None = None) -> bool:
    return (machine or platform.machine()) in AUDIT_ARCH


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def filter_program(machine: str | None = None) -> bytes:
    """The BPF program for this machine's architecture (ValueError if it has no table)."""
    machine = machine or platform.machine()
    if machine not in AUDIT_ARCH:
        raise ValueError(f"no seccomp syscall table for {machine}; known: {sorted(AUDIT_ARCH)}")
    column = 0 if machine == "x86_64" else 1
    numbers = sorted({nrs[column] for nrs in DENIED.values()})
    body: list[tuple[int, int, str]] = []  # (code, k, target) jumps resolved below
    if machine == "x86_64":
        body.append((_JGE_K, X32_SYSCALL_BIT, "deny"))
    body += [(_JEQ_K, nr, "deny") for nr in numbers]
    program = [
        _insn(_LD_W_ABS, 4),  # arch
        _insn(_JEQ_K, AUDIT_ARCH[machine], jt=1),
        _insn(_RET_K, RET_KILL_PROCESS),  # another ABI: no list applies to it
        _insn(_LD_W_ABS, 0),  # syscall number
    ]
    for i, (code, k, _) in enumerate(body):
        to_deny = len(body) - i  # past the remaining checks and the allow
        program.append(_insn(code, k, jt=to_deny))
    program.append(_insn(_RET_K, RET_ALLOW))
    program.append(_insn(_RET_K, RET_ERRNO_EPERM))
    return b"".join(program)
