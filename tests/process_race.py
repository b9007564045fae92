"""Two (or more) worker processes started at the same moment: the race tests' one handshake.

Each worker script prints ``ready`` once connected, waits for ``go`` on stdin, runs, and prints
its result as JSON on its last line. ``race`` starts them, waits until all are ready, says go to
all, and returns each one's parsed last line; a worker that fails or outlives ``timeout_s`` fails
the test (and is killed).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


async def race(worker: Path, argvs: Sequence[Sequence[str]], *, env: dict[str, str] | None = None,
               timeout_s: float = 120) -> list[Any]:
    environment = {**os.environ, "COALITION_SECRET_KEY": "test-secret-key", "PYTHONPATH": str(ROOT),
                   **(env or {})}
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, str(worker), *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=environment) for argv in argvs]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert (await asyncio.wait_for(proc.stdout.readline(), timeout=60)).strip() == b"ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = [await asyncio.wait_for(proc.communicate(), timeout=timeout_s) for proc in procs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    return [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
