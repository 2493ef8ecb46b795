"""The dependency rule: strategies/ imports only the domain layer; bot/ reaches strategies/
only through the strategy registry and the command line (the composition root).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STRATEGY_IMPORTERS = {"bot/strategy_host.py", "bot/cli/scan_cmd.py", "bot/cli/scan_venues.py"}
"""The modules of bot/ allowed to import strategies/: the registry and the scan command."""


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _project_package(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in {"bot", "strategies", "tests", "migrations", "bench"} else None


def test_strategies_import_only_the_domain_layer_and_themselves() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in _modules("strategies")
        for line, module in _imports(path)
        if _project_package(module) is not None
        and not (module == "bot.domain" or module.startswith(("bot.domain.", "strategies")))
    ]
    assert bad == []


def test_nothing_in_bot_imports_strategies_but_the_registry_and_the_scan_command() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in _modules("bot")
        if str(path.relative_to(ROOT)) not in STRATEGY_IMPORTERS
        for line, module in _imports(path)
        if module == "strategies" or module.startswith("strategies.")
    ]
    assert bad == []


def test_the_domain_layer_imports_nothing_else_of_the_project() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in _modules("bot/domain")
        for line, module in _imports(path)
        if _project_package(module) is not None and not module.startswith("bot.domain")
    ]
    assert bad == []


def test_the_rule_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from bot.config import Config\nimport strategies.carry\n", encoding="utf-8")
    assert list(_imports(module)) == [(1, "bot.config"), (2, "strategies.carry")]
