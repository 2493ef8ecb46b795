"""The ccxt client for each environment and URL override (built offline, nothing is sent)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import ExchangeConfig
from bot.exchange.ccxt_client import build_client


def config(**values: Any) -> ExchangeConfig:
    return ExchangeConfig.model_validate(values)


async def close(client: Any) -> None:
    client.timeout_on_exit = 0  # nothing was opened: skip ccxt's 250 ms TLS wind-down
    await client.close()


async def test_build_client_production_defaults() -> None:
    client = build_client(config(recv_window_ms=7000, timeout_ms=3000))
    try:
        assert client.urls["api"]["public"] == "https://api.binance.com/api/v3"
        assert client.urls["api"]["fapiPublic"] == "https://fapi.binance.com/fapi/v1"
        assert client.enableRateLimit is False
        assert (client.timeout, client.options["recvWindow"]) == (3000, 7000)
        assert client.options["fetchMarkets"]["types"] == ["spot", "linear"]
        assert client.options["fetchCurrencies"] is False
        assert client.options["fetchMargins"] is False
        assert not client.apiKey
    finally:
        await close(client)


async def test_build_client_testnet_uses_the_spot_testnet() -> None:
    client = build_client(config(environment="testnet", futures_api_url="http://127.0.0.1:9/"))
    try:
        assert client.urls["api"]["public"] == "https://testnet.binance.vision/api/v3"
        assert client.urls["api"]["fapiPrivateV3"] == "http://127.0.0.1:9/fapi/v3"
        assert client.options["disableFuturesSandboxWarning"] is True
    finally:
        await close(client)


async def test_build_client_demo_uses_demo_trading() -> None:
    client = build_client(config(environment="demo"), api_key="k", api_secret="s")
    try:
        assert client.urls["api"]["public"] == "https://demo-api.binance.com/api/v3"
        assert client.urls["api"]["fapiPublic"] == "https://demo-fapi.binance.com/fapi/v1"
        assert (client.apiKey, client.secret) == ("k", "s")
    finally:
        await close(client)


async def test_build_client_overrides_replace_every_url() -> None:
    client = build_client(
        config(spot_api_url="http://127.0.0.1:8080", futures_api_url="http://127.0.0.1:8081")
    )
    try:
        urls = client.urls["api"]
        assert all(u.startswith("http://127.0.0.1:808") for u in urls.values())
        assert urls["private"] == "http://127.0.0.1:8080/api/v3"
        assert urls["sapi"] == "http://127.0.0.1:8080/sapi/v1"
        assert urls["fapiPrivateV2"] == "http://127.0.0.1:8081/fapi/v2"
    finally:
        await close(client)


@pytest.mark.parametrize(
    ("url", "code", "cls"),
    [
        ("http://127.0.0.1:1/fapi/v1/order", "-2019", "InsufficientFunds"),
        ("http://127.0.0.1:1/fapi/v1/order", "-4164", "InvalidOrder"),
        ("http://127.0.0.1:1/fapi/v1/order", "-2022", "InvalidOrder"),
        ("http://127.0.0.1:1/api/v3/order", "-2022", "BadResponse"),
    ],
)
async def test_exceptions_by_url_map_by_path_on_local_urls(url: str, code: str, cls: str) -> None:
    client = build_client(config())
    try:
        exact = client.get_exceptions_by_url(url, "exact")
        assert exact[code].__name__ == cls
    finally:
        await close(client)
