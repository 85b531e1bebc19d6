"""The sandbox where bubblewrap cannot run: a container's root with Docker's default
capabilities and system call filter (imitated by tests/container.py). The grader must
choose the setuid sandbox there by itself, keep the learner's code away from the course
and the network, end everything the code started, and refuse clearly where it cannot
keep those promises. The hostile corpus graded this way is a release check."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, course_environ
from container import run_in_container, unavailable

pytestmark = pytest.mark.skipif(bool(unavailable()), reason=str(unavailable()))

#: Run in the imitated container, in a course folder; prints one JSON line of what it saw.
EXPLORE = r'''
import json, os, sys, time
from autograder import sandbox
from autograder.sandbox import Sandbox

def cell(box, code):
    answer = box.request({"op": "exec", "code": code}, 60)
    return "".join(o.get("text", "") for o in answer["outputs"] if o["output_type"] == "stream").strip(), answer

seen = {"mode": sandbox.mode()}
with Sandbox() as box:
    text, _ = cell(box, "import os\nprint(os.getuid(), os.getcwd())")
    seen["uid"], seen["cwd"] = int(text.split()[0]), text.split()[1]
    seen["network"], _ = cell(box, """
import socket
for family in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
    try:
        socket.socket(family, socket.SOCK_STREAM).close()
        print(family.name, "allowed")
    except OSError as error:
        print(family.name, "refused")
""")
    seen["course"], _ = cell(box, f"""
for path in ({os.getcwd()!r}, {os.getcwd() + '/gradebook.db'!r}):
    try:
        open(path).close() if path.endswith('.db') else __import__('os').listdir(path)
        print('read', path)
    except OSError as error:
        print('refused', type(error).__name__)
""")
    seen["unshare"], _ = cell(box, "import ctypes\nprint(ctypes.CDLL(None).unshare(0x10000000))")
    _, answer = cell(box, """
import os, subprocess, pathlib
pathlib.Path('/tmp/left-behind').write_text('x')
subprocess.Popen(['sleep', '300'], start_new_session=True)
print('started')
""")
    seen["processes_reported"] = answer["processes"]
    uid = seen["uid"]
time.sleep(0.5)
alive = [p for p in os.listdir("/proc") if p.isdigit() and os.path.exists(f"/proc/{p}")
         and os.stat(f"/proc/{p}").st_uid == uid]
# Killed processes may wait a moment as zombies for the machine's init to reap them.
seen["alive_after"] = sum(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] != "Z" for p in alive)
seen["tmp_after"] = os.path.exists("/tmp/left-behind")
print(json.dumps(seen))
'''


def explore(course, drop="cap_sys_admin", environ=None):
    return run_in_container(["python", "-c", EXPLORE], cwd=course, drop=drop, environ=environ, timeout=300)


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    (course / "gradebook.db").write_text("hidden tests")
    os.chmod(course, 0o700)
    result = explore(course)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]) | {"stderr": result.stderr}


def test_without_namespaces_root_grades_in_the_setuid_sandbox_and_says_why(seen):
    assert seen["mode"] == "setuid"
    assert "bubblewrap cannot make a sandbox here" in seen["stderr"] and "setuid sandbox" in seen["stderr"]


def test_the_learners_code_runs_as_a_leased_user_in_a_folder_of_its_own(seen):
    from autograder.sandbox import UID_BASE, UID_COUNT

    assert UID_BASE <= seen["uid"] < UID_BASE + UID_COUNT
    assert seen["cwd"].startswith("/tmp/autograder-sandbox-")


def test_no_network_and_no_namespaces(seen):
    assert "AF_INET refused" in seen["network"] and "AF_INET6 refused" in seen["network"]
    assert "AF_UNIX allowed" in seen["network"]
    assert seen["unshare"] == "-1"


def test_the_course_folder_is_out_of_reach(seen):
    assert seen["course"].split() == ["refused", "PermissionError", "refused", "PermissionError"]


def test_everything_the_code_started_or_left_ends_with_the_sandbox(seen):
    assert seen["processes_reported"] >= 1  # the judge sees the leftover and would restart
    assert seen["alive_after"] == 0 and seen["tmp_after"] is False


def test_a_course_folder_others_can_read_is_refused_with_what_to_do():
    # Outside pytest's own temporary folders, which are closed to others.
    course = Path(tempfile.mkdtemp(prefix="open-course-"))
    try:
        os.chmod(course, 0o755)
        result = explore(course)
    finally:
        shutil.rmtree(course)
    assert result.returncode != 0
    assert "SandboxUnavailable" in result.stderr and str(course) in result.stderr
    assert "chmod o-rwx" in result.stderr


def test_where_neither_sandbox_can_run_the_grader_refuses_and_says_why(tmp_path):
    os.chmod(tmp_path, 0o700)
    result = explore(tmp_path, drop="cap_sys_admin,cap_setuid")
    assert result.returncode != 0
    assert "bubblewrap cannot make a sandbox here" in result.stderr and "CAP_SETUID" in result.stderr


@pytest.mark.release
@pytest.mark.slow
def test_the_hostile_corpus_grades_as_predicted_in_the_setuid_sandbox(tmp_path):
    """tests/test_hostile.py, whole, with the grader's capability to make namespaces taken
    away: every hostile submission must get its predicted score there too."""
    environ = dict(course_environ(), AUTOGRADER_SANDBOX="auto")
    result = run_in_container(
        ["python", "-m", "pytest", "-n", "0", "-p", "no:cacheprovider", "-q", "--basetemp",
         str(tmp_path / "base"), str(ROOT / "tests" / "test_hostile.py")],
        cwd=ROOT, timeout=1800, environ=environ)
    assert result.returncode == 0, (result.stdout[-6000:], result.stderr[-3000:])
    # The batch's log, kept by tests/test_hostile.py: the grader chose the setuid sandbox
    # itself, although bubblewrap is installed (the kernel refused it).
    log = (ROOT / "test-artifacts" / "hostile-corpus.txt").read_text()
    assert "bubblewrap cannot make a sandbox here" in log and "runs in the setuid sandbox" in log
    assert shutil.which("bwrap")
