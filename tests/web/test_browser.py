"""The dashboard in headless Chromium (Debian's `chromium`, installed by `make test`):
the overview shows what `carrybot status --json` reports, a screenshot is written, and halt
works with the token and gets 401 without it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.persistence import migrate
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from tests.conftest import REPO_ROOT, unavailable
from tests.e2e.cli import run_cli
from tests.support.seeded_ledger import seed_ledger

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TOKEN = "browser-test-token"
CHROMIUM = os.environ.get("CARRYBOT_CHROMIUM", "/usr/bin/chromium")


def _chromium() -> str:
    found = shutil.which(CHROMIUM)
    if found is None:
        unavailable(f"{CHROMIUM} not found: apt-get install chromium (make test does it in CI)")
    assert found is not None
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dashboard(tmp_path: Path, seeded_url: str) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARRYBOT_", "DATABASE_"))}
    env |= {"PYTHONPATH": str(REPO_ROOT), "CARRYBOT_WEB_TOKEN": TOKEN}
    log = (tmp_path / "web.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "web", "--database", seeded_url, "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/api/status", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "web.log").read_text()) from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture
async def seeded_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    engine = create_engine(url)
    await migrate.upgrade(engine)
    try:
        await seed_ledger(Ledger(session_factory(engine), CycleReads()))
    finally:
        await engine.dispose()
    return url


def _status(tmp_path: Path, url: str) -> dict:  # type: ignore[type-arg]
    result = run_cli("status", "--json", "--database", url, cwd=tmp_path)
    assert result.code == 0, result.stderr
    data: dict = json.loads(result.stdout)  # type: ignore[type-arg]
    return data


async def test_overview_in_chromium_matches_status_json_and_halt_and_close_need_the_token(
    dashboard: str, seeded_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    chromium = _chromium()
    status = _status(tmp_path, seeded_url)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 2000})
            await page.goto(dashboard)
            totals = status["totals"]
            for element, key in (
                ("total-net", "net"),
                ("total-funding", "funding"),
                ("total-fees", "fees"),
                ("total-basis", "basis_pnl"),
            ):
                shown = await page.inner_text(f"#{element}")
                assert shown == f"{Decimal(totals[key]):,.2f}", element
            assert await page.inner_text("#total-hedges") == str(totals["hedges"])
            open_ids = await page.eval_on_selector_all(
                "#open-hedges tr.hedge", "rows => rows.map(r => Number(r.dataset.hedgeId))"
            )
            closed_ids = await page.eval_on_selector_all(
                "#closed-hedges tr.hedge", "rows => rows.map(r => Number(r.dataset.hedgeId))"
            )
            assert open_ids == [h["id"] for h in status["open_hedges"]]
            assert closed_ids == [h["id"] for h in status["closed_hedges"]]
            assert await page.locator("svg.chart polyline").count() == 2
            shot = tmp_path / "overview.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            if keep := os.environ.get("CARRYBOT_SCREENSHOT_DIR"):  # to look at it afterwards
                shutil.copy(shot, Path(keep) / shot.name)

            await page.click("#halt")  # no token typed
            await page.wait_for_function(
                "document.getElementById('control-result').textContent.startsWith('401')"
            )
            assert await page.inner_text("#trading-state") == "ACTIVE"
            assert _status(tmp_path, seeded_url)["trading_state"] == "active"

            await page.fill("#token", TOKEN)
            await page.fill("#reason", "browser test")
            await page.click("#halt")
            await page.wait_for_function(
                "document.getElementById('trading-state').textContent === 'HALTED'"
            )
            after = _status(tmp_path, seeded_url)
            assert (after["trading_state"], after["trading_reason"]) == ("halted", "browser test")
            await page.reload()  # the token stays in this tab's session storage only
            assert await page.input_value("#token") == TOKEN
            assert TOKEN not in httpx.get(dashboard, timeout=5).text  # the server never echoes it

            await _close_the_open_hedge_from_the_page(page, seeded_url, open_ids[0])
        finally:
            await browser.close()


async def _pending_closes(url: str) -> list[tuple[int, str, str]]:
    engine = create_engine(url)
    try:
        pending = await Ledger(session_factory(engine), CycleReads()).close_requests.pending()
    finally:
        await engine.dispose()
    return [(r.hedge_id, r.reason, r.source) for r in pending]


async def _close_the_open_hedge_from_the_page(page: Any, url: str, hedge_id: int) -> None:
    """The close button asks to confirm, needs the token, and stores the request."""
    dialogs: list[str] = []

    async def confirm(dialog: Any) -> None:
        dialogs.append(dialog.message)
        await dialog.accept()

    page.on("dialog", confirm)
    button = f'#open-hedges tr.hedge[data-hedge-id="{hedge_id}"] button.close-hedge'
    result = "document.getElementById('control-result').textContent"
    await page.fill("#token", "")
    await page.fill("#reason", "browser close")
    await page.click(button)
    await page.wait_for_function(f"{result}.startsWith('401')")
    assert dialogs and f"Close hedge {hedge_id}" in dialogs[0]
    assert await _pending_closes(url) == []
    assert await page.locator(button).count() == 1  # still offered

    await page.fill("#token", TOKEN)
    await page.click(button)
    await page.wait_for_function(f"{result}.startsWith('close of hedge {hedge_id} requested')")
    assert await _pending_closes(url) == [(hedge_id, "browser close", "web")]
    row = f'#open-hedges tr.hedge[data-hedge-id="{hedge_id}"]'
    assert await page.locator(f"{row} .close-requested").count() == 1
    await page.reload()  # the page shows the stored request, and offers no second close
    assert await page.inner_text(f"{row} .close-requested") == "close requested"
    assert await page.locator(button).count() == 0
    assert "control.close_requested" in await page.inner_text("#recent-events")
