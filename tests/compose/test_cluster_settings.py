"""`make cluster` runs what docker-compose.yaml says, so the two cannot drift."""

from __future__ import annotations

import pytest
from test_compose import SERVICES, URL, strings

from containers import shared
from devstack import local_stack
from devstack.cluster import compose
from devstack.cluster.stack import SCALE, ProcessCluster, start_order


def test_the_cluster_runs_every_compose_service_with_its_own_command(tmp_path):
    cluster = ProcessCluster(state=tmp_path)
    assert set(cluster.services) == set(SERVICES)
    for name, service in SERVICES.items():
        if "command" in service:
            # As written, but for compose's $$ escape, which the shell must see as $.
            assert cluster.command(name) == [compose.unescape(t) for t in service["command"]]
    # Scaled as the shape asks; every other service is one host.
    assert {name: len(hosts) for name, hosts in cluster.hosts.items() if len(hosts) > 1} == SCALE


def test_every_host_a_url_names_resolves_on_the_cluster_network(tmp_path):
    cluster = ProcessCluster(state=tmp_path)
    hosts = {match["host"] for text in strings(SERVICES) for match in URL.finditer(text)}
    named = set(cluster.network.hosts) | set(SCALE)
    assert hosts - {"127.0.0.1", "localhost", "0.0.0.0"} <= named


def test_settings_come_from_env_example_with_fresh_secrets(tmp_path):
    cluster = ProcessCluster(state=tmp_path)
    example = compose.read_env_file(compose.ENV_EXAMPLE)
    assert set(cluster.settings) == set(example)
    for name, value in example.items():
        if compose.PLACEHOLDER.search(value):
            assert not compose.PLACEHOLDER.search(cluster.settings[name]), name
    assert cluster.settings.items() >= compose.CLUSTER_SETTINGS.items()
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0
    # The secrets reach the services through compose's own interpolation.
    env = cluster.env("engine-worker", "engine-worker-1")
    assert cluster.settings["ENGINE_DB_PASSWORD"] in env["MEDSCRIBE_DATABASE_URL"]
    assert env["MEDSCRIBE_LEASE_SECONDS"] == compose.CLUSTER_SETTINGS["ENGINE_LEASE_SECONDS"]


def test_image_paths_map_into_the_checkout(tmp_path):
    cluster = ProcessCluster(state=tmp_path)
    env = cluster.env("airflow-scheduler", "airflow-scheduler")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(compose.ROOT / "dags")
    assert env["PYTHONPATH"] == str(compose.ROOT / "include")
    assert cluster.env("s3", "s3")["S3_DATA_DIR"] == str(tmp_path / "volumes" / "s3-data")
    assert start_order(cluster.services).index("postgres") < start_order(cluster.services).index(
        "airflow-init"
    )


def test_tasks_wait_for_a_busy_api_server_as_long_everywhere(tmp_path):
    """`make up`, compose and the cluster give a task's calls to the API server one timeout."""
    setting = "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT"
    stack = local_stack.loopback_env(0, 0, shared.Credentials("AKID", "secret"))
    local = local_stack.airflow_env(stack, tmp_path / "local", 0)[setting]
    cluster = ProcessCluster(state=tmp_path / "cluster")
    for service in ("airflow-worker", "airflow-scheduler", "airflow-triggerer"):
        assert cluster.env(service, service)[setting] == local, service


def test_a_pool_too_small_for_a_start_is_refused_when_it_is_set():
    # A start holds two slots: a one-slot pool would leave every file waiting, silently.
    assert shared.pool_command("p", "2")[:4] == ["pools", "set", "p", "2"]
    with pytest.raises(ValueError, match="at least 2 slots"):
        shared.pool_command("p", "1")
