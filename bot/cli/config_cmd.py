"""`carrybot config check`: validate and print the effective config, secrets redacted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.cli.common import console, load_context
from bot.config import redact_url, redacted_settings_view

app = typer.Typer(help="Inspect and validate the configuration.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="TOML config file (default: CARRYBOT_CONFIG or ./carrybot.toml)."
    ),
]


@app.command("check")
def check(
    config: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of TOML-like text.")
    ] = False,
) -> None:
    """Validate the config file and print the effective configuration (exit 2 on problems)."""
    ctx = load_context(config)
    effective = _effective(ctx.config.model_dump(mode="json"), redact_url(ctx.database_url))
    environment = redacted_settings_view(ctx.settings)
    report: dict[str, Any] = {
        "config_file": str(ctx.config_path) if ctx.config_path else "(built-in defaults)",
        "config_hash": ctx.config.fingerprint(),
        "environment": environment,
        "config": effective,
    }
    if as_json:
        console.print_json(json.dumps(report))
        return
    console.print(
        f"[green]config OK[/green]: {report['config_file']} (hash {report['config_hash']})"
    )
    console.print("\n# process settings (environment / .env)")
    for key, value in environment.items():
        console.print(f"{key} = {value if value is not None else '(unset)'}")
    for section, values in _effective(
        ctx.config.model_dump(), effective["database"]["url"]
    ).items():
        console.print(f"\n[{section}]", markup=False)
        for key, value in values.items():
            console.print(f"{key} = {_toml_value(value)}", markup=False)


def _effective(dumped: dict[str, Any], database_url: str) -> dict[str, Any]:
    for shared in ("sizing", "fees", "universe"):
        dumped["strategy"].pop(shared, None)
    dumped["database"]["url"] = database_url
    return dumped


def _toml_value(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return str(value)
