"""Strategy and risk tuning from a TOML file: frozen models, unknown keys rejected.

`load_config` turns every problem into one line naming the key, the value and what is
allowed, and raises `UserError` with all of them (the CLI prints them and exits 2).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, Union

from pydantic import (
    AnyHttpUrl,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.alerts.config import AlertsConfig
from bot.domain.frozen import Fraction, FrozenModel, NonNegativeDecimal, PositiveDecimal
from bot.domain.params import FeeParams, UniverseParams
from bot.domain.strategy import StrategyParams
from bot.errors import UserError
from bot.strategy_host import STRATEGY_NAMES, params_model
from bot.streams.config import StreamsConfig
from bot.web.config import WebConfig

_FIELD_FIRST = re.compile(r"^[a-z_]+ = ")
PositiveInt = Annotated[int, Field(ge=1)]
PositiveSeconds = Annotated[float, Field(gt=0)]


def normalise_database_url(url: str) -> str:
    """Map a plain SQLite/PostgreSQL URL to its async driver, or raise ValueError."""
    url = url.strip()
    for plain, driver in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            url = driver + url[len(plain) :]
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ValueError("must be sqlite+aiosqlite:///FILE.db or postgresql+asyncpg://USER@HOST/DB")
    return url


class ExchangeConfig(FrozenModel):
    """Which Binance environment, how to trade on it and how fast to talk to it."""

    environment: Literal["production", "testnet", "demo"] = "production"
    spot_api_url: AnyHttpUrl | None = None
    futures_api_url: AnyHttpUrl | None = None
    position_mode: Literal["auto", "one_way", "hedge"] = "auto"
    leverage: Annotated[int, Field(ge=1, le=125)] = 2
    margin_mode: Literal["cross", "isolated"] = "cross"
    recv_window_ms: Annotated[int, Field(ge=1, le=60000)] = 5000
    timeout_ms: Annotated[int, Field(ge=100, le=120000)] = 10000
    spot_weight_per_minute: PositiveInt = 6000
    futures_weight_per_minute: PositiveInt = 2400
    futures_orders_per_minute: PositiveInt = 1200
    coinm_weight_per_minute: PositiveInt = 2400
    coinm_orders_per_minute: PositiveInt = 1200
    spot_orders_per_10s: PositiveInt = 100
    weight_headroom: Annotated[Decimal, Field(gt=0, le=1)] = Decimal("0.8")
    outage_backoff_max_seconds: PositiveSeconds = 15.0


class VenuesConfig(FrozenModel):
    """Which venue holds each leg: the perpetual short is always on Binance USDⓈ-M.

    `spot = "bitstamp"` trades the spot leg on Bitstamp (ccxt `bitstamp`);
    `bitstamp_api_url` replaces its REST base, the part before `/api/v2/`, and
    `bitstamp_ws_url` its WebSocket (`wss://ws.bitstamp.net`).
    """

    spot: Literal["binance", "bitstamp"] = "binance"
    bitstamp_api_url: AnyHttpUrl | None = None
    bitstamp_ws_url: str | None = None
    bitstamp_timeout_ms: Annotated[int, Field(ge=100, le=120000)] = 10000
    bitstamp_requests_per_10_min: PositiveInt = 8000
    align_arrivals: bool = True

    @field_validator("bitstamp_ws_url")
    @classmethod
    def _ws_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("ws://", "wss://")):
            raise ValueError(f"{value!r}: must start with ws:// or wss://")
        return value.rstrip("/") if value is not None else None

    @property
    def cross_venue(self) -> bool:
        """True when the spot leg is not on Binance."""
        return self.spot != "binance"


# ccxt `bitstamp`'s trading fee schedule for the lowest tier (a test checks it against ccxt):
# the spot fees of a config with `[venues] spot = "bitstamp"` unless [fees] sets them.
BITSTAMP_SPOT_TAKER = Decimal("0.004")
BITSTAMP_SPOT_MAKER = Decimal("0.004")


def _default_spot_fees(data: dict[str, Any]) -> None:
    venues = data.get("venues")
    if not isinstance(venues, dict) or venues.get("spot") != "bitstamp":
        return
    fees = data.get("fees", {})
    if not isinstance(fees, dict):
        return
    fees = dict(fees)
    fees.setdefault("spot_taker", BITSTAMP_SPOT_TAKER)
    fees.setdefault("spot_maker", BITSTAMP_SPOT_MAKER)
    data["fees"] = fees


class DatabaseConfig(FrozenModel):
    """Where the ledger lives. `DATABASE_URL` in the environment overrides `url`."""

    url: str = "sqlite+aiosqlite:///carrybot.db"

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalise_database_url(value)


class PaperConfig(FrozenModel):
    """The simulated account of paper mode and backtests."""

    initial_spot_quote: NonNegativeDecimal = Decimal("10000")
    initial_futures_quote: NonNegativeDecimal = Decimal("10000")
    fill_slippage_bps: NonNegativeDecimal = Decimal("5")
    depth_levels: Annotated[int, Field(ge=1, le=1000)] = 20


class SizingConfig(FrozenModel):
    """`[sizing]`: the notional of each new hedge. The limits on what is held are `[risk]`'s."""

    notional_per_hedge: PositiveDecimal = Decimal("1000")


class RiskConfig(FrozenModel):
    """Hard limits enforced by the risk gate, whatever the strategy asks for.

    `max_open_hedges`, `max_total_notional` and `max_notional_per_symbol` are also what the
    strategy sizes new hedges within (its `SizingParams`): one home for each limit.
    """

    max_notional_per_hedge: PositiveDecimal = Decimal("2000")
    max_notional_per_symbol: PositiveDecimal = Decimal("1000")
    max_total_notional: PositiveDecimal = Decimal("3000")
    max_open_hedges: PositiveInt = 3
    max_leverage: Annotated[int, Field(ge=1, le=125)] = 3
    min_liquidation_distance: Fraction = Decimal("0.25")
    liquidation_action: Literal["reduce", "add_margin"] = "reduce"
    max_net_delta_usdt: NonNegativeDecimal = Decimal("50")
    max_net_delta_base: dict[str, NonNegativeDecimal] = Field(default_factory=dict)
    max_data_age_seconds: PositiveSeconds = 30.0
    daily_loss_limit: PositiveDecimal = Decimal("100")
    max_leg_imbalance_steps: PositiveInt = 1
    max_unhedged_usd: NonNegativeDecimal = Decimal("100")  # a COIN-M hedge's rest (< 1 contract)
    balance_buffer: Fraction = Decimal("0.02")
    margin_buffer: Annotated[Decimal, Field(ge=0, le=10)] = Decimal("0.25")
    order_timeout_seconds: PositiveSeconds = 10.0
    close_retry_attempts: PositiveInt = 5
    close_retry_backoff_seconds: PositiveSeconds = 1.0
    entry_failure_backoff_seconds: PositiveSeconds = 60.0
    entry_failure_backoff_max_seconds: PositiveSeconds = 3600.0
    roll_failure_backoff_seconds: PositiveSeconds = 60.0
    roll_failure_backoff_max_seconds: PositiveSeconds = 3600.0
    account_failures_to_stop: PositiveInt = 2


class ScheduleConfig(FrozenModel):
    """Intervals of the scheduler's jobs, in seconds."""

    poll_seconds: PositiveSeconds = 10.0
    evaluate_seconds: PositiveSeconds = 10.0
    reconcile_seconds: PositiveSeconds = 300.0
    balance_snapshot_seconds: PositiveSeconds = 300.0
    heartbeat_seconds: PositiveSeconds = 60.0
    funding_capture_delay_seconds: PositiveSeconds = 60.0
    observation_every_seconds: PositiveSeconds = 60.0
    volume_refresh_seconds: PositiveSeconds = 3600.0
    instrument_refresh_seconds: PositiveSeconds = 86400.0
    instrument_status_seconds: PositiveSeconds = 300.0
    fee_refresh_seconds: PositiveSeconds = 86400.0


def _strategy_params_type() -> Any:
    models = tuple(params_model(n) for n in sorted(STRATEGY_NAMES))
    if len(models) == 1:
        return models[0]
    # A callable discriminator: the parameter models validate `name` strictly (a "before"
    # validator on every field), which a field discriminator does not allow.
    tagged = tuple(
        Annotated[m, Tag(n)] for n, m in zip(sorted(STRATEGY_NAMES), models, strict=True)
    )
    return Annotated[Union[tagged], Discriminator(_strategy_name)]  # noqa: UP007


def _strategy_name(value: Any) -> str | None:
    """The strategy a `[strategy]` section (or a parameter model) names."""
    if isinstance(value, dict):
        name = value.get("name")
        return name if isinstance(name, str) else None
    return getattr(value, "name", None)


if TYPE_CHECKING:
    StrategyParamsField = StrategyParams
else:
    StrategyParamsField = _strategy_params_type()


RENAMED_KEYS: dict[tuple[str, ...], str] = {
    ("paper", "slippage_bps"): "paper.fill_slippage_bps (the paper fills' slippage)",
    ("strategy", "slippage_bps"): "strategy.assumed_slippage_bps (the cost estimate's)",
    ("strategy", "dated", "slippage_bps"): (
        "strategy.dated.assumed_slippage_bps (the cost estimate's)"
    ),
}
"""Keys that were renamed: the old key names its new one instead of being merely unknown."""

MOVED_KEYS: dict[tuple[str, ...], str] = {
    ("sizing", "max_hedges"): "risk.max_open_hedges",
    ("sizing", "max_total_notional"): "risk.max_total_notional",
    ("sizing", "max_notional_per_symbol"): "risk.max_notional_per_symbol",
}
"""Limits that had two homes and now have one: the old key names where it lives now."""


def _renamed_key_problems(data: dict[str, Any]) -> list[str]:
    problems = []
    for verb, keys in (("renamed", RENAMED_KEYS), ("moved", MOVED_KEYS)):
        for path, new in keys.items():
            section: Any = data
            for part in path[:-1]:
                section = section.get(part) if isinstance(section, dict) else None
            if isinstance(section, dict) and path[-1] in section:
                problems.append(f"{'.'.join(path)}: {verb}; write {new}")
    return problems


class Config(FrozenModel):
    """The whole TOML file. Sections and keys are documented in README and config.example.toml."""

    exchange: ExchangeConfig = ExchangeConfig()
    venues: VenuesConfig = VenuesConfig()
    database: DatabaseConfig = DatabaseConfig()
    universe: UniverseParams = UniverseParams()
    strategy: StrategyParamsField
    sizing: SizingConfig = SizingConfig()
    risk: RiskConfig = RiskConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    fees: FeeParams = FeeParams()
    paper: PaperConfig = PaperConfig()
    web: WebConfig = WebConfig()
    alerts: AlertsConfig = AlertsConfig()
    streams: StreamsConfig = StreamsConfig()

    @model_validator(mode="before")
    @classmethod
    def _check_sections(cls, data: Any) -> Any:
        """Refuse renamed keys and shared sections inside `[strategy]`; name the default
        strategy; Bitstamp's spot fees for a Bitstamp spot leg unless `[fees]` sets them."""
        if not isinstance(data, dict):
            return data
        renamed = _renamed_key_problems(data)
        if renamed:
            raise ValueError(" | ".join(renamed))
        data = dict(data)
        _default_spot_fees(data)
        section = data.get("strategy", {})
        if not isinstance(section, dict):
            return data
        section = dict(section)
        section.setdefault("name", "expected_carry")
        for shared in sorted(StrategyParams.RESERVED):
            if shared in section:
                raise ValueError(
                    f"strategy.{shared}: set [{shared}] at the top level, not inside [strategy]"
                )
        data["strategy"] = section
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        problems = []
        if self.sizing.notional_per_hedge > self.risk.max_notional_per_hedge:
            problems.append(
                f"sizing.notional_per_hedge = {self.sizing.notional_per_hedge}: exceeds "
                f"risk.max_notional_per_hedge ({self.risk.max_notional_per_hedge}), so every "
                "hedge would be denied; lower it or raise the limit"
            )
        if self.risk.max_notional_per_symbol < self.sizing.notional_per_hedge:
            problems.append(
                f"risk.max_notional_per_symbol = {self.risk.max_notional_per_symbol}: "
                f"below sizing.notional_per_hedge ({self.sizing.notional_per_hedge}), so no "
                "hedge could open; raise it"
            )
        if self.risk.max_total_notional < self.sizing.notional_per_hedge:
            problems.append(
                f"risk.max_total_notional = {self.risk.max_total_notional}: below "
                f"sizing.notional_per_hedge ({self.sizing.notional_per_hedge}); raise it"
            )
        if self.exchange.leverage > self.risk.max_leverage:
            problems.append(
                f"exchange.leverage = {self.exchange.leverage}: exceeds risk.max_leverage "
                f"({self.risk.max_leverage}); lower it or raise the limit"
            )
        if self.exchange.environment == "testnet" and self.exchange.futures_api_url is None:
            problems.append(
                "exchange.environment = 'testnet': Binance's spot testnet has no USDⓈ-M "
                "futures; use environment = 'demo' (ccxt's demo trading) or set futures_api_url"
            )
        if problems:
            raise ValueError(" | ".join(problems))
        return self

    def fingerprint(self) -> str:
        """Return a short hash of the effective config, recorded with every bot run."""
        # The strategy's sizing, fees and universe are the top-level sections' (see
        # `bot.strategy_host.strategy_params`): each setting is hashed once.
        data = self.model_dump(mode="json", exclude={"strategy": set(StrategyParams.RESERVED)})
        if not self.venues.cross_venue and self.venues == VenuesConfig():
            data.pop("venues")  # Binance-only configs keep the fingerprint they had
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def parse_config_text(text: str, *, source: str = "config") -> Config:
    """Validate TOML text; raise UserError with one line per problem."""
    try:
        raw = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{source}: not valid TOML: {exc}") from None
    return config_from_dict(raw, source=source)


def config_from_dict(raw: dict[str, Any], *, source: str = "config") -> Config:
    """Validate a dict shaped like the TOML file; raise UserError with one line per problem."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise UserError(format_validation_errors(exc, source=source)) from None
    except ValueError as exc:  # raised by the "before" validator
        raise UserError(f"{source}: {exc}") from None


def load_config(path: Path | None) -> Config:
    """Read and validate the TOML file at `path`; `None` gives the built-in defaults."""
    if path is None:
        return config_from_dict({}, source="defaults")
    if not path.is_file():
        raise UserError(
            f"config file {str(path)!r} not found; pass --config FILE, set CARRYBOT_CONFIG, "
            "or copy config.example.toml"
        )
    return parse_config_text(path.read_text(encoding="utf-8"), source=str(path))


def format_validation_errors(exc: ValidationError, *, source: str) -> list[str]:
    """Turn pydantic errors into lines like `risk.max_open_hedges = -1: must be >= 1`."""
    lines: list[str] = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        tag: str | None = None
        if loc[:1] == ["strategy"] and len(loc) > 1 and loc[1] in STRATEGY_NAMES:
            tag = loc.pop(1)  # drop the discriminator tag pydantic inserts
        if err["type"] == "union_tag_invalid" and loc == ["strategy"]:
            name = (err.get("ctx") or {}).get("tag", "")
            choices = " or ".join(repr(n) for n in sorted(STRATEGY_NAMES))
            lines.append(f"{source}: strategy.name = {name!r}: input should be {choices}")
            continue
        key = ".".join(loc) if loc else "config"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1], tag)
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            section = ".".join(loc[:-1]) or "top level"
            lines.append(f"{source}: {key}: unknown key in [{section}]{hint}")
        elif err["type"] == "value_error" and not loc:
            lines.extend(f"{source}: {part.strip()}" for part in msg.split(" | "))
        elif err["type"] == "value_error" and _FIELD_FIRST.match(msg):
            lines.append(f"{source}: {key}.{msg}")
        elif err["type"] == "value_error":
            lines.append(f"{source}: {key}: {msg}")
        else:
            lines.append(f"{source}: {key} = {_show(err.get('input'))}: {_lower_first(msg)}")
    return lines or [f"{source}: invalid configuration"]


def _allowed_keys(loc: list[str], strategy: str | None = None) -> list[str]:
    model: Any = Config
    for part in loc:
        if part == "strategy":
            model = params_model(strategy or next(iter(STRATEGY_NAMES)))
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    fields = getattr(model, "model_fields", {})
    reserved = StrategyParams.RESERVED if issubclass(model, StrategyParams) else frozenset()
    return [name for name in fields if name not in reserved]


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as written in TOML
    if isinstance(value, dict):
        return "{…}"
    if isinstance(value, Decimal):
        return str(value)
    return repr(value)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def redacted_settings_view(settings: Any) -> dict[str, Any]:
    """Return the process settings with secrets replaced by '***' (for `config check`)."""
    from bot.settings import Settings

    assert isinstance(settings, Settings)
    return {
        "CARRYBOT_MODE": settings.mode.value,
        "DATABASE_URL": redact_url(settings.database_url) if settings.database_url else None,
        "BINANCE_API_KEY": "***" if settings.binance_api_key else None,
        "BINANCE_API_SECRET": "***" if settings.binance_api_secret else None,
        "BITSTAMP_API_KEY": "***" if settings.bitstamp_api_key else None,
        "BITSTAMP_API_SECRET": "***" if settings.bitstamp_api_secret else None,
        "CARRYBOT_CONFIG": str(settings.config_path) if settings.config_path else None,
        "LOG_LEVEL": settings.log_level,
        "LOG_FORMAT": settings.log_format,
        "CARRYBOT_WEB_TOKEN": "***" if settings.web_token else None,
        "TELEGRAM_BOT_TOKEN": "***" if settings.telegram_bot_token else None,
        "TELEGRAM_CHAT_ID": "***" if settings.telegram_chat_id else None,
        "CARRYBOT_ALERT_WEBHOOK_URL": "***" if settings.alert_webhook_url else None,
    }


def redact_url(url: str) -> str:
    """Hide the password of a database URL."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "***"
