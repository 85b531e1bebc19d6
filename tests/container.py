"""Run a command as it would run as root in a container with Docker's defaults: no
``CAP_SYS_ADMIN`` and a system call filter that refuses new namespaces, so bubblewrap
cannot make a sandbox. Python and the course's environment stay readable by any user, as
in a container's image: a home folder closed to others (pyenv's in /root, say) is shown,
to this command alone, as an open folder holding just the installation.

Needs root with ``CAP_SYS_ADMIN`` here (to set that view up), ``unshare`` and ``capsh``;
:func:`unavailable` says why not where they are missing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, course_environ

#: Loads the course's namespace filter (Docker's default profile refuses the same calls),
#: then becomes the command.
LAUNCH = (
    "import ctypes, os, sys; sys.path.insert(0, {root!r}); from autograder.worker import load_filter; "
    "assert ctypes.CDLL(None).prctl(38, 1, 0, 0, 0) == 0; load_filter(sockets=True); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def unavailable() -> str | None:
    """Why this machine cannot imitate such a container (None: it can)."""
    if os.geteuid() != 0:
        return "imitating a container's root needs root here"
    for tool in ("unshare", "capsh"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: util-linux, libcap2-bin)"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot make a mount namespace here: {probe.stderr.strip()}"
    return None


def _closed_folder(path: Path) -> tuple[Path, Path] | None:
    """The first folder above ``path`` that other users cannot enter, and its child on
    the way to ``path``."""
    parts = path.resolve().parents
    for folder in reversed(parts):
        if not os.stat(folder).st_mode & 0o001:
            child = next(p for p in (*reversed(parts), path.resolve()) if p.parent == folder)
            return folder, child
    return None


def run_in_container(command: list[str], cwd: Path, drop: str = "cap_sys_admin", timeout: float = 600,
                     environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``command``, in ``cwd``, as a container's root would run it (see the module)."""
    setup = []
    for installation in {Path(sys.base_prefix), Path(sys.prefix), ROOT}:
        closed = _closed_folder(installation)
        if closed and not any(closed[0] == Path(s.split("|")[0]) for s in setup):
            setup.append(f"{closed[0]}|{closed[1]}")
    lines = ["set -e", "mount --make-rprivate /", 'scratch=$(mktemp -d)']
    for index, entry in enumerate(setup):
        folder, child = entry.split("|")
        lines += [f"mkdir $scratch/{index}", f"mount --bind {shlex.quote(folder)} $scratch/{index}",
                  f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(folder)}",
                  f"mkdir -p {shlex.quote(child)}",
                  f"mount --bind $scratch/{index}/{shlex.quote(Path(child).name)} {shlex.quote(child)}"]
    inner = shlex.join([sys.executable, "-c", LAUNCH.format(root=str(ROOT)), *command])
    lines.append(f"cd {shlex.quote(str(cwd))}")
    lines.append(f"exec capsh --drop={drop} -- -c {shlex.quote('exec ' + inner)}")
    return subprocess.run(["unshare", "--mount", "sh", "-c", "\n".join(lines)], env=environ or course_environ(),
                          capture_output=True, text=True, timeout=timeout)
