"""What a test does when something it needs is missing: it says so, and fails when asked for."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(what: str, asked_by: str) -> NoReturn:
    """Skip with ``what`` is missing; but when the environment variable ``asked_by`` asks for
    the test, fail: a test that was asked for and cannot run must not pass as a skip."""
    if os.environ.get(asked_by):
        pytest.fail(f"{asked_by}=1 asks for this test, but {what}", pytrace=False)
    pytest.skip(f"{what} (with {asked_by}=1 this fails)")
