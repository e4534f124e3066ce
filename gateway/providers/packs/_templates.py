"""Compiling and running pack templates inside Jinja's sandbox.

A pack arrives in a config PR, so its templates are untrusted code: they run in an
`ImmutableSandboxedEnvironment` (no underscore attributes, no Python internals, no
mutation of lists and dicts) and are also checked before they are compiled, so an
escape attempt fails `gateway validate` at its line instead of ever running.

Value templates are compiled with Jinja's native code generator and a `concat` that
collects outputs into a list: `{{ {"role": "user"} }}` outputs the dict itself, and a
`{% set x %}{% for ... %}{{ ... }}{% endfor %}{% endset %}` block collects a list. No
value is ever printed and parsed back, so quoting bugs cannot exist. Whitespace between
tags is removed from the syntax tree at compile time; any other literal text in a value
template is a validation error.

Everything is compiled once, when the snapshot is built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from io import StringIO
from types import BuiltinMethodType, FunctionType, MappingProxyType, MethodType
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.compiler import CodeGenerator, optimizeconst
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, missing
from jinja2.sandbox import ImmutableSandboxedEnvironment, is_internal_attribute

from gateway.providers.packs import _helpers as helpers


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a template's first line sits in its file, to report errors at file:line:col."""

    file: str
    line: int
    col: int
    block: bool  # a YAML block scalar: template line N is file line `line + N - 1`

    def at(self, template_line: int | None) -> tuple[int, int]:
        if not self.block or not template_line:
            return self.line, self.col
        return self.line + template_line - 1, self.col


class TemplateProblem(Exception):
    """A template that cannot be used, located in its file."""

    def __init__(self, origin: Origin, template_line: int | None, message: str):
        self.file = origin.file
        self.line, self.col = origin.at(template_line)
        self.message = message
        super().__init__(f"{self.file}:{self.line}:{self.col}: {message}")


class _MappingGets(CodeGenerator):
    """Field reads on plain dicts compiled inline, with the sandbox's own outcome.

    Templates read fields of the request and the answer a few dozen times a request
    (`m.role`, `answer.usage`, `body.get('tools')`). Jinja compiles `x.field` as a call to the
    sandbox's `getattr`, and `x.get(key)` as a sandboxed attribute read that makes a bound
    method and then a sandboxed call that inspects it. Here, on a plain dict (what nearly
    every value a pack reads is), both are read in the generated code itself:

    - `x.field`, for a name that is no attribute of dict: `x['field']` when the key is
      there; anything else (an absent key: undefined; another type) takes the sandbox's way.
    - `x.get(key)` and `x.get(key, default)`: the dict's own `get`; on anything else one
      `environment.mapping_get` call, which calls `get` directly on a read-only mapping and
      sends anything else the full way.

    The object is evaluated once, into a temporary of the generated function.
    """

    _temporaries = 0

    # Jinja copies every top-level `{% set %}` into the render context (`context.vars`, and
    # `exported_vars` for imports) so that blocks, includes and importers can read it. A pack
    # template that has none of those reads its variables as Python locals only: the copy
    # would be two stores per `set` on every render for nothing.
    _untracked = False
    _CONTEXT_READERS = (nodes.Block, nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)

    def visit_Template(self, node: nodes.Template, frame: Any = None) -> None:
        self._untracked = not any(node.find_all(self._CONTEXT_READERS))
        super().visit_Template(node, frame)

    def _temporary(self) -> str:
        """A fresh name for a value the generated code reads more than once."""
        self._temporaries += 1
        return f"_gw{self._temporaries}"

    def _text_of(self, write: Callable[[], None]) -> str:
        """What `write` would write, as text (to be written more than once)."""
        stream, self.stream = self.stream, StringIO()
        try:
            write()
            return self.stream.getvalue()
        finally:
            self.stream = stream

    def _write_arguments(self, node: nodes.Call, frame: Any) -> None:
        for i, arg in enumerate(node.args):
            if i:
                self.write(", ")
            self.visit(arg, frame)

    @optimizeconst  # as Jinja's own: a read of a constant is folded first
    def visit_Getattr(self, node: nodes.Getattr, frame: Any) -> None:
        if self.environment.is_async or node.attr in _DICT_ATTRS:
            super().visit_Getattr(node, frame)
            return
        held, found = self._temporary(), self._temporary()
        self.write(f"({found} if type({held} := ")
        self.visit(node.node, frame)
        self.write(f") is dict and ({found} := {held}.get({node.attr!r}, missing)) is not missing"
                   f" else environment.getattr({held}, {node.attr!r}))")

    def pop_assign_tracking(self, frame: Any) -> None:
        if self._untracked and frame.toplevel and not frame.block_frame and not frame.loop_frame:
            self._assign_stack.pop()
            return
        super().pop_assign_tracking(frame)

    @optimizeconst  # as Jinja's own: a call on constants is folded first
    def visit_Call(self, node: nodes.Call, frame: Any, forward_caller: bool = False) -> None:
        reader = node.node
        if (
            forward_caller or not isinstance(reader, nodes.Getattr) or reader.attr != "get"
            or not 1 <= len(node.args) <= 2 or node.kwargs or node.dyn_args is not None or node.dyn_kwargs is not None
        ):
            super().visit_Call(node, frame, forward_caller=forward_caller)
            return
        held = self._temporary()
        arguments = self._text_of(lambda: self._write_arguments(node, frame))
        self.write(f"({held}.get({arguments}) if type({held} := ")
        self.visit(reader.node, frame)
        self.write(f") is dict else environment.mapping_get(context, {held}, {arguments}")
        if frame.loop_frame:  # what Jinja passes along to calls inside loops and blocks
            self.write(", _loop_vars=_loop_vars")
        if frame.block_frame:
            self.write(", _block_vars=_block_vars")
        self.write("))")


class _TextCodeGenerator(_MappingGets):
    """Jinja's own text output, with the `get` calls above."""


class _ValueCodeGenerator(_MappingGets, NativeCodeGenerator):
    """Native output, but constant expressions stay values instead of being joined as text."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Any, finalize: Any) -> Any:
        if isinstance(node, nodes.TemplateData):
            return super()._output_child_to_const(node, frame, finalize)
        raise nodes.Impossible()


def _collect(values: Iterable[Any]) -> list[Any]:
    return list(values)


# Attribute lookups on plain mappings are most of what templates do (`m.role`,
# `body.get('tools')`), so they take a short path with exactly the sandbox's outcome:
# a name that is not an attribute of the mapping type is a key; the read-only methods are
# returned as they are; anything else (underscored names, mutators) goes the full way.
_MAPPING_TYPES = (dict, MappingProxyType)
_MAPPING_ATTRS = {kind: frozenset(dir(kind)) for kind in _MAPPING_TYPES}
_DICT_ATTRS = _MAPPING_ATTRS[dict]
_MAPPING_READERS = frozenset({"get", "keys", "values", "items"})
_HELPER_FUNCTIONS = frozenset(id(f) for f in helpers.GLOBALS.values())


def _is_mapping(value: Any) -> bool:
    """Jinja's `is mapping` test, a plain dict found without the abstract class's check."""
    return isinstance(value, helpers.MAPPINGS)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with the helpers every template may use."""

    code_generator_class = _TextCodeGenerator

    def __init__(self) -> None:
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
            cache_size=0,
            auto_reload=False,
        )
        self.filters.update(helpers.FILTERS)
        self.globals.update(helpers.GLOBALS)
        self.tests["mapping"] = _is_mapping  # Jinja's own asks the abstract class first

    def getattr(self, obj: Any, attribute: str) -> Any:
        kind = type(obj)
        if kind in _MAPPING_ATTRS:
            if attribute not in _MAPPING_ATTRS[kind]:
                try:
                    return obj[attribute]
                except KeyError:
                    return self.undefined(obj=obj, name=attribute)
            if attribute in _MAPPING_READERS:
                return getattr(obj, attribute)
        return super().getattr(obj, attribute)

    def mapping_get(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """A template's `obj.get(...)`: direct on a plain mapping, else as Jinja would run it."""
        if type(__obj) in _MAPPING_ATTRS:
            return __obj.get(*args)
        return __self.call(__context, __self.getattr(__obj, "get"), *args, **kwargs)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's signature)
        # Calls that the sandbox would allow without condition skip its inspection: the
        # pack helpers, read-only methods of mappings, and the stream state's methods.
        kind = type(__obj)
        if (
            (kind is FunctionType and id(__obj) in _HELPER_FUNCTIONS)
            or (kind is BuiltinMethodType and type(__obj.__self__) in _MAPPING_ATTRS and __obj.__name__ in _MAPPING_READERS)
            or (kind is MethodType and type(__obj.__self__) is helpers.StreamState)
        ):
            if kwargs:
                # Calls inside loops and blocks carry Jinja's bookkeeping for its own context.
                kwargs.pop("_loop_vars", None)
                kwargs.pop("_block_vars", None)
            return __obj(*args, **kwargs)
        return super().call(__context, __obj, *args, **kwargs)


class _ValueSandbox(_Sandbox):
    code_generator_class = _ValueCodeGenerator
    concat = staticmethod(_collect)  # type: ignore[assignment]



TEXT_ENV = _Sandbox()
VALUE_ENV = _ValueSandbox()
NAMES: dict[str, Any] = dict(VALUE_ENV.globals)  # the same helpers in both environments

# Attributes a template may never name, even on objects where they would be harmless:
# refusing them by name keeps the rule simple to state and to check before running.
_FORBIDDEN_FILTERS = {"attr"}


def _check(tree: nodes.Template, origin: Origin, value: bool) -> None:
    """Refuse sandbox escapes and (in value templates) literal text, before compiling."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Name, nodes.TemplateData)):
        name: Any = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Name):
            name = node.name
        elif isinstance(node, nodes.Filter) and node.name in _FORBIDDEN_FILTERS:
            raise TemplateProblem(origin, node.lineno, f"the '{node.name}' filter is not allowed in pack templates")
        elif isinstance(node, nodes.TemplateData):
            if value and node.data.strip():
                text = node.data.strip().splitlines()[0][:40]
                raise TemplateProblem(
                    origin, node.lineno, f"text outside {{{{ }}}} in a value template: '{text}' (output values with {{{{ ... }}}})"
                )
            continue
        if isinstance(name, str) and (name.startswith("_") or is_internal_attribute(object(), name) or name in _INTERNAL_NAMES):
            raise TemplateProblem(origin, node.lineno, f"'{name}' is not allowed in pack templates: the sandbox refuses Python internals")


_INTERNAL_NAMES = frozenset({
    "mro", "func_globals", "func_code", "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code",
    "f_globals", "f_locals", "f_builtins", "tb_frame", "im_func", "im_self", "im_class",
})


def _strip_whitespace(tree: nodes.Template) -> None:
    """Whitespace between tags is layout, not output: drop it from every Output node."""
    for output in tree.find_all(nodes.Output):
        output.nodes = [n for n in output.nodes if not (isinstance(n, nodes.TemplateData) and not n.data.strip())]


def scope(variables: Mapping[str, Any]) -> dict[str, Any]:
    """Everything a template can name: the helpers and Jinja's globals, then `variables`.

    Built once per request (or per stream) and shared by every template rendered for
    it; templates cannot change it (their own assignments live in their render context).
    """
    return {**NAMES, **variables}


class _RenderContext(Context):
    """Jinja's render context, made the short way: the scope is its parent as it is (Jinja's
    `new_context` copies the globals, a ChainMap, on every render), no block table is built
    for a template without blocks, and no globals set at all. A template that never changes
    its evaluation context (`{% autoescape %}`) shares one made when it was compiled. A render
    context cost more than the rest of rendering a small template, once per render: twice a
    translated request, once per event of a translated stream."""

    def __init__(self, template: Any, names: dict[str, Any], eval_ctx: EvalContext | None) -> None:
        environment = template.environment
        self.parent = names
        self.vars = {}
        self.environment = environment
        self.eval_ctx = eval_ctx if eval_ctx is not None else EvalContext(environment, template.name)
        self.exported_vars = set()
        self.name = template.name
        self.globals_keys = _NO_NAMES
        blocks = template.blocks
        self.blocks = {name: [block] for name, block in blocks.items()} if blocks else {}

    def resolve_or_missing(self, key: str) -> Any:
        """Jinja's, with one lookup of the scope (a plain dict) instead of two, and none of
        the render's own variables while it has none (a pack template's usual case)."""
        names = self.vars
        if names and key in names:
            return names[key]
        return self.parent.get(key, missing)


_NO_NAMES: frozenset[str] = frozenset()


def _eval_context(env: _Sandbox, tree: nodes.Template) -> EvalContext | None:
    """One evaluation context for every render of a template that never modifies it, else None."""
    if any(tree.find_all(nodes.EvalContextModifier)):
        return None
    return EvalContext(env, None)


@dataclass(frozen=True, slots=True)
class ValueTemplate:
    """A compiled value template: `render` returns the list of values it output."""

    template: Any
    origin: Origin
    eval_ctx: EvalContext | None = None  # shared by every render (see `_RenderContext`)

    def render(self, names: dict[str, Any]) -> list[Any]:
        """Run with a `scope(...)`; returns every value output, in order."""
        template = self.template
        return list(template.root_render_func(_RenderContext(template, names, self.eval_ctx)))

    def render_one(self, names: dict[str, Any]) -> Any:
        values = self.render(names)
        if len(values) != 1:
            raise TemplateError(f"the template output {len(values)} values where one was expected")
        return values[0]


@dataclass(frozen=True, slots=True)
class TextTemplate:
    """A text template, or a plain string when the source has no template syntax."""

    source: str
    template: Any | None
    # Reads nothing but the target's config (`target`, `params`, `constants`) and calls
    # no helper: the same text for every request to a target, so it can be rendered once.
    config_only: bool = True
    eval_ctx: EvalContext | None = None  # shared by every render (see `_RenderContext`)

    def render(self, names: dict[str, Any]) -> str:
        template = self.template
        if template is None:
            return self.source
        return "".join(template.root_render_func(_RenderContext(template, names, self.eval_ctx)))


def _parse(env: _Sandbox, source: str, origin: Origin) -> nodes.Template:
    try:
        return env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(origin, exc.lineno, f"template syntax: {exc.message}") from None


def _build(env: _Sandbox, tree: nodes.Template, origin: Origin) -> Any:
    try:
        code = env.compile(tree, filename=origin.file)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(origin, exc.lineno, f"template syntax: {exc.message}") from None
    return env.template_class.from_code(env, code, env.make_globals(None))


def compile_value(source: str, origin: Origin) -> ValueTemplate:
    tree = _parse(VALUE_ENV, source, origin)
    _check(tree, origin, value=True)
    _strip_whitespace(tree)
    return ValueTemplate(_build(VALUE_ENV, tree, origin), origin, _eval_context(VALUE_ENV, tree))


def compile_text(source: str, origin: Origin) -> TextTemplate:
    if "{{" not in source and "{%" not in source and "{#" not in source:
        return TextTemplate(source, None)
    tree = _parse(TEXT_ENV, source, origin)
    _check(tree, origin, value=False)
    config_only = meta.find_undeclared_variables(tree) <= CONFIG_NAMES and not any(tree.find_all(nodes.Call))
    return TextTemplate(source, _build(TEXT_ENV, tree, origin), config_only, _eval_context(TEXT_ENV, tree))


CONFIG_NAMES = frozenset({"target", "params", "constants"})  # what does not change from one request to the next


# What a running template may raise; the engine turns each into the right client error.
RENDER_ERRORS: tuple[type[BaseException], ...] = (
    TemplateError, SecurityError, TypeError, ValueError, KeyError, IndexError, AttributeError, ArithmeticError, RecursionError,
)
