"""Shared test setup: import paths, a throwaway Airflow home, and the real local stack.

The ``stack`` fixture runs a real SeaweedFS S3 server and the real engine (with real
speech recognition) on free loopback ports, under a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for folder in ("include", "plugins", "dags"):
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))

# Airflow reads these on first import, so they are set before any test imports it.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-tests-")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")

import boto3
import pytest
from bench.synthesize import speak_piper
from botocore.client import BaseClient

from containers import shared
from devstack import local_stack


def synthesize(text: str, path: Path, *, rate: int = 16000, voice: str = "en-us") -> Path:
    """Speak ``text`` with espeak-ng and convert it with sox (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", str(path)], check=True)
    raw.unlink()
    return path


@dataclass
class Stack:
    state: Path
    env: dict[str, str]
    s3_port: int
    engine_port: int

    def client(self, service: str, endpoint_url: str | None = None) -> BaseClient:
        return boto3.client(
            service,
            endpoint_url=endpoint_url or self.env[f"AWS_ENDPOINT_URL_{service.upper()}"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.env["AWS_DEFAULT_REGION"],
        )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("stack")
    creds = shared.Credentials.load_or_create(state / "credentials.json")
    s3_port, engine_port = local_stack.free_port(), local_stack.free_port()
    env = local_stack.loopback_env(s3_port, engine_port, creds)
    s3 = local_stack.start_s3(state, s3_port, creds)
    # A short lease lets the crash test see a dead worker's job taken over quickly.
    engine = local_stack.start_engine(
        state, engine_port, env, workers=1, extra_env={"MEDSCRIBE_LEASE_SECONDS": "6"}
    )
    running = Stack(state, env, s3_port, engine_port)
    s3_client = running.client("s3")
    for bucket in ("inbox", "transcripts"):
        s3_client.create_bucket(Bucket=bucket)
    yield running
    for process in (engine, s3):
        local_stack.stop(process.pid)


@pytest.fixture(scope="session")
def dictation(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Synthesize a dictation once per text and format."""
    folder = tmp_path_factory.mktemp("audio")
    made: dict[tuple[str, str, int], Path] = {}

    def make(text: str, suffix: str = ".wav", rate: int = 16000) -> Path:
        key = (text, suffix, rate)
        if key not in made:
            made[key] = synthesize(text, folder / f"d{len(made)}{suffix}", rate=rate)
        return made[key]

    return make


@pytest.fixture(scope="session")
def natural_dictation(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Synthesize a dictation once per text in Piper's natural neural voice (joe); a blank
    line in the text is a pause of ``pause_s`` seconds."""
    folder = tmp_path_factory.mktemp("natural")
    made: dict[tuple[str, float], Path] = {}

    def make(text: str, pause_s: float = 4.0) -> Path:
        key = (text, pause_s)
        if key not in made:
            made[key] = folder / f"n{len(made)}.wav"
            speak_piper("joe", text, made[key], pause_s=pause_s)
        return made[key]

    return make


@pytest.fixture(scope="session")
def recognizer():
    """The shipped model, loaded once for every test that recognizes speech directly."""
    from medscribe.asr import Recognizer

    return Recognizer(cpu_threads=2)
