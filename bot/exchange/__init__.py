"""Exchange access: one port (`port.py`), a live ccxt adapter and a paper adapter."""
