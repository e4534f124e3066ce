"""Reading a pack file: its data, and where each value starts, for file:line:col errors.

Pack files are not env-substituted (they are code under review, not deployment config)
and template errors must point at the template's own line, so this reader records the
position of every value as well as every key, and whether a string was a block scalar
(`|`), whose first template line is the line after the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Loc = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ValuePosition:
    line: int
    col: int
    block: bool


@dataclass(slots=True)
class PackSource:
    path: str
    data: Any = None
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    values: dict[Loc, ValuePosition] = field(default_factory=dict)

    def where(self, loc: Loc) -> tuple[int, int]:
        best: Loc = ()
        for part in loc:
            if best + (part,) in self.keys:
                best = best + (part,)
        return self.keys.get(best, (1, 1))


class PackSyntaxError(Exception):
    def __init__(self, line: int, col: int, message: str):
        self.line, self.col, self.message = line, col, message
        super().__init__(message)


def read_pack_text(text: str, path: str) -> PackSource:
    source = PackSource(path)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            source.data = _build(node, (), loader, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PackSyntaxError(line, col, f"YAML syntax: {exc.problem or exc.context or 'invalid YAML'}") from None
    except yaml.YAMLError as exc:
        raise PackSyntaxError(1, 1, f"YAML syntax: {exc}") from None
    finally:
        loader.dispose()
    return source


def _build(node: yaml.Node, loc: Loc, loader: yaml.SafeLoader, out: PackSource) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        value: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in value:
                raise PackSyntaxError(key_node.start_mark.line + 1, key_node.start_mark.column + 1, f"duplicate key '{key}'")
            child = loc + (key,)
            out.keys[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            value[key] = _build(value_node, child, loader, out)
        return value
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            out.keys[loc + (index,)] = (item.start_mark.line + 1, item.start_mark.column + 1)
            items.append(_build(item, loc + (index,), loader, out))
        return items
    block = node.style in ("|", ">")
    mark = node.start_mark
    if block:
        # The indicator sits on the key's line; the text starts on the next one.
        out.values[loc] = ValuePosition(mark.line + 2, 1, True)
    else:
        out.values[loc] = ValuePosition(mark.line + 1, mark.column + 1, False)
    return loader.construct_object(node)
