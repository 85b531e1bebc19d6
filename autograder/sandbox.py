"""A sandboxed process for a learner's code: bubblewrap, resource limits, and a pipe.

The judging process never runs a learner's code. It starts :mod:`autograder.worker` in
a sandbox made with bubblewrap (``bwrap``, Debian's package ``bubblewrap``) and talks to
it over its standard input and output, one JSON message at a time (a 4-byte length, then
the message). The sandbox

- sees only what the course environment needs, read-only: the system's ``/usr``, the
  Python installation, the virtual environment and the ``autograder`` package. The
  course's own files (solutions, hidden tests, the gradebook, other learners' work) are
  not there at all, nor is any file of the submission: its cells come over the pipe;
- can write only to its own ``/tmp``, a small memory-backed file system;
- has no network, its own process tree (all of it ends with the sandbox), and, when it
  is started by root, runs as an unprivileged user no other sandbox runs as at the same
  time (:class:`UserLease`);
- may not make new namespaces, mount anything or touch kernel keyrings
  (:mod:`autograder.seccomp`);
- is bounded in memory (address space), CPU time, processes, file size and open files
  (set by the worker before any learner code runs, so the learner's code cannot lift
  them), and, by the judge, in wall time for every request.

That is the ``bubblewrap`` mode. Where the kernel lets no one here make namespaces (a
container with Docker's default capabilities and system call filter, as on Gradescope),
bubblewrap cannot run, and a grader running as root uses the ``setuid`` mode instead: the
worker is a process of the machine's own, but it runs as a user of its own that no other
sandbox shares (:class:`UserLease`), in a private working folder, with the same limits
and system call filter, sockets refused but for Unix ones, and, checked as that user
before any learner's code runs, no way to read the course's folder (hidden tests,
gradebook, other learners' work, results) or nbgrader's configuration files. All its
processes end with it. What it does not have: its own view of the file system (it can
read what any user of the machine can), of the process table, or a bound on the disk it
fills beyond the size of each file. :func:`mode` chooses, by what starts here
(``AUTOGRADER_SANDBOX=bubblewrap`` or ``setuid`` forces one), and says clearly when
neither can; nothing is graded without a sandbox.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import platform
import random
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import cgroups, seccomp

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
    shm_bytes: int = 16 * 2**20
    startup_seconds: float = 120.0
    #: Memory of every process of the sandbox together, page cache included
    #: (:mod:`autograder.cgroups`); by default one process's address space and 1 GiB more,
    #: so that a single process always meets its own limit first (a MemoryError in the
    #: learner's code, not a killed sandbox).
    group_memory_bytes: int | None = None

    @property
    def group_memory(self) -> int:
        return self.group_memory_bytes or self.memory_bytes + 2**30


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


MODES = ("bubblewrap", "setuid")
#: Which capabilities (bits of CapEff) root needs for the setuid mode: CAP_CHOWN for the
#: sandbox's folder, CAP_KILL to end it, CAP_SETGID and CAP_SETUID to become its user.
_SETUID_CAPABILITIES = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7}
_chosen: dict[tuple, str] = {}


def _bwrap_starts() -> str | None:
    """Why bubblewrap cannot make this grader's kind of sandbox here (None: it can)."""
    bwrap = bwrap_path()
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        result = subprocess.run([bwrap, *_namespaces(), "--ro-bind", "/", "/", "--", "true"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap did not run: {error}"
    if result.returncode != 0:
        return f"bubblewrap cannot make a sandbox here ({result.stderr.strip()[-300:] or result.returncode})"
    return None


def _missing_capabilities() -> list[str]:
    """The capabilities the setuid mode needs that this process lacks."""
    try:
        status = Path("/proc/self/status").read_text()
        effective = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:")), 16)
    except (OSError, StopIteration, ValueError):
        return list(_SETUID_CAPABILITIES)
    return [name for name, bit in _SETUID_CAPABILITIES.items() if not effective >> bit & 1]


def mode() -> str:
    """The sandbox this grader makes: ``bubblewrap`` where bubblewrap runs here, else
    ``setuid`` where this process is root with the capabilities to become another user;
    ``AUTOGRADER_SANDBOX`` set to either forces it. Raises :class:`SandboxUnavailable`,
    saying what to do, where neither can run. Decided once per process."""
    wanted = os.environ.get("AUTOGRADER_SANDBOX", "auto").strip().lower() or "auto"
    if wanted not in ("auto", *MODES):
        raise SandboxUnavailable(f"AUTOGRADER_SANDBOX={wanted!r}: it must be auto, bubblewrap or setuid")
    key = (wanted, os.geteuid())
    if key in _chosen:
        return _chosen[key]
    why = _bwrap_starts() if wanted != "setuid" else "AUTOGRADER_SANDBOX=setuid"
    if why is None:
        chosen = "bubblewrap"
    elif wanted == "bubblewrap":
        raise SandboxUnavailable(f"AUTOGRADER_SANDBOX=bubblewrap, but {why}. " + _INSTALL)
    elif os.geteuid() != 0:
        raise SandboxUnavailable(
            f"{why}, and the grader runs learners' code only in a sandbox. {_INSTALL} Or run the grader "
            "as root (in a container, root with the default capabilities is enough): it then runs "
            "learners' code as users of their own."
        )
    elif missing := _missing_capabilities():
        raise SandboxUnavailable(
            f"{why}, and this root process lacks {', '.join(missing)}, which running learners' code as "
            f"users of their own needs. {_INSTALL}"
        )
    elif hidden := [path for path in (sys.base_prefix, sys.prefix, str(PACKAGE)) if not _open_to_anyone(path)]:
        raise SandboxUnavailable(
            f"{why}, and learners' code would run as a user of its own, who cannot read {hidden[0]} "
            "(a folder above it is closed to other users). Install Python and the course's environment "
            "where any user may read them (as in a container: /usr, /usr/local, /opt), or grade where "
            "bubblewrap runs."
        )
    else:
        chosen = "setuid"
        if wanted == "auto":
            print(f"autograder: {why}; learners' code runs in the setuid sandbox (its own user, limits "
                  "and system call filter, no network, but the machine's file system and process table)",
                  file=sys.stderr)
    _chosen[key] = chosen
    return chosen


_INSTALL = ("Install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; `python3 tasks.py setup` "
            "does it when run as root) where the kernel allows user namespaces, then grade again.")


def _namespaces() -> list[str]:
    if os.geteuid() == 0:
        # Root sets up the sandbox directly and the worker then becomes an unprivileged
        # user of its own (it keeps only the capability to do that).
        return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return ["--unshare-all", "--disable-userns"]


def _open_to_anyone(path: str) -> bool:
    """Whether a user with no claim on ``path`` (not its owner, not in its group) may
    read it: every folder on the way lets others through, and it lets others read."""
    target = Path(path).resolve()
    try:
        for folder in (*reversed(target.parents), target):
            if not os.stat(folder).st_mode & 0o001:
                return False
        return bool(os.stat(target).st_mode & 0o004)
    except OSError:
        return False


def private_paths() -> list[str]:
    """What a sandbox sharing the machine's file system must not be able to read: the
    course's folder (the judge's working directory: hidden tests, the gradebook, every
    learner's work, the results) and nbgrader's configuration files, which may hold a
    gradebook's password."""
    paths = [os.getcwd()]
    with contextlib.suppress(ImportError):
        from jupyter_core.paths import jupyter_config_path

        for folder in jupyter_config_path():
            for name in ("nbgrader_config.py", "nbgrader_config.json"):
                if (Path(folder) / name).exists():
                    paths.append(str(Path(folder) / name))
    return paths


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


#: Sandboxes started by root run as users drawn from UID_BASE .. UID_BASE + UID_COUNT - 1,
#: users no account on the machine has.
UID_BASE, UID_COUNT = 0x70000000, 1 << 20
#: Where root's graders record which of those users a sandbox runs as now.
LEASES = Path("/run/autograder-sandboxes")


class UserLease:
    """A user that no other sandbox runs as while the lease is held, by this grader or by
    any other on the machine (two instructors, a batch beside ``nbgrader autograde``).

    The user is drawn at random from :data:`UID_COUNT` and locked with ``flock`` on a file
    in :data:`LEASES`: sandboxes of different learners never share a user, so they share
    no process limit, and nothing a user owns in the kernel outlives the sandbox into the
    next learner's (keyrings, the other thing a user owns there, are refused outright by
    :mod:`autograder.seccomp`).
    """

    def __init__(self, directory: Path = LEASES):
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
        except OSError as error:
            raise SandboxUnavailable(f"cannot record which users sandboxes run as in {directory}: {error}") from None
        chooser = random.SystemRandom()
        for _ in range(100):
            uid = UID_BASE + chooser.randrange(UID_COUNT)
            path = directory / str(uid)
            fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # The holder before us may have removed the file after we opened it.
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    self.uid, self.path, self.fd = uid, path, fd
                    return
            except (BlockingIOError, FileNotFoundError):
                pass
            os.close(fd)
        raise SandboxUnavailable(f"no free sandbox user in {directory} after 100 draws")

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            os.close(self.fd)
            self.fd = None


def command(limits: Limits, uid: int, environ: dict[str, str], seccomp_fd: int) -> list[str]:
    """The ``bwrap`` command line that starts the worker (as ``uid``, when run by root),
    with the system call filter read from ``seccomp_fd`` (:mod:`autograder.seccomp`)."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed, and the grader runs learners' code only "
                                 "in a sandbox. " + _INSTALL)
    privileged = os.geteuid() == 0
    args = [bwrap, "--die-with-parent", "--new-session", "--clearenv", "--seccomp", str(seccomp_fd)]
    args += _namespaces()
    # /dev is a tmpfs of its own: read-only but for a sized /dev/shm, so that memory-backed
    # files can hold no more than /tmp and /dev/shm allow.
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "01777", "--size", str(limits.shm_bytes),
             "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
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
    for key, value in environ.items():
        args += ["--setenv", key, value]
    args += ["--chdir", "/tmp", "--", *_worker({"uid": uid, "limits": dataclasses.asdict(limits),
                                                "privileged": privileged, "mode": "bubblewrap"})]
    return args


def _worker(config: dict) -> list[str]:
    # The worker imports the judge's own copy of the package, put first on its path: the
    # environment may install another one (an editable install of a different checkout).
    start = f"import sys; sys.path.insert(0, {str(PACKAGE.parent)!r}); from autograder.worker import main; main()"
    return [str(Path(sys.prefix) / "bin" / "python"), "-I", "-c", start, json.dumps(config)]


def sandbox_environ(threads: int = 1, home: str = "/tmp") -> dict[str, str]:
    """The worker's whole environment (bwrap starts it with an empty one)."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": f"{home}/.matplotlib",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "NBGRADER_EXECUTION": "autograde",
    }


def frame(message) -> bytes:
    """A message as it crosses the pipe: its length, then its JSON."""
    data = json.dumps(message, allow_nan=False, separators=(",", ":")).encode()
    return HEADER.pack(len(data)) + data


def write_message(fd: int, message) -> None:
    """Blocking write of a whole message (for the worker's side of the pipe)."""
    view = memoryview(frame(message))
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

    def __init__(self, *, limits: Limits = Limits(), threads: int = 1):
        self.limits, self.threads = limits, threads
        self.mode: str | None = None
        self.group: cgroups.Group | None = None
        self.home: str | None = None
        self.lease: UserLease | None = None
        self.process: subprocess.Popen | None = None
        self.pid: int | None = None
        self.seq = 0

    def start(self) -> None:
        if not seccomp.supported():
            raise SandboxUnavailable(f"the sandbox's system call filter knows no {platform.machine()} machine")
        self.mode = mode()
        self.lease = UserLease() if os.geteuid() == 0 else None
        uid = self.lease.uid if self.lease else os.getuid()
        try:
            # bubblewrap and its init are processes of the group too.
            self.group = cgroups.make(self.limits.group_memory, self.limits.processes + 2)
            if self.mode == "setuid":
                self._start_setuid(uid)
            else:
                self._start_bubblewrap(uid)
        except BaseException:
            self._release()
            raise
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
        if hello.get("reachable"):
            self.close()
            raise SandboxUnavailable(
                "in the setuid sandbox, learners' code shares this machine's file system, and its user "
                f"can read {', '.join(map(str, hello['reachable']))}: make that readable by its owner alone "
                "(chmod o-rwx on it or on a folder above it), or grade where bubblewrap runs"
            )
        self.pid = hello.get("pid")

    def _start_bubblewrap(self, uid: int) -> None:
        program, loader = os.pipe()
        try:
            with open(loader, "wb") as pipe:
                pipe.write(seccomp.program())
            args = self._joined(command(self.limits, uid, sandbox_environ(self.threads), program))
            self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, start_new_session=True, pass_fds=(program,))
        finally:
            os.close(program)

    def _start_setuid(self, uid: int) -> None:
        """The worker as a process of this machine, in a folder of its own, that becomes
        ``uid`` and installs its limits and filter before it reads a request."""
        self.home = tempfile.mkdtemp(prefix="autograder-sandbox-")
        os.chown(self.home, uid, uid)
        config = {"uid": uid, "limits": dataclasses.asdict(self.limits), "privileged": True, "mode": "setuid",
                  "home": self.home, "private": private_paths()}
        self.process = subprocess.Popen(self._joined(_worker(config)), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True, cwd=self.home,
                                        env=sandbox_environ(self.threads, self.home))

    def _joined(self, args: list[str]) -> list[str]:
        """``args`` run by a shell that first moves itself into the sandbox's control
        group, so that nothing of the sandbox ever runs outside it."""
        if self.group is None:
            return args
        files = self.group.procs_files()
        join = ('n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || '
                '{ echo "cannot join the control group $1" >&2; exit 111; }; shift; n=$((n - 1)); done; exec "$@"')
        return ["/bin/sh", "-c", join, "sh", str(len(files)), *files, *args]

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def request(self, message: dict, timeout: float, limit: int = MAX_MESSAGE) -> dict:
        """Send ``message``; the worker's answer (a dict) of at most ``limit`` bytes. Raises
        :class:`SandboxFailure` when sending and answering take more than ``timeout`` seconds
        together, the worker dies or answers nonsense; the sandbox is then closed."""
        if not self.alive:
            raise SandboxFailure("the sandbox had already stopped")
        # Every answer must carry its request's number: a stray or forged message, or an
        # answer that comes late, can never be taken for the answer to another request.
        self.seq += 1
        deadline = time.monotonic() + timeout
        try:
            self._send(frame(dict(message, seq=self.seq)), deadline, timeout)
        except (BrokenPipeError, OSError):
            reason = self._death()
            self.close()
            raise SandboxFailure(reason) from None
        answer = self._receive(deadline - time.monotonic(), limit=limit, shown=timeout)
        if not isinstance(answer, dict) or answer.get("seq") != self.seq:
            self.close()
            raise SandboxFailure("it broke the grader's protocol (an answer that was not to this request)")
        return answer

    def _send(self, payload: bytes, deadline: float, shown: float) -> None:
        """Write ``payload`` to the worker by ``deadline``: a worker that stops reading
        (its learner's code took the pipe, say) costs that request, never the grader."""
        fd = self.process.stdin.fileno()
        os.set_blocking(fd, False)
        view = memoryview(payload)
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_WRITE)
            while view:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.close()
                    raise SandboxFailure(f"it ran past the time limit of {shown:g} s (it stopped reading)",
                                         timed_out=True)
                if selector.select(remaining):
                    try:
                        view = view[os.write(fd, view):]
                    except BlockingIOError:
                        continue

    def _receive(self, timeout: float, starting: bool = False, limit: int = MAX_MESSAGE, shown: float | None = None):
        deadline = time.monotonic() + max(timeout, 0)
        shown = timeout if shown is None else shown
        buffer = bytearray()
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
                    raise SandboxFailure(f"it ran past the time limit of {shown:g} s", timed_out=True)
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
                        if wanted > limit:
                            self.close()
                            raise SandboxFailure("it sent back more than the grader reads")
                    if wanted is not None and len(buffer) >= HEADER.size + wanted:
                        body, rest = buffer[HEADER.size:HEADER.size + wanted], buffer[HEADER.size + wanted:]
                        try:
                            message = json.loads(body)
                        except (ValueError, UnicodeDecodeError, RecursionError):
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

    def _release(self) -> None:
        if self.group is not None:
            self.group.remove()
            self.group = None
        if self.lease is not None:
            if self.mode == "setuid":
                _end_user(self.lease.uid)
            self.lease.release()
            self.lease = None
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None

    def close(self) -> None:
        process, self.process = self.process, None
        if process is None:
            self._release()
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
        self._release()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()


#: Where a process of the setuid sandbox may leave files outside its own folder.
_SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")


def _end_user(uid: int) -> None:
    """End every process of ``uid`` and remove the files it left in the shared temporary
    folders: with no process table or file system of its own, a setuid sandbox's leftovers
    are found by their user, which no other sandbox runs as."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        # kill(-1) signals every process the caller may signal, the caller aside: as
        # ``uid``, that is the sandbox's processes and nothing else.
        subprocess.run([sys.executable, "-I", "-S", "-c", "import os, signal; os.kill(-1, signal.SIGKILL)"],
                       user=uid, group=uid, extra_groups=[], timeout=30, capture_output=True)
    for folder in _SHARED_TMP:
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_uid != uid:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)


def check_available() -> None:
    """Raise :class:`SandboxUnavailable` with what to do, unless a sandbox starts here."""
    with Sandbox(limits=Limits(startup_seconds=180)) as sandbox:
        answer = sandbox.request({"op": "ping"}, timeout=30)
        if answer.get("op") != "pong":
            raise SandboxUnavailable(f"the sandbox answered {answer!r:.200}")
