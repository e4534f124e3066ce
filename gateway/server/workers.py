"""`gateway serve --workers N`: a supervisor that passes SIGHUP on to its workers."""

from __future__ import annotations

import contextlib
import os
import signal

import uvicorn

from gateway.config.reload import SUPERVISOR_ENV
from gateway.observe import log


def serve_workers(config: uvicorn.Config) -> None:
    """Run N workers whose supervisor reloads them on SIGHUP instead of restarting them.

    uvicorn's own supervisor answers SIGHUP by replacing every worker, which drops the
    state a worker holds in memory and, with a broken config, fails to start new ones.
    Here SIGHUP is passed on to each running worker, which reloads in place.
    """
    from uvicorn.supervisors import Multiprocess

    class Supervisor(Multiprocess):
        def handle_hup(self) -> None:
            log.event("reload", f"SIGHUP: asking {len(self.processes)} workers to reload their config")
            for process in self.processes:
                # A worker still starting has no SIGHUP handler yet (the signal would end it): wait.
                if process.pid is not None and process.wait_until_ready(self.config.timeout_worker_healthcheck):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGHUP)

    os.environ[SUPERVISOR_ENV] = str(os.getpid())
    Supervisor(config, sockets=[config.bind_socket()]).run()
