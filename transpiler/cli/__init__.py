"""Layer 8, the command line: `tf-transpile IN OUT --to V` and its subcommands."""

from transpiler.cli.main import main, run

__all__ = ["main", "run"]
