"""``python -m devstack.cluster up|down|status``: the compose topology as processes (needs root)."""

from __future__ import annotations

import argparse

from devstack.cluster.stack import ProcessCluster, describe, source_hash


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args()
    cluster = ProcessCluster()
    if args.command == "up":
        cluster.up()
        env = cluster.client_env()
        print(
            f"Airflow UI at {env['AIRFLOW_API_URL']}, user {env['AIRFLOW_USERNAME']}, "
            f"password {env['AIRFLOW_PASSWORD']}"
        )
        print(f"S3 at {env['AWS_ENDPOINT_URL_S3']}, engine at {env['AWS_ENDPOINT_URL_TRANSCRIBE']}")
        print(f"clients: . {cluster.write_client_env().relative_to(cluster.state.parents[1])}")
    elif args.command == "down":
        for host, left in cluster.down().items():
            print(f"{host}: {describe(left)} outlived SIGKILL (its network is gone)")
        print("cluster stopped")
    else:
        running = cluster.running()
        if running and cluster.code() != source_hash():
            print("running other code than this checkout's: make cluster-down && make cluster")
        for host in cluster.network.hosts:
            state = f"pid {running[host]}" if host in running else "stopped"
            print(f"{host:24} {cluster.network.address(host):14} {state}")


if __name__ == "__main__":
    main()
