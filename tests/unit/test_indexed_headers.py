"""The endpoints' header index reads exactly what Starlette's `Headers` reads."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from gateway.api.headers import IndexedHeaders

RAW = [(b"host", b"gw"), (b"x-gateway-user", b"ana"), (b"x-gateway-user", b"bob"),
       (b"authorization", b"Bearer sk-1"), (b"x-latin", "caf\u00e9".encode("latin-1"))]


@pytest.mark.parametrize("name", ["host", "X-Gateway-User", "authorization", "x-latin", "absent", "AUTHORIZATION"])
def test_every_lookup_reads_as_starlette_reads_it(name):
    scope = {"type": "http", "headers": RAW}
    ours, theirs = IndexedHeaders(scope), Headers(scope=scope)
    assert ours.get(name) == theirs.get(name)
    assert ours.get(name, "fallback") == theirs.get(name, "fallback")
    assert (name in ours) == (name in theirs)
    if name in theirs:
        assert ours[name] == theirs[name]
    else:
        with pytest.raises(KeyError):
            ours[name]


def test_a_name_sent_twice_reads_as_its_first_value_and_lists_both():
    headers = IndexedHeaders({"type": "http", "headers": RAW})
    assert headers["x-gateway-user"] == "ana"
    assert headers.getlist("x-gateway-user") == ["ana", "bob"]
    assert dict(headers) == dict(Headers(raw=RAW))
    assert 42 not in headers
