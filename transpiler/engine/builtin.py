"""Where the built-in rules live: package data in an install, rules/ in a checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def builtin_rules_dir() -> Path:
    """Where the shipped rules (and their macros.j2) are: package data, or rules/ in a checkout."""
    try:
        root = Path(str(resources.files("transpiler.builtin_rules")))
        if any(root.glob("*.yaml")):
            return root
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "rules"  # transpiler/engine/rule_files.py -> rules/
