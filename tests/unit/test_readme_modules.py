"""The README's architecture section names every module of `bot/` and `strategies/`."""

from __future__ import annotations

import fnmatch
import re

from tests.conftest import REPO_ROOT


def test_the_module_table_names_every_module_in_the_tree() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Architecture") : readme.index("## Development")]
    named = set(re.findall(r"`([^`\s]+\.py)`", section))
    modules = [
        p
        for root in ("bot", "strategies")
        for p in sorted((REPO_ROOT / root).rglob("*.py"))
        if p.name not in {"__init__.py", "__main__.py"}
    ]

    def mentioned(name: str, path: str) -> bool:
        return any(fnmatch.fnmatch(name, n) or f"/{path}".endswith(f"/{n}") for n in named)

    missing = [
        str(p.relative_to(REPO_ROOT))
        for p in modules
        if not mentioned(p.name, str(p.relative_to(REPO_ROOT)))
    ]
    assert missing == []
