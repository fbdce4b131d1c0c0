"""The deployment: docker-compose.yml, deploy/.env.example, Dockerfile, the entry point, dagster.yaml,
the workspaces and the MySQL init script.

No Docker engine runs where the suite runs, so the compose stack is checked by parsing it (and by
`docker compose config` where Compose v2 is installed); the entry point, dagster.yaml and the init
script are run for real (the last two against the MariaDB server).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pymysql
import pytest
import sqlalchemy as sa
import yaml
from dagster._core.instance.config import dagster_instance_config
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.workspace.config_schema import ensure_workspace_config

from payment_platform_tests.conftest import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / "deploy" / ".env.example"
ENTRYPOINT = REPO_ROOT / "deploy" / "entrypoint.sh"
DAGSTER_YAML = REPO_ROOT / "deploy" / "dagster.yaml"
LOCAL_WORKSPACE = REPO_ROOT / "workspace.yaml"
DEPLOY_WORKSPACE = REPO_ROOT / "deploy" / "workspace.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
MYSQL_INIT_SCRIPT = REPO_ROOT / "deploy" / "mysql-init" / "01-databases.sh"

SERVICES = ("kafka", "mysql", "scorer-secret", "code-location", "webserver", "daemon", "producer")
DAGSTER_SERVICES = ("code-location", "webserver", "daemon")
DAGSTER_MYSQL_VARS = (
    "DAGSTER_MYSQL_USER",
    "DAGSTER_MYSQL_PASSWORD",
    "DAGSTER_MYSQL_HOST",
    "DAGSTER_MYSQL_DB",
)
DAGSTER_HOME_IN_IMAGE = "/opt/dagster/dagster_home"
PAYMENT_HOME_IN_IMAGE = "/var/lib/payment_platform"
SECRETS_IN_IMAGE = "/var/lib/payment-secrets"
# An image reference pinned to an exact release: name:MAJOR.MINOR.PATCH, optionally with a variant.
PINNED_IMAGE = re.compile(r"^[a-z0-9./-]+:\d+\.\d+\.\d+(-[a-z0-9.-]+)?$")
DEPLOY_WORKSPACE_IN_IMAGE = "/opt/dagster/deploy/workspace.yaml"
CODE_LOCATION_NAME = "payment_platform"
DEFINITIONS_MODULE = "payment_platform.definitions"

# `${VAR:?message}`: compose refuses to start without VAR.
REQUIRED_VAR = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}$")
ANY_VAR = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(:?[-?][^}]*)?\}")
URL_CREDENTIALS = re.compile(r"^[a-z0-9+]+://(?P<user>[^:@/]+):(?P<password>.+)@[^@]+$")


# ---------------------------------------------------------------------------------------------
# docker-compose.yml
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, from either the mapping or the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def named_volume_mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Container path -> named volume, for the service's named-volume mounts (short or long form)."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":", 1)[0]
        else:
            if volume.get("type", "volume") != "volume":
                continue
            source, target = volume.get("source", ""), volume["target"]
        if source and not source.startswith((".", "/", "~")):
            mounts[target] = source
    return mounts


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    """Dependency -> condition (the short list form means service_started)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def command_words(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(word) for word in command]


def test_the_stack_has_its_services_and_the_producer_only_in_the_demo_profile(services: dict[str, Any]) -> None:
    assert set(SERVICES) <= set(services), f"missing: {set(SERVICES) - set(services)}"
    assert services["producer"].get("profiles") == ["demo"]  # no fake payments into a real deployment
    assert not [name for name, service in services.items() if name != "producer" and service.get("profiles")]
    producer_check = " ".join(services["producer"]["healthcheck"]["test"])
    words = command_words(services["producer"])
    heartbeat = words[words.index("--heartbeat-file") + 1]
    assert heartbeat in producer_check and "getmtime" in producer_check


def test_every_image_is_pinned_to_an_exact_release(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        assert PINNED_IMAGE.match(image), f"{name}: {image}"
    base = re.search(r"^FROM (\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert base and PINNED_IMAGE.match(base.group(1)), base


def test_kafka_runs_in_kraft_mode_without_zookeeper(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    env = environment_of(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_NODE_ID"]
    # The cluster id is the deployment's own, from deploy/.env: never a value fixed in the file.
    assert REQUIRED_VAR.match(env["CLUSTER_ID"]) and "KAFKA_CLUSTER_ID" in env["CLUSTER_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in env["KAFKA_LISTENERS"]
    for name, service in services.items():
        assert "zookeeper" not in name.lower()
        assert "zookeeper" not in str(service.get("image", "")).lower()
        assert not [key for key in environment_of(service) if "ZOOKEEPER" in key], name

    # One listener for the containers, one advertised to the host as 127.0.0.1:9092.
    advertised = dict(item.split("://", 1) for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert "127.0.0.1:9092" in advertised.values()
    inside = {address for address in advertised.values() if address.startswith("kafka:")}
    assert inside, "no listener advertised to the other containers"
    for name in ("code-location", "daemon", "producer"):
        assert environment_of(services[name])["PAYMENT_KAFKA_BOOTSTRAP"] in inside, name


def test_mysql_is_8_4_on_a_named_volume_with_the_init_scripts(compose: dict[str, Any]) -> None:
    mysql = compose["services"]["mysql"]
    assert mysql["image"].startswith("mysql:8.4.")
    mounts = named_volume_mounts(mysql)
    assert "/var/lib/mysql" in mounts
    assert mounts["/var/lib/mysql"] in (compose.get("volumes") or {})
    init_mounts = [v for v in mysql["volumes"] if isinstance(v, str) and ":/docker-entrypoint-initdb.d" in v]
    assert init_mounts, "deploy/mysql-init is not mounted into /docker-entrypoint-initdb.d"
    host_dir = REPO_ROOT / init_mounts[0].split(":", 1)[0]
    assert host_dir.resolve() == MYSQL_INIT_SCRIPT.parent.resolve()
    assert MYSQL_INIT_SCRIPT.is_file()


def test_every_published_port_is_bound_to_localhost(services: dict[str, Any]) -> None:
    published = []
    for name, service in services.items():
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"
            published.append(str(port))
    assert {"127.0.0.1:3000:3000", "127.0.0.1:9092:9092", "127.0.0.1:3306:3306"} <= set(published)


def test_kafka_and_mysql_have_healthchecks(services: dict[str, Any]) -> None:
    kafka_test = " ".join(services["kafka"]["healthcheck"]["test"])
    assert "kafka-broker-api-versions.sh" in kafka_test or "kafka-topics.sh" in kafka_test
    assert "mysqladmin ping" in " ".join(services["mysql"]["healthcheck"]["test"])


def test_services_wait_for_what_they_need(services: dict[str, Any]) -> None:
    for name in ("code-location", "webserver", "daemon"):
        assert depends_on(services[name]).get("mysql") == "service_healthy", name
    for name in ("webserver", "daemon"):
        assert depends_on(services[name]).get("code-location") == "service_healthy", name
    assert depends_on(services["daemon"]).get("scorer-secret") == "service_completed_successfully"
    assert depends_on(services["producer"]).get("kafka") == "service_healthy"
    # Waiting for health needs a healthcheck on the other side.
    for name, service in services.items():
        for dependency, condition in depends_on(service).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health"


def url_password(value: str) -> str | None:
    """The password part of a URL with credentials (`scheme://user:password@host...`), if any."""
    references: list[str] = []

    def mask(match: re.Match[str]) -> str:
        references.append(match.group(0))
        return f"\x00{len(references) - 1}\x00"

    credentials = URL_CREDENTIALS.match(ANY_VAR.sub(mask, value))
    if credentials is None:
        return None
    return re.sub(r"\x00(\d+)\x00", lambda m: references[int(m.group(1))], credentials["password"])


def test_no_literal_password_anywhere(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for key, value in environment_of(service).items():
            if "PASSWORD" in key:
                assert REQUIRED_VAR.match(value), f"{name}.{key} must be ${{VAR:?...}}, is {value!r}"
            password = url_password(value)
            if password is not None:
                assert REQUIRED_VAR.match(password), f"{name}.{key} holds a password in a URL"
    # No password variable gets a default anywhere in the file either.
    assert not re.search(r"\$\{[A-Z0-9_]*PASSWORD[A-Z0-9_]*:?-", COMPOSE_FILE.read_text())


def secrets_of(service: Mapping[str, Any]) -> set[str]:
    """The password variables a service's environment refers to, directly or inside a URL."""
    text = " ".join(environment_of(service).values())
    return {name for name in ANY_VAR.findall(text) for name in [name[0]] if "PASSWORD" in name}


def test_each_service_gets_only_its_own_secrets(services: dict[str, Any]) -> None:
    expected = {
        "kafka": set(),
        # mysql creates the users on its first start, so it knows their passwords.
        "mysql": {
            "MYSQL_ROOT_PASSWORD",
            "PAYMENT_DB_PASSWORD",
            "PAYMENT_CONSOLE_DB_PASSWORD",
            "DAGSTER_MYSQL_PASSWORD",
        },
        # The console reaches the store as its own user.
        "console": {"PAYMENT_CONSOLE_DB_PASSWORD"},
        # Writes the scorer's URL into the secrets volume, and exits.
        "scorer-secret": {"PAYMENT_DB_PASSWORD"},
        # The Dagster processes reach their instance database, nothing else.
        "code-location": {"DAGSTER_MYSQL_PASSWORD"},
        "webserver": {"DAGSTER_MYSQL_PASSWORD"},
        "daemon": {"DAGSTER_MYSQL_PASSWORD"},
        "producer": set(),
    }
    assert {name: secrets_of(service) for name, service in services.items()} == expected
    for name in ("code-location", "webserver", "daemon", "producer"):
        assert "PAYMENT_DB_URL" not in environment_of(services[name]), name
    # The secrets volume is mounted by the service that writes it, and by no other service.
    holders = {name for name, service in services.items() if "secrets" in named_volume_mounts(service).values()}
    assert holders == {"scorer-secret"}


def test_runs_get_the_scorer_url_from_the_secrets_volume(compose: dict[str, Any], services: dict[str, Any]) -> None:
    """Each run's container (DockerRunLauncher) mounts the secrets volume the scorer-secret service
    writes, and finds the URL's file where the entry point reads it."""
    launcher = yaml.safe_load(DAGSTER_YAML.read_text())["run_launcher"]["config"]
    volumes = {(entry.split(":")[0], entry.split(":")[1]) for entry in launcher["container_kwargs"]["volumes"]}
    declared = {key: spec.get("name") for key, spec in (compose["volumes"] or {}).items() if spec}
    assert (declared["secrets"], SECRETS_IN_IMAGE) in volumes
    assert (declared["payment_home"], PAYMENT_HOME_IN_IMAGE) in volumes
    assert (declared["dagster_storage"], f"{DAGSTER_HOME_IN_IMAGE}/storage") in volumes
    command = " ".join(command_words(services["scorer-secret"]))
    written = re.search(r"> (\S+)", command)
    assert written is not None and written.group(1).startswith(SECRETS_IN_IMAGE + "/")
    assert f"PAYMENT_DB_URL_FILE={written.group(1)}" in launcher["env_vars"]
    assert "umask 077" in command


def test_runs_are_containers_that_a_stop_reaches(compose: dict[str, Any], services: dict[str, Any]) -> None:
    config = yaml.safe_load(DAGSTER_YAML.read_text())
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    settings = launcher["config"]
    assert settings["network"] == compose["networks"]["default"]["name"]
    kwargs = settings["container_kwargs"]
    assert kwargs["init"] is True  # SIGTERM reaches the run worker, whatever its PID
    assert kwargs["stop_timeout"] >= 30  # the scorer commits within 10 s
    assert kwargs["labels"]["com.docker.compose.project"] == compose["name"]
    # The runs are launched in the code location's image, and with the settings the daemon passes by name.
    code_location = environment_of(services["code-location"])
    assert code_location["DAGSTER_CURRENT_IMAGE"] == services["code-location"]["image"]
    daemon = environment_of(services["daemon"])
    for name in settings["env_vars"]:
        if "=" not in name:
            assert name in daemon, f"the daemon cannot pass {name} to runs"
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["daemon"]["volumes"]


def test_dagster_services_share_instance_config_registry_and_image(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    envs = {name: environment_of(services[name]) for name in DAGSTER_SERVICES}
    for var in (*DAGSTER_MYSQL_VARS, "DAGSTER_MYSQL_PORT"):
        values = {env.get(var) for env in envs.values()}
        assert len(values) == 1 and None not in values, f"{var} differs or is missing: {values}"
    assert envs["daemon"]["DAGSTER_MYSQL_HOST"] == "mysql"
    # The code location (sensor) and the daemon (which hands them to runs) share the platform's settings.
    for var in ("PAYMENT_HOME", "PAYMENT_KAFKA_BOOTSTRAP", "PAYMENT_CONSUMER_GROUP", "PAYMENT_SCORERS"):
        assert envs["code-location"][var] == envs["daemon"][var], var
    assert envs["code-location"]["PAYMENT_HOME"] == PAYMENT_HOME_IN_IMAGE

    mounts = {name: named_volume_mounts(services[name]) for name in DAGSTER_SERVICES}
    assert mounts["code-location"][PAYMENT_HOME_IN_IMAGE] == "payment_home"
    storage_volumes = {m.get(f"{DAGSTER_HOME_IN_IMAGE}/storage") for m in mounts.values()}
    assert storage_volumes == {"dagster_storage"}
    declared = compose.get("volumes") or {}
    assert {"payment_home", "dagster_storage", "secrets"} <= set(declared)

    # Same image, so the same DAGSTER_HOME with the same dagster.yaml.
    images = {services[name].get("image") for name in (*DAGSTER_SERVICES, "producer", "scorer-secret")}
    assert len(images) == 1 and None not in images
    assert all("build" in services[name] for name in (*DAGSTER_SERVICES, "producer", "scorer-secret"))

    # The webserver and the daemon load the gRPC code location through the deploy workspace.
    for name in ("webserver", "daemon"):
        words = command_words(services[name])
        assert words[words.index("-w") + 1] == DEPLOY_WORKSPACE_IN_IMAGE, name
    assert command_words(services["webserver"])[:1] == ["dagster-webserver"]
    assert command_words(services["daemon"])[:2] == ["dagster-daemon", "run"]
    assert command_words(services["producer"])[:4] == ["payment-platform", "produce", "--rate", "50"]


def test_dagster_yaml_reads_exactly_what_compose_provides(services: dict[str, Any]) -> None:
    instance_vars = set(re.findall(r"env:\s*([A-Z0-9_]+)", DAGSTER_YAML.read_text()))
    assert instance_vars == {*DAGSTER_MYSQL_VARS, "DAGSTER_MYSQL_PORT"}
    for name in DAGSTER_SERVICES:
        assert instance_vars <= set(environment_of(services[name])), name


def test_env_example_lists_every_required_variable_with_placeholders() -> None:
    required = {match[0] for match in ANY_VAR.findall(COMPOSE_FILE.read_text()) if match[1].startswith(":?")}
    example = parse_env_file(ENV_EXAMPLE)
    assert required <= set(example), f"missing from deploy/.env.example: {required - set(example)}"
    for key, value in example.items():
        if "PASSWORD" in key:
            assert value.startswith("change-me"), f"{key} must be a placeholder"
    assert example["KAFKA_CLUSTER_ID"] == ""  # generated per deployment: compose refuses it empty
    ignored = (REPO_ROOT / ".gitignore").read_text().split()
    assert ".env" in ignored and "deploy/.env" in ignored
    assert not (REPO_ROOT / ".env.example").exists()  # a root .env would be read by every Dagster command


def parse_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def run_entrypoint(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *command],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    "variable", ["MYSQL_ROOT_PASSWORD", "DAGSTER_MYSQL_PASSWORD", "PAYMENT_DB_PASSWORD", "PAYMENT_DB_URL"]
)
def test_entrypoint_refuses_a_placeholder_password(variable: str) -> None:
    value = "mysql+pymysql://scorer:change-me@mysql/payments" if variable == "PAYMENT_DB_URL" else "change-me"
    refused = run_entrypoint({variable: value, "OTHER_PASSWORD": "a-real-one"}, "echo", "started")
    assert refused.returncode != 0 and "started" not in refused.stdout
    assert f"still a change-me placeholder: {variable} " in refused.stderr
    assert "a-real-one" not in refused.stderr and "scorer:" not in refused.stderr  # names, never values


def test_entrypoint_reads_a_secret_from_its_file_and_runs_the_command(tmp_path: Path) -> None:
    secret = tmp_path / "scorer_db_url"
    secret.write_text("mysql+pymysql://scorer:s3cret@mysql:3306/payments")
    started = run_entrypoint(
        {"PAYMENT_DB_URL_FILE": str(secret), "DAGSTER_MYSQL_PASSWORD": "a-real-one"},
        "sh",
        "-c",
        'echo "url=$PAYMENT_DB_URL"',
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "url=mysql+pymysql://scorer:s3cret@mysql:3306/payments"
    missing = run_entrypoint({"PAYMENT_DB_URL_FILE": str(tmp_path / "nope")}, "true")
    assert missing.returncode != 0 and "cannot be read" in missing.stderr


def test_every_container_starts_through_the_entrypoint(services: dict[str, Any]) -> None:
    assert re.search(r'^ENTRYPOINT \["payment-platform-entrypoint"\]', DOCKERFILE.read_text(), re.MULTILINE)
    mysql = services["mysql"]
    assert mysql["entrypoint"][:2] == ["/usr/local/bin/payment-platform-entrypoint", "docker-entrypoint.sh"]
    assert "./deploy/entrypoint.sh:/usr/local/bin/payment-platform-entrypoint:ro" in mysql["volumes"]
    for name, service in services.items():
        if name not in ("kafka", "mysql"):
            assert "entrypoint" not in service, f"{name} must keep the image's entry point"


def compose_cli() -> tuple[list[str] | None, str]:
    """`docker compose` (v2), and what was found instead when it is missing."""
    found = "no compose CLI"
    for candidate in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(candidate[0]) is None:
            continue
        try:
            probe = subprocess.run([*candidate, "version"], capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode != 0:
            continue
        version = re.search(r"(\d+)\.(\d+)\.(\d+)", probe.stdout)
        if version and int(version.group(1)) >= 2:
            return candidate, probe.stdout.strip()
        found = f"`{' '.join(candidate)}` {version.group(0) if version else '(unknown version)'}"
    return None, found


def test_compose_cli_accepts_the_file(tmp_path: Path) -> None:
    cli, found = compose_cli()
    if cli is None:
        if found == "no compose CLI":
            pytest.skip("no compose CLI is installed: the file is checked by parsing only")
        pytest.fail(
            f"Compose v2 is required (`docker compose`, as the README says); found {found}, a Compose v1 "
            "that rejects the file's top-level `name:`. Install the docker-compose-plugin, or uninstall it."
        )
    env_file = tmp_path / "stack.env"
    example = ENV_EXAMPLE.read_text().replace("KAFKA_CLUSTER_ID=\n", "KAFKA_CLUSTER_ID=MkU3OEVBNTcwNTJENDM2Qk\n")
    env_file.write_text(example.replace("change-me", "not-a-placeholder"))
    # Only the --env-file may supply the stack's variables.
    clean_env = {k: v for k, v in os.environ.items() if k not in parse_env_file(ENV_EXAMPLE)}
    base = [*cli, "--project-directory", str(REPO_ROOT), "-f", str(COMPOSE_FILE)]

    result = subprocess.run(
        [*base, "--env-file", str(env_file), "--profile", "demo", "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    # Without the passwords compose refuses to start.
    (tmp_path / "empty.env").write_text("")
    refused = subprocess.run(
        [*base, "--env-file", str(tmp_path / "empty.env"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env,
        check=False,
    )
    assert refused.returncode != 0
    assert "PASSWORD" in refused.stderr or "KAFKA_CLUSTER_ID" in refused.stderr


# ---------------------------------------------------------------------------------------------
# Dockerfile, workspaces, dagster.yaml
# ---------------------------------------------------------------------------------------------


def test_dockerfile_builds_a_non_root_code_location_image() -> None:
    text = DOCKERFILE.read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    instructions = [" ".join(part.split()) for part in "\n".join(lines).replace("\\\n", " ").splitlines()]
    instructions = [line for line in instructions if line]
    assert instructions[0].startswith("FROM python:3.11.")
    # Installed in place: load_from_defs_folder finds the defs folder through pyproject.toml.
    assert re.search(r'^RUN pip install -e "\.\[deploy\]"$', text, re.MULTILINE)
    assert f"DAGSTER_HOME={DAGSTER_HOME_IN_IMAGE}" in text
    assert f"PAYMENT_HOME={PAYMENT_HOME_IN_IMAGE}" in text
    assert re.search(r"^COPY deploy/dagster\.yaml \$\{DAGSTER_HOME\}/dagster\.yaml$", text, re.MULTILINE)
    assert re.search(rf"^COPY deploy/workspace\.yaml {DEPLOY_WORKSPACE_IN_IMAGE}$", text, re.MULTILINE)
    assert re.search(r"^WORKDIR /", text, re.MULTILINE)
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    cmd = next(line for line in instructions if line.startswith("CMD"))
    assert "code-server" in cmd and DEFINITIONS_MODULE in cmd and '"4000"' in cmd
    # The build context is an allow-list: .env files and local state never reach the image.
    ignore = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip()]
    ignore = [line for line in ignore if not line.startswith("#")]
    assert ignore[0] == "*" and not [line for line in ignore if line.startswith("!") and ".env" in line]


def test_code_location_serves_what_the_deploy_workspace_expects(services: dict[str, Any]) -> None:
    deploy = ensure_workspace_config(yaml.safe_load(DEPLOY_WORKSPACE.read_text()), str(DEPLOY_WORKSPACE))
    (entry,) = deploy["load_from"]
    server = entry["grpc_server"]
    assert (server["host"], server["port"], server["location_name"]) == (
        "code-location",
        4000,
        CODE_LOCATION_NAME,
    )
    words = command_words(services["code-location"])
    assert words[:3] == ["dagster", "code-server", "start"]
    assert words[words.index("-p") + 1] == "4000"
    assert words[words.index("-h") + 1] == "0.0.0.0"
    assert words[words.index("-m") + 1] == DEFINITIONS_MODULE
    assert words[words.index("--location-name") + 1] == CODE_LOCATION_NAME
    assert "grpc-health-check" in services["code-location"]["healthcheck"]["test"]


def test_code_location_command_serves_the_definitions_over_grpc(services: dict[str, Any], tmp_path: Path) -> None:
    """The compose command and healthcheck of `code-location`, run here as written (only host and
    port swapped), serve the definitions; the deploy workspace's entry loads them."""
    port = str(free_port())
    command = command_words(services["code-location"])
    command[command.index("-h") + 1] = "127.0.0.1"
    command[command.index("-p") + 1] = port
    probe = [str(word) for word in services["code-location"]["healthcheck"]["test"][1:]]
    probe[probe.index("-p") + 1] = port
    workspace = yaml.safe_load(DEPLOY_WORKSPACE.read_text())
    workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=int(port))
    (tmp_path / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").touch()
    # A clean directory (no dagster.yaml or .env to pick up) and an embedded instance.
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "PAYMENT_HOME": str(tmp_path / "state")}
    # The commands are the image's console scripts: those of the interpreter running the tests.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"

    with (tmp_path / "code-server.log").open("wb") as log:
        server = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(probe, cwd=tmp_path, env=env, capture_output=True, check=False).returncode:
            assert server.poll() is None, (tmp_path / "code-server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "code location not healthy within 120 s"
            time.sleep(1)
        validated = subprocess.run(
            ["dagster", "definitions", "validate", "-w", str(tmp_path / "workspace.yaml")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert validated.returncode == 0, validated.stdout[-3000:] + validated.stderr[-3000:]
        assert f"Validation successful for code location {CODE_LOCATION_NAME}" in validated.stdout + validated.stderr
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # the server and the code process it spawned
        server.wait(timeout=30)


def test_local_workspace_loads_the_definitions_module() -> None:
    local = ensure_workspace_config(yaml.safe_load(LOCAL_WORKSPACE.read_text()), str(LOCAL_WORKSPACE))
    (entry,) = local["load_from"]
    module = entry["python_module"]
    assert module["module_name"] == DEFINITIONS_MODULE
    assert module.get("attribute", "defs") == "defs"
    assert module.get("location_name") == CODE_LOCATION_NAME
    assert module.get("working_directory", ".") == "."


def test_dagster_yaml_is_mysql_storage_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = yaml.safe_load(DAGSTER_YAML.read_text())
    assert list(config["storage"]) == ["mysql"]
    mysql_db = config["storage"]["mysql"]["mysql_db"]
    assert mysql_db == {
        "username": {"env": "DAGSTER_MYSQL_USER"},
        "password": {"env": "DAGSTER_MYSQL_PASSWORD"},
        "hostname": {"env": "DAGSTER_MYSQL_HOST"},
        "db_name": {"env": "DAGSTER_MYSQL_DB"},
        "port": {"env": "DAGSTER_MYSQL_PORT"},
    }
    assert "mysql_url" not in config["storage"]["mysql"]
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert 1 <= config["run_coordinator"]["config"]["max_concurrent_runs"] <= 16
    assert config["run_launcher"]["class"] == "DockerRunLauncher"
    assert config["telemetry"] == {"enabled": False}

    # And Dagster itself accepts it (schema validation of the whole file).
    for var in DAGSTER_MYSQL_VARS:
        monkeypatch.setenv(var, "x")
    monkeypatch.setenv("DAGSTER_MYSQL_PORT", "3306")
    validated, _ = dagster_instance_config(str(DAGSTER_YAML.parent))
    assert validated["storage"]["mysql"]["mysql_db"]["port"] == {"env": "DAGSTER_MYSQL_PORT"}


# ---------------------------------------------------------------------------------------------
# Against the real MariaDB server
# ---------------------------------------------------------------------------------------------

SMOKE_ASSET = dg.AssetKey("deployment_smoke_payments")
SMOKE_CHECK = "amounts_positive"


@dg.asset(key=SMOKE_ASSET, check_specs=[dg.AssetCheckSpec(SMOKE_CHECK, asset=SMOKE_ASSET)])
def deployment_smoke_payments() -> dg.MaterializeResult:
    amounts = [12.5, 80.0, 3.2]
    return dg.MaterializeResult(
        metadata={"payments": len(amounts)},
        check_results=[dg.AssetCheckResult(check_name=SMOKE_CHECK, passed=all(a > 0 for a in amounts))],
    )


@pytest.mark.integration
def test_dagster_instance_records_runs_in_mysql(
    mysql_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sa.make_url(mysql_database)
    monkeypatch.setenv("DAGSTER_MYSQL_USER", url.username or "")
    monkeypatch.setenv("DAGSTER_MYSQL_PASSWORD", url.password or "")
    monkeypatch.setenv("DAGSTER_MYSQL_HOST", url.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_MYSQL_PORT", str(url.port or 3306))
    monkeypatch.setenv("DAGSTER_MYSQL_DB", url.database or "")
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(DAGSTER_YAML, dagster_home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "MySQLRunStorage"
        result = dg.materialize([deployment_smoke_payments], instance=instance)
        assert result.success
        run_id = result.run_id

    with dg.DagsterInstance.get() as fresh:
        run = fresh.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        materialization = fresh.get_latest_materialization_event(SMOKE_ASSET)
        assert materialization is not None and materialization.run_id == run_id
        check_key = dg.AssetCheckKey(SMOKE_ASSET, SMOKE_CHECK)
        execution = fresh.event_log_storage.get_latest_asset_check_execution_by_key([check_key])[check_key]
        assert execution.run_id == run_id
        assert execution.status == AssetCheckExecutionRecordStatus.SUCCEEDED

    engine = sa.create_engine(mysql_database)
    try:
        with engine.connect() as conn:
            status = conn.execute(sa.text("SELECT status FROM runs WHERE run_id = :r"), {"r": run_id}).scalar()
            events = conn.execute(
                sa.text("SELECT COUNT(*) FROM event_logs WHERE run_id = :r"), {"r": run_id}
            ).scalar_one()
            checks = conn.execute(sa.text("SELECT COUNT(*) FROM asset_check_executions")).scalar_one()
    finally:
        engine.dispose()
    assert status == "SUCCESS"
    assert events > 0
    assert checks == 1


@pytest.fixture()
def init_script_names(mysql_server_url: str) -> Iterator[dict[str, str]]:
    """Unique database and user names for one run of the init script; all dropped afterwards."""
    suffix = uuid.uuid4().hex[:10]
    names = {
        "PAYMENT_DB_NAME": f"pp_init_{suffix}_payments",
        "PAYMENT_DB_USER": f"pp_scorer_{suffix}",
        "PAYMENT_DB_PASSWORD": "sc'or\\er-$(x)-`y`",
        "DAGSTER_MYSQL_DB": f"pp_init_{suffix}_dagster",
        "DAGSTER_MYSQL_USER": f"pp_dagster_{suffix}",
        "DAGSTER_MYSQL_PASSWORD": "dag\"ster'pw",
        "PAYMENT_CONSOLE_DB_USER": f"pp_console_{suffix}",
        "PAYMENT_CONSOLE_DB_PASSWORD": "con'sole\\-$(z)",
    }
    try:
        yield names
    finally:
        with admin_connection(mysql_server_url) as conn, conn.cursor() as cur:
            for db in (names["PAYMENT_DB_NAME"], names["DAGSTER_MYSQL_DB"]):
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
            for user in (names["PAYMENT_DB_USER"], names["DAGSTER_MYSQL_USER"], names["PAYMENT_CONSOLE_DB_USER"]):
                cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def admin_connection(server_url: str, **overrides: Any) -> pymysql.Connection:
    url = sa.make_url(server_url)
    params: dict[str, Any] = {
        "host": url.host or "127.0.0.1",
        "port": url.port or 3306,
        "user": url.username or "root",
        "password": url.password or "",
        "autocommit": True,
    }
    params.update(overrides)
    return pymysql.connect(**params)


def denied(conn: pymysql.Connection, statement: str) -> bool:
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    except pymysql.err.OperationalError as exc:  # 1142/1044/1045: access denied
        return exc.args[0] in (1044, 1045, 1142, 1227)
    except pymysql.err.ProgrammingError as exc:
        return exc.args[0] in (1044, 1142)
    return False


@pytest.mark.integration
def test_mysql_init_script_creates_least_privilege_users(
    mysql_server_url: str, init_script_names: dict[str, str], tmp_path: Path
) -> None:
    # The official image sources the script with docker_process_sql defined: stand in for it by
    # capturing the SQL, then run that SQL as root on the real server.
    captured = tmp_path / "init.sql"
    shim = f'set -eo pipefail; docker_process_sql() {{ cat > "{captured}"; }}; . "{MYSQL_INIT_SCRIPT}"'
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **init_script_names}
    subprocess.run(["bash", "-c", shim], env=env, check=True, capture_output=True, timeout=60)
    sql = captured.read_text()
    assert init_script_names["PAYMENT_DB_PASSWORD"] not in sql  # only ever as an escaped literal
    assert init_script_names["PAYMENT_CONSOLE_DB_PASSWORD"] not in sql

    with (
        admin_connection(mysql_server_url, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(sql)
        while cur.nextset():
            pass

    payments, dagster = init_script_names["PAYMENT_DB_NAME"], init_script_names["DAGSTER_MYSQL_DB"]
    scorer = admin_connection(
        mysql_server_url,
        user=init_script_names["PAYMENT_DB_USER"],
        password=init_script_names["PAYMENT_DB_PASSWORD"],
        database=payments,
    )
    with scorer, scorer.cursor() as cur:
        cur.execute("CREATE TABLE scored (id BIGINT PRIMARY KEY, status VARCHAR(16))")
        cur.execute("CREATE INDEX scored_status ON scored (status)")
        cur.execute("INSERT INTO scored VALUES (1, 'REVIEW')")
        cur.execute("UPDATE scored SET status = 'DECLINED' WHERE id = 1")
        cur.execute("SELECT status FROM scored")
        assert cur.fetchall() == (("DECLINED",),)
        cur.execute("DELETE FROM scored WHERE id = 1")  # a report partition replaces its rows
        assert denied(scorer, "DROP TABLE scored")
        assert denied(scorer, "ALTER TABLE scored ADD COLUMN extra INT")
        assert denied(scorer, f"GRANT SELECT ON `{payments}`.* TO '{init_script_names['DAGSTER_MYSQL_USER']}'@'%'")
        assert denied(scorer, f"CREATE TABLE `{dagster}`.intruder (id INT)")

    console = admin_connection(
        mysql_server_url,
        user=init_script_names["PAYMENT_CONSOLE_DB_USER"],
        password=init_script_names["PAYMENT_CONSOLE_DB_PASSWORD"],
        database=payments,
    )
    with console, console.cursor() as cur:  # reads decisions, keeps its reviews; no more
        cur.execute("SELECT COUNT(*) FROM scored")
        cur.execute("CREATE TABLE reviews_probe (id INT)")
        cur.execute("INSERT INTO reviews_probe VALUES (1)")
        assert denied(console, "DROP TABLE scored")
        assert denied(console, f"CREATE TABLE `{dagster}`.intruder (id INT)")

    dagster_user = admin_connection(
        mysql_server_url,
        user=init_script_names["DAGSTER_MYSQL_USER"],
        password=init_script_names["DAGSTER_MYSQL_PASSWORD"],
        database=dagster,
    )
    with dagster_user, dagster_user.cursor() as cur:
        cur.execute("CREATE TABLE runs_probe (id INT)")
        cur.execute("ALTER TABLE runs_probe ADD COLUMN note VARCHAR(8)")
        cur.execute("DROP TABLE runs_probe")
        assert denied(dagster_user, f"SELECT * FROM `{payments}`.scored")
