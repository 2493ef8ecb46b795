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


async def test_registered_actions_need_the_token_and_unknown_ones_are_404(dash: Dash) -> None:
    calls: list[dict[str, object]] = []

    async def adopt(ledger: object, body: dict[str, object]) -> dict[str, object]:
        calls.append(body)
        return {"adopted": 0}

    dash.ctx.actions["adopt"] = adopt
    assert (await dash.client.post("/api/actions/adopt")).status_code == 401
    ok = await dash.client.post("/api/actions/adopt", json={"reason": "x"}, headers=AUTH)
    assert ok.json() == {"adopted": 0} and calls == [{"reason": "x"}]
    assert (await dash.client.post("/api/actions/nope", headers=AUTH)).status_code == 404
    assert 'data-path="/api/actions/adopt"' in (await dash.client.get("/")).text
