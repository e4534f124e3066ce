"""Finding a pack file, validating it, and compiling every template in it once.

Built-in packs are the `*.yaml` files next to this module, read exactly like an
operator's own pack file: there is no second way to define a provider.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from gateway.config.load import ConfigIssue, PackError, PackNotFound
from gateway.providers.packs._source import PackSource, PackSyntaxError, read_pack_text
from gateway.providers.packs._streams import CompiledStream
from gateway.providers.packs._templates import (
    Origin,
    TemplateProblem,
    compile_text,
    compile_value,
)
from gateway.providers.packs.signing import MissingExtra, signer_for
from gateway.providers.packs.spec import PackSpec, RateLimits
from gateway.providers.packs.template_pack import (
    Auth,
    CompiledCall,
    RateLimitMap,
    TemplatePack,
)
from gateway.providers.packs.wire import Pack

BUILTIN_DIR = Path(__file__).resolve().parent
_BUILTIN_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

Where = Callable[[str], tuple[str, int, int]]


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def find_pack(api: str, base_dir: str) -> Path:
    """A built-in pack by name, or a pack file by path (relative to providers.yaml)."""
    if _BUILTIN_NAME.match(api):
        path = BUILTIN_DIR / f"{api}.yaml"
        if path.is_file():
            return path
        raise PackNotFound(f"unknown api '{api}' (built-in packs: {', '.join(builtin_names())}; or a path to a pack file)")
    path = Path(api) if Path(api).is_absolute() else Path(base_dir) / api
    if not path.is_file():
        raise PackNotFound(f"pack file '{api}' not found (looked for {path})")
    return path


def read_pack(path: Path) -> tuple[PackSource, PackSpec]:
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PackError([ConfigIssue(shown, 1, 1, f"cannot read pack file: {exc.strerror}")]) from None
    try:
        source = read_pack_text(text, shown)
    except PackSyntaxError as exc:
        raise PackError([ConfigIssue(shown, exc.line, exc.col, exc.message)]) from None
    if not isinstance(source.data, dict):
        raise PackError([ConfigIssue(shown, 1, 1, "a pack file must be a YAML mapping")])
    base = source.data.get("extends")
    if isinstance(base, str):
        if not _BUILTIN_NAME.match(base) or not (BUILTIN_DIR / f"{base}.yaml").is_file():
            raise PackError([ConfigIssue(shown, *source.where(("extends",)), f"extends: no built-in pack '{base}'")])
        parent, _ = read_pack(BUILTIN_DIR / f"{base}.yaml")
        source.data = _merged(parent.data, source.data)
    try:
        spec = PackSpec.model_validate(source.data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            line, col = source.where(err["loc"])
            loc = ".".join(str(p) for p in err["loc"])
            message = f"unknown key '{err['loc'][-1]}' at {loc}" if err["type"] == "extra_forbidden" else f"{loc}: {err['msg']}"
            issues.append(ConfigIssue(shown, line, col, message))
        raise PackError(issues) from None
    return source, spec


def _merged(base: Any, over: Any) -> Any:
    """`extends`: mappings merge key by key (recursively); anything else in `over` replaces."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return over
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(base.get(key), value) if key in base else value
    return out


class ModelSwitch:
    """A pack whose models are served by other packs, chosen by model name (`by_model`):
    one `api: vertex` for Gemini and Anthropic models alike. Each target gets the chosen
    pack itself when the snapshot is built, so the request path never sees the switch."""

    local = False
    user_file: str | None = None

    def __init__(self, name: str, choices: list[tuple[str, Pack]]):
        self.name = name
        self._choices = choices
        self.serves_chat = any(getattr(p, "serves_chat", False) for _, p in choices)
        self.serves_embeddings = any(getattr(p, "serves_embeddings", False) for _, p in choices)
        roots = [p for _, p in choices if hasattr(p, "root_url")]
        self.root_url = roots[0].root_url if roots else (lambda params: None)

    def for_model(self, model: str) -> Pack:
        for glob, pack in self._choices:
            if fnmatchcase(model, glob):
                return pack
        return self._choices[-1][1]

    def prepare(self, target: Any) -> None:
        self.for_model(target.model).prepare(target)


def compile_pack(path: Path, overrides: Mapping[str, str], where: Where | None) -> Pack:
    source, spec = read_pack(path)
    if spec.by_model:
        choices = []
        for glob, name in spec.by_model.items():
            try:
                choices.append((glob, compile_pack(find_pack(name, str(path.parent)), overrides, where)))
            except PackNotFound as exc:
                raise PackError([ConfigIssue(str(path), *source.where(("by_model", glob)), str(exc))]) from None
        return ModelSwitch(spec.name, choices)  # type: ignore[return-value]
    if spec.local == "echo":
        from gateway.providers.packs._echo import EchoPack

        return EchoPack()
    pack = _Compiler(source, spec, overrides, where).compile()
    if path.resolve().parent != BUILTIN_DIR:
        pack.user_file = str(path)
    return pack


class _Compiler:
    """Compiles each template, collecting every problem before failing."""

    def __init__(self, source: PackSource, spec: PackSpec, overrides: Mapping[str, str], where: Where | None):
        self.source, self.spec = source, spec
        self.overrides = dict(overrides)
        self.where = where
        self.issues: list[ConfigIssue] = []

    def compile(self) -> TemplatePack:
        spec = self.spec
        for name in self.overrides:
            if not self._overridable(name):
                self._issue_at_override(name, None, f"'{name}' is not a template of pack '{spec.name}'")
        auth = Auth(spec.auth.style, spec.auth.name)
        headers = self._mapping(("headers",), spec.headers)
        chat = self._call(("chat",), spec.chat) if spec.chat else None
        embeddings = self._call(("embeddings",), spec.embeddings) if spec.embeddings else None
        completions = self._call(("completions",), spec.completions) if spec.completions else None
        responses = self._call(("responses",), spec.responses) if spec.responses else None
        error = self._value(("error",), spec.error)
        root = self._text(("base_url",), spec.base_url) if spec.base_url else None
        try:
            signer = signer_for(spec.auth.style, spec.auth.name)
        except MissingExtra as exc:
            self.issues.append(ConfigIssue(self.source.path, *self.source.where(("auth",)), str(exc)))
        if self.issues:
            raise PackError(self.issues)
        return TemplatePack(
            spec.name, self.source.path, auth, headers, chat, embeddings, error, MappingProxyType(dict(spec.constants)),
            _rate_limits(spec.rate_limits), spec.speaks, completions,
            frozenset(spec.maps) if spec.maps is not None else None, responses,
            signer=signer, root=root,
        )

    def _overridable(self, name: str) -> bool:
        parts = tuple(name.split("."))
        if parts[0] in ("chat", "embeddings") and getattr(self.spec, parts[0]) is None:
            return False  # the pack has no such call: an override would never run
        node: Any = self.source.data
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, str):
            return True
        # A template the pack leaves out may still be given (e.g. a stream event).
        return name in {"chat.body", "chat.answer", "chat.stream.url", "chat.stream.end", "embeddings.body", "embeddings.answer", "error"} or (
            name.startswith("chat.stream.events.") and len(parts) == 4
        )

    def _call(self, loc: tuple[str, ...], spec: Any) -> CompiledCall:
        stream = None
        if getattr(spec, "stream", None) is not None:
            s = spec.stream
            events = {}
            names = set(s.events) | {n.split(".")[-1] for n in self.overrides if n.startswith(".".join(loc) + ".stream.events.")}
            for name in sorted(names):
                compiled = self._value(loc + ("stream", "events", name), s.events.get(name))
                if compiled is not None:
                    events[name] = compiled
            stream = CompiledStream(
                url=self._text(loc + ("stream", "url"), s.url),
                query=self._mapping(loc + ("stream", "query"), s.query),
                framing=s.framing,
                done=s.done.encode() if s.done is not None else None,
                skip_empty_chunks=s.skip_empty_chunks,
                events=MappingProxyType(events),
                end=self._value(loc + ("stream", "end"), s.end),
            )
        url = self._text(loc + ("url",), spec.url)
        return CompiledCall(
            method=spec.method,
            url=url,  # type: ignore[arg-type]
            query=self._mapping(loc + ("query",), spec.query),
            headers=self._mapping(loc + ("headers",), spec.headers),
            body=self._value(loc + ("body",), getattr(spec, "body", None)),
            answer=self._value(loc + ("answer",), getattr(spec, "answer", None)),
            stream=stream,
        )

    def _mapping(self, loc: tuple[str, ...], values: Mapping[str, str]) -> tuple[tuple[str, Any], ...]:
        out = []
        for name, text in values.items():
            compiled = self._text(loc + (name,), text)
            if compiled is not None:
                out.append((name.lower(), compiled))
        return tuple(out)

    def _source_for(self, loc: tuple[str, ...], text: str | None) -> tuple[str | None, Origin]:
        name = ".".join(loc)
        if name in self.overrides:
            text = self.overrides[name]
            file, line, col = self.where(name) if self.where else ("providers.yaml", 1, 1)
            block = "\n" in text
            return text, Origin(file, line + 1 if block else line, col, block)
        position = self.source.values.get(loc)
        if position is None:
            line, col = self.source.where(loc)
            return text, Origin(self.source.path, line, col, False)
        return text, Origin(self.source.path, position.line, position.col, position.block)

    def _value(self, loc: tuple[str, ...], text: str | None) -> Any:
        text, origin = self._source_for(loc, text)
        if text is None:
            return None
        try:
            return compile_value(text, origin)
        except TemplateProblem as problem:
            self.issues.append(ConfigIssue(problem.file, problem.line, problem.col, f"{'.'.join(loc)}: {problem.message}"))
            return None

    def _text(self, loc: tuple[str, ...], text: str | None) -> Any:
        text, origin = self._source_for(loc, text)
        if text is None:
            return None
        try:
            return compile_text(text, origin)
        except TemplateProblem as problem:
            self.issues.append(ConfigIssue(problem.file, problem.line, problem.col, f"{'.'.join(loc)}: {problem.message}"))
            return None

    def _issue_at_override(self, name: str, line: int | None, message: str) -> None:
        file, at_line, col = self.where(name) if self.where else ("providers.yaml", 1, 1)
        self.issues.append(ConfigIssue(file, line or at_line, col, message))


def _rate_limits(spec: RateLimits | None) -> RateLimitMap | None:
    """The pack's rate-limit headers as (OpenAI name, provider name) pairs."""
    if spec is None:
        return None
    pairs = tuple(
        (f"x-ratelimit-{field.replace('_', '-', 1)}", header.lower())
        for field, header in spec.model_dump(exclude={"reset_format"}).items()
        if header
    )
    return RateLimitMap(pairs, spec.reset_format) if pairs else None


def load_pack(
    api: str,
    base_dir: str,
    templates: Mapping[str, str] | None = None,
    where: Callable[[str], tuple[str, int, int]] | None = None,
) -> Pack:
    """The compiled pack a provider's `api:` names: a built-in name or a pack file path.

    A path is relative to the directory of providers.yaml. `templates` replaces single
    templates of the pack (a provider's `templates:`); `where` locates each override in
    providers.yaml for error messages. Every template is compiled here, once per snapshot.
    """
    return compile_pack(find_pack(api, base_dir), templates or {}, where)
