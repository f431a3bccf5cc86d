"""The version: one place, which the package metadata (pyproject.toml), the CLI and the web UI all read."""

__version__ = "0.1.0"
