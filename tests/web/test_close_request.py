"""Closing a hedge from the API: bearer token, 404 unknown, 409 not OPEN, 202 stored."""

from __future__ import annotations

from tests.web.conftest import TOKEN, Dash

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_close_with_the_token_stores_the_request_and_records_the_source(dash: Dash) -> None:
    hedge = dash.seeded.open[0]
    response = await dash.client.post(
        f"/api/hedges/{hedge.id}/close", json={"reason": "rebalancing by hand"}, headers=AUTH
    )
    assert response.status_code == 202
    body = response.json()
    assert (body["hedge_id"], body["source"], body["reason"]) == (
        hedge.id,
        "web",
        "rebalancing by hand",
    )
    (pending,) = await dash.ledger.close_requests.pending()
    assert (pending.id, pending.hedge_id, pending.source) == (body["request_id"], hedge.id, "web")
    (event,) = await dash.ledger.events.recent(kind="control.close_requested")
    assert (event.hedge_id, event.data["source"]) == (hedge.id, "web")
    # The page shows the new event: the kept views were dropped.
    events = (await dash.client.get("/api/events?kind=control.close_requested")).json()
    assert [e["hedge_id"] for e in events["events"]] == [hedge.id]

    again = await dash.client.post(f"/api/hedges/{hedge.id}/close", headers=AUTH)
    assert again.status_code == 202 and again.json()["request_id"] == body["request_id"]
    assert len(await dash.ledger.close_requests.pending()) == 1
    # The overview names the waiting request and offers no second close for that hedge.
    (shown,) = (await dash.client.get("/api/overview")).json()["close_requests"]
    assert (shown["hedge_id"], shown["source"]) == (hedge.id, "web")
    page = (await dash.client.get("/")).text
    assert "close requested" in page
    assert f'data-path="/api/hedges/{hedge.id}/close"' not in page


async def test_close_without_or_with_a_wrong_token_is_401_and_stores_nothing(dash: Dash) -> None:
    hedge = dash.seeded.open[0]
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = await dash.client.post(f"/api/hedges/{hedge.id}/close", headers=headers)
        assert response.status_code == 401
        assert TOKEN not in response.text
    assert await dash.ledger.close_requests.pending() == []
    assert await dash.ledger.events.recent(kind="control.close_requested") == []


async def test_close_of_an_unknown_hedge_is_404_and_of_a_closed_one_409(dash: Dash) -> None:
    unknown = await dash.client.post("/api/hedges/999/close", headers=AUTH)
    assert unknown.status_code == 404
    assert "hedge 999" in unknown.json()["error"]
    closed = dash.seeded.closed[0]
    response = await dash.client.post(f"/api/hedges/{closed.id}/close", headers=AUTH)
    assert response.status_code == 409
    assert "CLOSED, not OPEN" in response.json()["error"]
    bad = await dash.client.post("/api/hedges/abc/close", headers=AUTH)
    assert bad.status_code == 400 and bad.json()["error"].startswith("hedge id")
    extra = await dash.client.post(
        f"/api/hedges/{dash.seeded.open[0].id}/close", json={"now": True}, headers=AUTH
    )
    assert extra.status_code == 400 and extra.json()["error"].startswith("body.now")
    assert await dash.ledger.close_requests.pending() == []


async def test_the_overview_has_a_close_button_per_open_hedge_only_with_control(
    dash: Dash, readonly_dash: Dash
) -> None:
    page = (await dash.client.get("/")).text
    for hedge in dash.seeded.open:
        assert f'data-path="/api/hedges/{hedge.id}/close"' in page
    for hedge in dash.seeded.closed:
        assert f'data-path="/api/hedges/{hedge.id}/close"' not in page
    assert "/close" not in (await readonly_dash.client.get("/")).text.replace("/closed", "")
