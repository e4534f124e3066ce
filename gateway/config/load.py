"""Reading a YAML config file into plain data, keeping where every value came from.

Operators fix config by jumping to a line, so every later stage (schema checks,
cross-references) reports `file:line:col`. We keep a map from each value's path
(`("routes", "smart", "limits", "rpm")`) to the position of its key in the file.
`${VAR}` and `${VAR:-default}` are substituted here, scalar by scalar, so a missing
variable is reported at the line that uses it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[Any, ...]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file, located for a human."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "col": self.col, "message": self.message}


class ConfigError(Exception):
    """A config that cannot be used; carries every issue found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


@dataclass(slots=True)
class LoadedFile:
    """A parsed YAML file: its data and the position of every value in it."""

    path: str
    data: Any
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)

    def where(self, loc: Path_) -> tuple[int, int]:
        """Position of the deepest known prefix of `loc` (pydantic locs may add type names)."""
        best: Path_ = ()
        for part in loc:
            candidate = best + (part,)
            if candidate in self.positions:
                best = candidate
        return self.positions.get(best, (1, 1))

    def issue(self, loc: Path_, message: str) -> ConfigIssue:
        line, col = self.where(loc)
        return ConfigIssue(self.path, line, col, message)


class _Loader(yaml.SafeLoader):
    """SafeLoader used only to compose nodes and construct scalars."""


def substitute_env(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace `${VAR}` / `${VAR:-default}`; return the text and the missing names."""
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                missing.append(name)
                return ""
            return default
        return value

    return _ENV_REF.sub(replace, text), missing


def env_with_placeholders(paths: list[str | os.PathLike[str]], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment plus a placeholder for every `${VAR}` the files need but nobody set.

    For checks that run where secrets are absent (CI): a config that only lacks its
    secrets is still checked in full. `${VAR:-default}` keeps its default.
    """
    out = dict(os.environ if env is None else env)
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for name in substitute_env(text, out)[1]:
            out[name] = f"unset-{name}"
    return out


def load_yaml(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> LoadedFile:
    """Parse one file; syntax and env errors become issues, never exceptions."""
    shown = str(path)
    env = os.environ if env is None else env
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return LoadedFile(shown, None, issues=[ConfigIssue(shown, 1, 1, f"cannot read file: {exc.strerror}")])
    return parse_yaml(text, shown, env)


def parse_yaml(text: str, shown: str, env: Mapping[str, str]) -> LoadedFile:
    result = LoadedFile(shown, None)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            result.data = _build(node, (), loader, result, env)
    except yaml.MarkedYAMLError as exc:
        result.issues.append(_syntax_issue(exc, shown))
    except yaml.YAMLError as exc:
        result.issues.append(ConfigIssue(shown, 1, 1, f"YAML syntax: {exc}"))
    finally:
        loader.dispose()
    return result


def _syntax_issue(exc: yaml.MarkedYAMLError, shown: str) -> ConfigIssue:
    """A syntax error at the line to fix. An unclosed `[` or `{` is found only where the
    parser gives up (often the end of the file), so it is reported where it was opened."""
    opened = exc.context_mark
    if opened is not None and exc.context and "flow" in exc.context and exc.problem_mark is not None:
        bracket = "[" if "sequence" in exc.context else "{"
        closer = "]" if bracket == "[" else "}"
        found = exc.problem_mark.line + 1
        return ConfigIssue(shown, opened.line + 1, opened.column + 1,
                           f"YAML syntax: this '{bracket}' is not closed: expected ',' or '{closer}' "
                           f"(the parser gave up at line {found})")
    mark = exc.problem_mark or opened
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or exc.context or "invalid YAML"
    return ConfigIssue(shown, line, col, f"YAML syntax: {problem}")


def _key_issue(key: Any, key_node: yaml.Node, path: Path_, out: LoadedFile) -> str:
    """Every mapping key in these files is a name (route, provider, model, ...), so a key
    YAML reads as a boolean or a number is a mistake: say so, with the fix, and go on
    with the key as written so the rest of the file is still checked."""
    text = key_node.value
    where = ".".join(str(p) for p in (*path, text))
    if isinstance(key, bool) or key is None:
        hint = f'{where}: {text} is read as a YAML {"boolean" if key is not None else "null"}; quote it: "{text}"'
    else:
        names = "route names" if path and path[-1] == "routes" else "names"
        hint = f'{where}: {text} is read as a number; {names} are strings, quote it: "{text}"'
    out.issues.append(ConfigIssue(out.path, *_mark(key_node), hint))
    return str(text)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _build(node: yaml.Node, path: Path_, loader: _Loader, out: LoadedFile, env: Mapping[str, str]) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<: *anchor` merges
        value: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                out.issues.append(ConfigIssue(out.path, *_mark(key_node), "mapping keys must be plain scalars"))
                continue
            if not isinstance(key, str) and isinstance(key_node, yaml.ScalarNode):
                key = _key_issue(key, key_node, path, out)
            if key in value:
                line, col = _mark(key_node)
                out.issues.append(ConfigIssue(out.path, line, col, f"duplicate key '{key}'"))
                continue
            child = path + (key,)
            out.positions[child] = _mark(key_node)
            value[key] = _build(value_node, child, loader, out, env)
        return value
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = path + (index,)
            out.positions[child] = _mark(item)
            items.append(_build(item, child, loader, out, env))
        return items
    return _scalar(node, loader, out, env)


def _scalar(node: yaml.ScalarNode, loader: _Loader, out: LoadedFile, env: Mapping[str, str]) -> Any:
    if "${" not in node.value:
        return loader.construct_object(node)
    text, missing = substitute_env(node.value, env)
    for name in missing:
        out.issues.append(
            ConfigIssue(out.path, *_mark(node), f"environment variable {name} is not set and has no default")
        )
    if node.style is not None:  # quoted: stays a string
        return text
    # A plain scalar keeps YAML's typing after substitution: `rpm: ${RPM:-60}` is an int.
    tag = loader.resolve(yaml.ScalarNode, text, (True, False))
    return loader.construct_object(yaml.ScalarNode(tag, text, node.start_mark, node.end_mark))


class PackNotFound(LookupError):
    pass


class PackError(Exception):
    """A pack file (or a provider's template override) that cannot be used.

    Carries every problem found as config issues at file:line:col, so `gateway validate`
    reports them with the rest of the config.
    """

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))
