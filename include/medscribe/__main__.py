"""``python -m medscribe serve|api|worker``: run the engine's API server and workers."""

from __future__ import annotations

import argparse
import logging
import os
import threading
from dataclasses import replace

from .config import EngineConfig
from .service import LOG_FORMAT, Supervisor, serve_api, stop_on_signals


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medscribe", description=__doc__)
    parser.add_argument("command", choices=["serve", "api", "worker"])
    parser.add_argument("--host", default=os.environ.get("MEDSCRIBE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("MEDSCRIBE_PORT", "8701")))
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("MEDSCRIBE_WORKERS", "1"))
    )
    parser.add_argument("--database-url", help="SQLAlchemy URL of the job store")
    parser.add_argument(
        "--model-dir", help="faster-whisper model directory (default: Whisper base)"
    )
    parser.add_argument(
        "--cpu-threads", type=int, help="threads per worker (default: cores / workers)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    config = EngineConfig.from_env(
        database_url=args.database_url, model_dir=args.model_dir, cpu_threads=args.cpu_threads
    )
    if not config.cpu_threads:
        workers = args.workers if args.command != "api" else 1
        config = replace(config, cpu_threads=max(1, (os.cpu_count() or 1) // max(1, workers)))
    if args.command == "worker":
        supervisor = Supervisor(config, args.workers)
        supervisor.start()
        stop = threading.Event()
        stop_on_signals(stop)
        stop.wait()
        supervisor.stop()
        return
    supervisor = Supervisor(config, args.workers if args.command == "serve" else 0)
    supervisor.start()
    try:
        serve_api(config, args.host, args.port)
    finally:
        supervisor.stop()


if __name__ == "__main__":
    main()
