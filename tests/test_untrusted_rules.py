"""Rule files, their templates and the YAML those render are untrusted input (issue 13).

Each hostile input is fed as a user would (`tf-transpile rules check FILE`,
`--rules FILE` in a conversion, or the engine's functions) and must give one
clear line, quickly: exit 2, one stderr line, no traceback, and the limit
that refused it is named.
"""

import time

import pytest
import yaml

from transpiler.engine import safe_yaml


def aliases(levels: int, width: int = 10) -> str:
    """YAML anchors, each level `width` aliases of the one before: width**levels nodes when expanded."""
    lines = ["l0: &l0 [%s]" % ", ".join(["x"] * width)]
    lines += ["l%d: &l%d [%s]" % (i, i, ", ".join(["*l%d" % (i - 1)] * width)) for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


BOMB = aliases(8)  # 10**9 nodes expanded, 1 KB of text


# ---- YAML -----------------------------------------------------------------------------------------

def test_bounded_loader_accepts_ordinary_aliases():
    """Aliases themselves are fine: only their expansion is bounded."""
    doc = safe_yaml.load(aliases(3) + "top: [*l3]\n")
    assert len(doc["l3"]) == 10 and doc["top"][0][0][0][0] == ["x"] * 10
    assert safe_yaml.load("when: 2020-01-01\n") == {"when": "2020-01-01"}  # dates stay strings


@pytest.mark.parametrize("text,line,problem", [
    (BOMB + "top: *l8\n", 5, "more than 100000 nodes with aliases expanded"),  # l4 already has 111111
    ("[" * 50000 + "]" * 50000, 1, "nested deeper than 64 levels"),
    ("a: &a [1, *a]\n", 1, "an alias refers to its own anchor (a recursive structure)"),
    ("a: \x01\n", 1, "special characters are not allowed"),
], ids=["alias-bomb", "deep-brackets", "recursive-alias", "control-character"])
def test_bounded_loader_refuses_quickly(text, line, problem):
    """Refused on reading: the bomb is never expanded, the nesting never reaches the recursion limit.
    (Deep flow brackets cost PyYAML's scanner about a second: it looks 1024 characters ahead.)"""
    start = time.monotonic()
    with pytest.raises(yaml.YAMLError) as err:
        safe_yaml.load(text)
    assert time.monotonic() - start < 3
    assert safe_yaml.describe(err.value, text) == (line, problem)
