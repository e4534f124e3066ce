"""The `gateway` command: serve, validate, diff, explain, db, hash-key, token, keys, tenants."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from gateway.config.load import ConfigError

DEFAULT_ROUTES = "routes.yaml"
DEFAULT_PROVIDERS = "providers.yaml"


METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _metrics_dir(workers: int) -> str | None:
    """Prepare prometheus-client's multiprocess directory before anything imports it.

    An operator's PROMETHEUS_MULTIPROC_DIR is honoured and emptied (files left by an
    earlier run would be summed into this one). Otherwise several workers get a fresh
    temporary directory, returned so it is removed at exit; one worker needs none.
    """
    import glob
    import tempfile

    path = os.environ.get(METRICS_DIR_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for name in glob.glob(os.path.join(path, "*.db")):
            os.remove(name)
        return None
    if workers <= 1:
        return None
    path = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[METRICS_DIR_ENV] = path
    return path


def _serve(args: argparse.Namespace) -> int:
    import shutil

    own_metrics_dir = _metrics_dir(args.workers)
    try:
        return _run_server(args)
    finally:
        if own_metrics_dir:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)


def _run_server(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.config.reload import WATCH_ENV
    from gateway.observe import log
    from gateway.providers.snapshots import build_snapshot
    from gateway.server.app import PROVIDERS_ENV, ROUTES_ENV
    from gateway.server.workers import serve_workers

    log.setup()
    try:  # fail before binding a port, with every error listed
        snapshot = build_snapshot(args.routes, args.providers)
    except ConfigError as exc:
        log.event("config_invalid", "the config is invalid; not starting", "ERROR", errors=[str(i) for i in exc.issues])
        print(exc, file=sys.stderr)
        return 2
    # Workers are separate processes: they find the config through the environment.
    os.environ[ROUTES_ENV] = os.path.abspath(args.routes)
    os.environ[PROVIDERS_ENV] = os.path.abspath(args.providers)
    log.event("start", f"starting on {args.host}:{args.port} with {args.workers} worker(s)", host=args.host,
              port=args.port, workers=args.workers, config=snapshot.version, graceful_timeout=args.graceful_timeout,
              metrics_dir=os.environ.get(METRICS_DIR_ENV))
    if args.workers > 1 and not os.environ.get("REDIS_URL"):
        log.event("workers_without_redis", f"{args.workers} workers without REDIS_URL: each keeps its own limits, "
                  "budgets and cache, so a key's rpm is in effect multiplied by the workers", "WARNING")
    if not args.watch:
        os.environ[WATCH_ENV] = "0"
    limits = _connection_limits(args)
    from gateway.server.connections import (
        BoundedHttpProtocol,  # reads the limits as it is imported
    )

    options = dict(
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http=BoundedHttpProtocol,  # httptools with header, timeout and connection limits
        ws="none",  # no endpoint speaks WebSocket: an upgrade gets plain HTTP; the library is never loaded
        timeout_keep_alive=limits.keepalive_timeout,
        limit_concurrency=limits.max_connections,
        access_log=False,
        proxy_headers=False,  # nothing reads the client's address: the layer would only cost time
        server_header=False,  # no `server: uvicorn`: the software serving is nobody's business
        log_config=None,  # uvicorn's records go through the gateway's own sink (gateway.observe.log)
        log_level=os.environ.get("GATEWAY_LOG_LEVEL", "info").lower(),
        # On SIGTERM: stop accepting, let requests and streams in flight finish, cut them after this.
        timeout_graceful_shutdown=args.graceful_timeout,
    )
    if args.workers > 1:  # a supervisor whose SIGHUP reloads every worker in place
        serve_workers(uvicorn.Config("gateway.server.app:served_app", **options))  # type: ignore[arg-type]
        return 0
    uvicorn.run("gateway.server.app:served_app", **options)  # type: ignore[arg-type]
    return 0


# `gateway serve` flags for the connection limits, and the variables they set (the
# workers are separate processes, which read the limits from their environment).
_LIMIT_FLAGS = {
    "max_header_bytes": "GATEWAY_MAX_HEADER_BYTES",
    "max_headers": "GATEWAY_MAX_HEADERS",
    "header_timeout": "GATEWAY_HEADER_TIMEOUT",
    "body_timeout": "GATEWAY_BODY_TIMEOUT",
    "keepalive_timeout": "GATEWAY_KEEPALIVE_TIMEOUT",
    "max_connections": "GATEWAY_MAX_CONNECTIONS",
}


def _connection_limits(args: argparse.Namespace) -> Any:
    """Flags given on the command line become the environment the limits are read from."""
    for name, variable in _LIMIT_FLAGS.items():
        value = getattr(args, name, None)
        if value is not None:
            os.environ[variable] = str(value)
    from gateway.server.connections import ConnectionLimits

    return ConnectionLimits.from_env()


def _validate(args: argparse.Namespace) -> int:
    """Exit 0 when valid, 1 with every issue (sorted by file and line) when not."""
    import json

    from gateway.config.caveats import caveats
    from gateway.config.load import env_with_placeholders
    from gateway.providers.snapshots import build_snapshot

    routes, providers = args.routes, args.providers
    if os.path.isdir(routes):  # `gateway validate config/`: both files in one directory
        routes, providers = os.path.join(routes, DEFAULT_ROUTES), os.path.join(routes, DEFAULT_PROVIDERS)
    env = env_with_placeholders([routes, providers]) if args.allow_missing_env else None
    try:
        snapshot = build_snapshot(routes, providers, env)
    except ConfigError as exc:
        issues = sorted(exc.issues, key=lambda i: (i.file != routes, i.file, i.line, i.col))
        if args.format == "json":
            print(json.dumps({"valid": False, "count": len(issues), "errors": [i.as_dict() for i in issues]}, indent=2))
        else:
            for issue in issues:
                print(issue, file=sys.stderr)
            print(f"{len(issues)} error(s)", file=sys.stderr)
        return 1
    warnings = caveats(snapshot)
    if args.format == "json":
        print(json.dumps({
            "valid": True, "version": snapshot.version, "routes": sorted(snapshot.routes),
            "targets": sorted(snapshot.targets), "keys": sorted(k.name for k in snapshot.keys.values()),
            "sources": list(snapshot.sources), "warnings": warnings,
            "presets": [_preset_dict(s) for s in snapshot.presets],
        }))
    else:
        for line in warnings:
            print(f"{routes}: warning: {line}", file=sys.stderr)
        print(f"ok: {len(snapshot.routes)} routes, {len(snapshot.targets)} targets, config {snapshot.version}")
        for line in _preset_lines(snapshot.presets):
            print(line)
    return 0


def _preset_dict(status: object) -> dict[str, object]:
    from dataclasses import asdict

    return asdict(status)  # type: ignore[call-overload]  # names and booleans only: never a value


def _preset_lines(statuses: tuple[object, ...]) -> list[str]:
    """Which presets are enabled (and how) and which key variables are missing: names, never values."""
    enabled = [s for s in statuses if s.provider is not None]  # type: ignore[attr-defined]
    off = [s for s in statuses if s.provider is None]  # type: ignore[attr-defined]
    lines = []
    if enabled:
        shown = ", ".join(f"{s.preset} ({s.how}, {s.key_env} {'set' if s.key_set else 'unset'})" for s in enabled)  # type: ignore[attr-defined]
        lines.append(f"presets enabled: {shown}")
    if off:
        lines.append("presets off (variable not set): " + ", ".join(f"{s.preset} ({s.switch_env})" for s in off))  # type: ignore[attr-defined]
    return lines


def _diff(args: argparse.Namespace) -> int:
    """Exit 0: nothing risky; 1: something risky changed; 2: a side is missing or invalid."""
    import contextlib
    import json

    from gateway.ops.diff import diff_snapshots, render_markdown, render_text
    from gateway.ops.revision import RevisionError, compile_side, compiled_at

    if args.git is None and len(args.dirs) != 2:
        print("gateway diff: give OLD and NEW (directories, or routes files), or --git REF [DIR]", file=sys.stderr)
        return 2
    if args.git is not None and len(args.dirs) > 1:
        print("gateway diff --git REF takes at most one directory (the working tree side)", file=sys.stderr)
        return 2
    try:
        with contextlib.ExitStack() as stack:
            if args.git is not None:
                directory = args.dirs[0] if args.dirs else "."
                old = stack.enter_context(compiled_at(args.git, directory, args.routes, args.providers))
            else:
                directory = args.dirs[1]
                old = compile_side(args.dirs[0], args.routes, args.providers)
            new = compile_side(directory, args.routes, args.providers)
            result = diff_snapshots(old, new)
    except RevisionError as exc:
        print(f"gateway diff: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"gateway diff: {len(exc.issues)} error(s); fix them (see gateway validate) to see the diff", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(result.as_dict(), indent=2))
    elif args.format == "markdown":
        print(render_markdown(result), end="")
    else:
        print(render_text(result), end="")
    return 1 if result.risky else 0


def _explain(args: argparse.Namespace) -> int:
    import json

    from gateway.ops.explain import (
        ExplainError,
        as_dict,
        explain,
        read_body,
        render_text,
    )
    from gateway.providers.snapshots import build_snapshot

    try:
        snapshot = build_snapshot(args.routes, args.providers)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    from gateway.ops.tokens import TokenError, caller_from_claims, read_claims

    try:
        caller = None
        if args.token is not None or args.claims is not None:
            caller = caller_from_claims(snapshot, read_claims(args.token, args.claims), args.issuer)
        body = read_body(args.request) if args.request else None
        metrics_text = _fetch_metrics(args.live) if args.live else None
        explanation = explain(snapshot, args.alias, body, args.key, args.tier, tuple(args.open), metrics_text,
                              endpoint=args.endpoint, reader=_reader(args.endpoint, snapshot), caller=caller)
    except (ExplainError, TokenError) as exc:
        print(f"gateway explain: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(as_dict(explanation), indent=2))
    else:
        print(render_text(explanation))
    return 0 if explanation.error is None else 1


def _models(args: argparse.Namespace) -> int:
    """Every model this config reaches, with price and context window."""
    import json

    from gateway.config.addresses import Addresses
    from gateway.ops.models import reachable, render_text
    from gateway.providers.snapshots import build_snapshot

    try:
        snapshot = build_snapshot(args.routes, args.providers)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    rows = reachable(snapshot)
    if args.format == "json":
        print(json.dumps([row.as_dict() for row in rows], indent=2))
        return 0
    addresses = snapshot.addresses
    open_providers = sorted(p for p, _ in addresses.open_providers()) if isinstance(addresses, Addresses) else []
    print(render_text(rows, open_providers), end="")
    return 0


def _reader(endpoint: str, snapshot: Any) -> Any:
    """The API front-end's own reading of a body, for `explain --endpoint`."""
    from starlette.datastructures import Headers

    def headers(tier: str | None) -> Headers:
        return Headers({"x-gateway-max-tier": tier} if tier else {})

    if endpoint == "responses":
        from gateway.api.openai.response_input import read_responses
        return lambda body, tier: read_responses(snapshot, body, headers(tier), []).request
    if endpoint == "messages":
        from gateway.api.anthropic.messages import read_messages
        return lambda body, tier: read_messages(snapshot, body, headers(tier))
    return None


def _fetch_metrics(base_url: str) -> str:
    from urllib.error import URLError
    from urllib.request import Request, urlopen

    from gateway.api.health import METRICS_TOKEN_ENV
    from gateway.ops.explain import ExplainError

    url = base_url.rstrip("/") + "/metrics"
    token = os.environ.get(METRICS_TOKEN_ENV)
    request = Request(url, headers={"authorization": f"Bearer {token}"} if token else {})
    try:
        with urlopen(request, timeout=5) as response:  # noqa: S310 - an operator-given URL
            return response.read().decode()
    except (URLError, OSError) as exc:
        raise ExplainError(f"--live: could not read {url} ({exc})") from None


def _db(args: argparse.Namespace) -> int:
    from gateway.store.database.command import run

    return run(args)


def _hash_key(args: argparse.Namespace) -> int:
    from gateway.pipeline.identify import hash_key

    print(hash_key(args.key))
    return 0


def _token_mint(args: argparse.Namespace) -> int:
    from gateway.ops.tokens import TokenError, mint, seconds, signing_issuer
    from gateway.providers.snapshots import build_snapshot

    try:
        snapshot = build_snapshot(args.routes, args.providers)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        issuer = signing_issuer(snapshot, args.issuer)
        print(mint(issuer, args.sub, seconds(args.ttl), args.tenant, args.plan, args.route or None))
    except TokenError as exc:
        print(f"gateway token mint: {exc}", file=sys.stderr)
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="gateway", description="A config-driven LLM gateway.")
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--routes", default=DEFAULT_ROUTES)
    serve.add_argument("--providers", default=DEFAULT_PROVIDERS)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--graceful-timeout", type=int, default=int(os.environ.get("GATEWAY_GRACEFUL_TIMEOUT", "30")),
                       metavar="SECONDS", help="on SIGTERM, how long requests in flight may take to finish (default 30)")
    serve.add_argument("--no-watch", dest="watch", action="store_false",
                       help="do not reload on file changes (SIGHUP and POST /admin/reload still do)")
    limits = serve.add_argument_group("connection limits (docs/security.md; each also an environment variable)")
    limits.add_argument("--max-header-bytes", type=int, metavar="N", help="request line and headers together (64 KiB); 431 beyond")
    limits.add_argument("--max-headers", type=int, metavar="N", help="headers per request (100); 431 beyond")
    limits.add_argument("--header-timeout", type=float, metavar="SECONDS", help="time to send a request's headers (10)")
    limits.add_argument("--body-timeout", type=float, metavar="SECONDS", help="longest silence inside a request body (30)")
    limits.add_argument("--keepalive-timeout", type=float, metavar="SECONDS", help="idle time between requests (5)")
    limits.add_argument("--max-connections", type=int, metavar="N", help="open connections per worker (4096)")
    serve.set_defaults(run=_serve)

    validate = commands.add_parser("validate", help="check routes.yaml and providers.yaml")
    validate.add_argument("routes", nargs="?", default=DEFAULT_ROUTES)
    validate.add_argument("providers", nargs="?", default=DEFAULT_PROVIDERS)
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.add_argument("--allow-missing-env", action="store_true",
                          help="an unset ${VAR} without a default is not an error (for CI, where secrets are absent)")
    validate.set_defaults(run=_validate)

    diff = commands.add_parser(
        "diff", help="what a config change does: aliases, targets, limits, keys, prices; exit 1 when risky",
    )
    diff.add_argument("dirs", nargs="*", metavar="PATH",
                      help="OLD NEW: config directories, or routes files each with its providers.yaml beside it "
                      "(with --git: the working tree directory, default .)")
    diff.add_argument("--git", metavar="REF", help="compare the config at this git revision with the working tree")
    diff.add_argument("--routes", default=DEFAULT_ROUTES, help="routes file name inside each directory")
    diff.add_argument("--providers", default=DEFAULT_PROVIDERS, help="providers file name inside each directory")
    diff.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    diff.set_defaults(run=_diff)

    explain = commands.add_parser(
        "explain", help="print the ordered target plan for a route and why targets are skipped"
    )
    explain.add_argument("alias", help="the route alias a client sends as 'model'")
    explain.add_argument("--request", metavar="FILE.json", help="a request body to plan for ('-' reads stdin)")
    explain.add_argument("--endpoint", choices=("chat", "responses", "messages"), default="chat",
                         help="the API the body is written for: chat (/v1/chat/completions, also embeddings), "
                         "responses (/v1/responses) or messages (/v1/messages)")
    explain.add_argument("--key", metavar="NAME", help="plan as this client key (by its name in routes.yaml)")
    caller = explain.add_mutually_exclusive_group()
    caller.add_argument("--token", metavar="JWT", help="plan as this bearer token's caller (its signature is not checked)")
    caller.add_argument("--claims", metavar="JSON", help="plan as the caller of a token with these claims")
    explain.add_argument("--issuer", metavar="NAME", help="with --token/--claims: read them as this issuer's (default: by iss)")
    explain.add_argument("--tier", metavar="T", help="as if the request sent x-gateway-max-tier: T")
    explain.add_argument("--open", metavar="TARGET", action="append", default=[],
                         help="treat this target's circuit as open (repeatable)")
    explain.add_argument("--live", metavar="URL", help="copy circuit states and latencies from a running gateway's /metrics")
    explain.add_argument("--routes", default=DEFAULT_ROUTES)
    explain.add_argument("--providers", default=DEFAULT_PROVIDERS)
    explain.add_argument("--format", choices=("text", "json"), default="text")
    explain.set_defaults(run=_explain)

    models = commands.add_parser("models", help="list the models this config reaches, with price and context window")
    models.add_argument("--routes", default=DEFAULT_ROUTES)
    models.add_argument("--providers", default=DEFAULT_PROVIDERS)
    models.add_argument("--format", choices=("text", "json"), default="text")
    models.set_defaults(run=_models)

    db = commands.add_parser("db", help="the database: apply migrations (upgrade) or show the schema revision (current)")
    db.add_argument("action", choices=("upgrade", "current"))
    db.add_argument("--routes", default=DEFAULT_ROUTES, help="read database.url from this routes.yaml")
    db.add_argument("--url", help="this database instead (default: database.url, DATABASE_URL, ./data SQLite)")
    db.set_defaults(run=_db)

    hash_key = commands.add_parser("hash-key", help="print the sha256 of a client key for routes.yaml")
    hash_key.add_argument("key")
    hash_key.set_defaults(run=_hash_key)

    token = commands.add_parser("token", help="development tokens: mint one signed with an HS256 issuer's secret")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    mint = token_commands.add_parser("mint", help="print a JWT signed with the secret of the configured HS256 issuer")
    mint.add_argument("--sub", required=True, help="the end user (the issuer's user claim)")
    mint.add_argument("--tenant", help="the tenant (written where the issuer reads it)")
    mint.add_argument("--plan", help="the plan (written where the issuer reads it)")
    mint.add_argument("--route", action="append", metavar="ALIAS", help="a route the token may use (repeatable)")
    mint.add_argument("--ttl", default="1h", help="lifetime: 90s, 30m, 1h, 2d (default 1h)")
    mint.add_argument("--issuer", metavar="NAME", help="which HS256 issuer, when several are configured")
    mint.add_argument("--routes", default=DEFAULT_ROUTES)
    mint.add_argument("--providers", default=DEFAULT_PROVIDERS)
    mint.set_defaults(run=_token_mint)

    from gateway.server.admin_client import add_commands

    add_commands(commands)
    return root


def load_env_file(folder: str = ".") -> bool:
    """Read `.env` in the working folder into the environment; a variable already set wins.

    So `GROQ_API_KEY=...` in `.env` is all a preset needs, while a deployment's own
    environment (Kubernetes secrets, CI) is never overridden by a file left in the image.
    """
    from dotenv import load_dotenv

    return load_dotenv(os.path.join(folder, ".env"), override=False)


def main(argv: list[str] | None = None) -> int:
    load_env_file()
    args = parser().parse_args(argv)
    return int(args.run(args))
