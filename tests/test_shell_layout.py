"""The package stays readable: no function longer than a screen."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[1] / "bot"
HELD = sorted(BOT.rglob("*.py"))  # the whole package: core, engine, store, service, venues, commands


def test_no_function_is_longer_than_80_lines() -> None:
    """Every function of the package — pure core, engine, store, services, venues, commands — fits on a
    screen."""
    long = []
    for path in HELD:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.relative_to(BOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_reads_return_typed_rows_not_mappings() -> None:
    """No repository of the store returns `dict[str, Any]` rows: reads return the frozen rows of rows.py."""
    offenders = []
    for path in sorted((BOT / "store").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            public = isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
            if public and node.returns is not None and "list[dict[str, Any]]" in ast.unparse(node.returns):
                offenders.append(f"{path.name}:{node.name}")
    assert offenders == []
