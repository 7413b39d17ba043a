"""The local stack keeps PHI to its owner and its ports to this machine, and takes many buckets."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from devstack import local_stack


def listening(port: int) -> list[tuple[str, int, str]]:
    """(address, port, program) of every socket listening in the process group serving ``port``."""
    sockets = psutil.net_connections("inet")
    (leader,) = {s.pid for s in sockets if s.status == psutil.CONN_LISTEN and s.laddr.port == port}
    group = {p.pid: p.name() for p in psutil.process_iter() if _group(p.pid) == _group(leader)}
    return [
        (s.laddr.ip, s.laddr.port, group[s.pid])
        for s in sockets
        if s.status == psutil.CONN_LISTEN and s.pid in group
    ]


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def exposed(state: Path) -> list[str]:
    """Files and folders under ``state`` that anyone but their owner may read.

    SeaweedFS writes its volume-info files (``*.vif``: version, replication, no data) 0644
    whatever the umask; they sit in a 0700 folder.
    """
    return [
        f"{path} {stat.filemode(path.stat().st_mode)}"
        for path in [state, *state.rglob("*")]
        if path.exists() and path.stat().st_mode & 0o077 and path.suffix != ".vif"
    ]


def test_a_dozen_buckets_take_writes(stack):
    s3 = stack.client("s3")
    for index in range(12):
        bucket = f"department-{index}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="note.txt", Body=b"dictation")
        assert s3.get_object(Bucket=bucket, Key="note.txt")["Body"].read() == b"dictation"


def test_s3_and_engine_listen_on_loopback_only_and_keep_files_private(stack):
    for port in (stack.s3_port, stack.engine_port):
        sockets = listening(port)
        assert sockets and all(address == "127.0.0.1" for address, _, _ in sockets), sockets
    # By now the session's jobs have written audio, transcripts, jobs and logs.
    assert (stack.state / "engine" / "jobs.db").exists()
    assert exposed(stack.state) == []


@pytest.mark.skipif(
    not os.environ.get("MEDSCRIBE_TEST_AIRFLOW"),
    reason="starts Airflow's servers (a minute on a quiet machine, many on a busy one); "
    "CI sets MEDSCRIBE_TEST_AIRFLOW=1",
)
def test_airflow_listens_on_loopback_only_and_keeps_its_password_private(
    stack, tmp_path, monkeypatch
):
    # Airflow as `make up` runs it, with its DAGs paused: nothing but the servers is wanted.
    monkeypatch.delenv("AIRFLOW__CORE__UNIT_TEST_MODE")
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True")
    port = local_stack.free_port()
    airflow = local_stack.start_airflow(tmp_path, stack.env, port=port)
    try:
        sockets = listening(port)
        assert all(address == "127.0.0.1" for address, _, _ in sockets), sockets
        passwords = tmp_path / "airflow" / "simple_auth_manager_passwords.json.generated"
        assert json.loads(passwords.read_text())
        assert exposed(tmp_path) == []
    finally:
        local_stack.stop(airflow.pid)


def test_stop_ends_the_group_of_a_leader_killed_with_9():
    """A leader killed with -9 leaves its children running in its group; they end with it."""
    leader = subprocess.Popen(["sh", "-c", "sleep 600 & sleep 600 & wait"], start_new_session=True)
    while len(children := psutil.Process(leader.pid).children()) < 2:
        time.sleep(0.1)
    leader.kill()
    leader.wait()
    local_stack.stop(leader.pid)
    _, running = psutil.wait_procs(children, timeout=30)
    assert running == []
