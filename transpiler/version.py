"""The package version (a leaf module: the cli reads it without importing the API)."""

__version__ = "0.1.0"
