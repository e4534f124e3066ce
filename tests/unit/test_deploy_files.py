"""The deployment files, checked with the real tools that run without a container runtime:
hadolint for the Dockerfile, the compose-spec JSON Schema for docker-compose.yml,
Kubernetes' own schemas (kubernetes-validate, strict) for deploy/k8s, nginx itself for
the load balancer config, and the gateway's own loader for every config they carry.
Plus the cross-references no schema sees: names, ports, paths and metrics that must agree."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.observe import metrics
from gateway.providers.snapshots import build_snapshot
from tests.support.servers import ROOT

K8S = ROOT / "deploy" / "k8s"
MANIFESTS = ["configmap.yaml", "secret.yaml", "deployment.yaml", "service.yaml", "pdb.yaml", "networkpolicy.yaml",
             "ingress.yaml"]
CONFIG_DIR = "/etc/gateway"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def tool(name: str) -> str:
    """A command-line tool: from the test extra (next to this Python) or the system (nginx)."""
    found = (shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
             or shutil.which(name, path="/usr/sbin:/sbin"))
    assert found, f"{name} is not installed: pip install -e '.[test]'"
    return found


# --- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint():
    result = subprocess.run([tool("hadolint"), "--failure-threshold", "info", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_non_root_without_build_tools_and_checks_health():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2 and " AS build" in stages[0]
    final = stages[1]
    assert re.search(r"^USER 10001:10001$", final, re.M)
    assert "COPY --from=build /opt/gateway /opt/gateway" in final
    assert not re.search(r"apt-get|build-essential|gcc|\bmake\b", text)  # wheels only, in both stages
    assert re.search(r"HEALTHCHECK .*\n.*http://127\.0\.0\.1:8080/health", final)
    assert f"--routes\", \"{CONFIG_DIR}/routes.yaml\"" in final and f"--providers\", \"{CONFIG_DIR}/providers.yaml\"" in final


def test_the_image_gets_every_file_the_package_needs():
    """The build stage copies pyproject.toml, README.md and gateway/, and installs from
    them: every data file under gateway/ must be declared as package data, or the
    image would start without it (packs, the operator's page)."""
    text = (ROOT / "Dockerfile").read_text()
    build_stage = re.split(r"^FROM ", text, flags=re.M)[1]
    copied = {source for line in re.findall(r"^COPY (?!--)(.+)$", build_stage, re.M) for source in line.split()[:-1]}
    assert copied == {"pyproject.toml", "README.md", "gateway"}
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*") + 1:] and all(f"!{name}" in " ".join(ignored) for name in copied)
    import tomllib
    from fnmatch import fnmatch

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gateway"]
    package = ROOT / "gateway"
    data = [p.relative_to(package).as_posix() for p in package.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    missing = [name for name in data if not any(fnmatch(name, glob) for glob in globs)]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


# --- docker-compose.yml ------------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec_schema():
    """The compose-spec schema as check-jsonschema vendors it (its `vendor.compose-spec`)."""
    from importlib.resources import files

    import jsonschema

    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(load(ROOT / "docker-compose.yml"))]
    assert not errors
    # The schema is strict enough to notice a mistake: an unknown key is refused.
    broken = load(ROOT / "docker-compose.yml")
    broken["services"]["lb"]["restart_policy"] = "always"
    assert not validator.is_valid(broken)


def test_compose_runs_two_replicas_behind_a_balancer_with_redis_prometheus_and_grafana():
    compose = load(ROOT / "docker-compose.yml")
    services = compose["services"]
    assert {"gateway-1", "gateway-2", "lb", "redis", "prometheus", "grafana"} <= set(services)
    replicas = [services["gateway-1"], services["gateway-2"]]
    for replica in replicas:
        assert replica["build"] == "."
        assert replica["environment"]["REDIS_URL"].startswith("redis://redis:")
        assert replica["depends_on"]["redis"]["condition"] == "service_healthy"
        # The folder is mounted, not the files, so an edit that replaces a file still reaches it.
        assert [(v["type"], v["source"], v["target"], v["read_only"]) for v in replica["volumes"]] == [
            ("bind", ".", CONFIG_DIR, True)]
    assert "healthcheck" in services["redis"]
    # One ledger for the fleet: PostgreSQL on a named volume, each replica waits for it.
    for replica in replicas:
        assert replica["environment"]["DATABASE_URL"].startswith("postgresql://gateway:")
        assert "@postgres:5432/" in replica["environment"]["DATABASE_URL"]
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    (data,) = services["postgres"]["volumes"]
    assert data["type"] == "volume" and data["source"] in compose["volumes"]
    assert {name: dep["condition"] for name, dep in services["lb"]["depends_on"].items()} == {
        "gateway-1": "service_healthy", "gateway-2": "service_healthy"}
    # Every file compose mounts exists in the repository.
    for service in services.values():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict) and volume.get("type") == "volume":
                continue  # a named volume, not a file of the repository
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            assert (ROOT / source).exists(), source

    nginx = (ROOT / "deploy/nginx/nginx.conf").read_text()
    assert re.findall(r"server (gateway-\d):8080", nginx) == ["gateway-1", "gateway-2"]
    assert "proxy_buffering off" in nginx

    prometheus = load(ROOT / "deploy/prometheus/prometheus.yml")
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert sorted(job["static_configs"][0]["targets"]) == ["gateway-1:8080", "gateway-2:8080"]


def test_the_balancer_config_runs_in_nginx_spreads_requests_and_streams_unbuffered(tmp_path, gateway, upstream):
    """deploy/nginx/nginx.conf, run by a real nginx in front of two real gateways."""
    import time

    import httpx

    from tests.support.configs import ECHO_PROVIDER, openai_provider
    from tests.support.servers import free_port

    base, _ = upstream
    providers = {"up": openai_provider(base, ["slow-1"]), "echo": ECHO_PROVIDER}
    routes = {"routes": {"echo": {"targets": ["echo/echo-1"]}, "slow": {"targets": ["up/slow-1"]}}}
    first = gateway(routes, providers)
    second = gateway({"routes": {**routes["routes"], "only-second": {"targets": ["echo/echo-1"]}}}, providers)
    port = free_port()
    conf = (ROOT / "deploy/nginx/nginx.conf").read_text()
    conf = conf.replace("server gateway-1:8080", f"server {first.removeprefix('http://')}")
    conf = conf.replace("server gateway-2:8080", f"server {second.removeprefix('http://')}")
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    temp = "".join(f"    {kind}_temp_path {tmp_path}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = conf.replace("http {\n", "http {\n" + temp, 1)
    (tmp_path / "nginx.conf").write_text(conf)
    command = [tool("nginx"), "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
               "-g", f"daemon off; pid {tmp_path}/nginx.pid;"]
    assert subprocess.run([*command, "-t"], capture_output=True, text=True).returncode == 0
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None, "nginx did not start"
                time.sleep(0.05)
        served_by = set()
        for _ in range(10):
            answer = httpx.post(f"{url}/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "x"}]})
            assert answer.status_code == 200
            served_by.add(answer.headers["x-gateway-config"])
        assert len(served_by) == 2  # both replicas answered
        started = time.monotonic()
        arrivals = []
        body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "a b c"}]}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=10) as response:
            for line in response.iter_lines():
                if line:
                    arrivals.append((time.monotonic() - started, line))
        assert arrivals[-1][1] == "data: [DONE]"
        assert arrivals[-1][0] - arrivals[0][0] > 0.9  # chunks arrived as they were made, not at the end
    finally:
        process.terminate()
        process.wait(10)


# --- Grafana -------------------------------------------------------------------------------------


def dashboard() -> dict:
    return json.loads((ROOT / "deploy/grafana/dashboards/gateway.json").read_text())


def exported_names() -> set[str]:
    names = set()
    for value in vars(metrics).values():
        if hasattr(value, "_name") and hasattr(value, "_type"):
            name = value._name
            if value._type == "counter":
                names.add(name + "_total")
            elif value._type == "histogram":
                names |= {name + "_bucket", name + "_sum", name + "_count"}
            else:
                names.add(name)
    return names


def test_dashboard_queries_only_metrics_the_gateway_exports_and_covers_the_topics():
    board = dashboard()
    panels = [p for p in board["panels"] if p["type"] != "row"]
    expressions = [t["expr"] for p in panels for t in p["targets"]]
    used = {name for expr in expressions for name in re.findall(r"\bgateway_[a-z_]+", expr)}
    assert used <= exported_names(), used - exported_names()
    provisioned = load(ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    assert {p["datasource"]["uid"] for p in panels} == {provisioned["uid"]}
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("requests", "duration", "errors", "fallbacks", "tokens", "spend", "reloads", "circuit"):
        assert topic in titles, topic
    for expr in expressions:  # balanced brackets: a cheap guard against a broken edit
        for opening, closing in ("()", "{}", "[]"):
            assert expr.count(opening) == expr.count(closing), expr
    providers = load(ROOT / "deploy/grafana/provisioning/dashboards/gateway.yml")["providers"]
    compose = load(ROOT / "docker-compose.yml")["services"]["grafana"]["volumes"]
    assert any(v.endswith(":" + providers[0]["options"]["path"] + ":ro") for v in compose)


# --- Kubernetes ----------------------------------------------------------------------------------


def test_kubernetes_manifests_validate_strictly_against_kubernetes_schemas():
    result = subprocess.run([tool("kubernetes-validate"), "--strict", *(str(K8S / m) for m in MANIFESTS)],
                            capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count(" passed ") == len(MANIFESTS), output


def test_kustomization_lists_every_manifest():
    assert sorted(load(K8S / "kustomization.yaml")["resources"]) == sorted(MANIFESTS)


def test_deployment_probes_config_volume_secret_and_disruption_budget_agree():
    deployment = load(K8S / "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port_names == {"http": 8080}
    # The ConfigMap is mounted as a directory (never subPath, which is not updated) where the image reads it.
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "config"]
    assert mount["mountPath"] == CONFIG_DIR and "subPath" not in mount
    (volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    configmap = load(K8S / "configmap.yaml")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert set(configmap["data"]) == {"routes.yaml", "providers.yaml"}
    secret = load(K8S / "secret.yaml")
    assert {"secretRef": {"name": secret["metadata"]["name"]}} in container["envFrom"]
    # The fleet's database comes from the Secret, never from a plain value in the manifest.
    (database,) = [e for e in container["env"] if e["name"] == "DATABASE_URL"]
    assert database["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "DATABASE_URL"}
    assert secret["stringData"]["DATABASE_URL"].startswith("postgresql://")
    # Non-root with a read-only root: the only writable place is the /tmp emptyDir.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    # The pod is given longer than preStop plus the gateway's own graceful timeout.
    env = {e["name"]: e.get("value") for e in container["env"]}
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + int(env["GATEWAY_GRACEFUL_TIMEOUT"])
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pdb = load(K8S / "pdb.yaml")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    service = load(K8S / "service.yaml")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_configmap_files_are_a_valid_gateway_config(tmp_path):
    configmap = load(K8S / "configmap.yaml")
    for name, text in configmap["data"].items():
        (tmp_path / name).write_text(text)
    snapshot = build_snapshot(str(tmp_path / "routes.yaml"), str(tmp_path / "providers.yaml"))
    assert {"echo", "gpt-4o-mini", "embed"} <= set(snapshot.routes)


def test_compose_passes_every_key_the_shipped_providers_read_and_the_admin_key():
    """Each ${VAR} of the shipped providers.yaml reaches the replicas from the .env file."""
    compose = load(ROOT / "docker-compose.yml")
    lines = [line for line in (ROOT / "providers.yaml").read_text().splitlines() if not line.lstrip().startswith("#")]
    needed = set(re.findall(r"\$\{([A-Z0-9_]+)", "\n".join(lines))) | {"GATEWAY_ADMIN_KEY"}
    assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"} <= needed
    for name in ("gateway-1", "gateway-2"):
        environment = compose["services"][name]["environment"]
        missing = {var for var in needed if not str(environment.get(var, "")).startswith("${" + var)}
        assert not missing, f"{name} does not pass {sorted(missing)}"


def test_docker_compose_config_accepts_the_file(tmp_path):
    """`docker compose config` resolves the file with a .env beside it (when Docker Compose is installed)."""
    import shutil
    import subprocess

    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("Docker Compose is not installed here (no `docker compose` plugin)")
    env_file = tmp_path / ".env"
    env_file.write_text("ANTHROPIC_API_KEY=sk-ant-from-env-file\nGATEWAY_ADMIN_KEY=admin-from-env-file\n")
    result = subprocess.run([docker, "compose", "--env-file", str(env_file), "-f", str(ROOT / "docker-compose.yml"),
                             "config", "--format", "json"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)["services"]["gateway-1"]
    assert resolved["environment"]["ANTHROPIC_API_KEY"] == "sk-ant-from-env-file"
    assert resolved["environment"]["GATEWAY_ADMIN_KEY"] == "admin-from-env-file"
    assert resolved["volumes"][0]["target"] == CONFIG_DIR


def test_k8s_pods_are_not_exposed_bare_and_say_where_traces_and_redis_go():
    deployment = load(K8S / "deployment.yaml")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    names = {e["name"] for e in container["env"]}
    assert {"OTEL_EXPORTER_OTLP_ENDPOINT", "REDIS_URL"} <= names
    assert "replicas > 1" in (K8S / "deployment.yaml").read_text()
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    policy = load(K8S / "networkpolicy.yaml")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"] and policy["spec"]["ingress"][0]["from"]
    ingress = load(K8S / "ingress.yaml")
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {load(K8S / "service.yaml")["metadata"]["name"]}
    assert all(p["path"] != "/metrics" for r in ingress["spec"]["rules"] for p in r["http"]["paths"])
