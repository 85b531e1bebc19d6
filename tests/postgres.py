"""A throwaway PostgreSQL server on 127.0.0.1, in a temporary data folder, for the tests and
the benchmark that keep a gradebook in PostgreSQL.

Debian's ``postgresql`` package (installed by ``python3 tasks.py setup`` where it can be)
provides the server. PostgreSQL refuses to run as root, so started by root it runs as the
unprivileged user ``nobody``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def server_programs() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``, or None if PostgreSQL is not installed."""
    # Debian keeps the server's programs out of PATH, one folder per major version.
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if versions:
        return Path(versions[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def unavailable() -> str | None:
    """Why no server can be started here, or None if one can."""
    if server_programs() is None:
        return ("PostgreSQL is not installed (Debian: `apt-get install postgresql`; "
                "`python3 tasks.py setup` does it when run as root)")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root without runuser, and PostgreSQL refuses to run as root"
    return None


def _free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "nobody", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def server():
    """Start a server; yield its base URL (``postgresql://postgres@127.0.0.1:PORT``); stop
    it and delete its data afterwards."""
    why = unavailable()
    if why:
        raise RuntimeError(why)
    programs = server_programs()
    # Outside pytest's temporary folders, which the unprivileged server user cannot enter.
    data = Path(tempfile.mkdtemp(prefix="course-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(data, "nobody", "nogroup")
    port = _free_port()
    process = None
    try:
        subprocess.run(_as_server_user([str(programs / "initdb"), "-D", str(data / "db"), "-U", "postgres",
                                        "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, cwd=data)
        with open(os.devnull, "w") as quiet:
            process = subprocess.Popen(
                _as_server_user([str(programs / "postgres"), "-D", str(data / "db"), "-h", "127.0.0.1",
                                 "-p", str(port), "-k", str(data), "-c", "max_connections=200"]),
                stdout=quiet, stderr=subprocess.STDOUT, cwd=data)
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start (exit status {process.poll()})")
            time.sleep(0.2)
        # Accepting connections a moment before it accepts queries.
        ready = programs / "pg_isready"
        while subprocess.run([str(ready), "-h", "127.0.0.1", "-p", str(port), "-q"]).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not become ready")
            time.sleep(0.2)
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(data, ignore_errors=True)


def create_database(base_url: str, name: str) -> str:
    """Create database ``name`` on the server at ``base_url``; return its URL."""
    programs = server_programs()
    host, port = base_url.rsplit("@", 1)[1].split(":")
    subprocess.run([str(programs / "createdb"), "-h", host, "-p", port, "-U", "postgres", name],
                   check=True, capture_output=True)
    return f"{base_url}/{name}"
