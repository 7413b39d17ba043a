"""A night through the running cluster (``make cluster``), measured from the outside.

``python include/bench/cluster_night.py --files 2000 --engine-workers 1 3`` synthesizes
that many short dictations once (cached under ``.local/bench-cluster/``), then for each
engine worker count: stops the extra engine workers, uploads the night under a fresh
prefix, triggers the DAG through the REST API and waits for it and its follow-up runs
(a run takes at most 1,024 files). Reported per night: wall time,
files per minute, Airflow overhead (wall time minus the engine's recognition time, as a
share of the wall time), task latency percentiles, the peak memory of the scheduler, the
Celery workers (with their task processes) and the flatten task, and the CPU seconds each
host used, per file: on a shared machine, the figure that sizes a night; also the most jobs
in flight at once beside the pool's slots, and the machine's load meanwhile. Each night is
appended to ``include/bench/results/cluster_nights.jsonl``.

``--restart-airflow`` starts Airflow's services again before each night, so they run the
DAG and plugins on disk now: two versions of them can be measured side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

from bench.in_flight import max_in_flight
from devstack.cluster.airflow_api import AirflowAPI
from devstack.cluster.stack import STATE, ProcessCluster
from medscribe.store import JobStore, jobs

DAG_ID = "nightly_medical_transcription"
CACHE = STATE.parent / "bench-cluster"
RESULTS = Path(__file__).parent / "results" / "cluster_nights.jsonl"
TASK_TITLE = re.compile(r"airflow worker -- (\S+)")
PHRASES = [
    "Blood pressure is stable on lisinopril.",
    "Start amoxicillin five hundred milligrams.",
    "No chest pain or shortness of breath.",
    "Follow up in two weeks.",
    "Continue metformin with meals.",
]


def short_dictations(count: int) -> list[Path]:
    """A few seconds each, synthesized once with espeak-ng (voices and speeds varied)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    paths = [CACHE / f"short-{index:05d}.wav" for index in range(count)]

    def make(index: int) -> None:
        if not paths[index].exists():
            text = f"Patient {index}. {PHRASES[index % len(PHRASES)]}"
            speed = str(140 + 10 * (index % 5))
            subprocess.run(
                ["espeak-ng", "-s", speed, "-w", str(paths[index]), text],
                check=True,
                capture_output=True,
            )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(make, range(count)))
    return paths


def cpu_seconds(tree: list[psutil.Process]) -> float:
    """CPU time of a process tree, with its finished children (each task is a process)."""
    return sum(sum(p.cpu_times()[:4]) for p in tree)


class Usage:
    """Per watched host's process tree: peak resident memory (MB), sampled every second,
    and the CPU seconds it used while watched; and the machine's 1-minute load average."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids, self.peak = pids, dict.fromkeys(pids, 0.0)
        self.task_peak: dict[str, float] = {}  # by task instance id
        self.load: list[float] = []
        self.cpu_start = {host: cpu_seconds(self._tree(pid)) for host, pid in pids.items()}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    @staticmethod
    def _tree(pid: int) -> list[psutil.Process]:
        return [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]

    def _sample(self) -> None:
        while not self.stop.wait(1.0):
            self.load.append(os.getloadavg()[0])
            for host, pid in self.pids.items():
                try:
                    tree = self._tree(pid)
                    sizes = [(p.memory_info().rss / 2**20, " ".join(p.cmdline())) for p in tree]
                except psutil.Error:
                    continue
                self.peak[host] = max(self.peak[host], sum(mb for mb, _ in sizes))
                # A task's process is titled "airflow worker -- <task instance id>".
                for mb, title in sizes:
                    if found := TASK_TITLE.search(title):
                        ti = found.group(1)
                        self.task_peak[ti] = max(self.task_peak.get(ti, 0.0), mb)

    def close(self) -> tuple[dict[str, float], dict[str, float]]:
        """Peak MB and CPU seconds per host."""
        self.stop.set()
        self.thread.join()
        cpu = {
            host: round(cpu_seconds(self._tree(pid)) - self.cpu_start[host], 1)
            for host, pid in self.pids.items()
        }
        return {host: round(mb) for host, mb in self.peak.items()}, cpu


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": round(pick(0.5), 1), "p90": round(pick(0.9), 1), "max": round(ordered[-1], 1)}


def seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def pool_path(cluster: ProcessCluster) -> str:
    return f"/api/v2/pools/{cluster.settings['MEDICAL_TRANSCRIBE_POOL']}"


def restart_airflow(cluster: ProcessCluster) -> None:
    """Start Airflow's long-running services again, as a deployment of new DAG code would."""
    services = [
        name
        for name in cluster.services
        if name.startswith("airflow-") and cluster.services[name].get("restart", "no") != "no"
    ]
    for service in services:
        for host in cluster.hosts[service]:
            cluster.stop(host)
            cluster.start(service, host)
    for service in services:
        cluster.wait_healthy(service)


def night(cluster: ProcessCluster, files: list[Path], engine_workers: int) -> dict[str, Any]:
    for index, host in enumerate(cluster.hosts["engine-worker"]):
        running = host in cluster.running()
        if index < engine_workers and not running:
            cluster.start("engine-worker", host)
        elif index >= engine_workers and running:
            cluster.stop(host)
    env = cluster.client_env()
    s3 = cluster.client("s3")
    prefix = f"bench-{len(files)}-{engine_workers}w-{int(time.time())}"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: s3.upload_file(str(p), "dictations", f"{prefix}/{p.name}"), files))
    api = AirflowAPI(env)
    watched = {h: p for h, p in cluster.running().items() if h.startswith(("airflow-", "engine-"))}
    usage = Usage(watched)
    started = time.monotonic()
    run_id = api.trigger(
        DAG_ID,
        {"input_prefix": f"{prefix}/", "table_prefix": f"tables/{prefix}", "max_files": 1024},
    )
    runs = api.wait_night(DAG_ID, run_id, timeout=6 * 3600)
    wall = time.monotonic() - started
    peaks, cpu = usage.close()
    password = cluster.settings["ENGINE_DB_PASSWORD"]
    address = cluster.network.address("postgres")
    store = JobStore(f"postgresql+psycopg2://engine:{password}@{address}:5432/engine")
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(jobs.c.name, jobs.c.status, jobs.c.started_at, jobs.c.completed_at).where(
                jobs.c.request.contains(f"/{prefix}/")
            )
        ).all()
    recognition = sum(row.completed_at - row.started_at for row in rows if row.completed_at)
    engine_wall = recognition / engine_workers
    transcribe = cluster.client("transcribe")
    described = [
        transcribe.get_medical_transcription_job(MedicalTranscriptionJobName=row.name)
        for row in rows
    ]
    instances = [ti for run in runs for ti in api.task_instances(DAG_ID, run["dag_run_id"])]
    by_task: dict[str, list[float]] = {}
    for ti in instances:
        if (duration := seconds(ti["start_date"], ti["end_date"])) is not None:
            by_task.setdefault(ti["task_id"], []).append(duration)
    return {
        "files": len(files),
        "engine_workers": engine_workers,
        "pool_slots": api.call("GET", pool_path(cluster))["slots"],
        "max_in_flight": max_in_flight(d["MedicalTranscriptionJob"] for d in described),
        "load_avg": round(sum(usage.load) / max(1, len(usage.load)), 1),
        "runs": [run["state"] for run in runs],
        "completed": sum(row.status == "COMPLETED" for row in rows),
        "jobs": len(rows),
        "wall_s": round(wall, 1),
        "files_per_min": round(len(files) / wall * 60, 1),
        "engine_recognition_s": round(recognition, 1),
        "airflow_overhead": round(max(0.0, wall - engine_wall) / wall, 2),
        "task_seconds": {task: percentiles(values) for task, values in by_task.items()},
        "peak_mb": peaks,
        "flatten_peak_mb": round(
            max(
                usage.task_peak.get(ti["id"], 0.0) for ti in instances if ti["task_id"] == "flatten"
            ),
        ),
        "cpu_s": cpu,
        # What a file costs, whatever else the machine runs: the basis of a sizing.
        "cpu_s_per_file": {
            side: round(sum(v for h, v in cpu.items() if h.startswith(side)) / len(files), 2)
            for side in ("airflow-", "engine-")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--engine-workers", type=int, nargs="+", default=[1, 3])
    parser.add_argument(
        "--pool-slots", type=int, help="jobs in flight (the pool's slots); default: as set up"
    )
    parser.add_argument("--restart-airflow", action="store_true", help="before each night")
    parser.add_argument("--note", help="what this night measures, kept with its results")
    args = parser.parse_args()
    cluster = ProcessCluster()
    if not cluster.running():
        raise SystemExit("start the cluster first: make cluster")
    if args.pool_slots:
        pool = {"name": cluster.settings["MEDICAL_TRANSCRIBE_POOL"], "include_deferred": True}
        api = AirflowAPI(cluster.client_env())
        api.call("PATCH", pool_path(cluster), pool | {"slots": args.pool_slots})
    files = short_dictations(args.files)
    results = []
    for workers in args.engine_workers:
        if args.restart_airflow:
            restart_airflow(cluster)
        results.append({"note": args.note, **night(cluster, files, workers)})
        with RESULTS.open("a") as out:
            out.write(json.dumps(results[-1]) + "\n")
        print(json.dumps(results[-1]), flush=True)
    if len(results) == 2:
        ratio = results[1]["files_per_min"] / results[0]["files_per_min"]
        print(
            f"throughput {args.engine_workers[1]} vs {args.engine_workers[0]} workers: {ratio:.2f}x"
        )


if __name__ == "__main__":
    main()
