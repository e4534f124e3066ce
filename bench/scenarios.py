"""The benchmark's scenarios: what runs, against what, and how a missing feature is reported.

Each scenario starts its own gateway with its own config so a feature that has not landed
(its config is refused by `gateway validate`) is skipped with a note, and the others run.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import calls
import closed_loop
import gateway_config
import measure
import procs
import pyspy
import servers
import targets
from measure import Settings, Subject

NOT_AVAILABLE = "not yet available"


@dataclass
class Bench:
    """What every scenario shares: the mock, the scratch directory, the checkout, settings."""

    mock_url: str
    workdir: Path
    repo: Path
    settings: Settings
    quiet_wait: float = 60.0
    mock_pid: int = 0

    @property
    def server_cores(self) -> set[int]:
        return set(self.settings.server_cores)

    @property
    def all_cores(self) -> set[int]:
        return set(self.settings.server_cores | self.settings.load_cores)


def skipped(reason: str, detail: str = "") -> dict[str, Any]:
    return {"status": NOT_AVAILABLE, "note": reason, "detail": detail}


def prepare(bench: Bench, scenario: str) -> tuple[gateway_config.GatewayConfig | None, str]:
    """Write and validate the scenario's config; (config, "") or (None, why not)."""
    config = gateway_config.write(scenario, bench.mock_url, bench.workdir / "config")
    ok, message = gateway_config.validate(config, bench.repo)
    return (config, "") if ok else (None, message)


@contextmanager
def gateway(bench: Bench, config: gateway_config.GatewayConfig, workers: int = 1,
            cores: set[int] | None = None, env: dict[str, str] | None = None,
            name: str = "gateway") -> Iterator[tuple[procs.Proc, str, float]]:
    """A running gateway for the duration of a with-block."""
    argv = partial(servers.gateway_argv, config, workers=workers)
    proc, base, startup = servers.start(name, argv, cores or bench.server_cores,
                                        bench.workdir, bench.repo, {**config.env, **(env or {})})
    try:
        yield proc, base, startup
    finally:
        proc.stop()


@contextmanager
def baseline(bench: Bench, workers: int = 1, cores: set[int] | None = None
             ) -> Iterator[tuple[procs.Proc, str, float]]:
    argv = partial(servers.baseline_argv, bench.mock_url, workers=workers)
    proc, base, startup = servers.start("baseline", argv, cores or bench.server_cores,
                                        bench.workdir, bench.repo)
    try:
        yield proc, base, startup
    finally:
        proc.stop()


def probe(call: Subject | calls.Call) -> tuple[int, dict[str, str], bytes]:
    """One request, for checks that a scenario really does what it claims."""
    target = call.chat if isinstance(call, Subject) else call
    request = urllib.request.Request(target.url, data=target.body,
                                     headers=target.all_headers(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def _require_ok(subject: Subject) -> None:
    status, _headers, body = probe(subject)
    if status != 200:
        raise RuntimeError(f"{subject.name}: probe answered {status}: {body[:300]!r}")


def _records(subjects: list[Subject]) -> dict[str, Any]:
    return {s.name: s.record for s in subjects}


def pass_through(bench: Bench) -> dict[str, Any]:
    """The main comparison: direct to mock, the bare baseline, the gateway, back to back.

    Without a usable gateway, direct and baseline are still measured, so the bench itself
    can be checked and the floor is known before the gateway exists.
    """
    config, why = prepare(bench, "pass")
    s = bench.settings
    with ExitStack() as stack:
        b_proc, b_url, b_start = stack.enter_context(baseline(bench))
        subjects = [
            Subject("direct", calls.upstream_chat(bench.mock_url, False),
                    calls.upstream_chat(bench.mock_url, True)),
            Subject("baseline", calls.upstream_chat(b_url, False),
                    calls.upstream_chat(b_url, True), b_proc,
                    {"startup_first_s": b_start}),
        ]
        if config is not None:
            g_proc, g_url, g_start = stack.enter_context(gateway(bench, config))
            subjects.append(Subject("gateway", calls.gateway_chat(g_url, "pass", False),
                                    calls.gateway_chat(g_url, "stream", True), g_proc,
                                    {"startup_first_s": g_start}))
        for subject in subjects:
            _require_ok(subject)
        servers_under_test = [x for x in subjects if x.proc]
        measure.settle()
        for subject in servers_under_test:
            measure.memory(subject, "VmRSS", "rss_idle_mib")
        measure.throughput(subjects, s, bench.workdir)
        measure.latency(subjects, s, s.rates)
        measure.streams(subjects, s)
        for subject in servers_under_test:
            measure.memory(subject, "VmHWM", "rss_peak_mib")
    entry: dict[str, Any] = {"status": "measured", "servers": _records(subjects)}
    if config is None:
        entry.update(note="gateway not measured: its config was refused", detail=why)
    return entry


SHIPPED_SERVER = targets.SHIPPED  # what `gateway serve` runs (gateway/server/cli.py)


@contextmanager
def _granian(bench: Bench, name: str, argv: Any, env: dict[str, str]
             ) -> Iterator[tuple[procs.Proc, str, float]]:
    proc, base, startup = servers.start(name, argv, bench.server_cores, bench.workdir,
                                        bench.repo, env)
    try:
        yield proc, base, startup
    finally:
        proc.stop()


def server_choice(bench: Bench) -> dict[str, Any]:
    """The same pass-through under uvicorn (as shipped) and under granian, for the floor and
    the gateway: four servers on the server core, wrk in turns, so each server's figures sit
    beside the others' of the same moment. Which server serves users faster, and how far the
    gateway stays from the floor on each server."""
    import importlib.util

    if importlib.util.find_spec("granian") is None:
        return {"status": "skipped", "note": "granian is not installed and pip could not install "
                "it, so only uvicorn could be measured (see the bench's output)"}
    config, why = prepare(bench, "pass")
    if config is None:
        return skipped("no gateway", why)
    s = bench.settings
    with ExitStack() as stack:
        started = {
            "baseline-uvicorn": stack.enter_context(baseline(bench)),
            "baseline-granian": stack.enter_context(_granian(
                bench, "baseline-granian", servers.granian_baseline_argv,
                servers.granian_baseline_env(bench.mock_url))),
            # Each gateway keeps its ledger in a SQLite file of its own (GATEWAY_DATA_DIR).
            "gateway-uvicorn": stack.enter_context(gateway(
                bench, config, name="gateway-uvicorn", env=_data_dir(bench, "gateway-uvicorn"))),
            "gateway-granian": stack.enter_context(_granian(
                bench, "gateway-granian", servers.granian_gateway_argv,
                {**servers.granian_gateway_env(config, bench.repo), **_data_dir(bench, "gateway-granian")})),
        }
        subjects = []
        for name, (proc, url, startup_s) in started.items():
            call = (calls.upstream_chat(url, False) if name.startswith("baseline")
                    else calls.gateway_chat(url, "pass", False))
            subjects.append(Subject(name, call, None, proc, {"startup_first_s": startup_s}))
        for subject in subjects:
            _require_ok(subject)
        measure.settle()
        measure.throughput(subjects, s, bench.workdir, s.paired_runs)
        for subject in subjects:
            measure.memory(subject, "VmHWM", "rss_peak_mib")
            subject.record["processes"] = len(procs.tree_pids(subject.proc.pid)) if subject.proc else 0
    return {"status": "measured", "shipped": SHIPPED_SERVER, "servers": _records(subjects),
            "granian_options": servers.GRANIAN_OPTIONS,
            "evidence": {"granian": _version("granian"), "uvicorn": _version("uvicorn")}}


def _data_dir(bench: Bench, name: str) -> dict[str, str]:
    folder = bench.workdir / f"data-{name}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return {"GATEWAY_DATA_DIR": str(folder)}


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def anthropic(bench: Bench) -> dict[str, Any]:
    """OpenAI in, Anthropic out: the translation's cost against pass-through in one process."""
    config, why = prepare(bench, "anthropic")
    if config is None:
        return skipped("the gateway does not accept an `api: anthropic` provider yet", why)
    s = bench.settings
    with gateway(bench, config) as (g_proc, g_url, _start):
        direct = Subject("direct", calls.upstream_messages(bench.mock_url, False),
                         calls.upstream_messages(bench.mock_url, True))
        plain = Subject("gateway-pass", calls.gateway_chat(g_url, "pass", False), None, g_proc)
        gate = Subject("gateway", calls.gateway_chat(g_url, "claude", False),
                       calls.gateway_chat(g_url, "claude-stream", True), g_proc)
        for subject in (direct, plain, gate):
            _require_ok(subject)
        measure.throughput([plain, gate], s, bench.workdir, s.paired_runs)
        measure.latency([direct, gate], s, s.rates[-1:])
        measure.streams([direct, gate], s)
        measure.memory(gate, "VmHWM", "rss_peak_mib")
    return {"status": "measured", "servers": _records([direct, plain, gate])}


def responses(bench: Bench) -> dict[str, Any]:
    """Responses in, chat completions out, against chat pass-through in the same process:
    the Responses front-end's cost (translation both ways, storing each response)."""
    config, why = prepare(bench, "responses")
    if config is None:
        return skipped("the gateway does not accept `responses: translate` yet", why)
    s = bench.settings
    with gateway(bench, config) as (g_proc, g_url, _start):
        plain = Subject("gateway-pass", calls.gateway_chat(g_url, "pass", False),
                        calls.gateway_chat(g_url, "stream", True), g_proc)
        gate = Subject("gateway", calls.gateway_responses(g_url, "pass", False),
                       calls.gateway_responses(g_url, "stream", True), g_proc)
        for subject in (plain, gate):
            _require_ok(subject)
        measure.throughput([plain, gate], s, bench.workdir, s.paired_runs)
        measure.streams([plain, gate], s)
        measure.memory(gate, "VmHWM", "rss_peak_mib")
    return {"status": "measured", "servers": _records([plain, gate])}


@contextmanager
def redis_server(bench: Bench) -> Iterator[str]:
    """A throwaway Redis on a free port, on the load core, nothing written to disk."""
    port = procs.free_port()
    argv = [shutil.which("redis-server") or "redis-server", "--port", str(port),
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(bench.workdir), "--daemonize", "no"]
    proc = procs.spawn("redis", argv, set(bench.settings.load_cores), bench.workdir)
    try:
        deadline = time.perf_counter() + 10
        while _redis_cli(port, "ping") != "PONG":
            if time.perf_counter() > deadline or not proc.alive():
                raise RuntimeError(f"redis did not start:\n{proc.log_tail()}")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.stop()


def _redis_cli(port: int, *args: str) -> str:
    cli = shutil.which("redis-cli")
    if cli is None:
        return ""
    done = subprocess.run([cli, "-p", str(port), *args], capture_output=True, text=True)
    return done.stdout.strip()


def limits(bench: Bench) -> dict[str, Any]:
    """Keys with limits and a budget, state in Redis, against a key without either on the same
    gateway (and the same Redis), measured in turns: what limits and budgets themselves cost."""
    config, why = prepare(bench, "limits")
    if config is None:
        return skipped("the gateway refused a config with keys and limits", why)
    s = bench.settings
    with redis_server(bench) as redis_url, gateway(bench, config, env={"REDIS_URL": redis_url}
                                                   ) as (g_proc, g_url, _start):
        key = gateway_config.BENCH_KEY
        direct = Subject("direct", calls.upstream_chat(bench.mock_url, False))
        gate = Subject("gateway", calls.gateway_chat(g_url, "pass", False, key), None, g_proc)
        free = Subject("gateway-nolimits", calls.gateway_chat(g_url, "pass", False, gateway_config.FREE_KEY), None, g_proc)
        _require_ok(gate)
        _require_ok(free)
        anonymous, _h, _b = probe(calls.gateway_chat(g_url, "pass", False))
        measure.throughput([free, gate], s, bench.workdir, s.paired_runs)
        measure.latency([direct, free, gate], s, s.rates[-1:])
        measure.memory(gate, "VmHWM", "rss_peak_mib")
        tight = calls.gateway_chat(g_url, "pass", False, gateway_config.TIGHT_KEY)
        tight_statuses = [probe(tight)[0] for _ in range(3)]
        port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        evidence = {"status_without_key": anonymous,
                    "rpm_1_key_statuses": tight_statuses,
                    "redis_keys_after": _redis_cli(port, "dbsize")}
    notes = []
    if 429 not in tight_statuses:
        notes.append("limits are not enforced yet (a key with rpm 1 was never refused)")
    if evidence["redis_keys_after"] in ("0", ""):
        notes.append("no limit state reached Redis (REDIS_URL not used yet)")
    if notes:
        return {"status": "measured", "note": "; ".join(notes) + ": these figures show key "
                "authentication only", "evidence": evidence,
                "servers": _records([direct, free, gate])}
    return {"status": "measured", "evidence": evidence, "servers": _records([direct, free, gate])}


def ledger(bench: Bench) -> dict[str, Any]:
    """The request ledger's cost: the pass-through with no database, with the embedded
    SQLite file, and with PostgreSQL, in one run (a row per request, written in batches)."""
    off, why = prepare(bench, "ledger-off")
    on, why_on = prepare(bench, "ledger")
    if off is None or on is None:
        return skipped("the gateway refused a `database:` section", why or why_on)
    s = bench.settings
    with ExitStack() as stack:
        databases = {"ledger-off": None, "ledger-sqlite": f"sqlite:///{bench.workdir / 'bench-ledger.db'}"}
        try:
            databases["ledger-postgresql"] = stack.enter_context(postgres_server(bench))
        except RuntimeError as exc:
            note = f"PostgreSQL could not start ({exc}); measured without it"
        else:
            note = ""
        subjects = [Subject("direct", calls.upstream_chat(bench.mock_url, False))]
        for name, url in databases.items():
            config = off if url is None else on
            env = {"BENCH_DATABASE_URL": url} if url else {}
            proc, base, _start = stack.enter_context(gateway(bench, config, env=env, name=name))
            subjects.append(Subject(name, calls.gateway_chat(base, "pass", False), None, proc))
        for subject in subjects:
            _require_ok(subject)
        measure.settle()
        measure.throughput(subjects[1:], s, bench.workdir, s.paired_runs)
        measure.latency(subjects, s, s.rates[-1:])
    entry: dict[str, Any] = {"status": "measured", "servers": _records(subjects)}
    if note:
        entry["note"] = note
    return entry


API_KEYS = 10_000


def keys(bench: Bench) -> dict[str, Any]:
    """Key lookup with 10,000 keys made by the admin API against one key in routes.yaml: the
    API's keys are held in memory and merged into the snapshot, so a request still finds its
    key with one dict lookup and never queries the database."""
    import seed_keys

    one, why = prepare(bench, "keys-yaml")
    many, why_many = prepare(bench, "keys-api")
    if one is None or many is None:
        return skipped("the gateway refused a config for the keys scenario", why or why_many)
    s = bench.settings
    databases = {"keys-yaml": bench.workdir / "bench-keys-yaml.db", "keys-api-10000": bench.workdir / "bench-keys-api.db"}
    for path in databases.values():
        for leftover in glob.glob(f"{path}*"):
            os.remove(leftover)
    started = time.monotonic()
    seed_keys.seed(f"sqlite:///{databases['keys-api-10000']}", API_KEYS, gateway_config.BENCH_KEY)
    seeded_s = round(time.monotonic() - started, 1)
    with ExitStack() as stack:
        subjects = [Subject("direct", calls.upstream_chat(bench.mock_url, False))]
        for name, config in (("keys-yaml", one), ("keys-api-10000", many)):
            env = {"BENCH_DATABASE_URL": f"sqlite:///{databases[name]}"}
            proc, base, _start = stack.enter_context(gateway(bench, config, env=env, name=name))
            subjects.append(Subject(name, calls.gateway_chat(base, "pass", False, gateway_config.BENCH_KEY), None, proc))
        for subject in subjects:
            _require_ok(subject)
        anonymous, _h, _b = probe(calls.gateway_chat(subjects[-1].chat.url.rsplit("/v1/", 1)[0], "pass", False))
        measure.settle()
        # Latency only, at one rate: the measure is added p50, and `make bench` has ten minutes.
        measure.latency(subjects, s, s.rates[-1:])
        for subject in subjects[1:]:
            measure.memory(subject, "VmHWM", "rss_peak_mib")
    evidence = {"api_keys": API_KEYS, "seeded_s": seeded_s, "status_without_key": anonymous}
    return {"status": "measured", "evidence": evidence, "servers": _records(subjects)}


def jwt_auth(bench: Bench) -> dict[str, Any]:
    """A bearer JWT (RS256, its key fetched from a local JWKS and cached) against a static key,
    each on its own gateway of the same config in the same run: the issue allows the token
    0.1 ms more per request. The token's plan counts per user, so a user counter is taken too."""
    import jwks

    config, why = prepare(bench, "jwt")
    if config is None:
        return skipped("the gateway refused a config with a JWT issuer", why)
    signer = jwks.Signer()
    token = signer.token()
    s = bench.settings
    with ExitStack() as stack:
        jwks_url = stack.enter_context(jwks.serve(signer))
        subjects = [Subject("direct", calls.upstream_chat(bench.mock_url, False))]
        for name, secret in (("static-key", gateway_config.BENCH_KEY), ("jwt-rs256", token)):
            proc, base, _start = stack.enter_context(
                gateway(bench, config, env={"BENCH_JWKS_URL": jwks_url}, name=name))
            subjects.append(Subject(name, calls.gateway_chat(base, "pass", False, secret), None, proc))
        for subject in subjects:
            _require_ok(subject)
        expired, _h, _b = probe(calls.gateway_chat(subjects[-1].chat.url.rsplit("/v1/", 1)[0], "pass", False,
                                                   signer.token(ttl=-3600)))
        measure.settle()
        measure.latency(subjects, s, s.rates[-1:])  # latency only, like `keys`: the measure is added p50
    evidence = {"status_expired_token": expired}
    if expired != 401:
        return {"status": "error", "note": f"an expired token answered {expired}, not 401", "evidence": evidence}
    return {"status": "measured", "evidence": evidence, "servers": _records(subjects)}


@contextmanager
def postgres_server(bench: Bench) -> Iterator[str]:
    """A throwaway PostgreSQL on a free port of 127.0.0.1, on the load core, in a temporary folder."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError("initdb and pg_ctl not found")
    folder = Path(tempfile.mkdtemp(prefix="gateway-bench-postgres-"))  # its own: the server's user must reach it
    runas: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        runas = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", procs.free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    cores = ",".join(str(c) for c in sorted(bench.settings.load_cores))
    try:
        subprocess.run([*runas, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True)
        subprocess.run([*runas, "taskset", "-c", cores, pg_ctl, "-D", str(data), "-o", options,
                        "-l", str(folder / "log"), "-w", "-t", "30", "start"], check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(exc.stderr.decode(errors="replace").strip()[-300:]) from None
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*runas, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]), reverse=True)
    return versions[0] if versions else None


def cache_hit(bench: Bench) -> dict[str, Any]:
    """Identical requests on a caching route: after the first, no upstream call at all."""
    config, why = prepare(bench, "cache")
    if config is None:
        return skipped("the gateway refused a route with `cache:`", why)
    s = bench.settings
    with gateway(bench, config) as (g_proc, g_url, _start):
        direct = Subject("direct", calls.upstream_chat(bench.mock_url, False))
        gate = Subject("gateway", calls.gateway_chat(g_url, "cached", False), None, g_proc)
        _require_ok(gate)
        _status, headers, _body = probe(gate)
        if headers.get("x-gateway-cache") != "hit":
            return skipped("the second identical request was not a cache hit",
                           f"x-gateway-cache: {headers.get('x-gateway-cache')!r}")
        measure.throughput([gate], s, bench.workdir)
        measure.latency([direct, gate], s, s.rates[-1:])
        measure.memory(gate, "VmHWM", "rss_peak_mib")
    return {"status": "measured", "servers": _records([direct, gate])}


def semantic(bench: Bench) -> dict[str, Any]:
    """A semantic hit against an exact hit, and the embedding call measured on its own.

    One question is seeded; every measured request then asks another one (an exact miss)
    that the semantic cache answers, so each pays the embedding call (through the
    gateway's embeddings route, to the mock) plus the vector lookup. The semantic hit's
    added cost is its p50 minus the exact hit's and the embedding's; a miss adds only the
    embedding call to a normal pass-through.
    """
    config, why = prepare(bench, "semantic")
    if config is None:
        return skipped("the gateway refused a route with `cache.semantic`", why)
    s = bench.settings
    with gateway(bench, config) as (g_proc, g_url, _start):
        exact = Subject("exact-hit", calls.gateway_chat(g_url, "cached", False), None, g_proc)
        hit = Subject("semantic-hit", calls.gateway_chat(g_url, "semantic", False), None, g_proc)
        embedding = Subject("embedding", calls.gateway_embeddings(g_url, "embed"), None, g_proc)
        seeded = probe(calls.gateway_question(g_url, "semantic", "Tell me something short about foxes."))
        for subject in (exact, embedding):
            _require_ok(subject)
        _status, headers, _body = probe(hit)
        evidence = {"seed_cache": seeded[1].get("x-gateway-cache"), "probe_cache": headers.get("x-gateway-cache"),
                    "probe_similarity": headers.get("x-gateway-cache-similarity")}
        if headers.get("x-gateway-cache") != "semantic-hit":
            return skipped("a paraphrase of the seeded question was not a semantic hit", str(evidence))
        measure.latency([exact, hit, embedding], s, s.rates[-1:])
        measure.memory(hit, "VmHWM", "rss_peak_mib")
    return {"status": "measured", "evidence": evidence, "servers": _records([exact, hit, embedding])}


def workers(bench: Bench) -> dict[str, Any]:
    """Two workers on both cores against one pinned worker; the baseline shows the ceiling.

    The mock and wrk share the second core, so neither server can reach a clean 2x here;
    the baseline's own ratio tells how much of a shortfall is the machine's.
    """
    config, why = prepare(bench, "pass")
    if config is None:
        return skipped("no gateway", why)
    s = bench.settings
    out: dict[str, Any] = {"status": "measured", "servers": {}}
    for label, count, cores in (("one", 1, bench.server_cores), ("two", 2, bench.all_cores)):
        with baseline(bench, count, cores) as (b_proc, b_url, _b), gateway(
                bench, config, count, cores) as (g_proc, g_url, _g):
            subjects = [Subject(f"baseline-{label}", calls.upstream_chat(b_url, False), None,
                                b_proc),
                        Subject(f"gateway-{label}", calls.gateway_chat(g_url, "pass", False),
                                None, g_proc)]
            for subject in subjects:
                _require_ok(subject)
            measure.throughput(subjects, s, bench.workdir)
            out["servers"].update(_records(subjects))
    return out


def startup(bench: Bench) -> dict[str, Any]:
    """Spawn to first /health 200, several times each, on the server core."""
    config, why = prepare(bench, "pass")
    times: dict[str, list[float]] = {"baseline": [], "gateway": []}
    for _ in range(bench.settings.runs):
        with baseline(bench) as (_p, _u, seconds):
            times["baseline"].append(seconds)
        if config is not None:
            with gateway(bench, config) as (_p, _u, seconds):
                times["gateway"].append(seconds)
    return {"status": "measured" if config else NOT_AVAILABLE, "note": why,
            "servers": {name: {"startup_s": values} for name, values in times.items()}}


def _profile_one(bench: Bench, proc: procs.Proc, call: calls.Call, out_dir: Path, stamp: str,
                 seconds: float, label: str) -> dict[str, Any]:
    load = set(bench.settings.load_cores)
    warmup = closed_loop.write_script(call, bench.workdir / f"warmup-{label}.lua")
    closed_loop.run_wrk(call, warmup, bench.settings.connections, 1, load)
    return pyspy.record(proc.pid, call, bench.workdir, out_dir, stamp, seconds,
                        bench.settings.connections, load, label)


def profile(bench: Bench, out_dir: Path, stamp: str, seconds: float = 20.0) -> dict[str, Any]:
    """py-spy on a fresh pinned gateway under wrk, and on the baseline for the floor's share."""
    config, why = prepare(bench, "pass")
    if config is None:
        return {"status": "skipped", "note": why}
    with gateway(bench, config) as (g_proc, g_url, _start):
        found = _profile_one(bench, g_proc, calls.gateway_chat(g_url, "pass", False), out_dir,
                             stamp, seconds, "gateway")
    if found.get("status") == "measured":
        with baseline(bench) as (b_proc, b_url, _start):
            floor = _profile_one(bench, b_proc, calls.upstream_chat(b_url, False), out_dir,
                                 stamp, seconds, "baseline")
        found["baseline_self_by_package"] = floor.get("self_by_package", [])
    return found
