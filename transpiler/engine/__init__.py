"""Layer 4, the rules engine: rule files (rules/*.yaml), sandboxed templates, the rule pass, rule examples."""

from transpiler.errors import TranspileError


class RuleError(TranspileError):
    """A problem with user-supplied rules. One line, even when the message quotes a rule's text."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
