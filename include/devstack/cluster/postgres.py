"""A private PostgreSQL server from Debian's binaries: what the ``postgres`` image does at start.

``initdb`` with the image's superuser, password and database, then the init scripts the
compose file mounts into ``/docker-entrypoint-initdb.d``, then ``postgres`` itself. Used by
the process cluster and by the job store's tests. PostgreSQL refuses to run as root, so
as root the server runs as the ``postgres`` system user (Debian's package creates it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from devstack import local_stack

SERVICE_USER = "postgres"


def bindir() -> Path:
    """Where ``initdb`` and ``postgres`` live (Debian keeps them off PATH)."""
    found = shutil.which("initdb") or max(
        (str(path) for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")), default=None
    )
    if found is None:
        raise RuntimeError("PostgreSQL is missing: apt-get install postgresql")
    return Path(found).resolve().parent


def as_server_user(argv: Sequence[str]) -> list[str]:
    """``argv`` run as the postgres user when we are root, else as ourselves."""
    if os.geteuid() != 0:
        return list(argv)
    return ["setpriv", f"--reuid={SERVICE_USER}", f"--regid={SERVICE_USER}", "--init-groups", *argv]


def own(path: Path) -> None:
    """Hand a folder to the server's user (a no-op unless we are root).

    Its ancestors get search permission for others where they lack it (the local stack
    keeps ``.local`` private): the user can reach the folder, yet lists none of them.
    """
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVICE_USER)
        for item in (path, *path.rglob("*")):
            os.chown(item, user.pw_uid, user.pw_gid)
        for parent in path.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


@dataclass(frozen=True)
class Server:
    """One server's folders: ``data`` (the cluster) and ``sockets`` (its Unix socket)."""

    data: Path
    sockets: Path
    port: int = 5432

    @property
    def env(self) -> dict[str, str]:
        """libpq settings that reach this server over its socket (psql, pg_isready)."""
        return {"PGHOST": str(self.sockets), "PGPORT": str(self.port)}

    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def prepare(self) -> None:
        """The server's folders, its user's and within its reach: before every start, as
        anything may have taken back the search permission on a parent since (the local
        stack makes all of ``.local`` private)."""
        for folder in (self.data, self.sockets):
            folder.mkdir(parents=True, exist_ok=True)
            own(folder)

    def initdb(self, user: str, password: str) -> None:
        """A new cluster whose superuser ``user`` logs in over TCP with ``password``."""
        self.prepare()
        with tempfile.NamedTemporaryFile("w", dir=self.sockets, suffix=".pw") as pwfile:
            pwfile.write(password)
            pwfile.flush()
            own(Path(pwfile.name))
            subprocess.run(
                as_server_user(
                    [
                        str(bindir() / "initdb"), f"--pgdata={self.data}", f"--username={user}",
                        f"--pwfile={pwfile.name}", "--auth-local=trust",
                        "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-instructions",
                    ]
                ),
                check=True, stdout=subprocess.DEVNULL,  # its errors go to stderr
            )  # fmt: skip
        # Like the image: any host may connect, with a password.
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all all scram-sha-256\n")

    def command(self, listen: str = "*") -> list[str]:
        """The server in the foreground (it stops on SIGTERM; SIGKILL is a crash)."""
        return as_server_user(
            [
                str(bindir() / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-k", str(self.sockets), "-c", f"listen_addresses={listen}",
                "-c", "max_connections=300",
            ]
        )  # fmt: skip

    def psql(self, user: str, database: str, sql: str) -> None:
        subprocess.run(
            ["psql", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", database, "-c", sql],
            env={**os.environ, **self.env},
            check=True,
            capture_output=True,
        )

    def run_init_scripts(self, scripts: Sequence[Path], env: Mapping[str, str]) -> None:
        """The image's ``/docker-entrypoint-initdb.d`` step, with the server already up."""
        for script in sorted(scripts, key=lambda path: path.name):
            subprocess.run(["sh", str(script)], env={**os.environ, **env, **self.env}, check=True)


def shut_down(pid: int, timeout: float = 30) -> None:
    """Fast shutdown (SIGINT): clients are disconnected; SIGTERM would wait for them all."""
    try:
        process = psutil.Process(pid)
        process.send_signal(signal.SIGINT)
    except psutil.NoSuchProcess:
        return
    local_stack.wait_ended([process], timeout)
