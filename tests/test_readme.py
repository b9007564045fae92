"""The README's walk-through runs as printed, against a running server (uvicorn in a subprocess).

The code blocks of "A POS integration in five minutes" are taken from README.md and run
unchanged: the shell block with bash (curl and jq), the Python block with this interpreter.
Only the environment is given: the two merchants' keys ($BAKERY, $BOOKS) and the server's
address ($COALITION_URL).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coalition.config import load_settings
from coalition.db import Database
from coalition.migrate import migrate
from coalition.partners.service import onboard_merchant

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## A POS integration in five minutes"


def readme_blocks() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return re.findall(r"```(sh|python)\n(.*?)```", text[start:end], flags=re.S)


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("readme")
    # Only this test's settings: none of the COALITION_* variables of the calling environment.
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("COALITION_")}
    env = {**inherited, "COALITION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'readme.db'}",
           "COALITION_SECRET_KEY": "readme-test-secret", "COALITION_REDIS_URL": "", "COALITION_ADMIN_KEY": "",
           "PYTHONPATH": str(ROOT)}
    settings = load_settings(env)

    async def prepare() -> tuple[str, str]:
        await migrate(settings)
        db = Database(settings.database_url)
        try:
            bakery = await onboard_merchant(db, name="Crumb & Co. Bakery", category="bakery",
                                            earn_rate_points_per_unit=2)
            books = await onboard_merchant(db, name="Chapter One Books", category="books",
                                           earn_rate_points_per_unit=1)
        finally:
            await db.dispose()
        return bakery.api_key, books.api_key

    bakery_key, books_key = asyncio.run(prepare())
    port = spare_port()
    log = tmp / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "coalition.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"], env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield {**env, "COALITION_URL": url, "BAKERY": bakery_key, "BOOKS": books_key}
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_readme_has_the_walk_through_blocks() -> None:
    assert [kind for kind, _ in readme_blocks()] == ["sh", "python"]


@pytest.mark.skipif(shutil.which("jq") is None or shutil.which("curl") is None, reason="needs curl and jq")
def test_the_curl_walk_through_runs_as_printed(server: dict[str, str]) -> None:
    script = next(code for kind, code in readme_blocks() if kind == "sh")
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", script], env=server, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    assert '"errors"' not in out and '"userErrors":[{' not in out, out
    assert '"balance":45' in out  # 90 earned, 20 redeemed, 25 captured
    assert '"dispute":{"id":' in out and '"status":"OPEN"' in out
    assert '"status":"CAPTURED","capturedPoints":25' in out
    # and the member's own view agrees
    history = json.loads(next(line for line in out.splitlines() if '"viewer"' in line))
    kinds = sorted(e["node"]["kind"] for e in history["data"]["viewer"]["member"]["transactions"]["edges"])
    assert kinds == ["CAPTURE", "EARN", "HOLD", "REDEEM"]


def test_the_python_walk_through_runs_as_printed(server: dict[str, str]) -> None:
    code = next(code for kind, code in readme_blocks() if kind == "python")
    done = subprocess.run([sys.executable, "-c", code], env=server, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "balance after the capture: 65" in done.stdout
    assert "refused: INSUFFICIENT_POINTS" in done.stdout
    assert re.search(r"found \w{4}-\w{4}-\w{4} with 65 points", done.stdout), done.stdout
