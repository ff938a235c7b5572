"""Where the built-in rules live: package data in an install, rules/ in a checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def builtin_rules_dir() -> Path:
    """Where the shipped rules (and their macros.j2) are: package data, or rules/ in a checkout."""
    try:
        # builtin_rules is a namespace package (rules/ has no __init__.py): files() is a MultiplexedPath,
        # whose entries, not its str(), are file paths
        shipped = [Path(str(p)) for p in resources.files("transpiler.builtin_rules").iterdir() if p.name.endswith(".yaml")]
    except ModuleNotFoundError:
        shipped = []
    if shipped:
        return shipped[0].parent
    return Path(__file__).resolve().parents[2] / "rules"  # transpiler/engine/builtin.py -> rules/
