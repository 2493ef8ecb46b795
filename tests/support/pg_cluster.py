"""A PostgreSQL cluster of the test's own (initdb + pg_ctl on a temporary directory and port).

Used to restart and SIGKILL a real server under a running bot. The binaries are looked up
under /usr/lib/postgresql/*/bin (Debian's layout) or on PATH; as root, the server runs as the
`postgres` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def find_bin(name: str) -> str | None:
    """The newest installed PostgreSQL's `name` binary, or None."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version)
    return found[-1] if found else shutil.which(name)


def _version(path: str) -> float:
    try:
        return float(Path(path).parts[-3])
    except ValueError:
        return 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LocalPostgres:
    """One cluster: `start`, `restart`, `kill` (SIGKILL of the postmaster), `stop`."""

    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    @classmethod
    def create(cls, root: Path) -> LocalPostgres:
        initdb = find_bin("initdb")
        if initdb is None:
            raise FileNotFoundError("initdb not found under /usr/lib/postgresql/*/bin or PATH")
        root.mkdir(parents=True, exist_ok=True)
        cluster = cls(root, _free_port())
        cluster._own(root)
        cluster._run(
            [
                initdb,
                "-D",
                str(cluster.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        )
        return cluster

    def start(self) -> None:
        self._pg_ctl(
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            str(self.root / "server.log"),
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
        )

    def restart(self) -> None:
        """A clean restart (`pg_ctl restart -m fast`): every session is cut."""
        self._pg_ctl(
            "restart",
            "-w",
            "-t",
            "60",
            "-m",
            "fast",
            "-l",
            str(self.root / "server.log"),
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
        )

    def kill(self) -> None:
        """SIGKILL the postmaster; its backends exit when they see it gone. The next start
        runs crash recovery."""
        pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)

    def start_after_crash(self) -> None:
        """Start again; retried while the dead server's backends still hold shared memory."""
        for attempt in range(20):
            try:
                self.start()
                return
            except subprocess.CalledProcessError:
                if attempt == 19:
                    raise
                time.sleep(0.5)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("stop", "-w", "-m", "immediate", check=False)

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        pg_ctl = find_bin("pg_ctl")
        assert pg_ctl is not None
        self._run([pg_ctl, "-D", str(self.data), *args], check=check)

    def _run(self, cmd: list[str], *, check: bool = True) -> None:
        user = "postgres" if os.geteuid() == 0 else None
        subprocess.run(cmd, check=check, user=user, capture_output=True, timeout=120)

    @staticmethod
    def _own(path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
