"""The process cluster's suite: ``make test-cluster`` (root, PostgreSQL, Redis, netns).

Not part of a plain ``pytest``: it starts the whole production shape, which takes minutes.
Its tests are then skipped with the reason, so the summary says they did not run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("CLUSTER_TESTS"):
        return
    skip = pytest.mark.skip(reason="the process cluster's suite runs with make test-cluster")
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)
