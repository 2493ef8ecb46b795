"""The dashboard's pages and JSON API over a ledger with open and closed hedges."""

from __future__ import annotations

import re
from decimal import Decimal

from bot.reporting import build_status
from tests.web.conftest import TOKEN, Dash


async def test_api_status_is_the_status_report_json(dash: Dash) -> None:
    expected = (await build_status(dash.ledger, now=dash.seeded.clock.now(), leverage=2)).to_json()
    response = await dash.client.get("/api/status")
    assert response.status_code == 200
    assert response.json() == expected
    body = response.json()
    assert [h["id"] for h in body["open_hedges"]] == [h.id for h in dash.seeded.open]
    assert [h["id"] for h in body["closed_hedges"]] == [h.id for h in dash.seeded.closed]


async def test_overview_shows_state_totals_hedges_and_alerts(dash: Dash) -> None:
    status = (await dash.client.get("/api/status")).json()
    page = (await dash.client.get("/")).text
    assert re.search(r'id="trading-state"[^>]*>ACTIVE<', page)
    net = f"{Decimal(status['totals']['net']):,.2f}"
    assert f'id="total-net">{net}<' in page
    funding = f"{Decimal(status['totals']['funding']):,.2f}"
    assert f'id="total-funding">{funding}<' in page
    for h in dash.seeded.open + dash.seeded.closed:
        assert f'data-hedge-id="{h.id}"' in page
    assert "seeded drift alert" in page
    assert page.count("<polyline") == 2  # equity and cumulative funding, drawn as SVG
    assert "<script src" not in page and "http" not in page.split("<body>")[1].replace(
        "http://www.w3.org/2000/svg", ""
    )


async def test_hedges_api_and_page_list_funding_payments_per_hedge(dash: Dash) -> None:
    body = (await dash.client.get("/api/hedges")).json()
    (btc,) = body["open"]
    (eth,) = body["closed"]
    assert [Decimal(p["amount"]) for p in btc["funding_payments"]] == [Decimal("0.1")] * 3
    assert sum(Decimal(p["amount"]) for p in eth["funding_payments"]) == Decimal("0.15")
    assert Decimal(btc["funding"]) == Decimal("0.30")
    page = (await dash.client.get("/hedges")).text
    assert page.count("3 funding payment(s)") == 2


async def test_market_page_ranks_the_latest_observations_by_funding_apr(dash: Dash) -> None:
    page = (await dash.client.get("/market")).text
    rows = re.findall(r'<tr class="scan-row"><td class="l">([^<]+)</td>', page)
    assert rows == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    assert "21.90%" in page  # 0.0002 per 8 h = 21.9% a year


async def test_events_api_filters_and_rejects_bad_parameters(dash: Dash) -> None:
    alerts = (await dash.client.get("/api/events", params={"severity": "alert"})).json()
    assert [e["kind"] for e in alerts["events"]] == ["reconcile.drift"]
    one = (await dash.client.get("/api/events", params={"limit": "1"})).json()
    assert len(one["events"]) == 1
    for params, field in (
        ({"limit": "abc"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"severity": "loud"}, "severity"),
        ({"colour": "red"}, "colour"),
    ):
        response = await dash.client.get("/api/events", params=params)
        assert response.status_code == 400
        assert field in response.json()["error"]
        page = await dash.client.get("/events", params=params)
        assert page.status_code == 400


async def test_unknown_paths_are_404_and_wrong_methods_405(dash: Dash) -> None:
    assert (await dash.client.get("/api/nothing")).status_code == 404
    assert (await dash.client.get("/nothing")).status_code == 404
    assert (await dash.client.get("/api/halt")).status_code == 405
    assert (await dash.client.post("/api/status")).status_code == 405


async def test_no_secret_appears_in_pages_or_metrics(dash: Dash) -> None:
    for path in ("/", "/hedges", "/market", "/events", "/api/status", "/api/overview", "/metrics"):
        text = (await dash.client.get(path)).text
        assert TOKEN not in text, path
