"""Throwaway PostgreSQL clusters and Redis servers on spare ports, for outage tests.

:func:`postgres_cluster` runs ``initdb`` and ``pg_ctl`` (as the ``postgres`` OS user when
the tests run as root, which ``initdb`` refuses) in a temporary directory; the cluster can
be stopped, started, paused (SIGSTOP to the postmaster and every backend) and resumed.
:func:`redis_server` does the same for ``redis-server``. Both always clean up: a paused
server is resumed before it is stopped, and the directory is removed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN_DIRS = ("/usr/local/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin",
               "/usr/lib/postgresql/17/bin")


def pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in PG_BIN_DIRS:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    return None


def spare_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (read from /proc: no psutil needed)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the ppid follows the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _signal_tree(pid: int, sig: signal.Signals) -> None:
    for child in _children(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, sig)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


@dataclass
class PostgresCluster:
    directory: Path
    port: int
    run_as: list[str]
    paused_pids: list[int] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        pg_ctl = pg_binary("pg_ctl")
        assert pg_ctl is not None
        subprocess.run([*self.run_as, pg_ctl, "-D", str(self.data), *args], check=True, capture_output=True,
                       timeout=60)

    def start(self) -> None:
        # fsync off: a stop, even an immediate one, leaves the OS's cache, so no commit is lost;
        # synchronous_commit stays on, or an immediate stop would lose the last commits acknowledged.
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off "
                   "-c full_page_writes=off -c max_connections=200")
        self._pg_ctl("start", "-w", "-t", "30", "-l", str(self.directory / "postgres.log"), "-o", options)

    def stop(self, mode: str = "immediate") -> None:
        self.resume()
        self._pg_ctl("stop", "-w", "-t", "30", "-m", mode)

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def pause(self) -> None:
        """SIGSTOP the postmaster and every backend: the server hangs, its sockets stay open."""
        pid = self.postmaster_pid()
        self.paused_pids = [pid, *_children(pid)]
        _signal_tree(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self.paused_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.paused_pids = []

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A fresh, started cluster; stopped and removed afterwards whatever happens."""
    initdb = pg_binary("initdb")
    assert initdb is not None, "initdb not found"
    directory = Path(tempfile.mkdtemp(prefix="coalition-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: the cluster belongs to the postgres OS user.
        user = pwd.getpwnam("postgres")
        os.chown(directory, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    cluster = PostgresCluster(directory, spare_port(), run_as)
    try:
        subprocess.run([*run_as, initdb, "-D", str(cluster.data), "-A", "trust", "-U", "postgres", "--no-sync",
                        "-E", "UTF8"], check=True, capture_output=True, timeout=120)
        cluster.start()
        yield cluster
    finally:
        cluster.resume()
        if cluster.running():
            with contextlib.suppress(subprocess.SubprocessError):
                cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        redis = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [redis, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.resume()
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.paused and self.process is not None:
            self.process.send_signal(signal.SIGCONT)
        self.paused = False


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(spare_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
