"""Verification in the real target release: OUT loads there and computes what IN computes."""

from transpiler.verify.verify import VerifyOptions, VerifyReport, verify

__all__ = ["VerifyOptions", "VerifyReport", "verify"]
