"""docker-compose.yaml as the cluster's only settings source.

The compose CLI itself resolves the file (anchors, ``${VAR}`` from an env file, defaults),
so the process cluster reads exactly what ``docker compose up`` would run. The env file
is made once from ``.env.example``: every ``change-me`` placeholder gets a fresh secret,
and the few settings a test cluster wants different (short leases, fast polling) are set.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"

#: What the process cluster sets differently from .env.example's defaults, and why.
CLUSTER_SETTINGS = {
    # Three engine workers share the machine's cores: one thread each.
    "ENGINE_CPU_THREADS": "1",
    # A dead engine worker's job, or a killed Celery worker's task, is noticed in seconds.
    "ENGINE_LEASE_SECONDS": "10",
    "AIRFLOW_TASK_HEARTBEAT_TIMEOUT": "45",
    "AIRFLOW_TASK_RETRY_DELAY": "10",
    "MEDICAL_TRANSCRIBE_POLL_SECONDS": "5",
    "AIRFLOW_WORKER_CONCURRENCY": "4",
    "MEDICAL_TRANSCRIBE_POOL_SLOTS": "8",
}
PLACEHOLDER = re.compile(r"change-?me", re.IGNORECASE)


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def fresh_secret(name: str) -> str:
    if name == "AIRFLOW_FERNET_KEY":
        return Fernet.generate_key().decode()
    if name == "STACK_ACCESS_KEY_ID":
        return "AKID" + secrets.token_hex(8).upper()
    return secrets.token_hex(20)


def write_env_file(path: Path) -> dict[str, str]:
    """``.env.example`` with fresh secrets and :data:`CLUSTER_SETTINGS`.

    Values already in ``path`` are kept (secrets must not change under a database that
    uses them); settings added to ``.env.example`` since are filled in.
    """
    kept = read_env_file(path) if path.exists() else {}
    values = read_env_file(ENV_EXAMPLE)
    unknown = set(CLUSTER_SETTINGS) - set(values)
    if unknown:
        raise RuntimeError(f".env.example lacks {sorted(unknown)}")
    for name, value in values.items():
        if PLACEHOLDER.search(value):
            values[name] = fresh_secret(name)
    values.update(CLUSTER_SETTINGS)
    values.update(kept)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    return values


def compose_cli() -> str:
    cli = Path(sys.executable).with_name("docker-compose")
    found = str(cli) if cli.exists() else shutil.which("docker-compose")
    if found is None:
        raise RuntimeError("the compose CLI is missing: install requirements-dev.txt")
    return found


def resolve(env_file: Path) -> dict[str, Any]:
    """The compose file as compose sees it with ``env_file`` (and nothing from our shell)."""
    result = subprocess.run(
        [compose_cli(), "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config",
         "--format", "json"],
        cwd=ROOT, env={"PATH": os.environ.get("PATH", ""), "HOME": str(env_file.parent)},
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(result.stdout)


def image_env() -> dict[str, str]:
    """The ``ENV`` instructions of the Dockerfile (the image every built service runs)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            found.update(re.findall(r"(\w+)=(\S+)", line))
    return found


def unescape(text: str) -> str:
    """Compose's ``$$`` is a literal ``$`` for the shell that runs the command."""
    return text.replace("$$", "$")
