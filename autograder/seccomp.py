"""The system calls a sandbox may not make: a seccomp filter, built here as a classic BPF
program (no libseccomp needed) and handed to bubblewrap (``bwrap --seccomp FD``).

Namespaces and mounts would let a learner's process build itself a world outside the
sandbox's limits (its own tmpfs, its own process tree); kernel keyrings are shared by every
process of a user, across sandboxes and after they end. So the filter refuses, with
``EPERM``:

- ``unshare``, ``setns``, ``clone`` with any ``CLONE_NEW*`` flag, and every call that
  mounts or moves a file system (``mount``, ``umount2``, ``pivot_root``, the new mount API);
- ``add_key``, ``keyctl``, ``request_key`` (kernel keyrings);
- ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring_*`` (whose requests seccomp
  never sees), and loading kernel modules or a new kernel;
- every system call of another ABI than the machine's own (32-bit ``int 0x80``, x32).

``clone3`` answers ``ENOSYS``: its flags sit behind a pointer a filter cannot read, and
the C library then falls back to ``clone``, whose flags it can.

Where no network namespace keeps the sandbox offline (the setuid mode of
:mod:`autograder.sandbox`), the filter also refuses ``socket`` for every family but
``AF_UNIX``: no connection, no listening port, no raw packet.
"""

from __future__ import annotations

import errno
import platform
import socket
import struct

_LOAD_WORD = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JUMP_EQUAL = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JUMP_AT_LEAST = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JUMP_ANY_BIT = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RETURN = 0x06  # BPF_RET | BPF_K

_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6].
_NR, _ARCH, _ARG0_LOW = 0, 4, 16

#: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET and NEWTIME.
NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80

_REFUSED = ("unshare", "setns", "mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen",
            "fsconfig", "fsmount", "fspick", "mount_setattr", "add_key", "request_key", "keyctl", "bpf",
            "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
            "kexec_load", "init_module", "finit_module", "delete_module")

# audit architecture, then the numbers of the calls above, clone and clone3.
_TABLES = {
    "x86_64": (0xC000003E, {
        "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "add_key": 248, "request_key": 249, "keyctl": 250, "bpf": 321, "perf_event_open": 298,
        "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "kexec_load": 246, "init_module": 175, "finit_module": 313, "delete_module": 176,
        "clone": 56, "clone3": 435, "socket": 41}),
    "aarch64": (0xC00000B7, {
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "add_key": 217, "request_key": 218, "keyctl": 219, "bpf": 280, "perf_event_open": 241,
        "userfaultfd": 282, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "kexec_load": 104, "init_module": 105, "finit_module": 273, "delete_module": 106,
        "clone": 220, "clone3": 435, "socket": 198}),
}
_X32_BIT = 0x40000000


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def supported(machine: str | None = None) -> bool:
    return (machine or platform.machine()) in _TABLES


def numbers(machine: str | None = None) -> dict[str, int]:
    """The system call numbers the filter knows on ``machine``, by name."""
    return dict(_TABLES[machine or platform.machine()][1])


def program(machine: str | None = None, *, sockets: bool = True) -> bytes:
    """The filter for ``machine`` (this one by default), as the bytes of a
    ``struct sock_filter`` array; with ``sockets=False`` it refuses every socket but a
    Unix one. Raises ``KeyError`` for a machine it has no table for."""
    arch, numbers = _TABLES[machine or platform.machine()]
    refuse = _ERRNO | errno.EPERM
    code = [_op(_LOAD_WORD, _ARCH), _op(_JUMP_EQUAL, arch, jt=1), _op(_RETURN, refuse), _op(_LOAD_WORD, _NR)]
    if arch == _TABLES["x86_64"][0]:
        code += [_op(_JUMP_AT_LEAST, _X32_BIT, jf=1), _op(_RETURN, refuse)]
    for name in _REFUSED:
        code += [_op(_JUMP_EQUAL, numbers[name], jf=1), _op(_RETURN, refuse)]
    code += [_op(_JUMP_EQUAL, numbers["clone3"], jf=1), _op(_RETURN, _ERRNO | errno.ENOSYS)]
    if not sockets:
        # socket: refused unless its family (the first argument) is AF_UNIX.
        code += [_op(_JUMP_EQUAL, numbers["socket"], jf=4), _op(_LOAD_WORD, _ARG0_LOW),
                 _op(_JUMP_EQUAL, socket.AF_UNIX, jt=1), _op(_RETURN, refuse), _op(_RETURN, _ALLOW)]
    # clone: refused when its flags (the first argument) ask for a new namespace.
    code += [_op(_JUMP_EQUAL, numbers["clone"], jf=4), _op(_LOAD_WORD, _ARG0_LOW),
             _op(_JUMP_ANY_BIT, NAMESPACE_FLAGS, jf=1), _op(_RETURN, refuse), _op(_RETURN, _ALLOW)]
    code.append(_op(_RETURN, _ALLOW))
    return b"".join(code)
