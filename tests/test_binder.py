"""Binder builds the course's environment from .binder/: its Python is pinned, and every
pinned requirement has a wheel for that Python on Binder's platform."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

import tasks
from conftest import ROOT

BINDER = ROOT / ".binder"
#: Binder's machines: x86-64 Linux, with a glibc new enough for manylinux_2_28 wheels.
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux_2_5_x86_64", "manylinux1_x86_64", "linux_x86_64"]


def binder_python() -> tuple[int, int]:
    """The Python version that repo2docker installs, from .binder/runtime.txt."""
    match = re.fullmatch(r"python-(\d+)\.(\d+)\s*", (BINDER / "runtime.txt").read_text())
    assert match, "runtime.txt must name a Python as python-X.Y (repo2docker's form)"
    return int(match.group(1)), int(match.group(2))


def test_binder_runs_the_courses_python():
    # Without runtime.txt repo2docker falls back to its own default Python, for which the
    # pinned numpy has no wheel.
    assert binder_python() == tasks.PYTHON_VERSION


@pytest.mark.slow
@pytest.mark.release
def test_every_binder_requirement_has_a_wheel_for_binders_python(tmp_path):
    """pip resolves .binder/requirements.txt for Binder's Python and platform from wheels
    alone, without installing anything (its indexes: PyPI and PyTorch's CPU wheels)."""
    if sys.version_info[:2] != binder_python():
        pytest.skip(f"run by Python {sys.version_info[0]}.{sys.version_info[1]}, not Binder's")
    # repo2docker installs the newest release of that Python; this one stands in for it
    # (some pins require a patch release of 3.11 or later).
    version = ".".join(map(str, sys.version_info[:3]))
    report = tmp_path / "report.json"
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    result = subprocess.run(
        # An index that cannot be reached (PyTorch's, behind a firewall) is skipped quickly.
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--retries", "1", "--timeout", "20",
         "--report", str(report), "--only-binary=:all:", "--python-version", version,
         "--implementation", "cp", "--abi", f"cp{version.replace('.', '')[:3]}", "--abi", "abi3",
         "--abi", "none", *platforms, "-r", "requirements.txt"],
        cwd=BINDER, capture_output=True, text=True, timeout=600)
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert result.returncode == 0, "\n".join(errors) or result.stderr[-3000:]
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    pinned = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    for name, version_pinned in pinned.items():
        name = name.lower().replace("_", "-")
        got = resolved.get(name) or resolved.get(name.replace("-", "_"))
        assert got and got.split("+")[0] == version_pinned, (name, got, version_pinned)
