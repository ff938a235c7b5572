"""tf-transpile: move TensorFlow models between TensorFlow releases.

The Python API is what the command line runs::

    >>> import transpiler
    >>> report = transpiler.check("examples/half_plus_two_tf214", to="1.8")
    >>> report.blocking, sorted({p.op for p in report.problems})
    (True, ['DisableCopyOnRead', 'ParseExampleV2', 'StatefulPartitionedCall', 'StaticRegexFullMatch'])
    >>> transpiler.explain("examples/half_plus_two_tf214", to="1.8").blocking
    False

``convert(IN, OUT, to=..., **options)`` writes OUT and returns the same kind
of ``Report``; options are the fields of ``transpiler.options.ConvertOptions``
(``force``, ``rule_files``, ``variables``, ``freeze``, ``tags``, ...). A model
that cannot be made to load raises ``IncompatibleModel`` (its ``report`` names
every blocking node); bad input raises ``TranspileError``.

The layers, each importing only those before it:

    errors, options      leaf modules every layer may use
    io/                  protos without the TF runtime, model readers, checkpoint files, tf_runtime
    ir/                  the networkx IR (graph.py), attrs, values of Consts
    knowledge/           per-release facts: opsets from the real runtimes, OpDef questions
    engine/              the rules engine: rule files, templates, the rule pass, examples
    passes/              one module per pass (inline, lower, dense lists, checkpoint names, rules, ...)
    backends/            the graph writer, the native TF 2 back end, checkpoint conversion
    pipeline/            pipelines as data, plan / convert / check / explain, the report
    cli/                 the command line
    runtimes/            real TF releases provisioned on this machine (tests, tools, verify)
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from transpiler.version import __version__

PathLike = Union[str, Path]


def _options(to: str, **options):
    from transpiler.options import ConvertOptions

    if "rule_files" in options:
        options["rule_files"] = tuple(Path(p) for p in options["rule_files"])
    return ConvertOptions(to=to, **options)


def convert(model: PathLike, out: PathLike, to: str, **options):
    """Convert `model` for release `to` and write it to `out`; returns the Report."""
    from transpiler.pipeline.convert import convert as run

    return run(Path(model), Path(out), _options(to, **options))


def explain(model: PathLike, to: str, **options):
    """What `convert` with the same options would do (firings, what still blocks); writes nothing."""
    from transpiler.pipeline.convert import explain as run

    return run(Path(model), _options(to, **options))


def check(model: PathLike, to: str, checkpoint: PathLike = None):
    """What blocks loading `model`, unchanged, in release `to`."""
    from transpiler.pipeline.check import check as run

    return run(Path(model), to, Path(checkpoint) if checkpoint else None)


__all__ = ["__version__", "check", "convert", "explain"]
