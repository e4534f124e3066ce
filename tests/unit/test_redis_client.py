"""redis-py comes in without the OpenTelemetry metrics SDK, which stays importable after."""

from __future__ import annotations

import subprocess
import sys


def test_redis_is_imported_without_the_metrics_sdk_which_loads_later_as_usual():
    script = (
        "import sys\n"
        "import gateway.store._redis\n"
        "print('opentelemetry.sdk.metrics' in sys.modules)\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "print(MeterProvider.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "MeterProvider"]
