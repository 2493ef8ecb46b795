"""`LedgerPort`: both ledgers implement what execution and reconciliation ask of a ledger."""

from __future__ import annotations

import inspect

from bot.persistence.memory import MemoryLedger
from bot.persistence.port import LedgerPort
from bot.persistence.repositories import CycleReads, Ledger


def _as_port(ledger: LedgerPort) -> LedgerPort:
    return ledger  # mypy checks each call below against the Protocol


def _port_methods() -> dict[str, set[str]]:
    stores = {}
    for name, prop in vars(LedgerPort).items():
        if isinstance(prop, property):
            store = inspect.signature(prop.fget).return_annotation  # type: ignore[arg-type]
            protocol = vars(inspect.getmodule(LedgerPort))[store]
            stores[name] = {m for m in vars(protocol) if not m.startswith("_")}
    return stores


def test_the_memory_and_sql_ledgers_answer_every_call_of_the_port() -> None:
    sql = Ledger(None, CycleReads())  # type: ignore[arg-type]  # no database is reached
    for ledger in (_as_port(MemoryLedger()), _as_port(sql)):
        for store, methods in _port_methods().items():
            repo = getattr(ledger, store)
            assert all(inspect.iscoroutinefunction(getattr(repo, m)) for m in methods), store
    assert set(_port_methods()) == {
        "hedges",
        "orders",
        "fills",
        "funding",
        "trading_state",
        "events",
        "transfers",
    }
