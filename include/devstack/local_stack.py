"""The embedded local stack: a SeaweedFS S3 server and the engine, as local processes.

``python -m devstack.local_stack up|down|status`` (``include/`` on ``PYTHONPATH``). All state lives under ``.local/``:
data, logs, pids, the generated key pair, and ``stack.env`` with the ``export`` lines
that point any AWS client (boto3, the AWS CLI, Airflow) at the stack.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

import psutil

from containers.shared import (
    AIRFLOW_PORT,
    ENGINE_PORT,
    S3_PORT,
    Credentials,
    airflow_connection,
    aws_env,
    http_ok,
    pool_command,
    weed_server,
    write_s3_identities,
)

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".local"
EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Two single-thread workers rather than one with two threads: decoding does not use two
#: threads fully (measured on 2 cores).
WORKERS = 2
#: The Airflow pool that bounds Transcribe Medical jobs in flight, and its size: the one
#: setting to change (on AWS, keep it below the account's concurrent-job quota).
POOL = "transcribe_medical"
POOL_SLOTS_SETTING = "MEDICAL_TRANSCRIBE_POOL_SLOTS"
POOL_SLOTS = 4


def free_port() -> int:
    """A port nothing listens on, below the kernel's ephemeral range.

    A port from that range can be taken by any outgoing connection (SeaweedFS's own
    among them) between our choosing it and the server binding it; one CI run lost
    its S3 server so.
    """
    first_ephemeral = int(EPHEMERAL_PORTS.read_text().split()[0])
    while True:
        port = random.randrange(10_000, first_ephemeral)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def wait_until(
    ready: Callable[[], bool], what: str, timeout: float, process: subprocess.Popen
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}; see its log")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f}s")


#: Audio, transcripts, jobs, logs and keys are PHI or secrets: the stack's processes create
#: files for their owner only.
PRIVATE_UMASK = 0o077


def private_log(path: Path) -> BinaryIO:
    """Append to a log readable by its owner only (logs name patients' files)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(descriptor, 0o600)
    return os.fdopen(descriptor, "ab")


def make_private(state: Path) -> None:
    """Owner-only modes under ``state``, for what an earlier stack left readable."""
    for path in [state, *state.rglob("*")]:
        with contextlib.suppress(FileNotFoundError):  # a running server's files come and go
            if not path.is_symlink():
                path.chmod(0o700 if path.is_dir() else path.stat().st_mode & 0o700)


def loopback(port: int) -> str:
    """The developer's stack listens on 127.0.0.1 only."""
    return f"http://127.0.0.1:{port}"


def loopback_env(s3_port: int, engine_port: int, creds: Credentials) -> dict[str, str]:
    """The AWS environment of a stack on loopback."""
    return aws_env(loopback(s3_port), loopback(engine_port), creds)


def start_s3(state: Path, port: int, creds: Credentials) -> subprocess.Popen:
    """SeaweedFS (master, volume, filer, S3) with every port chosen, so none collides."""
    data = state / "s3"
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = state / "s3-identities.json"
    write_s3_identities(config, creds)
    ports = [
        f"-{server}.port{kind}={free_port()}"
        for server in ("master", "volume", "filer")
        for kind in ("", ".grpc")
    ]
    args = weed_server(
        data, port, config, bind="127.0.0.1",
        options=[*ports, f"-s3.port.grpc={free_port()}",
                 "-master.volumeSizeLimitMB=256", "-volume.max=64"],
    )  # fmt: skip
    # Each bucket is a collection that grows 7 volumes at once by default: 64 volumes ran
    # out after about nine buckets. One at a time keeps buckets cheap.
    env = {**os.environ, "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}
    process = subprocess.Popen(
        args, env=env, stdout=private_log(state / "s3.log"), stderr=subprocess.STDOUT,
        start_new_session=True, umask=PRIVATE_UMASK,
    )  # fmt: skip
    wait_until(lambda: http_ok(f"{loopback(port)}/healthz"), "S3 server", 60, process)
    return process


def start_engine(
    state: Path, port: int, env: Mapping[str, str], workers: int, extra_env: Mapping[str, str] = {}
) -> subprocess.Popen:
    engine_env = {
        **os.environ,
        **env,
        "PYTHONPATH": str(ROOT / "include"),
        "MEDSCRIBE_DATABASE_URL": f"sqlite:///{state / 'engine' / 'jobs.db'}",
        **extra_env,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medscribe",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=engine_env,
        stdout=private_log(state / "engine.log"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        umask=PRIVATE_UMASK,
    )
    wait_until(lambda: http_ok(f"{loopback(port)}/health"), "engine", 60, process)
    return process


def airflow_env(
    env: Mapping[str, str], state: Path = STATE, port: int = AIRFLOW_PORT
) -> dict[str, str]:
    """Airflow with SQLite under ``state``, this repo's dags and plugins, the stack as aws_default."""
    home = state / "airflow"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return {
        **env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{loopback(port)}/execution/",
        # The API server's one worker also serves the UI: on a busy machine a task's first call
        # (to start) can take tens of seconds, and at the default 5 s the task dies unstarted.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "120",
        # The only scheduler: on a busy machine its heartbeat can lag past the default 30 s, and
        # it then marks itself dead and resets the tasks it runs as orphans, killing them mid-run.
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "300",
        "AIRFLOW_CONN_AWS_DEFAULT": airflow_connection(env),
        "MEDICAL_TRANSCRIBE_POLL_SECONDS": "5",
    }


#: ``airflow standalone``'s components, run directly: standalone serves task logs on every
#: interface (8793, 8794); here the UI and API listen on loopback and logs are read from disk.
AIRFLOW_COMPONENTS = (
    ("api-server",),
    ("scheduler", "--skip-serve-logs"),
    ("dag-processor",),
    ("triggerer", "--skip-serve-logs"),
)


def start_airflow(
    state: Path,
    env: Mapping[str, str],
    port: int = AIRFLOW_PORT,
    extra_env: Mapping[str, str] = {},
    timeout: float = 300,
) -> subprocess.Popen:
    """Airflow's UI, scheduler, DAG processor and triggerer, one process group, loopback only,
    with the aws_default connection and the pool, created so that deferred (waiting) jobs
    hold their slot."""
    full_env = {**os.environ, **airflow_env(env, state, port), **extra_env}
    slots = full_env.get(POOL_SLOTS_SETTING, str(POOL_SLOTS))

    def airflow(*args: str, check: bool = True) -> None:
        subprocess.run(
            ["airflow", *args], env=full_env, check=check, capture_output=True,
            umask=PRIVATE_UMASK,
        )  # fmt: skip

    airflow("db", "migrate")
    airflow("connections", "delete", "aws_default", check=False)
    airflow("connections", "add", "aws_default", "--conn-json", airflow_connection(env))
    airflow(*pool_command(POOL, slots))
    log = private_log(state / "airflow.log")
    leader = None
    for component in AIRFLOW_COMPONENTS:
        process = subprocess.Popen(
            ["airflow", *component], env=full_env, stdout=log, stderr=subprocess.STDOUT,
            umask=PRIVATE_UMASK, process_group=leader.pid if leader else 0,
        )  # fmt: skip
        leader = leader or process
    assert leader is not None
    url = f"{loopback(port)}/api/v2/version"
    try:
        wait_until(lambda: http_ok(url), "Airflow", timeout, leader)
    except RuntimeError:
        stop(leader.pid)  # its four services would otherwise outlive the caller
        raise
    return leader


def group(process_group: int) -> list[psutil.Process]:
    """The processes of a process group, its leader's descendants that left it included."""
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
            if os.getpgid(process.pid) == process_group:
                members.append(process)
    for leader in [process for process in members if process.pid == process_group]:
        with contextlib.suppress(psutil.NoSuchProcess):
            members.extend(leader.children(recursive=True))
    return list(set(members))


def end(members: Callable[[], list[psutil.Process]], timeout: float = 8) -> list[psutil.Process]:
    """SIGTERM ``members()``, then SIGKILL those left.

    Asked again before each signal, so a child forked meanwhile is not missed. Returns the
    processes that outlived SIGKILL too (stuck in the kernel).
    """
    left: list[psutil.Process] = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = members()
        for process in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(sig)
        left = wait_ended(left, timeout)
        if not left:
            break
    return left


def wait_ended(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait for ``processes`` to exit; returns those still running after ``timeout``.

    Our own children are reaped; another parent's zombie has ended all the same.
    """
    deadline = time.monotonic() + timeout
    while True:
        running = []
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                if process.status() != psutil.STATUS_ZOMBIE:
                    running.append(process)
                elif process.ppid() == os.getpid():
                    with contextlib.suppress(ChildProcessError):  # reaped meanwhile
                        os.waitpid(process.pid, os.WNOHANG)
        if not running or time.monotonic() > deadline:
            return running
        processes = running
        time.sleep(0.1)


def stop(process_id: int, timeout: float = 8) -> None:
    """End the process group ``process_id`` leads, whether or not its leader still runs.

    A leader killed with -9 leaves its children running, in its group.
    """
    end(lambda: group(process_id), timeout)


class LocalStack:
    """The developer stack under ``.local/``; ``up`` is idempotent, ``down`` stops only it."""

    def __init__(self, state: Path = STATE, workers: int = WORKERS) -> None:
        self.state = state
        self.workers = workers
        self.pids = state / "pids.json"
        self.env_file = state / "stack.env"

    def running(self) -> dict[str, int]:
        if not self.pids.exists():
            return {}
        alive = {}
        for name, pid in json.loads(self.pids.read_text()).items():
            try:
                os.kill(pid, 0)
                alive[name] = pid
            except ProcessLookupError:
                pass
        return alive

    def up(self, with_airflow: bool = False) -> dict[str, str]:
        self.state.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_private(self.state)
        creds = Credentials.load_or_create(self.state / "credentials.json")
        env = loopback_env(S3_PORT, ENGINE_PORT, creds)
        running = self.running()
        if not running.get("s3"):
            running["s3"] = start_s3(self.state, S3_PORT, creds).pid
        if not running.get("engine"):
            running["engine"] = start_engine(self.state, ENGINE_PORT, env, self.workers).pid
        if with_airflow and not running.get("airflow"):
            running["airflow"] = start_airflow(self.state, env).pid
        self.pids.write_text(json.dumps(running))
        lines = [f"export {key}={value}" for key, value in env.items()]
        lines.append(f"export AIRFLOW_CONN_AWS_DEFAULT='{airflow_connection(env)}'")
        self.env_file.write_text("\n".join(lines) + "\n")
        self.env_file.chmod(0o600)
        return env

    def down(self) -> None:
        for pid in self.running().values():
            stop(pid)
        self.pids.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--airflow", action="store_true", help="also run the Airflow UI")
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("MEDSCRIBE_WORKERS", WORKERS))
    )
    args = parser.parse_args()
    stack = LocalStack(workers=args.workers)
    if args.command == "up":
        env = stack.up(with_airflow=args.airflow)
        print(f"S3 at {env['AWS_ENDPOINT_URL_S3']}, engine at {env['AWS_ENDPOINT_URL_TRANSCRIBE']}")
        passwords = stack.state / "airflow" / "simple_auth_manager_passwords.json.generated"
        if args.airflow and passwords.exists():
            user, password = next(iter(json.loads(passwords.read_text()).items()))
            print(f"Airflow UI at {loopback(AIRFLOW_PORT)}, user {user}, password {password}")
        print(f"clients: . {stack.env_file.relative_to(ROOT)}")
    elif args.command == "down":
        stack.down()
        print("local stack stopped")
    else:
        print(json.dumps(stack.running()) if stack.running() else "local stack is not running")


if __name__ == "__main__":
    main()
