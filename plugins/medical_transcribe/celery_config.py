"""Celery settings for Airflow's workers: Airflow's defaults, plus libraries imported once.

Every task runs in a process forked from a Celery worker, and parses the DAG file first.
Imported in the worker before it forks, the libraries that parse needs (the Amazon
provider, boto3) cost each task nothing (measured in README, "The same topology as processes").
Only libraries are listed: a module of ours loaded here would keep the version the worker
started with after a deployment.

Selected with ``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS`` (see docker-compose.yaml).
"""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

#: What the DAG file and the operator import beyond Airflow's task runner.
PRELOADED = (
    "airflow.providers.amazon.aws.hooks.s3",
    "airflow.providers.amazon.aws.operators.base_aws",
    "airflow.providers.amazon.aws.sensors.base_aws",
    "airflow.providers.amazon.aws.triggers.base",
    "airflow.providers.amazon.aws.utils.waiter_with_logging",
    "airflow.providers.standard.decorators.python",
    "airflow.providers.standard.operators.trigger_dagrun",
)

CELERY_CONFIG = {**DEFAULT_CELERY_CONFIG, "imports": PRELOADED}
