"""Noticing that a client has gone while its request is still being worked on.

Once a request's body has been read, nothing else arrives from the client until it
hangs up, so the server's next message on `receive` can only be `http.disconnect`.
`ClientWatch` waits for that message beside the handler and cancels the handler's task
when it comes: the upstream call in flight is cancelled with it (its connection closed),
no retry or fallback starts after it, and the request ends as a 499.

The wait runs only between the end of the body and the handler's return; a streamed
answer is then watched by the response itself, which listens to `receive` in the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from starlette.types import Receive, Scope

# Where an endpoint leaves its watch in the ASGI scope for the body reader to arm.
SCOPE_KEY = "gateway.client_watch"


class ClientWatch:
    """One request's watch for its client leaving (see the module's docstring)."""

    __slots__ = ("_task", "_waiter", "gone")

    def __init__(self, task: asyncio.Task[object] | None) -> None:
        self._task = task
        self._waiter: asyncio.Task[None] | None = None
        self.gone = False  # the client hung up, and the handler's task was cancelled for it

    def arm(self, receive: Receive) -> None:
        """Start waiting: the body has been read, so the next message means the client left."""
        if self._waiter is None and self._task is not None:
            self._waiter = asyncio.ensure_future(self._wait(receive))

    async def _wait(self, receive: Receive) -> None:
        try:
            message = await receive()
        except Exception:  # the server has nothing more to say about this request
            return
        if message["type"] == "http.disconnect" and self._task is not None and not self._task.done():
            self.gone = True
            self._task.cancel()

    def disarm(self) -> None:
        """The handler returned: stop waiting, so the response may read `receive` itself."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.cancel()

    def cancelled_by_client(self) -> bool:
        """True when the CancelledError being handled came from the client leaving; the
        cancellation is then spent, so the task goes on to end the request normally."""
        if not self.gone or self._task is None:
            return False
        self._task.uncancel()
        return True


def arm(scope: Scope, receive: Receive) -> None:
    """Called by the body reader once the whole body is in: watch for the client leaving."""
    watch = scope.get(SCOPE_KEY)
    if watch is not None:
        watch.arm(receive)


@contextlib.contextmanager
def watching(scope: Scope, watch: ClientWatch) -> Iterator[ClientWatch]:
    """Give the request `watch` for the duration of its handler."""
    scope[SCOPE_KEY] = watch
    try:
        yield watch
    finally:
        watch.disarm()
        scope.pop(SCOPE_KEY, None)
