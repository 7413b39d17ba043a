"""A test that was asked for and cannot run fails saying what is missing, and a plain ``pytest``
names the suites it leaves out. Each case runs pytest in a child process, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The child's pytest, after ``prelude`` ran: how a case takes a prerequisite away.
SCRIPT = "import sys, pytest\n{prelude}\nsys.exit(pytest.main(sys.argv[1:], plugins=PLUGINS))"
NO_PLUGINS = "PLUGINS = []"


def run_pytest(
    *args: str, prelude: str = NO_PLUGINS, **env: str
) -> subprocess.CompletedProcess[str]:
    """pytest on ``args`` with only the asking variables in ``env`` set."""
    asking = (
        "MEDSCRIBE_TEST_UI",
        "MEDSCRIBE_TEST_AIRFLOW",
        "MEDSCRIBE_TEST_COMPOSE",
        "CLUSTER_TESTS",
    )
    child_env = {k: v for k, v in os.environ.items() if k not in asking} | env
    command = [sys.executable, "-c", SCRIPT.format(prelude=prelude), "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, *args], cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=600
    )


def test_browser_test_asked_for_without_playwright_fails_saying_so():
    blocked = f"sys.modules['playwright'] = None  # as if not installed\n{NO_PLUGINS}"
    result = run_pytest("tests/ui", prelude=blocked, MEDSCRIBE_TEST_UI="1")
    assert result.returncode == 1, result.stdout
    assert "Playwright is not installed" in result.stdout
    assert "skipped" not in result.stdout.splitlines()[-1]


def test_browser_test_asked_for_without_chromium_fails_saying_so():
    elsewhere = (
        "class NoChromium:\n"
        "    def pytest_collection_finish(self, session):\n"
        "        for item in session.items:\n"
        "            item.module.CHROMIUM = '/nonexistent/chromium'\n"
        "PLUGINS = [NoChromium()]"
    )
    result = run_pytest("tests/ui", prelude=elsewhere, MEDSCRIBE_TEST_UI="1")
    assert result.returncode == 1, result.stdout
    assert "no Chromium at /nonexistent/chromium" in result.stdout


def test_compose_test_asked_for_without_compose_fails_saying_so(tmp_path):
    result = run_pytest(
        "tests/compose/test_compose.py",
        "-k",
        "validates",
        MEDSCRIBE_TEST_COMPOSE="1",
        PATH=str(tmp_path),  # no docker, no docker-compose
    )
    assert result.returncode == 1, result.stdout
    assert "no Docker Compose v2 CLI here" in result.stdout


def test_a_plain_pytest_names_the_cluster_suite_it_leaves_out():
    result = run_pytest("tests/cluster")
    assert result.returncode == 0, result.stdout
    assert "SKIPPED" in result.stdout and "make test-cluster" in result.stdout
