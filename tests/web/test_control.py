"""Halt and resume from the API: only with the bearer token, recorded with the source."""

from __future__ import annotations

from bot.domain.ledger import TradingState
from tests.web.conftest import TOKEN, Dash

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def _state(dash: Dash) -> TradingState | None:
    status = await dash.ledger.trading_state.get()
    return status.state if status else None


async def test_halt_with_the_token_sets_the_state_and_records_the_source(dash: Dash) -> None:
    response = await dash.client.post("/api/halt", json={"reason": "maintenance"}, headers=AUTH)
    assert response.status_code == 200
    assert response.json()["trading_state"] == "halted"
    status = await dash.ledger.trading_state.get()
    assert status is not None
    assert (status.state, status.reason, status.changed_by) == (
        TradingState.HALTED,
        "maintenance",
        "web",
    )
    (event,) = await dash.ledger.events.recent(kind="control.halt")
    assert event.data["source"] == "web"
    assert (await dash.client.get("/api/status")).json()["trading_state"] == "halted"

    reducing = await dash.client.post("/api/halt", json={"reducing": True}, headers=AUTH)
    assert reducing.json()["trading_state"] == "reducing"
    resumed = await dash.client.post("/api/resume", headers=AUTH)
    assert resumed.json()["trading_state"] == "active"
    assert await _state(dash) is TradingState.ACTIVE
    assert [e.kind for e in await dash.ledger.events.recent(limit=3)] == [
        "control.resume",
        "control.halt",
        "control.halt",
    ]


async def test_halt_without_or_with_a_wrong_token_is_401_and_changes_nothing(dash: Dash) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        response = await dash.client.post("/api/halt", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in response.text
    assert await _state(dash) is None
    assert await dash.ledger.events.recent(kind="control.halt") == []


async def test_without_a_configured_token_control_is_off(readonly_dash: Dash) -> None:
    response = await readonly_dash.client.post(
        "/api/halt", headers={"Authorization": "Bearer anything"}
    )
    assert response.status_code == 403
    assert "CARRYBOT_WEB_TOKEN" in response.json()["error"]
    page = (await readonly_dash.client.get("/")).text
    assert 'id="read-only"' in page and 'id="halt"' not in page
    assert await _state(readonly_dash) is None


async def test_bad_control_bodies_are_400_naming_the_field(dash: Dash) -> None:
    cases = [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"reducing": "yes"}', "body.reducing"),
        (b'{"reason": ""}', "body.reason"),
        (b'{"force": true}', "body.force"),
    ]
    for raw, field in cases:
        response = await dash.client.post(
            "/api/halt", content=raw, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, raw
        assert response.json()["error"].startswith(field), response.json()
    assert await _state(dash) is None


async def test_adopt_needs_the_token_and_records_a_request_for_the_next_start(
    dash: Dash,
) -> None:
    btc = dash.seeded.open[0]
    body = {"hedge_id": btc.id, "close": True}
    assert (await dash.client.post("/api/adopt", json=body)).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert (await dash.client.post("/api/adopt", json=body, headers=wrong)).status_code == 401
    assert await dash.ledger.events.recent(kind="adopt.requested") == []
    ok = await dash.client.post("/api/adopt", json={**body, "reason": "x"}, headers=AUTH)
    assert ok.status_code == 200, ok.text
    assert "closed as the exchange holds it" in ok.json()["requested"]
    (event,) = await dash.ledger.events.recent(kind="adopt.requested")
    assert event.data == {"hedge_id": btc.id, "close": True, "source": "web"}
    status = (await dash.client.get("/api/status")).json()
    assert status["adopt_requests"][0]["hedge_id"] == btc.id


async def test_adopt_rejects_bad_input_with_the_field_named(dash: Dash) -> None:
    closed = dash.seeded.closed[0]
    for body, field in (
        ({"hedge_id": "one"}, "body.hedge_id"),
        ({"hedge_id": True}, "body.hedge_id"),
        ({"close": "yes"}, "body.close"),
        ({"hedge": 1}, "body.hedge"),
        ({"hedge_id": closed.id}, "body.hedge_id"),  # closed: nothing to adopt
        ({"hedge_id": 999}, "body.hedge_id"),
    ):
        response = await dash.client.post("/api/adopt", json=body, headers=AUTH)
        assert response.status_code == 400, body
        assert response.json()["error"].startswith(field), response.json()
    assert await dash.ledger.events.recent(kind="adopt.requested") == []


async def test_adopt_without_a_configured_token_is_403(readonly_dash: Dash) -> None:
    response = await readonly_dash.client.post(
        "/api/adopt", json={}, headers={"Authorization": "Bearer anything"}
    )
    assert response.status_code == 403


async def test_a_drifted_hedge_gets_adopt_and_close_buttons(dash: Dash) -> None:
    from bot.domain import Event, Severity

    btc = dash.seeded.open[0]
    await dash.ledger.events.emit(
        Event(
            "reconcile.drift",
            "drift",
            dash.seeded.clock.now(),
            Severity.ALERT,
            {"drifted_hedges": [btc.id]},
        )
    )
    page = (await dash.client.get("/")).text
    assert f"""data-body='{{"hedge_id": {btc.id}}}'>adopt hedge {btc.id}<""" in page
    assert f"close hedge {btc.id}<" in page
