"""Noticing that a client has gone while its request is still being worked on.

A client gone before its answer has started must stop the work it asked for: the
handler's task is cancelled, the upstream call in flight is cancelled with it (its
connection closed), no retry or fallback starts after it, and the request ends as a 499.

Two ways to notice, the cheaper first:

- `gateway serve`'s own server protocol (`gateway.server.connections`) sees the
  connection close and cancels the task registered in the scope here: nothing runs per
  request for it. It says so in the scope (`SERVER_WATCHES`).
- Under any other ASGI server, once the body has been read nothing else arrives from the
  client until it hangs up, so the server's next message on `receive` can only be
  `http.disconnect`: `ClientWatch` waits for it beside the handler (a task per request).

Either way the watch covers the handler only; a streamed answer is then watched by the
response itself, which listens to `receive` in the same way.
"""

from __future__ import annotations

import asyncio

from starlette.types import Receive, Scope

WATCH = "gateway.client_watch"  # the request's ClientWatch, for the body reader to arm
TASK = "gateway.handler_task"  # the task a server may cancel while the handler runs
SERVER_WATCHES = "gateway.server_watches"  # set by a server that cancels TASK itself on disconnect
GONE = "gateway.client_gone"  # set by that server when it did


class ClientWatch:
    """One request's watch for its client leaving (see the module's docstring)."""

    __slots__ = ("_task", "_scope", "_waiter", "gone")

    def __init__(self, task: asyncio.Task[object] | None, scope: Scope) -> None:
        self._task = task
        self._scope = scope
        self._waiter: asyncio.Task[None] | None = None
        self.gone = False  # the client hung up, and the handler's task was cancelled for it

    def arm(self, receive: Receive) -> None:
        """Start waiting: the body has been read, so the next message means the client left."""
        if self._waiter is None and self._task is not None and not self._scope.get(SERVER_WATCHES):
            self._waiter = asyncio.ensure_future(self._wait(receive))

    async def _wait(self, receive: Receive) -> None:
        try:
            message = await receive()
        except Exception:  # the server has nothing more to say about this request
            return
        if message["type"] == "http.disconnect" and self._task is not None and not self._task.done():
            self.gone = True
            self._task.cancel()

    def __enter__(self) -> ClientWatch:
        """Give the request this watch (and the server its task) for the duration of its
        handler. A class rather than a generator-based context manager: it runs per request."""
        scope = self._scope
        scope[WATCH] = self  # type: ignore[literal-required]
        scope[TASK] = self._task  # type: ignore[literal-required]
        return self

    def __exit__(self, *_exc: object) -> None:
        self.disarm()
        scope = self._scope
        scope.pop(WATCH, None)  # type: ignore[misc]
        scope.pop(TASK, None)  # type: ignore[misc]

    def disarm(self) -> None:
        """The handler returned: stop waiting, so the response may read `receive` itself."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.cancel()

    def cancelled_by_client(self) -> bool:
        """True when the CancelledError being handled came from the client leaving; the
        cancellation is then spent, so the task goes on to end the request normally."""
        if not (self.gone or self._scope.get(GONE)) or self._task is None:
            return False
        self._task.uncancel()
        return True


def arm(scope: Scope, receive: Receive) -> None:
    """Called by the body reader once the whole body is in: watch for the client leaving."""
    watch = scope.get(WATCH)
    if watch is not None:
        watch.arm(receive)
