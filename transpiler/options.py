"""What the user chose: one frozen object, built once (cli.options) and read by every layer.

A leaf module like errors.py: it imports nothing from the package, so passes,
back ends and the pipeline can all take a ``ConvertOptions`` without an
upward import.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Optional, Tuple

#: progress(what, done, total): called as long work advances (`what` names it and its unit, e.g.
#: "copying checkpoint (bytes)"); done == total once at the end. It must be cheap and must not raise.
Progress = Callable[[str, int, int], None]

#: Default size threshold (elements) for --unfreeze of float Consts that are not recognizably former variables.
DEFAULT_UNFREEZE_MIN_SIZE = 1024


@dataclasses.dataclass(frozen=True)
class UnfreezeOptions:
    """--unfreeze: which frozen weight constants become variables again."""

    min_size: int = DEFAULT_UNFREEZE_MIN_SIZE
    pattern: Optional[str] = None
    names: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ConvertOptions:
    """Every choice a conversion (and its dry run, `explain`) depends on.

    `to` is the target release as the user wrote it (``1.8``); the rest have
    the defaults of a plain ``tf-transpile IN OUT --to V``.
    """

    to: str
    force: bool = False
    checkpoint: Optional[Path] = None
    rule_files: Tuple[Path, ...] = ()
    #: Inline function calls even when the target has the call ops.
    inline_functions: bool = False
    #: "resource" keeps resource variables; "ref" turns them into VariableV2 (rules/ref_variables.yaml).
    variables: str = "resource"
    #: Fold variables into constants and write a frozen GraphDef.
    freeze: bool = False
    #: Clear every node's device (a model pinned to a GPU, for a CPU-only release).
    clear_devices: bool = False
    #: The meta graph to convert (None: all for a downgrade; the only one or `serve` for an upgrade).
    tags: Optional[Tuple[str, ...]] = None
    #: Signature inputs/outputs of a graph without signatures, as `[KEY=]TENSOR` items.
    inputs: Tuple[str, ...] = ()
    outputs: Tuple[str, ...] = ()
    unfreeze: Optional[UnfreezeOptions] = None
    #: Hard-link the checkpoint's data shards into OUT instead of copying them (a copy across file systems).
    link: bool = False
    #: What OUT will be ("saved_model", "graph_def", "meta_graph"): convert takes it from OUT's name.
    output_form: str = "saved_model"
    #: Told how long work advances (checkpoint bytes copied, graph nodes through the passes); not a
    #: choice about the output, so it is left out of equality (and of batch's stamps).
    progress: Optional[Progress] = dataclasses.field(default=None, compare=False, repr=False)

    def rule_options(self) -> dict:
        """The user choices rule files may test (``when: {option: variables=ref}``)."""
        return {"variables": self.variables}

    def replace(self, **changes) -> "ConvertOptions":
        return dataclasses.replace(self, **changes)
