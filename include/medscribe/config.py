"""Engine settings, read from ``MEDSCRIBE_*`` environment variables (flags override them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


def parse_access_keys(text: str) -> dict[str, str]:
    """``"AKID:SECRET,AKID2:SECRET2"`` (commas or newlines) -> ``{akid: secret}``."""
    keys: dict[str, str] = {}
    for pair in text.replace("\n", ",").split(","):
        if pair.strip():
            key_id, sep, secret = pair.strip().partition(":")
            if not sep or not key_id or not secret:
                raise ValueError("access keys must be given as KEY_ID:SECRET pairs")
            keys[key_id] = secret
    return keys


@dataclass(frozen=True)
class EngineConfig:
    database_url: str = "sqlite:///.local/engine/jobs.db"
    access_keys: dict[str, str] = field(default_factory=dict)
    region: str = "us-east-1"
    account_id: str = "000000000000"
    #: Where the engine reads media and writes transcripts; None means boto3's own
    #: resolution (``AWS_ENDPOINT_URL_S3`` or real S3).
    s3_endpoint_url: str | None = None
    #: A faster-whisper (CTranslate2) model directory; None means the shipped Whisper base.
    model_dir: str | None = None
    compute_type: str = "int8"
    cpu_threads: int = 0
    beam_size: int = 5
    #: Steer every job with the shipped medical vocabulary, on top of a job's own.
    default_vocabulary: bool = True
    lease_seconds: float = 60.0
    poll_seconds: float = 0.5
    max_active_jobs: int = 1000
    max_attempts: int = 3
    #: AWS's limits on one job's media: 2 GB and 4 hours.
    max_media_bytes: int = 2 * 10**9
    max_media_seconds: float = 4 * 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, **overrides: object) -> EngineConfig:
        keys_text = env.get("MEDSCRIBE_ACCESS_KEYS", "")
        if not keys_text and env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            keys_text = f"{env['AWS_ACCESS_KEY_ID']}:{env['AWS_SECRET_ACCESS_KEY']}"
        values: dict[str, object] = {
            "database_url": env.get("MEDSCRIBE_DATABASE_URL", cls.database_url),
            "access_keys": parse_access_keys(keys_text),
            "region": env.get("MEDSCRIBE_REGION", env.get("AWS_DEFAULT_REGION", cls.region)),
            "account_id": env.get("MEDSCRIBE_ACCOUNT_ID", cls.account_id),
            "s3_endpoint_url": env.get("MEDSCRIBE_S3_ENDPOINT_URL") or None,
            "model_dir": env.get("MEDSCRIBE_MODEL_DIR") or None,
            "compute_type": env.get("MEDSCRIBE_COMPUTE_TYPE", cls.compute_type),
            "cpu_threads": int(env.get("MEDSCRIBE_CPU_THREADS", cls.cpu_threads)),
            "beam_size": int(env.get("MEDSCRIBE_BEAM_SIZE", cls.beam_size)),
            "default_vocabulary": env.get("MEDSCRIBE_DEFAULT_VOCABULARY", "1")
            not in ("0", "false"),
            "lease_seconds": float(env.get("MEDSCRIBE_LEASE_SECONDS", cls.lease_seconds)),
            "max_active_jobs": int(env.get("MEDSCRIBE_MAX_ACTIVE_JOBS", cls.max_active_jobs)),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
