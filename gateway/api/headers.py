"""A request's headers, indexed once for the many lookups a request makes.

Starlette's `Headers` finds a name by scanning the raw list and decoding each entry on
every lookup, and a model request looks up about eight names (request id, key, body size,
tier cap, cache control, provider pin, user...). With an SDK's dozen or more headers that
scan is most of reading them; here the list is decoded once, on the first lookup, into a
dict. Everything else (`getlist`, `raw`, `items`) is Starlette's own, on the same list.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.types import Scope

_MISSING: Any = object()


class IndexedHeaders(Headers):
    """`Headers` whose single-value lookups go through a dict built on first use. A name
    sent twice reads as its first value, as Starlette reads it."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope=scope)
        self._index: dict[str, str] | None = None

    def _indexed(self) -> dict[str, str]:
        index: dict[str, str] = {}
        for name, value in self._list:  # ASGI servers send names lowercased
            index.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        self._index = index
        return index

    def get(self, key: str, default: Any = None) -> Any:
        index = self._index if self._index is not None else self._indexed()
        return index.get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    def __contains__(self, key: Any) -> bool:
        index = self._index if self._index is not None else self._indexed()
        return isinstance(key, str) and key.lower() in index
