"""Pack templates: sandboxed, checked before they run, compiled once, reporting file:line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config.load import ConfigError
from gateway.providers.packs._templates import (
    Origin,
    TemplateProblem,
    compile_text,
    compile_value,
)
from gateway.providers.snapshots import build_snapshot

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = Origin("pack.yaml", 10, 3, True)

ROUTES = "routes:\n  r:\n    targets: [p/m]\n"


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}",
    "{{ body.__class__ }}",
    "{{ body['__class__'] }}",
    "{{ (body | attr('__class__')) }}",
    "{{ cycler.__init__.__globals__ }}",
    "{% set x = body.mro %}{{ x }}",
    "{{ lipsum.__globals__['os'] }}",
])
def test_sandbox_escapes_are_refused_before_anything_runs(source):
    with pytest.raises(TemplateProblem) as caught:
        compile_value(source, ORIGIN)
    assert "not allowed" in caught.value.message


def test_sandbox_also_guards_at_run_time():
    # A name the static check cannot see (computed at run time) still meets the sandbox.
    from jinja2.exceptions import SecurityError

    template = compile_value("{{ body[name] | string }}", ORIGIN)
    with pytest.raises(SecurityError):
        template.render({"body": "", "name": "__class__"})
    assert template.render({"body": {"a": 1}, "name": "a"}) == ["1"]


def test_value_templates_output_values_not_text():
    template = compile_value('{% set xs %}{% for i in [1, 2] %}{{ {"n": i, "q": "a\\"b"} }}{% endfor %}{% endset %}{{ {"items": xs} }}', ORIGIN)
    assert template.render({}) == [{"items": [{"n": 1, "q": 'a"b'}, {"n": 2, "q": 'a"b'}]}]


def test_set_variables_reach_every_part_of_a_template():
    """Top-level `set`s are read as the template's own locals (not copied into the render
    context) unless a block needs them there: either way every reader sees them."""
    source = ('{% set a = 1 %}{% set b %}{{ a + 1 }}{% endset %}{% if a %}{% set c = b[0] + 1 %}{% endif %}'
              '{% for i in [a] %}{% set d = i + c %}{{ {"a": a, "b": b, "c": c, "d": d} }}{% endfor %}')
    assert compile_value(source, ORIGIN).render({}) == [{"a": 1, "b": [2], "c": 3, "d": 4}]
    blocks = compile_text("{% set who = 'block' %}{% block b %}in a {{ who }}{% endblock %}", ORIGIN)
    assert blocks.render({}) == "in a block"
    macro = compile_text("{% set n = 2 %}{% macro twice(x) %}{{ x * n }}{% endmacro %}{{ twice(3) }}", ORIGIN)
    assert macro.render({}) == "6"


def test_is_mapping_holds_for_every_mapping_and_nothing_else():
    from collections.abc import Mapping
    from types import MappingProxyType

    class Custom(Mapping):
        def __getitem__(self, key):
            raise KeyError(key)

        def __iter__(self):
            return iter(())

        def __len__(self):
            return 0

    template = compile_value("{{ x is mapping }}", ORIGIN)
    for value in ({"a": 1}, MappingProxyType({}), Custom()):
        assert template.render({"x": value}) == [True]
    for value in ([1], "text", None, 3):
        assert template.render({"x": value}) == [False]


def test_constant_values_stay_values():
    assert compile_value('{{ {"type": "ping"} }}\n{{ 3 }}', ORIGIN).render({}) == [{"type": "ping"}, 3]


def test_text_outside_outputs_is_refused_in_value_templates():
    with pytest.raises(TemplateProblem) as caught:
        compile_value('{"model": "{{ target.model }}"}', ORIGIN)
    assert "text outside" in caught.value.message


def test_syntax_error_is_located_in_the_file():
    with pytest.raises(TemplateProblem) as caught:
        compile_value("{{ 1 }}\n{% if x %}\n{{ 2 }}", ORIGIN)
    assert (caught.value.file, caught.value.line) == ("pack.yaml", 10 + 3 - 1)


def test_plain_text_templates_do_not_render():
    assert compile_text("/v1/messages", ORIGIN).template is None
    assert compile_text("/models/{{ target.model }}:go", ORIGIN).render({"target": {"model": "x"}}) == "/models/x:go"


def write(tmp_path: Path, pack: str, providers_extra: str = "") -> tuple[Path, Path]:
    (tmp_path / "packs").mkdir(exist_ok=True)
    (tmp_path / "packs" / "mine.yaml").write_text(pack)
    (tmp_path / "routes.yaml").write_text(ROUTES)
    (tmp_path / "providers.yaml").write_text(
        "providers:\n  p:\n    api: ./packs/mine.yaml\n    base_url: http://127.0.0.1:9\n" + providers_extra + "    models:\n      m: {}\n"
    )
    return tmp_path / "routes.yaml", tmp_path / "providers.yaml"


PACK_WITH_ESCAPE = """\
name: mine
chat:
  url: /chat
  body: |
    {% set a = 1 %}
    {{ ''.__class__.__mro__ }}
"""


def test_gateway_validate_reports_a_sandbox_escape_at_its_file_and_line(tmp_path):
    routes, providers = write(tmp_path, PACK_WITH_ESCAPE)
    result = subprocess.run([sys.executable, "-m", "gateway", "validate", str(routes), str(providers)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0
    assert f"{tmp_path / 'packs' / 'mine.yaml'}:6:" in result.stdout + result.stderr
    assert "is not allowed in pack templates" in result.stdout + result.stderr


def test_syntax_error_in_a_pack_fails_the_build_at_its_line(tmp_path):
    routes, providers = write(tmp_path, "name: mine\nchat:\n  url: /chat\n  answer: |\n    {{ answer.x }}\n    {% for %}\n")
    with pytest.raises(ConfigError) as caught:
        build_snapshot(routes, providers, env={})
    issue = caught.value.issues[0]
    assert (issue.file, issue.line) == (str(tmp_path / "packs" / "mine.yaml"), 6)
    assert "chat.answer" in issue.message


def test_unknown_pack_key_is_located(tmp_path):
    routes, providers = write(tmp_path, "name: mine\nchat:\n  url: /chat\n  bodyy: x\n")
    with pytest.raises(ConfigError) as caught:
        build_snapshot(routes, providers, env={})
    assert caught.value.issues[0].line == 4
    assert "bodyy" in caught.value.issues[0].message


def test_broken_override_in_providers_yaml_is_located_there(tmp_path):
    routes, providers = write(tmp_path, "name: mine\nchat:\n  url: /chat\n", "    templates:\n      chat.body: '{{ x.__class__ }}'\n")
    with pytest.raises(ConfigError) as caught:
        build_snapshot(routes, providers, env={})
    issue = caught.value.issues[0]
    assert (issue.file, issue.line) == (str(providers), 6)


def test_override_of_a_template_the_pack_does_not_have_is_refused(tmp_path):
    routes, providers = write(tmp_path, "name: mine\nchat:\n  url: /chat\n", "    templates:\n      chat.nonsense: '{{ 1 }}'\n")
    with pytest.raises(ConfigError) as caught:
        build_snapshot(routes, providers, env={})
    assert "not a template" in caught.value.issues[0].message


def test_unknown_builtin_pack_lists_the_builtins(tmp_path):
    (tmp_path / "routes.yaml").write_text(ROUTES)
    (tmp_path / "providers.yaml").write_text("providers:\n  p:\n    api: nosuch\n    models:\n      m: {}\n")
    with pytest.raises(ConfigError) as caught:
        build_snapshot(tmp_path / "routes.yaml", tmp_path / "providers.yaml", env={})
    message = caught.value.issues[0].message
    for name in ("anthropic", "echo", "openai"):
        assert name in message


@pytest.mark.parametrize("source", ["{{ body.pop('a') }}", "{{ body.update({'a': 2}) }}", "{{ body.setdefault('b', 1) }}",
                                    "{{ body.a.append(3) }}", "{{ body.clear() }}"])
def test_templates_cannot_mutate_what_they_are_given(source):
    from jinja2.exceptions import SecurityError

    body = {"a": [1]}
    with pytest.raises(SecurityError):
        compile_value(source, ORIGIN).render({"body": body})
    assert body == {"a": [1]}


def test_mapping_keys_read_as_attributes_and_read_only_methods_work():
    template = compile_value("{{ [body.role, body.get('missing', 'd'), body['items'], body.items() | list | length] }}", ORIGIN)
    assert template.render({"body": {"role": "user", "items": 3}}) == [["user", "d", 3, 2]]


def test_get_calls_keep_the_sandboxs_rules_for_anything_but_a_plain_mapping():
    # `x.get(...)` is compiled to one direct call on plain dicts (the read-only method the
    # sandbox allows there); anything else, a dict subclass included, goes the sandbox's way.
    from jinja2.exceptions import SecurityError

    def refused(key):
        raise AssertionError("an unsafe method ran")

    refused.unsafe_callable = True  # what Jinja's sandbox refuses to call

    class Odd(dict):
        get = staticmethod(refused)

    class Thing:
        get = staticmethod(refused)

    for made in (Odd(a=1), Thing()):
        for source in ("{{ x.get('a') }}", "{% for i in [1] %}{{ x.get('a', i) }}{% endfor %}",
                       "{% set y %}{{ x.get('a') }}{% endset %}{{ y }}"):
            with pytest.raises(SecurityError):
                compile_value(source, ORIGIN).render({"x": made})
            with pytest.raises(SecurityError):
                compile_text(source, ORIGIN).render({"x": made})
    plain = {"a": 1}
    assert compile_value("{{ [x.get('a'), x.get('b', 2), x.get('b')] }}", ORIGIN).render({"x": plain}) == [[1, 2, None]]
    assert compile_text("{% for i in [1] %}{{ x.get('a') }}-{{ x.get('b', i) }}{% endfor %}", ORIGIN).render({"x": plain}) == "1-1"


def test_field_reads_give_the_sandboxs_answer_on_every_kind_of_value():
    """`x.field` is read inline on a plain dict; everything else (absent keys, read-only
    mappings, dict subclasses, other objects, dict's own method names) is the sandbox's."""
    from types import MappingProxyType

    from jinja2.exceptions import UndefinedError

    class Record(dict):
        pass

    class Thing:
        role = "from an attribute"

    source = "{{ [x.role, x.get('role'), x.role is defined] }}"
    for made, role in ((dict(role="plain"), "plain"), (MappingProxyType({"role": "proxy"}), "proxy"),
                       (Record(role="subclass"), "subclass")):
        assert compile_value(source, ORIGIN).render({"x": made}) == [[role, role, True]]
    assert compile_value("{{ x.role }}", ORIGIN).render({"x": Thing()}) == ["from an attribute"]
    assert compile_value("{{ [x.other is defined, x.keys() | list] }}", ORIGIN).render({"x": {"a": 1}}) == [[False, ["a"]]]
    with pytest.raises(UndefinedError):
        compile_value("{{ x.other + 1 }}", ORIGIN).render({"x": {"a": 1}})
    nested = "{% for m in body.messages if m.role != 'system' %}{{ [m.content.text, body.get(m.role, m.role)] }}{% endfor %}"
    body = {"messages": [{"role": "system", "content": {"text": "s"}}, {"role": "user", "content": {"text": "u"}}],
            "user": "named"}
    assert compile_value(nested, ORIGIN).render({"body": body}) == [["u", "named"]]
    assert compile_text("{{ body.messages[1].content.text }}-{{ body.user }}", ORIGIN).render({"body": body}) == "u-named"


def test_the_object_a_field_is_read_from_is_worked_out_once():
    calls = []

    def made():
        calls.append(1)
        return {"a": {"b": 2}}

    assert compile_value("{{ [made().a.b, made().get('a').b] }}", ORIGIN).render({"made": made}) == [[2, 2]]
    assert len(calls) == 2


def test_override_for_a_call_the_pack_does_not_have_is_refused(tmp_path):
    routes, providers = write(tmp_path, "name: mine\nchat:\n  url: /chat\n", "    templates:\n      embeddings.body: '{{ 1 }}'\n")
    with pytest.raises(ConfigError) as caught:
        build_snapshot(routes, providers, env={})
    assert "not a template" in caught.value.issues[0].message


def test_override_of_the_stream_url_is_accepted(tmp_path):
    routes, providers = write(tmp_path, "name: mine\nchat:\n  url: /chat\n", "    templates:\n      chat.stream.url: /chat/stream\n")
    snapshot = build_snapshot(routes, providers, env={})
    target = snapshot.targets["p/m"]
    body = {"model": "r", "messages": [{"role": "user", "content": "x"}]}
    assert target.pack.chat_request(target, body, True).url.endswith("/chat/stream")
    assert target.pack.chat_request(target, body, False).url.endswith("/chat")
