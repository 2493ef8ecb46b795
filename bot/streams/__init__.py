"""WebSocket streams (ccxt.pro): market data and user data feeding the same bot.

`config.py` ([streams]), `wire.py` (frames → domain values), `pro_client.py` (the ccxt.pro
client), `supervisor.py` (reconnects, failover), `market.py` (market streams),
`source.py` (`StreamingSource`, REST fallback), `exchange.py` (live adapter with streams),
`gate.py` (entry gate), `factory.py` (wiring from config); Bitstamp's book streams for
a spot leg there: `bitstamp_pro.py`, `bitstamp_wire.py`, `bitstamp_books.py`,
`bitstamp_source.py`, and `cross.py` (both venues together).
"""
