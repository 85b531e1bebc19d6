"""Bounds on a sandbox as a whole, where the kernel's control groups let this grader set
them: memory and processes summed over every process of the sandbox, and an equal share
of the CPU for each sandbox however many processes it runs.

Resource limits (``setrlimit``) hold per process: five children of a sandbox may each use
its memory limit. A control group holds them all. Each sandbox gets a group of its own,
made before its first process starts (the process joins it before it becomes bubblewrap
or the worker, so everything it starts is inside) and removed, with anything still
running in it, when the sandbox ends.

Both kinds of hierarchy are used: cgroup v2 (one tree; the grader's own group must let it
enable the ``memory``, ``pids`` and ``cpu`` controllers for groups below it) and cgroup v1
(a tree per controller). Where neither can be written (not root, or a container that
mounts them read-only), :func:`make` returns ``None`` and the per-process limits alone
hold; the README says what that leaves.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from pathlib import Path

#: The controllers used, and the file each bound is written to, by hierarchy.
V1 = {"memory": "memory.limit_in_bytes", "pids": "pids.max", "cpu": "cpu.shares"}
V2 = {"memory": "memory.max", "pids": "pids.max", "cpu": "cpu.weight"}
#: Every sandbox weighs the same: cpu.shares' default in v1, cpu.weight's in v2.
CPU_WEIGHT = {"v1": 1024, "v2": 100}


def _mounts() -> list[tuple[str, Path, set[str]]]:
    """(type, mount point, controllers) of each cgroup file system mounted here."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            kind, _, options = right.split(" ", 2) if right.count(" ") >= 2 else (right, "", "")
            point = Path(left.split()[4].replace("\\040", " "))
            if kind == "cgroup2":
                found.append(("v2", point, set()))
            elif kind == "cgroup":
                found.append(("v1", point, set(options.split(",")) & set(V1)))
    return found


def _own_groups() -> dict[str, str]:
    """This process's group path, by v1 controller, and under ``""`` in v2."""
    groups = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                groups[controller] = path
    return groups


class Group:
    """One sandbox's group (a folder per v1 controller, or one in v2)."""

    def __init__(self, kind: str, folders: list[Path], name: str):
        self.kind, self.folders, self.name = kind, folders, name

    def procs_files(self) -> list[str]:
        return [str(folder / "cgroup.procs") for folder in self.folders]

    def pids(self) -> set[int]:
        found = set()
        for path in self.procs_files():
            with contextlib.suppress(OSError, ValueError):
                found |= {int(pid) for pid in Path(path).read_text().split()}
        return found

    def remove(self) -> None:
        """Kill whatever still runs in the group, then remove it."""
        for attempt in range(50):
            pids = self.pids()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            removed = True
            for folder in self.folders:
                try:
                    folder.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    removed = False
            if removed:
                return
            time.sleep(0.02 * (attempt + 1))


def make(memory_bytes: int, processes: int) -> Group | None:
    """A new group bounding memory (bytes, every process together), processes and CPU
    weight; None where this grader cannot make one here."""
    if os.geteuid() != 0:
        return None
    name = f"autograder-sandbox-{secrets.token_hex(8)}"
    mounts, own = _mounts(), _own_groups()
    values = {"memory": str(memory_bytes), "pids": str(processes)}
    v2 = next((point for kind, point, _ in mounts if kind == "v2"), None)
    if v2 is not None and {"memory", "pids"} <= set((v2 / "cgroup.controllers").read_text().split()
                                                    if (v2 / "cgroup.controllers").exists() else ()):
        parent = v2 / own.get("", "/").lstrip("/")
        folder = parent / name
        try:
            wanted = {"memory", "pids", "cpu"} & set((parent / "cgroup.controllers").read_text().split())
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(wanted)))
            folder.mkdir()
        except OSError:
            return None
        group = Group("v2", [folder], name)
        try:
            for controller in sorted(wanted):
                value = values.get(controller, str(CPU_WEIGHT["v2"]))
                (folder / V2[controller]).write_text(value)
            with contextlib.suppress(OSError):
                (folder / "memory.swap.max").write_text("0")
        except OSError:
            group.remove()
            return None
        return group
    points = {}
    for kind, point, controllers in mounts:
        for controller in controllers:
            points.setdefault(controller, point)
    if not {"memory", "pids"} <= set(points):
        return None
    folders, made = {}, []
    try:
        for controller in sorted(points):
            folder = points[controller] / own.get(controller, "/").lstrip("/") / name
            if folder not in made:
                folder.mkdir()
                made.append(folder)
            folders[controller] = folder
        for controller, folder in folders.items():
            (folder / V1[controller]).write_text(values.get(controller, str(CPU_WEIGHT["v1"])))
        # Memory plus swap, where the kernel counts swap: the bound cannot be escaped to disk.
        with contextlib.suppress(OSError):
            (folders["memory"] / "memory.memsw.limit_in_bytes").write_text(values["memory"])
    except OSError:
        Group("v1", made, name).remove()
        return None
    return Group("v1", made, name)
