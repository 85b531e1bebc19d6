"""A sandboxed process for a learner's code: bubblewrap, resource limits, and a pipe.

The judging process never runs a learner's code. It starts :mod:`autograder.worker` in
a sandbox made with bubblewrap (``bwrap``, Debian's package ``bubblewrap``) and talks to
it over its standard input and output, one JSON message at a time (a 4-byte length, then
the message). The sandbox

- sees only what the course environment needs, read-only: the system's ``/usr``, the
  Python installation, the virtual environment and the ``autograder`` package. The
  course's own files (solutions, hidden tests, the gradebook, other learners' work) are
  not there at all;
- can write only to its own ``/tmp``, a small memory-backed file system;
- has no network, its own process tree (all of it ends with the sandbox), and, when it
  is started by root, runs as an unprivileged user of its own;
- is bounded in memory (address space), CPU time, processes, file size and open files
  (set by the worker before any learner code runs, so the learner's code cannot lift
  them), and, by the judge, in wall time for every request.

:func:`check_available` says clearly when bubblewrap is missing or cannot make a sandbox
here; nothing is graded without one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
HEADER = struct.Struct(">I")
#: The largest message the judge accepts from a sandbox.
MAX_MESSAGE = 96 * 2**20


class SandboxUnavailable(RuntimeError):
    """No sandbox can be made here; the message says what to install or change."""


class SandboxFailure(Exception):
    """The sandbox stopped answering: it ran past its time, died, or broke the protocol.

    ``reason`` is a sentence for the learner's feedback.
    """

    def __init__(self, reason: str, *, timed_out: bool = False):
        super().__init__(reason)
        self.reason, self.timed_out = reason, timed_out


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one sandbox may use. Memory is address space (``RLIMIT_AS``), so it must
    leave room for PyTorch's own mappings (about 0.7 GiB)."""

    memory_bytes: int = 4 * 2**30
    cpu_seconds: int = 900
    processes: int = 32
    file_bytes: int = 32 * 2**20
    open_files: int = 256
    tmp_bytes: int = 128 * 2**20
    startup_seconds: float = 120.0


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def _mounts() -> list[str]:
    """The host directories the worker needs, read-only: system libraries, the Python
    installation, the environment and the autograder package (nothing else of the course)."""
    wanted = {Path("/usr"), Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), PACKAGE}
    for name in ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives"):
        if Path(name).exists():
            wanted.add(Path(name))
    # Keep only the outermost of nested directories.
    kept = sorted(wanted, key=lambda p: len(p.parts))
    result = []
    for path in kept:
        if not any(path != other and other in path.parents for other in result):
            result.append(path)
    return [str(p) for p in result]


#: Sandboxes run as users UID_BASE + 64·slot + serial % 64 (when started by root).
UID_BASE = 61000


def sandbox_uid(slot: int, serial: int = 0) -> int:
    """The user a sandbox runs as: one per parallel grader (``slot``), and a new one for
    each fresh start, so that no two sandboxes share a process limit."""
    return UID_BASE + 64 * slot + serial % 64


def command(limits: Limits, uid: int, workdir: Path | None, environ: dict[str, str]) -> list[str]:
    """The ``bwrap`` command line that starts the worker (as ``uid``, when run by root)."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, and the grader runs learners' code only in a "
            "sandbox. Install it (Debian/Ubuntu: `sudo apt-get install bubblewrap`; "
            "`python3 tasks.py setup` does it when run as root), then grade again."
        )
    privileged = os.geteuid() == 0
    args = [bwrap, "--die-with-parent", "--new-session", "--clearenv"]
    if privileged:
        # Root sets up the sandbox directly and the worker then becomes an unprivileged
        # user of its own (it keeps only the capability to do that).
        args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                 "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-all"]
    args += ["--proc", "/proc", "--dev", "/dev",
             "--perms", "01777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    for link, target in (("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/bin", "usr/bin"), ("/sbin", "usr/sbin")):
        if Path(link).is_symlink():
            args += ["--symlink", target, link]
    mounts = _mounts()
    parents = sorted({str(q) for m in mounts for q in Path(m).parents if str(q) != "/"}, key=len)
    for directory in parents:
        args += ["--perms", "0755", "--dir", directory]
    for mount in mounts:
        args += ["--ro-bind", mount, mount]
    if workdir is not None:
        args += ["--ro-bind", str(workdir), "/submission"]
    for key, value in environ.items():
        args += ["--setenv", key, value]
    # The worker imports the judge's own copy of the package, put first on its path: the
    # environment may install another one (an editable install of a different checkout).
    start = f"import sys; sys.path.insert(0, {str(PACKAGE.parent)!r}); from autograder.worker import main; main()"
    args += ["--chdir", "/tmp", "--", str(Path(sys.prefix) / "bin" / "python"), "-I", "-c", start,
             json.dumps({"uid": uid, "limits": dataclasses.asdict(limits), "privileged": privileged})]
    return args


def sandbox_environ(threads: int = 1) -> dict[str, str]:
    """The worker's whole environment (bwrap starts it with an empty one)."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/.matplotlib",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "NBGRADER_EXECUTION": "autograde",
    }


def write_message(fd: int, message) -> None:
    data = json.dumps(message, allow_nan=False, separators=(",", ":")).encode()
    payload = HEADER.pack(len(data)) + data
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_exactly(fd: int, count: int) -> bytes:
    """Blocking read of ``count`` bytes (for the worker's side of the pipe)."""
    chunks, remaining = [], count
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class Sandbox:
    """One running worker. :meth:`request` sends a message and waits for the answer."""

    def __init__(self, *, limits: Limits = Limits(), slot: int = 0, workdir: Path | None = None,
                 threads: int = 1, serial: int = 0):
        self.limits, self.slot, self.workdir, self.threads = limits, slot, workdir, threads
        self.uid = sandbox_uid(slot, serial)
        self.process: subprocess.Popen | None = None
        self.pid: int | None = None
        self.seq = 0

    def start(self) -> None:
        args = command(self.limits, self.uid, self.workdir, sandbox_environ(self.threads))
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True)
        for stream in (self.process.stdout, self.process.stderr):
            os.set_blocking(stream.fileno(), False)
        self._errors = b""
        hello = self._receive(self.limits.startup_seconds, starting=True)
        if not isinstance(hello, dict) or hello.get("op") != "ready":
            self.close()
            raise SandboxUnavailable(f"the sandbox did not start: {hello!r:.200}")
        if hello.get("package") != str(PACKAGE):
            self.close()
            raise SandboxUnavailable(
                f"the sandbox runs the grader from {hello.get('package')!r:.200}, not the judge's "
                f"{str(PACKAGE)!r}: the two must run the same code"
            )
        self.pid = hello.get("pid")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def request(self, message: dict, timeout: float) -> dict:
        """Send ``message``; the worker's answer (a dict). Raises :class:`SandboxFailure`
        when the worker runs past ``timeout`` seconds, dies or answers nonsense; the
        sandbox is then closed."""
        if not self.alive:
            raise SandboxFailure("the sandbox had already stopped")
        # Every answer must carry its request's number: a stray or forged message, or an
        # answer that comes late, can never be taken for the answer to another request.
        self.seq += 1
        try:
            write_message(self.process.stdin.fileno(), dict(message, seq=self.seq))
        except (BrokenPipeError, OSError):
            reason = self._death()
            self.close()
            raise SandboxFailure(reason) from None
        answer = self._receive(timeout)
        if not isinstance(answer, dict) or answer.get("seq") != self.seq:
            self.close()
            raise SandboxFailure("it broke the grader's protocol (an answer that was not to this request)")
        return answer

    def _receive(self, timeout: float, starting: bool = False):
        deadline = time.monotonic() + timeout
        buffer = b""
        wanted = None
        out, err = self.process.stdout.fileno(), self.process.stderr.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(out, selectors.EVENT_READ)
            selector.register(err, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.close()
                    if starting:
                        raise SandboxUnavailable(f"the sandbox did not start within {timeout:g} s")
                    raise SandboxFailure(f"it ran past the time limit of {timeout:g} s", timed_out=True)
                for key, _ in selector.select(remaining):
                    try:
                        chunk = os.read(key.fd, 1 << 20)
                    except BlockingIOError:
                        continue
                    if key.fd == err:
                        if chunk:
                            self._errors = (self._errors + chunk)[-8192:]
                        else:
                            selector.unregister(err)
                        continue
                    if not chunk:
                        reason = self._death()
                        self.close()
                        if starting:
                            raise SandboxUnavailable(
                                "the sandbox could not start: "
                                + (self._errors.decode(errors="replace").strip()[-1500:] or "no message")
                            )
                        raise SandboxFailure(reason)
                    buffer += chunk
                    if wanted is None and len(buffer) >= HEADER.size:
                        (wanted,) = HEADER.unpack(buffer[:HEADER.size])
                        if wanted > MAX_MESSAGE:
                            self.close()
                            raise SandboxFailure("it sent back more than the grader reads")
                    if wanted is not None and len(buffer) >= HEADER.size + wanted:
                        body, rest = buffer[HEADER.size:HEADER.size + wanted], buffer[HEADER.size + wanted:]
                        try:
                            message = json.loads(body)
                        except (ValueError, UnicodeDecodeError):
                            self.close()
                            raise SandboxFailure("it broke the grader's protocol") from None
                        if rest:
                            # Only one answer per request: more means something else wrote.
                            self.close()
                            raise SandboxFailure("it broke the grader's protocol (extra output)")
                        return message

    def _death(self) -> str:
        code = self.process.poll() if self.process else None
        if code is None and self.process is not None:
            try:
                code = self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
        # bwrap reports a worker killed by signal N as 128 + N.
        signum = -code if code is not None and code < 0 else (code - 128 if code and code > 128 else None)
        if signum in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGXCPU):
            return f"the process was killed ({signal.Signals(signum).name}): out of memory or CPU time, or a crash"
        return "the process ended (sys.exit or os._exit, a crash, or running out of memory)"

    def close(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.kill()
        except ProcessLookupError:
            pass
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            try:
                stream.close()
            except OSError:
                pass

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()


def check_available() -> None:
    """Raise :class:`SandboxUnavailable` with what to do, unless a sandbox starts here."""
    with Sandbox(limits=Limits(startup_seconds=180)) as sandbox:
        answer = sandbox.request({"op": "ping"}, timeout=30)
        if answer.get("op") != "pong":
            raise SandboxUnavailable(f"the sandbox answered {answer!r:.200}")
