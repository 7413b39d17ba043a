"""The compose topology as processes: one network namespace per container, same commands.

Every service of ``docker-compose.yaml`` runs with the command, environment, dependencies
and healthcheck compose resolves for it; ``build:`` services get the Dockerfile's ``ENV``
with its paths mapped into this checkout. The two image services are Debian's own
programs: PostgreSQL set up the way its image does (``devstack.cluster.postgres``) and Redis with
the compose command as written. State, logs and the generated ``.env`` live under
``.local/cluster/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

import boto3
import psutil
from botocore.config import Config

from containers.shared import AIRFLOW_PORT, ENGINE_PORT, S3_PORT, Credentials, aws_env
from devstack import local_stack
from devstack.cluster import compose, postgres
from devstack.cluster.netns import Network

STATE = compose.ROOT / ".local" / "cluster"
#: Replicas per service (``docker compose up --scale``).
SCALE = {"engine-worker": 3, "airflow-worker": 2}
#: Unique to this cluster: namespaces ``msc-<host>``, links ``msc12…``, 10.112.12.0/24.
NAMESPACE_PREFIX, SUBNET = "msc", "10.112.12"
PORTS = {"s3": S3_PORT, "engine-api": ENGINE_PORT, "airflow-apiserver": AIRFLOW_PORT}
#: compose's ``restart: unless-stopped`` for a process: run it again when it exits (an
#: Airflow scheduler exits when PostgreSQL goes away), a bounded number of times.
RESTARTS = 50
RESTART = (
    f'n=0; while [ "$n" -lt {RESTARTS} ]; do "$@"; code=$?; n=$((n + 1)); '
    'echo "exited with $code; restarting" >&2; sleep 2; done'
)


def hosts_of(services: dict[str, Any]) -> dict[str, list[str]]:
    """Each service's hosts: its name, or ``name-1..N`` when scaled."""
    scaled = {name: SCALE.get(name, 1) for name in services}
    return {
        name: [name] if count == 1 else [f"{name}-{i}" for i in range(1, count + 1)]
        for name, count in scaled.items()
    }


def start_order(services: dict[str, Any]) -> list[str]:
    """Services after everything they depend on."""
    done: list[str] = []

    def visit(name: str) -> None:
        if name not in done:
            for dependency in services[name].get("depends_on") or {}:
                visit(dependency)
            done.append(name)

    for name in sorted(services):
        visit(name)
    return done


class ProcessCluster:
    def __init__(self, state: Path = STATE) -> None:
        self.state = state
        self.settings = compose.write_env_file(state / ".env")
        self.services: dict[str, Any] = compose.resolve(state / ".env")["services"]
        self.hosts = hosts_of(self.services)
        self.network = Network(
            f"{NAMESPACE_PREFIX}12",
            SUBNET,
            tuple(host for name in start_order(self.services) for host in self.hosts[name]),
        )
        self.record = state / "cluster.json"
        self.paths = self._paths()

    # --- what each host runs ------------------------------------------------------------

    def _paths(self) -> dict[str, Path]:
        """Image paths -> folders here: the code, Airflow's home, the named volumes."""
        mapping = {
            "/opt/medscribe": compose.ROOT,
            "/opt/airflow": self.state / "airflow",
            # The model cache: the one every local run already filled.
            "/opt/cache": Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"),
        }
        for service in self.services.values():
            for volume in service.get("volumes") or []:
                if volume["type"] == "volume":
                    mapping[volume["target"]] = self.state / "volumes" / volume["source"]
        return mapping

    def _mapped(self, value: str) -> str:
        for image_path in sorted(self.paths, key=len, reverse=True):
            if value == image_path or value.startswith(image_path + "/"):
                return str(self.paths[image_path]) + value[len(image_path) :]
        return value

    def env(self, service: str, host: str) -> dict[str, str]:
        spec = self.services[service]
        base = compose.image_env() if "build" in spec else {}
        declared = {**base, **(spec.get("environment") or {})}
        return {
            "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.state / "home"),
            "LANG": "C.UTF-8",
            "HOSTNAME": host,
            **{name: self._mapped(str(value)) for name, value in declared.items()},
        }

    def command(self, service: str) -> list[str]:
        return [compose.unescape(token) for token in self.services[service]["command"]]

    def supervised(self, service: str) -> list[str]:
        """The command under its restart policy."""
        command = self.command(service)
        if self.services[service].get("restart", "no") == "no":
            return command
        return ["sh", "-c", RESTART, "restart", *command]

    def healthcheck(self, service: str) -> list[str] | None:
        test = (self.services[service].get("healthcheck") or {}).get("test")
        if not test:
            return None
        if test[0] == "CMD-SHELL":
            return ["sh", "-c", compose.unescape(test[1])]
        return [compose.unescape(token) for token in test[1:]]

    def postgres_server(self) -> postgres.Server:
        data = self._mapped("/var/lib/postgresql/data")
        return postgres.Server(Path(data), self.state / "run" / "postgres")

    # --- running ------------------------------------------------------------------------

    def _recorded(self) -> dict[str, Any]:
        return json.loads(self.record.read_text()) if self.record.exists() else {}

    def _pids(self) -> dict[str, int]:
        return self._recorded().get("pids", {})

    def _save(self, pids: dict[str, int], code: str | None = None) -> None:
        code = code or self.code()
        record = {"hosts": list(self.network.hosts), "pids": pids, "code": code}
        self.record.write_text(json.dumps(record))

    def code(self) -> str | None:
        """The :func:`source_hash` of the code the cluster was started from."""
        return self._recorded().get("code")

    def running(self) -> dict[str, int]:
        alive = {}
        for host, pid in self._pids().items():
            with suppress(ProcessLookupError):
                os.kill(pid, 0)
                alive[host] = pid
        return alive

    def _launch(self, service: str, host: str) -> subprocess.Popen:
        if service == "postgres":
            return self._launch_postgres(host)
        log = (self.state / "logs" / f"{host}.log").open("ab")
        cwd = self.state / "volumes" / host if "build" not in self.services[service] else None
        if cwd:
            cwd.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            self.network.run_on(host, self.supervised(service)),
            env=self.env(service, host),
            cwd=cwd or compose.ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _launch_postgres(self, host: str) -> subprocess.Popen:
        """The postgres image's entrypoint: initdb and init scripts once, then the server."""
        env = self.env("postgres", host)
        server = self.postgres_server()
        server.prepare()
        fresh = not server.initialized()
        if fresh:
            server.initdb(env["POSTGRES_USER"], env["POSTGRES_PASSWORD"])
        log = (self.state / "logs" / f"{host}.log").open("ab")
        process = subprocess.Popen(
            self.network.run_on(host, server.command()),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        local_stack.wait_until(lambda: self.healthy("postgres", host), "postgres", 60, process)
        if fresh:
            server.psql(env["POSTGRES_USER"], "postgres", f'CREATE DATABASE "{env["POSTGRES_DB"]}"')
            scripts = [
                Path(volume["source"])
                for volume in self.services["postgres"].get("volumes") or []
                if volume["target"].startswith("/docker-entrypoint-initdb.d/")
            ]
            server.run_init_scripts(scripts, env)
        return process

    def healthy(self, service: str, host: str) -> bool:
        test = self.healthcheck(service)
        if test is None:
            return True
        env = self.env(service, host)
        if service == "postgres":
            env.update(self.postgres_server().env)
        try:
            result = subprocess.run(
                self.network.run_on(host, test),
                env=env,
                cwd=compose.ROOT,
                capture_output=True,
                timeout=60,
            )
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def wait_healthy(self, service: str, timeout: float = 300) -> None:
        pids = self._pids()
        for host in self.hosts[service]:
            deadline = time.monotonic() + timeout
            while not self.healthy(service, host):
                with suppress(ProcessLookupError):
                    os.kill(pids[host], 0)
                    if time.monotonic() < deadline:
                        time.sleep(1)
                        continue
                raise RuntimeError(f"{host} is not healthy; see {self.state / 'logs' / host}.log")

    def start(self, service: str, host: str) -> int:
        """Start (or start again) one host's process; returns its pid."""
        pids = self._pids()
        pids[host] = self._launch(service, host).pid
        self._save(pids)
        return pids[host]

    def stop(self, host: str) -> list[psutil.Process]:
        """Stop everything a host runs, as docker ends a container, whatever died first.

        Its process group (a main process killed with -9 leaves its children running),
        then whatever else still runs in its namespace. Returns what outlived SIGKILL.
        """
        pid = self._pids().get(host)
        if pid is not None:
            if host == "postgres":
                postgres.shut_down(pid)
            local_stack.stop(pid)
        return self._end_on(host)

    def _end_on(self, host: str) -> list[psutil.Process]:
        return local_stack.end(lambda: self.network.processes(host))

    def up(self) -> None:
        if self.running():
            stale = self.code() != source_hash()
            raise SystemExit(
                f"the cluster is running already{', from other code' if stale else ''}: "
                "make cluster-down first"
            )
        self._clear_leftovers()
        for folder in ("logs", "home", "airflow", *self.paths.values()):
            (self.state / folder).mkdir(parents=True, exist_ok=True)
        aliases = {self.hosts[name][0]: [name] for name in self.services if name in SCALE}
        self.network.create(aliases)
        self._save({}, source_hash())
        try:
            self._start_all()
        except BaseException:
            self.down()
            raise
        self.write_client_env()

    def _clear_leftovers(self) -> None:
        """End what an earlier cluster of these names left on its hosts, or name who holds them."""
        for host in self.network.hosts:
            if found := self.network.processes(host):
                print(f"{host}: ending what an earlier cluster left: {describe(found)}", flush=True)
                if left := self._end_on(host):
                    raise SystemExit(
                        f"{self.network.namespace(host)} is held by {describe(left)}, "
                        "which outlived SIGKILL"
                    )

    def _start_all(self) -> None:
        """Like ``docker compose up``: in dependency order, waiting as ``depends_on`` says."""
        for service in start_order(self.services):
            for dependency, how in (self.services[service].get("depends_on") or {}).items():
                if how["condition"] == "service_healthy":
                    self.wait_healthy(dependency)
            for host in self.hosts[service]:
                pid = self.start(service, host)
                print(f"started {host} ({self.network.address(host)}), pid {pid}", flush=True)
            if self.services[service].get("restart") == "no":
                self._wait_exit(service)
        for service in self.services:
            if self.services[service].get("restart") != "no":
                self.wait_healthy(service)

    def _wait_exit(self, service: str, timeout: float = 900) -> None:
        for host in self.hosts[service]:
            pid = self._pids()[host]
            deadline = time.monotonic() + timeout
            while (code := _exit_code(pid)) is None and time.monotonic() < deadline:
                time.sleep(1)
            if code != 0:
                raise RuntimeError(f"{host} failed ({code}); see its log in {self.state / 'logs'}")

    def down(self) -> dict[str, list[psutil.Process]]:
        """Stop every host, then remove the network; returns what outlived SIGKILL, by host."""
        with ThreadPoolExecutor(len(self.network.hosts)) as pool:
            left = dict(
                zip(self.network.hosts, pool.map(self.stop, self.network.hosts), strict=True)
            )
        self.network.destroy()
        self.record.unlink(missing_ok=True)
        return {host: processes for host, processes in left.items() if processes}

    # --- clients ------------------------------------------------------------------------

    def url(self, service: str) -> str:
        return f"http://{self.network.address(service)}:{PORTS[service]}"

    def client_env(self) -> dict[str, str]:
        """What a client on this machine needs: ``.local/stack.env``'s form plus Airflow's API."""
        creds = Credentials(
            self.settings["STACK_ACCESS_KEY_ID"], self.settings["STACK_SECRET_ACCESS_KEY"]
        )
        return {
            **aws_env(self.url("s3"), self.url("engine-api"), creds, self.settings["STACK_REGION"]),
            "AIRFLOW_API_URL": self.url("airflow-apiserver"),
            "AIRFLOW_USERNAME": "admin",
            "AIRFLOW_PASSWORD": self.settings["AIRFLOW_ADMIN_PASSWORD"],
        }

    def client(self, service: str, config: Config | None = None) -> Any:
        """A boto3 client for the cluster's S3 server (``s3``) or engine (``transcribe``),
        retrying as the DAG's hook does unless ``config`` says otherwise."""
        env = self.client_env()
        return boto3.client(
            service,
            endpoint_url=env[f"AWS_ENDPOINT_URL_{service.upper()}"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}).merge(
                config or Config()
            ),
        )

    def write_client_env(self) -> Path:
        path = self.state.parent / "cluster.env"
        path.touch(mode=0o600)
        path.write_text("".join(f"export {k}={v}\n" for k, v in self.client_env().items()))
        return path


def source_hash() -> str:
    """What the cluster runs: the checkout's files (tracked, or new and not ignored), tests
    aside, uncommitted changes included."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", ":!tests"],
        cwd=compose.ROOT, check=True, capture_output=True,
    ).stdout  # fmt: skip
    digest = hashlib.sha256()
    for name in sorted(set(listed.split(b"\0")) - {b""}):
        path = compose.ROOT / os.fsdecode(name)
        if path.is_file():  # not a deleted file still in the index
            digest.update(name + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def describe(processes: list[psutil.Process]) -> str:
    """``pid 12 (python -m medscribe worker)``, for each of ``processes``."""
    described = []
    for process in processes:
        with suppress(psutil.NoSuchProcess):
            described.append(f"pid {process.pid} ({' '.join(process.cmdline())[:80]})")
    return ", ".join(described)


def _exit_code(pid: int) -> int | None:
    """The exit code of our child ``pid``, or None while it runs."""
    done, status = os.waitpid(pid, os.WNOHANG)
    return os.waitstatus_to_exitcode(status) if done else None
