"""Drive a running Airflow through its REST API, as the UI does (``.local/cluster.env``)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

FINISHED = ("success", "failed")


class AirflowAPI:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.url = env["AIRFLOW_API_URL"].rstrip("/")
        self.login = {"username": env["AIRFLOW_USERNAME"], "password": env["AIRFLOW_PASSWORD"]}
        self.token: str | None = None

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One API call; logs in first, and again when the token has expired."""
        if self.token is None:
            self.token = self._call("POST", "/auth/token", self.login)["access_token"]
        try:
            return self._call(method, path, body)
        except urllib.error.HTTPError as error:
            if error.code != 401:
                raise
            self.token = None
            return self.call(method, path, body)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Unpause the DAG and start a run with ``conf``; returns the run id."""
        self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run = self.call(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            {"logical_date": None, "conf": conf},
        )
        return run["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def wait(self, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
        """The run once finished (tolerating an API server that is briefly away)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                run = self.run(dag_id, run_id)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                run = {}
            if run.get("state") in FINISHED:
                return run
            time.sleep(3)
        raise TimeoutError(f"run {run_id} did not finish within {timeout:.0f}s")

    def wait_night(self, dag_id: str, run_id: str, timeout: float) -> list[dict[str, Any]]:
        """The run and each follow-up run it triggered (same conf), once all have finished.

        A night past ``max_files`` goes on in follow-up runs, each triggered as its
        predecessor ends; the night is over when a finished run has no successor.
        """
        deadline = time.monotonic() + timeout
        runs = [self.wait(dag_id, run_id, timeout)]
        while follow_up := self._successor(dag_id, runs[-1]):
            runs.append(self.wait(dag_id, follow_up, deadline - time.monotonic()))
        return runs

    def _successor(self, dag_id: str, run: dict[str, Any]) -> str | None:
        listed = self.call(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns?order_by=run_after&limit=100"
            f"&run_after_gt={urllib.parse.quote(run['run_after'])}",
        )["dag_runs"]
        # A follow-up's conf is the whole of its predecessor's params.
        later = [r for r in listed if all(r["conf"].get(k) == v for k, v in run["conf"].items())]
        return later[0]["dag_run_id"] if later else None

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, mapped ones included."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.call(
                "GET",
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
                f"?limit=100&offset={len(found)}",
            )
            found.extend(page["task_instances"])
            if len(found) >= page["total_entries"] or not page["task_instances"]:
                return found
