"""The `transfers` table: written before a transfer is sent, finished with its outcome, on
both databases and in a backtest's memory ledger; `carrybot status` lists those of open
hedges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.cli.common import console
from bot.cli.status_cmd import render
from bot.domain import Hedge, HedgeState
from bot.domain.ledger import TransferStatus
from bot.persistence.db import session_factory
from bot.persistence.memory import MemoryLedger
from bot.persistence.memory_write import write_ledger
from bot.persistence.models import TransferRow
from bot.persistence.port import LedgerPort
from bot.persistence.repositories import CycleReads, Ledger
from bot.reporting import build_status

pytestmark = pytest.mark.postgres

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
COIN = Decimal("0.01999999")
BIG = Decimal("123456789.12345678")


async def _hedge(ledger: LedgerPort, uid: str) -> Hedge:
    hedge, _ = await ledger.hedges.create(
        uid=uid,
        pair="BTC/USD:BTC-240628",
        spot_symbol="BTC/USDT",
        perp_symbol="BTC/USD:BTC-240628",
        target_quantity=Decimal(10),
        target_notional=Decimal(1000),
        reason="coinm basis",
        metrics={},
        at=T0,
        venue="binance",
        orders=[],
    )
    return hedge


async def test_a_transfer_is_pending_until_finished_with_exact_amount_and_utc_times(
    ledger: Ledger,
) -> None:
    hedge = await _hedge(ledger, "t1")

    sent = await ledger.transfers.request(
        hedge_id=hedge.id,
        asset="BTC",
        amount=COIN,
        from_wallet="spot",
        to_wallet="coinm",
        reason="open: margin",
        at=T0,
    )
    assert (sent.status, sent.completed_at, sent.exchange_id) == (
        TransferStatus.PENDING,
        None,
        None,
    )
    done = await ledger.transfers.finish(
        sent.id, status=TransferStatus.DONE, at=T0 + timedelta(seconds=1), exchange_id="100001"
    )
    big = await ledger.transfers.request(
        hedge_id=None, asset="USDT", amount=BIG, from_wallet="spot", to_wallet="futures",
        reason="margin", at=T0,
    )  # fmt: skip
    await ledger.transfers.finish(big.id, status=TransferStatus.UNKNOWN, at=T0, error="HTTP 503")

    (stored,) = await ledger.transfers.for_hedges([hedge.id])
    assert stored == done
    assert (stored.amount, stored.status, stored.exchange_id) == (
        COIN,
        TransferStatus.DONE,
        "100001",
    )
    assert stored.requested_at == T0 and stored.requested_at.tzinfo is not None
    assert stored.completed_at == T0 + timedelta(seconds=1)
    assert await ledger.transfers.for_hedges([]) == []
    # not tied to a hedge: not listed by hedge; an unknown outcome is not completed
    assert await ledger.transfers.for_hedges([hedge.id + 1]) == []
    async with ledger.sessions() as s:
        row = await s.get(TransferRow, big.id)
        assert row is not None and row.amount == BIG and row.completed_at is None
        assert (row.status, row.error) == ("unknown", "HTTP 503")


async def test_a_backtest_memory_ledger_writes_its_transfers_into_the_ledger_file(
    engine: AsyncEngine,
) -> None:
    memory = MemoryLedger()
    hedge = await _hedge(memory, "m1")
    sent = await memory.transfers.request(
        hedge_id=hedge.id, asset="BTC", amount=COIN, from_wallet="spot", to_wallet="coinm",
        reason="open: margin", at=T0,
    )  # fmt: skip
    lost = await memory.transfers.request(
        hedge_id=hedge.id, asset="BTC", amount=COIN, from_wallet="coinm", to_wallet="spot",
        reason="close: back", at=T0,
    )  # fmt: skip
    await memory.transfers.finish(sent.id, status=TransferStatus.DONE, at=T0)
    await memory.transfers.finish(
        lost.id, status=TransferStatus.DONE_BY_BALANCE, at=T0, error="timeout"
    )
    in_memory = await memory.transfers.for_hedges([hedge.id])
    with pytest.raises(KeyError):
        await memory.transfers.finish(99, status=TransferStatus.DONE, at=T0)

    await write_ledger(memory.tables, engine)

    sql = Ledger(session_factory(engine), CycleReads())
    assert await sql.transfers.for_hedges([hedge.id]) == in_memory
    assert [t.status for t in in_memory] == [TransferStatus.DONE, TransferStatus.DONE_BY_BALANCE]


async def test_status_lists_the_transfers_of_open_hedges_only(ledger: Ledger) -> None:
    held, gone = await _hedge(ledger, "o1"), await _hedge(ledger, "f1")
    await ledger.hedges.transition(gone.id, HedgeState.FAILED, reason="test", at=T0)
    for hedge in (held, gone):
        sent = await ledger.transfers.request(
            hedge_id=hedge.id, asset="BTC", amount=COIN, from_wallet="spot", to_wallet="coinm",
            reason="open: margin", at=T0,
        )  # fmt: skip
        await ledger.transfers.finish(
            sent.id, status=TransferStatus.DONE_BY_BALANCE, at=T0, error="timeout"
        )

    report = await build_status(ledger, now=T0 + timedelta(hours=1))

    assert [(t.hedge_id, t.status) for t in report.transfers] == [
        (held.id, TransferStatus.DONE_BY_BALANCE)
    ]
    (listed,) = report.to_json()["transfers"]
    assert listed["hedge_id"] == held.id and listed["amount"] == "0.01999999"
    assert (listed["status"], listed["error"]) == ("done_by_balance", "timeout")
    assert (listed["from_wallet"], listed["to_wallet"]) == ("spot", "coinm")


async def test_status_prints_the_transfers_table_of_open_hedges(ledger: Ledger) -> None:
    held = await _hedge(ledger, "p1")
    sent = await ledger.transfers.request(
        hedge_id=held.id, asset="BTC", amount=COIN, from_wallet="spot", to_wallet="coinm",
        reason="open: margin", at=T0,
    )  # fmt: skip
    await ledger.transfers.finish(sent.id, status=TransferStatus.DONE, at=T0, exchange_id="100042")
    report = await build_status(ledger, now=T0 + timedelta(hours=1))

    with console.capture() as captured:
        render(report)

    text = captured.get()
    assert "Transfers of open hedges" in text
    line = next(x for x in text.splitlines() if "100042" in x)
    assert "0.01999999" in line and "spot" in line and "coinm" in line and "done" in line
