"""Packages depend one way: spymaster_core <- spymaster_resources <- spymaster_assets."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: What each package may import of the project's packages (besides itself).
ALLOWED = {"spymaster_core": set(), "spymaster_resources": {"spymaster_core"}, "spymaster_assets": {"spymaster_core", "spymaster_resources"}}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(ALLOWED)


def test_imports_run_one_way():
    offending = []
    for package, allowed in ALLOWED.items():
        for path in sorted((REPO / package).rglob("*.py")):
            bad = _imported_packages(path) - allowed - {package}
            if bad:
                offending.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert offending == []
    # The check can fail: a module that breaks the rule is found.
    assert _imported_packages(REPO / "spymaster_assets" / "definitions.py") >= {"spymaster_resources"}
