"""The process cluster's suite: ``make test-cluster`` (root, PostgreSQL, Redis, netns).

Not part of ``make test``: it starts the whole production shape, which takes minutes.
"""

from __future__ import annotations

import os

if not os.environ.get("CLUSTER_TESTS"):
    collect_ignore_glob = ["test_*.py"]
