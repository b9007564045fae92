"""A live server and Chromium for the browser tests.

Chromium is the system's (``/usr/bin/chromium``, or ``COALITION_CHROMIUM``); Playwright only
drives it. Without it the tests skip, except under ``CI=true`` where they fail: CI installs
it (``.ci/run``). axe-core (npm) is fetched once into ``tests/web/browser/.axe/`` (gitignored)
with ``npm pack`` when missing, or read from ``COALITION_AXE_JS``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
AXE_DIR = HERE / ".axe"
SCREENSHOTS = Path(__file__).parents[3] / "artifacts" / "screenshots"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"browser tests need {what} (CI=true: they do not skip)")
    pytest.skip(f"browser tests need {what}")


def chromium_path() -> str:
    path = os.environ.get("COALITION_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        _missing("Chromium (apt-get install chromium)")
    return path


def axe_source() -> str:
    given = os.environ.get("COALITION_AXE_JS")
    target = Path(given) if given else AXE_DIR / "package" / "axe.min.js"
    if not target.exists() and not given and shutil.which("npm"):
        AXE_DIR.mkdir(exist_ok=True)
        done = subprocess.run(["npm", "pack", "axe-core@4", "--silent"], cwd=AXE_DIR, capture_output=True, text=True,
                              timeout=120, check=False)
        packed = done.stdout.strip().splitlines()[-1] if done.returncode == 0 and done.stdout.strip() else ""
        if packed:
            with tarfile.open(AXE_DIR / packed) as archive:
                archive.extract("package/axe.min.js", AXE_DIR, filter="data")
    if not target.exists():
        _missing("axe-core (npm pack axe-core, or COALITION_AXE_JS)")
    return target.read_text()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def live_server(settings: Any, db: Any) -> Iterator[str]:
    """The real application under uvicorn on a spare port, in a thread with its own event loop."""
    import uvicorn
    from scratch_servers import spare_port

    from coalition.app import create_app

    port = spare_port()
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the live server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    path = chromium_path()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield browser
        await browser.close()


@pytest.fixture(scope="session")
def axe_js() -> str:
    return axe_source()
