"""The one exception family of kmpress.

Every error a user can cause (a bad file, a bad parameter, an image too large) is a
:class:`KmpressError`. Callers that want one ``except`` clause catch that; the CLI turns it
into a one-line message and a non-zero exit code. Anything else escaping the engine is a bug.
"""

from __future__ import annotations


class KmpressError(Exception):
    """Base class of every error kmpress raises on purpose.

    Parameters
    ----------
    message : str
        One line, meant for a person: what is wrong and, where it helps, what to do.
    path : str or None
        The file the error is about, when there is one.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidParameterError(KmpressError, ValueError):
    """A parameter is out of range or of the wrong kind (K, seed, tol, shapes, dtypes...)."""


class ImageReadError(KmpressError):
    """An input file is missing, unreadable, not an image, truncated or corrupt."""


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than the configured limit (decompression-bomb guard)."""


class ImageWriteError(KmpressError):
    """An output could not be written (folder missing or read-only, disk full, would overwrite input)."""
