"""/metrics: parses with the Prometheus text parser and reports the ledger's figures."""

from __future__ import annotations

from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from bot.web.live import ChannelHealth, LiveFacts
from tests.web.conftest import Dash


def _families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name} {labels} not found")


async def test_metrics_parse_and_report_hedges_pnl_and_timings(dash: Dash) -> None:
    response = await dash.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    families = _families(text)
    for name in (
        "carrybot_info",
        "carrybot_trading_state",
        "carrybot_equity_usdt",
        "carrybot_funding_earned_usdt",
        "carrybot_fees_paid_usdt",
        "carrybot_open_hedges",
        "carrybot_notional_usdt",
        "carrybot_market_data_age_seconds",
        "carrybot_order_round_trip_seconds",
        "carrybot_leg_gap_seconds",
        "carrybot_errors",
        "carrybot_events",
        "carrybot_reconnects",
        "carrybot_job_duration_seconds",
    ):
        assert name in families, name
    status = (await dash.client.get("/api/status")).json()
    assert _value(text, "carrybot_open_hedges") == 1
    (btc,) = status["open_hedges"]
    assert _value(text, "carrybot_notional_usdt", pair="BTC/USDT") == float(btc["notional"])
    assert Decimal(str(_value(text, "carrybot_funding_earned_usdt"))) == Decimal(
        status["totals"]["funding"]
    )
    assert _value(text, "carrybot_trading_state", state="active") == 1
    assert _value(text, "carrybot_trading_state", state="halted") == 0
    assert _value(text, "carrybot_equity_usdt") == 20000.45
    # 2 hedges opened and 1 closed: 6 orders sent and acknowledged, 3 pairs of legs
    assert _value(text, "carrybot_order_round_trip_seconds_count", leg="spot") == 3
    assert _value(text, "carrybot_leg_gap_seconds_count") == 3
    assert _value(text, "carrybot_events_total", kind="reconcile.drift", severity="alert") == 1


async def test_metrics_change_when_a_hedge_is_halted_and_live_facts_are_added(dash: Dash) -> None:
    before = (await dash.client.get("/metrics")).text
    assert "carrybot_request_weight_used" not in before

    class Probe:
        def facts(self) -> LiveFacts:
            return LiveFacts(
                mode="paper",
                trading_state="reducing",
                equity=Decimal("123.5"),
                market_data_age_seconds=2.0,
                poll_failures=0,
                database_up=True,
                request_weight={"futures": (40, 1920)},
                alert_channels=[ChannelHealth("telegram", False, 3, 1, "HTTP 502")],
            )

    dash.ctx.live = Probe()
    dash.ctx.metrics.observe_job("evaluate", 0.02)
    text = (await dash.client.get("/metrics")).text
    assert _value(text, "carrybot_request_weight_used", venue="futures") == 40
    assert _value(text, "carrybot_trading_state", state="reducing") == 1
    assert _value(text, "carrybot_equity_usdt") == 123.5
    assert _value(text, "carrybot_alert_channel_up", channel="telegram") == 0
    assert _value(text, "carrybot_job_duration_seconds_count", job="evaluate") == 1
    assert _value(text, "carrybot_info", mode="paper") == 1
