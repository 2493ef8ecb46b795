"""Instrument status refresh: exchangeInfo read for its status fields only, every few minutes.

Binance delists a perpetual by giving it a delivery date (`deliveryDate` before 2100) and then
moving it to SETTLING/CLOSE; a spot pair that stops trading goes to BREAK or HALT. The daily
instrument reload would notice a day late, so the bot reads these fields often: one USDⓈ-M
exchangeInfo (weight 1) and one spot exchangeInfo restricted to the symbols that matter.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Collection, Mapping
from typing import Any

from bot.domain import Instrument, MarketKind
from bot.errors import BadResponseError
from bot.exchange.binance_parse import listing_status

log = logging.getLogger(__name__)


def symbol_rows(result: Any, what: str) -> dict[str, Mapping[str, Any]]:
    """The `symbols` rows of an exchangeInfo answer, keyed by exchange symbol."""
    rows = result.get("symbols") if isinstance(result, dict) else None
    if not isinstance(rows, list):
        raise BadResponseError(f"{what}: expected a symbols list")
    return {str(r["symbol"]): r for r in rows if isinstance(r, dict) and "symbol" in r}


def symbols_param(ids: Collection[str]) -> dict[str, str]:
    """The `symbols=["A","B"]` parameter of spot exchangeInfo."""
    return {"symbols": json.dumps(sorted(ids), separators=(",", ":"))}


def apply_status(
    instruments: Mapping[str, Instrument],
    spot_rows: Mapping[str, Mapping[str, Any]],
    futures_rows: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, Instrument], list[Instrument]]:
    """New instruments with the rows' status; also the ones that changed.

    A USDⓈ-M symbol missing from its exchangeInfo has been removed; spot symbols not asked
    for keep their status.
    """
    out = dict(instruments)
    changed: list[Instrument] = []
    for symbol, inst in instruments.items():
        if inst.kind is MarketKind.SPOT:
            row = spot_rows.get(inst.exchange_symbol)
            if row is None:
                continue
            update = listing_status(row, inst.kind)
        elif inst.is_inverse:
            continue  # COIN-M is not read here
        else:
            row = futures_rows.get(inst.exchange_symbol)
            update = (
                listing_status(row, inst.kind)
                if row is not None
                else {"active": False, "status": "REMOVED", "delist_at": inst.delist_at}
            )
        fresh = dataclasses.replace(inst, **update)
        if (fresh.status, fresh.active, fresh.delist_at) != (
            inst.status,
            inst.active,
            inst.delist_at,
        ):
            out[symbol] = fresh
            changed.append(fresh)
            log.warning(
                "Instrument %s: status %s -> %s%s",
                symbol,
                inst.status,
                fresh.status,
                f", delisted at {fresh.delist_at.isoformat()}" if fresh.delist_at else "",
            )
    return out, changed
