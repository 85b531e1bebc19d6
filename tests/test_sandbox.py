"""The sandbox a learner's code runs in: what it can see, do and use, and how the judge
survives it. Each test starts a real bubblewrap sandbox (a second or two each)."""

from __future__ import annotations

import json
import os
import time

import pytest

from autograder import sandbox as sandboxes
from autograder import seccomp
from autograder.judge import CellFormError, grade_calls
from autograder.sandbox import Limits, Sandbox, SandboxFailure, SandboxUnavailable
from conftest import ROOT


def run_cell(box: Sandbox, code: str, timeout: float = 60) -> dict:
    answer = box.request({"op": "exec", "code": code}, timeout)
    assert answer["op"] == "done", answer
    return answer


def printed(answer: dict) -> str:
    return "".join(o.get("text", "") for o in answer["outputs"] if o["output_type"] == "stream")


@pytest.fixture(scope="module")
def box():
    with Sandbox() as running:
        yield running


def test_the_sandbox_sees_none_of_the_course_files(box):
    code = f"""
import os
from pathlib import Path
root = Path({str(ROOT)!r})
print(sorted(p.name for p in root.iterdir()) if root.exists() else "no course folder")
for name in ("solutions", "gradebook.db", "exercises", "tests", "submitted"):
    print(name, (root / name).exists())
"""
    text = printed(run_cell(box, code))
    assert "solutions False" in text and "exercises False" in text and "tests False" in text
    assert (ROOT / "solutions").exists()  # they are there, outside


def test_it_can_write_only_its_own_tmp(box):
    code = f"""
import autograder, pathlib
for target in (pathlib.Path(autograder.__file__).parent / "x.py", pathlib.Path("/usr/x"), pathlib.Path("/x"),
               pathlib.Path({str(ROOT)!r}) / "x"):
    try:
        target.write_text("x")
        print("wrote", target)
    except OSError as error:
        print("refused", type(error).__name__)
pathlib.Path("/tmp/mine").write_text("ok")
print("tmp", pathlib.Path("/tmp/mine").read_text())
"""
    text = printed(run_cell(box, code))
    assert "wrote" not in text and text.count("refused") == 4 and "tmp ok" in text


def test_it_has_no_network(box):
    code = """
import socket
try:
    socket.create_connection(("pypi.org", 443), timeout=3)
    print("connected")
except OSError as error:
    print("no network:", type(error).__name__)
print(sorted(name for _, name in socket.if_nameindex()))
"""
    text = printed(run_cell(box, code))
    assert "connected" not in text and "no network" in text
    assert "['lo']" in text


def test_it_runs_unprivileged_with_its_limits_set(box):
    code = """
import os, resource
print("uid", os.getuid(), "euid", os.geteuid())
for name in ("RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_CPU", "RLIMIT_NOFILE"):
    print(name, resource.getrlimit(getattr(resource, name)))
try:
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print("raised the limit")
except (ValueError, OSError):
    print("cannot raise its limits")
print(open("/proc/self/status").read().split("CapEff:")[1].split()[0])
"""
    text = printed(run_cell(box, code))
    limits = Limits()
    assert f"RLIMIT_AS ({limits.memory_bytes}, {limits.memory_bytes})" in text
    assert f"RLIMIT_NPROC ({limits.processes}, {limits.processes})" in text
    assert "cannot raise its limits" in text
    assert "0000000000000000" in text  # no capabilities left
    if os.geteuid() == 0:
        assert "uid 0" not in text


def test_it_can_make_no_namespace_mount_or_key(box):
    code = f"""
import ctypes, errno, os, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
calls = {seccomp.numbers()!r}
def attempt(name, *args):
    result = libc.syscall(calls[name], *[ctypes.c_long(a) for a in args])
    print(name, "refused" if result == -1 and ctypes.get_errno() == errno.EPERM else f"allowed {{result}}")
attempt("unshare", 0x10000000)
attempt("unshare", 0x00020000)
attempt("clone", 0x10000000 | 17, 0, 0, 0, 0)
attempt("mount", 0, 0, 0, 0, 0)
attempt("setns", 0, 0)
key = ctypes.create_string_buffer(b"user")
attempt("add_key", ctypes.addressof(key), ctypes.addressof(key), 0, 0, -4)
attempt("keyctl", 0, -4, 0)
attempt("request_key", ctypes.addressof(key), ctypes.addressof(key), 0, -4)
# What ordinary code needs still works: threads, fork, programs.
done = []
thread = threading.Thread(target=done.append, args=(1,))
thread.start(); thread.join()
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
print("thread", done, "program", subprocess.run(["true"]).returncode)
"""
    text = printed(run_cell(box, code))
    for name in ("unshare", "clone", "mount", "setns", "add_key", "keyctl", "request_key"):
        assert f"{name} refused" in text and f"{name} allowed" not in text, text
    assert "thread [1] program 0" in text


def test_memory_backed_files_are_bounded(box):
    code = """
import os
for path in ("/dev/shm/big", "/dev/big", "/tmp/big"):
    written = 0
    try:
        with open(path, "wb") as handle:
            for _ in range(1024):
                handle.write(bytes(2**20))
                written += 1
    except OSError:
        pass
    print(path, written)
    if os.path.exists(path):
        os.remove(path)
"""
    text = printed(run_cell(box, code))
    limits = Limits()
    assert f"/dev/big 0" in text
    assert int(text.split("/dev/shm/big ")[1].split()[0]) <= limits.shm_bytes // 2**20
    assert int(text.split("/tmp/big ")[1].split()[0]) <= limits.tmp_bytes // 2**20


def test_two_sandboxes_at_once_run_as_different_users():
    with Sandbox() as first, Sandbox() as second:
        uids = [int(printed(run_cell(box, "import os\nprint(os.getuid())"))) for box in (first, second)]
    assert uids[0] != uids[1]
    if os.geteuid() == 0:
        assert all(sandboxes.UID_BASE <= uid < sandboxes.UID_BASE + sandboxes.UID_COUNT for uid in uids)


def test_a_user_is_leased_to_one_sandbox_at_a_time_across_graders(tmp_path, monkeypatch):
    monkeypatch.setattr(sandboxes, "UID_COUNT", 2)
    first, second = sandboxes.UserLease(tmp_path), sandboxes.UserLease(tmp_path)
    assert {first.uid, second.uid} == {sandboxes.UID_BASE, sandboxes.UID_BASE + 1}
    with pytest.raises(SandboxUnavailable, match="no free sandbox user"):
        sandboxes.UserLease(tmp_path)
    first.release()
    third = sandboxes.UserLease(tmp_path)
    assert third.uid == first.uid
    second.release(), third.release()
    assert not list(tmp_path.iterdir())


def test_the_system_call_filter_is_a_well_formed_program():
    for machine in ("x86_64", "aarch64"):
        program = seccomp.program(machine)
        assert len(program) % 8 == 0 and len(program) // 8 < 4096
    assert not seccomp.supported("sparc64")


def test_a_fork_bomb_and_a_memory_bomb_stay_inside():
    limits = Limits(memory_bytes=2 * 2**30, processes=16)
    code = """
import os, time
children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        children += 1
except OSError as error:
    print("forks stopped after", children, type(error).__name__)
try:
    hoard = [bytearray(2 ** 28) for _ in range(64)]
    print("allocated 16 GiB")
except MemoryError:
    print("memory stopped")
"""
    with Sandbox(limits=limits) as box:
        answer = run_cell(box, code)
    text = printed(answer)
    assert "forks stopped after" in text and "memory stopped" in text
    assert int(text.split("forks stopped after")[1].split()[0]) < limits.processes
    assert answer["processes"] > 0  # the judge sees the leftover processes, and restarts


def test_output_cannot_be_taken_for_an_answer():
    with Sandbox() as box:
        answer = run_cell(box, "import os, sys\nprint('x' * 5_000_000)\nos.write(1, b'{\"op\": \"done\"}' * 1000)\n"
                               "os.write(2, b'noise')\nsys.stderr.write('more noise')")
        text = printed(answer)
        assert len(text) < 100_000 and "were not kept" in text
        assert box.request({"op": "ping"}, 30)["op"] == "pong"


def test_a_forged_answer_breaks_the_protocol_and_is_never_believed():
    code = """
import json, os, struct
data = json.dumps({"op": "done", "outputs": [], "error": False, "processes": 0, "pid": 2}).encode()
for fd in range(3, 64):
    try:
        os.write(fd, struct.pack(">I", len(data)) + data)
    except OSError:
        pass
"""
    with Sandbox() as box:
        with pytest.raises(SandboxFailure, match="protocol"):
            box.request({"op": "exec", "code": code}, 30)


def test_a_hang_is_cut_off_at_the_time_limit():
    with Sandbox() as box:
        start = time.monotonic()
        with pytest.raises(SandboxFailure, match="time limit of 3 s") as failure:
            box.request({"op": "exec", "code": "while True:\n    pass"}, 3)
        assert failure.value.timed_out and time.monotonic() - start < 10
        assert not box.alive


def test_a_process_that_ends_itself_is_reported():
    with Sandbox() as box:
        with pytest.raises(SandboxFailure, match="process ended"):
            box.request({"op": "exec", "code": "import os\nos._exit(7)"}, 30)


def test_without_bubblewrap_the_grader_says_what_to_install(monkeypatch):
    monkeypatch.setattr(sandboxes, "bwrap_path", lambda: None)
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        sandboxes.command(Limits(), 0, {}, 0)


@pytest.mark.parametrize("source", [
    'score = grade("gd-step", gd_step, points=3)\nscore',
    'score = grade("gd-step", gd_step, points=3)\n### BEGIN HIDDEN TESTS\n'
    'score = min(score, grade("gd-step", gd_step, points=3, seed=5, cases=6))\n### END HIDDEN TESTS\nscore',
])
def test_the_judge_reads_the_courses_form_of_a_test_cell(source):
    calls = grade_calls(source)
    assert calls[0].part == "gd-step" and calls[0].name == "gd_step" and calls[0].points == 3
    assert len(calls) == source.count("grade(")


@pytest.mark.parametrize("source", [
    "score = 3\nscore",
    "3.0",
    'import os\nscore = grade("gd-step", gd_step, points=3)\nscore',
    'score = grade("gd-step", gd_step, points=3)\nscore = score + 1\nscore',
    'score = grade("gd-step", gd_step.__class__, points=3)\nscore',
    'score = grade("gd-step", gd_step, points=3, extra=__import__("os"))\nscore',
    'score = max(score, grade("gd-step", gd_step, points=3))\nscore',
    'score = grade("gd-step", gd_step, points=len("abc"))\nscore',
])
def test_the_judge_runs_nothing_else(source):
    with pytest.raises(CellFormError):
        grade_calls(source)


def test_every_test_cell_of_the_course_has_the_judges_form():
    from autograder.notebook import graded_cells
    import nbformat

    for path in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        for cell in graded_cells(nbformat.read(path, as_version=4)):
            assert grade_calls(cell.source), json.dumps(cell.source)


def test_memory_and_processes_are_bounded_for_the_sandbox_as_a_whole():
    """Each of four children stays under the per-process limit; together they pass the
    sandbox's, so the kernel stops one of them (or the worker: either way, not the host)."""
    limits = Limits(memory_bytes=4 * 2**30, group_memory_bytes=2**30)
    code = """
import os, time
children = []
for index in range(4):
    pid = os.fork()
    if pid == 0:
        hoard = b"x" * (400 * 2**20)
        time.sleep(3)
        os._exit(0)
    children.append(pid)
codes = [os.waitpid(pid, 0)[1] for pid in children]
print("killed", sum(os.WIFSIGNALED(code) for code in codes))
"""
    with Sandbox(limits=limits) as box:
        if box.group is None:
            pytest.skip("no control group can be made here (not root, or the cgroup file systems are "
                        "read-only): only the per-process limits hold")
        folders = [str(folder) for folder in box.group.folders]
        assert len(box.group.pids()) >= 2  # bubblewrap and the worker are in the group
        try:
            text = printed(run_cell(box, code))
            assert int(text.split("killed")[1]) >= 1
        except SandboxFailure as failure:
            assert "killed" in failure.reason
    assert not any(os.path.exists(folder) for folder in folders)  # the group ends with the sandbox
