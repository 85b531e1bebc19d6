"""The process inside the sandbox: runs a learner's cells and the checks' probes.

Started by :class:`autograder.sandbox.Sandbox` (never by hand). Before any learner code
runs it becomes an unprivileged user of its own (when started by root), sets its
resource limits, and moves its message pipe off the standard streams, so that nothing a
learner's code prints can be taken for an answer. Then it serves requests:

- ``{"op": "exec", "code": ...}`` runs a cell the way a Jupyter kernel would (IPython's
  input transformations, the last expression's value shown, figures kept as PNG) and
  answers with the cell's outputs in nbformat's shape, each of them capped in size;
- ``{"op": "probe", "name": ..., "module": ..., "function": ..., "args": ..., "kwargs": ...}``
  runs a check's probe (:mod:`autograder.probe`) on the object the learner's code bound
  to ``name`` and answers with its result as plain data (:mod:`autograder.wire`);
- ``{"op": "ping"}`` answers ``pong``.

Every answer says how many processes are left in the sandbox besides the worker, so the
judge can start afresh after a learner's code leaves some behind.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import ctypes
import io
import json
import linecache
import os
import resource
import signal
import sys
import traceback
import warnings

from autograder.sandbox import HEADER, read_exactly, write_message

TEXT_LIMIT = 64 * 1024
FIGURE_LIMIT = 1024 * 1024
FIGURES_PER_CELL = 5


class Capped(io.TextIOBase):
    """A text stream that keeps its first ``limit`` characters and counts the rest."""

    def __init__(self, limit: int = TEXT_LIMIT):
        self.limit, self.parts, self.size, self.dropped = limit, [], 0, 0

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        text = str(text)
        room = self.limit - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def getvalue(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n... ({self.dropped} more characters of output were not kept)\n"
        return text


def _cap(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + "\n... (truncated)"


class _SockFilterProgram(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load_filter(sockets: bool = False) -> None:
    """Install the system call filter here, network refused too unless ``sockets`` (the
    setuid mode: no bubblewrap to install it, and no network namespace to keep the
    sandbox offline). No-new-privileges must be set first."""
    from autograder import seccomp

    code = seccomp.program(sockets=sockets)
    buffer = ctypes.create_string_buffer(code, len(code))
    program = _SockFilterProgram(len(code) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
    if libc.prctl(22, 2, ctypes.byref(program), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "the system call filter could not be installed")


def harden(config: dict) -> None:
    """Become unprivileged and set the limits; nothing after this can undo either."""
    if config.get("privileged") and os.getuid() == 0:
        uid = int(config["uid"])
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0 and config.get("mode") == "setuid":  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "no_new_privs could not be set")
    if config.get("mode") == "setuid":
        os.umask(0o077)
        load_filter()
    limits = config["limits"]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an over-long write fails, it does not kill
    for name, value in (("RLIMIT_AS", limits["memory_bytes"]), ("RLIMIT_NPROC", limits["processes"]),
                        ("RLIMIT_FSIZE", limits["file_bytes"]), ("RLIMIT_NOFILE", limits["open_files"]),
                        ("RLIMIT_CORE", 0)):
        resource.setrlimit(getattr(resource, name), (value, value))
    cpu = limits["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))


def processes_left(shared_pids: bool = False) -> int:
    """Processes in this sandbox besides bwrap's init and this worker; where the sandbox
    shares the machine's process table (the setuid mode), those of its own user."""
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return 0
    if not shared_pids:
        return max(0, len(pids) - 2)
    mine = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            mine += int(pid) != os.getpid() and os.stat(f"/proc/{pid}").st_uid == os.getuid()
    return mine


def reachable(paths: list[str]) -> list[str]:
    """Which of ``paths`` this process can open or list: none may be, before a learner's
    code runs in a sandbox that shares the machine's file system."""
    found = []
    for path in paths:
        try:
            if os.path.isdir(path):
                os.listdir(path)
            else:
                os.close(os.open(path, os.O_RDONLY))
        except OSError:
            continue
        found.append(path)
    return found


class Publisher:
    """IPython's display publisher, keeping what ``display()`` shows as outputs."""

    def __init__(self):
        self.outputs = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        self.outputs.append(display_data(data))

    def clear_output(self, wait=False):
        self.outputs.clear()


def display_data(data, output_type: str = "display_data") -> dict:
    kept = {}
    if isinstance(data.get("text/plain"), str):
        kept["text/plain"] = _cap(data["text/plain"], 16 * 1024)
    image = data.get("image/png")
    if isinstance(image, (str, bytes)) and len(image) <= FIGURE_LIMIT:
        kept["image/png"] = image if isinstance(image, str) else base64.b64encode(image).decode()
    return {"output_type": output_type, "data": kept or {"text/plain": ""}, "metadata": {}}


class Kernel:
    """Runs cells in one namespace, like a Jupyter kernel, and probes on what they define."""

    def __init__(self):
        from IPython.core.interactiveshell import InteractiveShell

        self.shell = InteractiveShell.instance()
        self.publisher = Publisher()
        self.shell.display_pub = self.publisher
        self.namespace = self.shell.user_ns
        self.count = 0

    def figures(self) -> list[dict]:
        if "matplotlib.pyplot" not in sys.modules:
            return []
        import matplotlib.pyplot as plt

        outputs = []
        for number in plt.get_fignums()[:FIGURES_PER_CELL]:
            buffer = io.BytesIO()
            with contextlib.suppress(Exception):
                plt.figure(number).savefig(buffer, format="png", dpi=72)
                outputs.append(display_data({"image/png": buffer.getvalue(),
                                             "text/plain": f"<Figure {number}>"}))
        plt.close("all")
        return outputs

    def run_cell(self, source: str) -> dict:
        self.count += 1
        filename = f"<cell {self.count}>"
        out, err = Capped(), Capped()
        self.publisher.outputs = []
        value, error = None, None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("default")
            try:
                code = self.shell.transform_cell(source)
                linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
                tree = ast.parse(code, filename)
                last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
                exec(compile(tree, filename, "exec"), self.namespace)
                if last is not None:
                    value = eval(compile(ast.Expression(last.value), filename, "eval"), self.namespace)
            except BaseException as exc:  # the learner's code may raise anything, SystemExit included
                error = exc
        outputs = []
        for name, stream in (("stdout", out), ("stderr", err)):
            text = stream.getvalue()
            if text:
                outputs.append({"output_type": "stream", "name": name, "text": text})
        outputs += self.publisher.outputs + self.figures()
        if value is not None and error is None:
            with contextlib.suppress(Exception):
                data, _ = self.shell.display_formatter.format(value)
                result = display_data(data, "execute_result")
                result["execution_count"] = self.count
                outputs.append(result)
        if error is not None:
            outputs.append(error_output(error))
        return {"op": "done", "outputs": outputs, "execution_count": self.count,
                "error": error is not None}

    def probe(self, message: dict) -> dict:
        from autograder import probe, wire
        from autograder.feedback import SubmissionError

        name = message.get("name")
        if not isinstance(name, str) or name not in self.namespace:
            error = SubmissionError(
                f"{name} is not defined: did the cell that defines it run without errors?")
            return {"op": "result", "ok": False, "error": probe.error_data(error)}
        sink = Capped(0)
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                function = probe.resolve(message["module"], message["function"])
                args, kwargs = wire.decode(message["args"]), wire.decode(message["kwargs"])
                result = function(self.namespace[name], *args, **kwargs)
                return {"op": "result", "ok": True, "result": wire.encode(result)}
            except (SystemExit, KeyboardInterrupt) as exc:
                error = SubmissionError(
                    f"{name} ended the process ({type(exc).__name__}) while it was being checked")
            except BaseException as exc:  # anything the learner's code raised, past call_submission
                error = exc
        return {"op": "result", "ok": False, "error": probe.error_data(error)}


def error_output(error: BaseException) -> dict:
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    # Drop the worker's own frames: the learner's cell comes first.
    start = next((i for i, line in enumerate(lines) if "<cell " in line), 1)
    shown = [lines[0]] + lines[start:] if start > 1 else lines
    return {"output_type": "error", "ename": type(error).__name__, "evalue": _cap(str(error), 4000),
            "traceback": [_cap("".join(shown), 16 * 1024)]}


def serve(requests: int, answers: int, config: dict) -> None:
    shared_pids = config.get("mode") == "setuid"
    # Checked before any learner's code runs, as the user that code runs as.
    private = reachable(config.get("private", []))
    kernel = Kernel()
    # Which copy of the grader this is, so the judge can refuse to grade with another.
    package = os.path.dirname(os.path.abspath(sys.modules["autograder"].__file__))
    os.dup2(os.open(os.devnull, os.O_RDWR), 2)
    write_message(answers, {"op": "ready", "pid": os.getpid(), "package": package, "reachable": private})
    while True:
        try:
            (size,) = HEADER.unpack(read_exactly(requests, HEADER.size))
            message = json.loads(read_exactly(requests, size))
        except EOFError:
            return
        op = message.get("op") if isinstance(message, dict) else None
        if op == "exec":
            answer = kernel.run_cell(str(message.get("code", "")))
        elif op == "probe":
            answer = kernel.probe(message)
        elif op == "ping":
            answer = {"op": "pong"}
        else:
            answer = {"op": "error", "message": f"unknown request {op!r}"}
        answer["processes"] = processes_left(shared_pids)
        answer["pid"] = os.getpid()
        answer["seq"] = message.get("seq") if isinstance(message, dict) else None
        write_message(answers, answer)


def main() -> None:
    config = json.loads(sys.argv[1])
    # The pipe moves off fds 0 and 1, and those (and 2, once the worker has started and
    # said so, or why not) lead nowhere: what the learner's code prints, even straight to
    # a file descriptor, reaches no one.
    requests, answers = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    harden(config)
    work = os.path.join(config.get("home", "/tmp"), "work")
    os.makedirs(work, exist_ok=True)
    os.chdir(work)
    sys.path.insert(0, work)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    serve(requests, answers, config)


if __name__ == "__main__":
    main()
