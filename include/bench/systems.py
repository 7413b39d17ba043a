"""The recognizers under test, behind one interface, and their isolated, timed execution.

Every system loads its model in ``load()`` (never timed) and turns one audio file into
plain text in ``transcribe()``. ``transcribe_all()`` times a whole batch; systems that can
work on many files at once (the engine) override it. Each system runs in a fresh process
so that its peak memory is its own and models do not pile up in one interpreter.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import resource
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    import numpy as np

    from medscribe.coverage import Span
    from medscribe.words import Word

ENGINE_ENV = (
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_TRANSCRIBE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


@dataclass(frozen=True)
class Transcription:
    text: str
    wall_s: float | None  # None where the system cannot time files one by one
    error: str = ""


@dataclass(frozen=True)
class Batch:
    items: list[Transcription]
    wall_s: float
    peak_rss_mb: float | None = None  # of the process that did the recognition, if it is ours


class System(ABC):
    @abstractmethod
    def load(self) -> None:
        """Load models and open clients; excluded from all timings."""

    @abstractmethod
    def transcribe(self, path: Path) -> str: ...

    def transcribe_all(self, paths: Sequence[Path]) -> Batch:
        """One file after the other, each timed; a failing file is recorded, not fatal."""
        items = []
        start = time.perf_counter()
        for path in paths:
            began = time.perf_counter()
            try:
                items.append(Transcription(self.transcribe(path), time.perf_counter() - began))
            except Exception as exc:
                items.append(
                    Transcription("", time.perf_counter() - began, f"{type(exc).__name__}: {exc}")
                )
        return Batch(items, time.perf_counter() - start)


class PlainWhisperSystem(System):
    """faster-whisper as its documentation shows it: ``WhisperModel.transcribe``, sequential
    30 s windows, no prompt, no voice activity detection; the engine's model and beam."""

    def __init__(self, model_dir: Path, threads: int) -> None:
        self.model_dir, self.threads = model_dir, threads

    def load(self) -> None:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(
            str(self.model_dir), device="cpu", compute_type="int8", cpu_threads=self.threads
        )

    def transcribe(self, path: Path) -> str:
        segments, _ = self._model.transcribe(str(path), language="en", beam_size=5)
        return " ".join(segment.text.strip() for segment in segments)


class WhisperSystem(System):
    """The engine's recognition step without its API, queue and storage: the recognizer
    its workers run (``medscribe.asr``: per-window prompts, coverage guarantee and
    correction included).

    ``terms_by_file`` (file name -> terms) replaces the shared vocabulary per file: each
    file's own terms are in every window's prompt, the ceiling of what a prompt can do;
    with ``distractors``, that many other vocabulary phrases hide them, in random order.
    """

    def __init__(
        self,
        model_dir: Path,
        threads: int,
        vocabulary: Sequence[str] = (),
        terms_by_file: Mapping[str, Sequence[str]] | None = None,
        distractors: int = 0,
    ) -> None:
        self.model_dir, self.threads = model_dir, threads
        self.vocabulary, self.terms_by_file = list(vocabulary), terms_by_file
        self.distractors = distractors

    def load(self) -> None:
        from medscribe.asr import Recognizer

        self._recognizer = Recognizer(str(self.model_dir), cpu_threads=self.threads, beam_size=5)

    def transcribe(self, path: Path) -> str:
        from medscribe.audio import load

        phrases, own = self.vocabulary, []
        if self.terms_by_file is not None:
            own = list(self.terms_by_file[path.name])
            others = [p for p in self.vocabulary if p not in own]
            chance = random.Random(path.name)
            own += chance.sample(others, min(self.distractors, len(others)))
            chance.shuffle(own)
            phrases = own
        words = self.recognize(load(path.read_bytes()).tracks[0], phrases, own)
        return " ".join(word.text for word in words)

    def recognize(self, samples: np.ndarray, phrases: list[str], own: list[str]) -> list[Word]:
        return self._recognizer.transcribe(samples, phrases, own).words


class FirstPassSystem(WhisperSystem):
    """The recognizer without the coverage guarantee: its windows, prompted, and the
    correction; kept to measure what the guarantee adds."""

    def recognize(self, samples: np.ndarray, phrases: list[str], own: list[str]) -> list[Word]:
        from medscribe import correction

        return correction.snap(self._recognizer.first_pass(samples, phrases, own), phrases)


def _fixed_prompt_recognizer() -> type:
    from medscribe.asr import Recognizer

    class FixedPrompt(Recognizer):
        """The recognizer before per-window prompts: the whole file decoded with one prompt,
        the vocabulary's first phrases that fit, coverage and correction as today."""

        def first_pass(
            self,
            samples: np.ndarray,
            phrases: Sequence[str],
            own: Sequence[str] = (),
            speech: Sequence[Span] | None = None,
        ) -> list[Word]:
            # faster-whisper's own voice activity detection finds the speech, as it did.
            prompt = self.prompt([*own, *phrases])
            return self._words(samples, hotwords=prompt, **self.options)

    return FixedPrompt


class FixedPromptSystem(WhisperSystem):
    """The engine's recognizer as it was with one fixed prompt: the baseline that per-window
    prompts are measured against, side by side."""

    def load(self) -> None:
        self._recognizer = _fixed_prompt_recognizer()(
            str(self.model_dir), cpu_threads=self.threads, beam_size=5
        )


class PocketsphinxSystem(System):
    """CMU PocketSphinx with its shipped US English model: a classic, non-neural baseline."""

    def load(self) -> None:
        from pocketsphinx import Decoder

        self._decoder = Decoder()

    def transcribe(self, path: Path) -> str:
        # The acoustic model wants 16 kHz mono 16-bit; sox also lifts 8 kHz telephone audio.
        pcm = subprocess.run(
            [
                "sox",
                str(path),
                "-t",
                "raw",
                "-r",
                "16000",
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
                "-",
            ],
            capture_output=True,
            check=True,
        ).stdout
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hypothesis = self._decoder.hyp()
        return hypothesis.hypstr if hypothesis else ""


def engine_unavailable() -> str | None:
    """Why the engine cannot be benchmarked here, or None when it can."""
    missing = [name for name in ENGINE_ENV if not os.environ.get(name)]
    if not (os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")):
        missing.append("AWS_DEFAULT_REGION")
    return (
        f"engine skipped: set {', '.join(missing)} (source the local stack's env file)"
        if missing
        else None
    )


def s3_location(uri: str, bucket: str) -> tuple[str, str]:
    """Bucket and key of a TranscriptFileUri: s3://, path-style or virtual-hosted https."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return parsed.netloc, unquote(parsed.path.lstrip("/"))
    path = unquote(parsed.path.lstrip("/"))
    first, _, rest = path.partition("/")
    return (bucket, rest) if first == bucket else (bucket, path)


class EngineSystem(System):
    """THE ENGINE, END TO END through the Amazon Transcribe Medical API.

    Uploads every file to S3, starts one DICTATION job per file, waits for all of them and
    reads each transcript JSON back from S3: the path a production client takes. Only
    the standard AWS variables locate the services (``ENGINE_ENV``), so the same code runs
    against the local stack or AWS. Files are submitted together and the batch is timed
    as a whole (upload to last transcript), since the engine's workers run jobs
    concurrently; per-file times are therefore not reported.
    """

    def __init__(self, bucket: str, poll_s: float = 2.0, timeout_s: float = 3600.0) -> None:
        self.bucket, self.poll_s, self.timeout_s = bucket, poll_s, timeout_s

    def load(self) -> None:
        import boto3
        from botocore.exceptions import ClientError

        self._s3 = boto3.client("s3")
        self._transcribe = boto3.client("transcribe")
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except ClientError:
            self._s3.create_bucket(Bucket=self.bucket)

    def transcribe(self, path: Path) -> str:
        item = self.transcribe_all([path]).items[0]
        if item.error:
            raise RuntimeError(item.error)
        return item.text

    def transcribe_all(self, paths: Sequence[Path]) -> Batch:
        run = f"bench-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        start = time.perf_counter()
        names = [
            self._submit(path, f"{run}-{i:04d}", f"bench/{run}/{i:04d}-{path.name}")
            for i, path in enumerate(paths)
        ]
        jobs = self._wait(names)
        items = [self._result(jobs.get(name)) for name in names]
        return Batch(items, time.perf_counter() - start)

    def _submit(self, path: Path, name: str, key: str) -> str:
        self._s3.upload_file(str(path), self.bucket, key)
        self._transcribe.start_medical_transcription_job(
            MedicalTranscriptionJobName=name,
            LanguageCode="en-US",
            Media={"MediaFileUri": f"s3://{self.bucket}/{key}"},
            MediaFormat=path.suffix.lstrip(".").lower(),
            OutputBucketName=self.bucket,
            Specialty="PRIMARYCARE",
            Type="DICTATION",
        )
        return name

    def _wait(self, names: Sequence[str]) -> dict[str, dict]:
        """Poll until every job is COMPLETED or FAILED, or the timeout passes."""
        finished: dict[str, dict] = {}
        deadline = time.monotonic() + self.timeout_s
        while len(finished) < len(names) and time.monotonic() < deadline:
            for name in names:
                if name not in finished:
                    job = self._transcribe.get_medical_transcription_job(
                        MedicalTranscriptionJobName=name
                    )
                    if job["MedicalTranscriptionJob"]["TranscriptionJobStatus"] in (
                        "COMPLETED",
                        "FAILED",
                    ):
                        finished[name] = job["MedicalTranscriptionJob"]
            if len(finished) < len(names):
                time.sleep(self.poll_s)
        return finished

    def _result(self, job: dict | None) -> Transcription:
        if job is None:
            return Transcription("", None, f"not finished within {self.timeout_s:.0f} s")
        if job["TranscriptionJobStatus"] == "FAILED":
            return Transcription("", None, f"FAILED: {job.get('FailureReason', '')}")
        bucket, key = s3_location(job["Transcript"]["TranscriptFileUri"], self.bucket)
        document = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return Transcription(json.loads(document)["results"]["transcripts"][0]["transcript"], None)


@dataclass(frozen=True)
class Settings:
    """Everything needed to build any system; plain data, so it can cross into a subprocess."""

    model_dir: Path | None  # None when no Whisper system runs
    threads: int
    vocabulary: tuple[str, ...]
    terms_by_file: Mapping[str, Sequence[str]] = field(default_factory=dict)
    bucket: str = "medscribe-bench"


SYSTEM_NAMES = (
    "whisper",
    "whisper-fixed-prompt",
    "whisper-vocab",
    "whisper-vocab-before",
    "whisper-oracle",
    "whisper-distractors",
    "pocketsphinx",
    "engine",
)
DEFAULT_SYSTEMS = (
    "whisper",
    "whisper-fixed-prompt",
    "whisper-vocab",
    "whisper-oracle",
    "whisper-distractors",
    "engine",
)
#: Other vocabulary phrases hiding a file's own terms in ``whisper-distractors``.
DISTRACTORS = 40


def make_system(name: str, settings: Settings) -> System:
    if name == "whisper":
        return PlainWhisperSystem(settings.model_dir, settings.threads)
    if name == "whisper-fixed-prompt":
        return FixedPromptSystem(settings.model_dir, settings.threads, settings.vocabulary)
    if name == "whisper-vocab":
        return WhisperSystem(settings.model_dir, settings.threads, settings.vocabulary)
    if name == "whisper-vocab-before":
        return FirstPassSystem(settings.model_dir, settings.threads, settings.vocabulary)
    if name == "whisper-oracle":
        return WhisperSystem(settings.model_dir, settings.threads, (), settings.terms_by_file)
    if name == "whisper-distractors":
        return WhisperSystem(
            settings.model_dir,
            settings.threads,
            settings.vocabulary,
            settings.terms_by_file,
            DISTRACTORS,
        )
    if name == "pocketsphinx":
        return PocketsphinxSystem()
    if name == "engine":
        return EngineSystem(settings.bucket)
    raise ValueError(f"unknown system {name!r}; choose from {SYSTEM_NAMES}")


def _measure(name: str, settings: Settings, paths: Sequence[Path]) -> Batch:
    system = make_system(name, settings)
    system.load()
    batch = system.transcribe_all(paths)
    if isinstance(system, EngineSystem):  # recognition happened in the engine's processes
        return batch
    # Linux reports ru_maxrss in KiB.
    return Batch(
        batch.items, batch.wall_s, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )


def run_isolated(name: str, settings: Settings, paths: Sequence[Path]) -> Batch:
    """Build, load and run one system in a fresh process; return its batch and peak RSS."""
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        return pool.submit(_measure, name, settings, list(paths)).result()
