"""The base of the explorer's own errors, so a page or the CLI catches one type and shows its words.

``str(exc)`` is a complete sentence for a user; ``cause`` says what went wrong and ``advice`` what to do
(empty when there is nothing to add).
"""

from __future__ import annotations


class ExplorerError(Exception):
    def __init__(self, message: str, cause: str = "", advice: str = ""):
        super().__init__(message)
        self.cause = cause or message
        self.advice = advice


class SettingsError(ExplorerError, ValueError):
    """A setting (an environment variable or a flag) holds a value that cannot be used."""
