"""The first of an order's REST answer and its final report on a user-data stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from bot.domain import Order


async def first_final(
    rest_call: Awaitable[Order], streamed_final: Awaitable[Order]
) -> tuple[Order, bool]:
    """Return the order from whichever answers first, and whether the stream did.

    An order the stream reports final was received by the exchange, so a REST answer
    still outstanding (slow, or lost and being looked up) is abandoned then.
    """
    rest = asyncio.ensure_future(rest_call)
    streamed = asyncio.ensure_future(streamed_final)
    try:
        await asyncio.wait({rest, streamed}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        rest.cancel()
        streamed.cancel()
        raise
    if rest.done():
        streamed.cancel()
        return rest.result(), False
    rest.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await rest
    return streamed.result(), True
