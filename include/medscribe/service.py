"""Engine processes: the API server, and a supervisor keeping worker processes alive."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading

import uvicorn

from .api import create_app
from .asr import Recognizer
from .backend import TranscribeBackend
from .config import EngineConfig
from .store import JobStore
from .worker import Worker

log = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(name)s %(message)s"


def stop_on_signals(stop: threading.Event) -> None:
    """Set ``stop`` on SIGTERM or SIGINT, from a thread of its own.

    A Python signal handler runs inside whatever the main thread was doing: setting the
    event there waits for the event's lock if the interrupted code (a first handler, or a
    wait on the event) holds it, forever. The wakeup fd is written by the C-level handler,
    without any lock.
    """
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)

    def relay() -> None:
        os.read(read, 1)
        stop.set()

    threading.Thread(target=relay, daemon=True).start()


def run_worker(config: EngineConfig) -> None:
    """One worker process: load the model once, then claim jobs until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    stop = threading.Event()
    stop_on_signals(stop)
    threading.Thread(target=_stop_when_orphaned, args=(os.getppid(), stop), daemon=True).start()
    recognizer = Recognizer(
        config.model_dir,
        compute_type=config.compute_type,
        cpu_threads=config.cpu_threads,
        beam_size=config.beam_size,
    )
    Worker(config, JobStore(config.database_url), recognizer).run(stop)


def _stop_when_orphaned(parent: int, stop: threading.Event) -> None:
    """A worker whose engine was killed outright stops too, instead of running on unseen."""
    while not stop.wait(2.0):
        if os.getppid() != parent:
            log.warning("engine process %s is gone; worker stopping", parent)
            stop.set()


class Supervisor:
    """Keeps ``count`` worker processes alive beside the API server; replaces any that die."""

    def __init__(self, config: EngineConfig, count: int) -> None:
        self.config = config
        self.count = count
        self.processes: list[multiprocessing.Process] = []
        self.stopping = threading.Event()
        self.context = multiprocessing.get_context("spawn")

    def start(self) -> None:
        self.processes = [self._spawn() for _ in range(self.count)]
        threading.Thread(target=self._watch, daemon=True).start()

    def _spawn(self) -> multiprocessing.Process:
        process = self.context.Process(target=run_worker, args=(self.config,), daemon=True)
        process.start()
        return process

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            for index, process in enumerate(self.processes):
                # SIGTERM is an orderly stop of the whole engine; anything else is a crash.
                if process.exitcode not in (None, -signal.SIGTERM):
                    log.warning(
                        "worker pid %s died (%s); starting another", process.pid, process.exitcode
                    )
                    self.processes[index] = self._spawn()

    def stop(self) -> None:
        self.stopping.set()
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.join(timeout=30)


def serve_api(config: EngineConfig, host: str, port: int) -> None:
    if not config.access_keys:
        raise SystemExit(
            "no access keys configured: set MEDSCRIBE_ACCESS_KEYS=KEY_ID:SECRET "
            "(or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); the engine is never open"
        )
    backend = TranscribeBackend(JobStore(config.database_url), config)
    server = uvicorn.Config(create_app(backend), host=host, port=port, log_level="info")
    logging.getLogger("uvicorn.access").addFilter(_without_query_string)
    uvicorn.Server(server).run()


def _without_query_string(record: logging.LogRecord) -> bool:
    """Access log lines keep the path only: a presigned URL's query holds a key id and signature."""
    if isinstance(record.args, tuple) and len(record.args) == 5:
        client, method, path, version, status = record.args
        record.args = (client, method, str(path).partition("?")[0], version, status)
    return True
