"""The one exception family of kmpress: every error raised on purpose is a :class:`KmpressError`.

Callers that want one ``except`` clause catch that; the CLI turns it into a one-line message and
an exit code (:class:`InvalidParameterError` and its subclasses are usage errors, exit 2; the
rest are failed inputs, exit 1; :class:`TargetNotReachedError` under ``strict`` is exit 3).
Anything else escaping the engine is a bug. Pure Python: importing this module costs nothing.
"""

from __future__ import annotations

from typing import Any


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

    def __reduce__(self):
        # picklable across processes whatever a subclass's __init__ takes; a result object
        # (TargetNotReachedError's) stays behind: it holds the image
        extra = {k: v for k, v in self.__dict__.items() if k not in ("message", "path", "result")}
        return (_rebuild, (type(self), self.message, self.path, extra))


def _rebuild(cls: type[KmpressError], message: str, path: str | None, extra: dict[str, Any]) -> KmpressError:
    err = cls.__new__(cls)
    KmpressError.__init__(err, message, path)
    err.__dict__.update(extra)
    return err


class InvalidParameterError(KmpressError, ValueError):
    """A parameter is out of range or of the wrong kind (K, seed, tol, shapes, dtypes...).

    Attributes
    ----------
    fields : tuple of str; the names of the options the error is about (for a front end to
        name its own flags), empty when not about options
    """

    def __init__(self, message: str, path: str | None = None, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message, path)
        self.fields = tuple(fields)


class OutputCollisionError(InvalidParameterError):
    """Two inputs of one batch would write the same output file.

    A batch does not raise it: it names the ``error_type`` of those inputs' failed results (the
    rest of the batch is done).
    """


class MissingExtraError(InvalidParameterError):
    """A feature was asked for whose optional dependency is not installed.

    The message names the extra to install (``pip install "kmpress[...]"``).
    """


class DaskNotInstalledError(MissingExtraError):
    """A Dask cluster was asked for, but ``dask.distributed`` is not installed (``kmpress[dask]``)."""


class PlotUnavailableError(MissingExtraError):
    """A plot was asked for, but matplotlib is not installed (``kmpress[plot]``)."""


class SchedulerError(InvalidParameterError):
    """The Dask scheduler cannot be reached, or has no workers, or its address is malformed."""


class SchedulerLostError(KmpressError):
    """The Dask scheduler went away in the middle of a batch.

    Its process died, or it stopped answering for longer than ``scheduler_timeout``. A batch does
    not raise it: it names the ``error_type`` of the files it left not done (see
    :mod:`kmpress.dask_batch`).
    """


class UnguardedMainError(KmpressError, RuntimeError):
    """A batch was started while a worker process was itself being started.

    The *spawn* start method (the local pool's: numba's OpenMP layer aborts in forked children)
    re-imports the calling script in every worker process; a script that calls
    :func:`kmpress.compress_many` at its top level would start the batch again in each worker.
    The call in the worker raises this instead: a script that starts a batch must do it under
    ``if __name__ == "__main__":``.
    """


class ImageReadError(KmpressError):
    """An input file is missing, unreadable, not an image, truncated or corrupt."""


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than the configured limit (decompression-bomb guard)."""


class HeifUnavailableError(MissingExtraError, ImageReadError):
    """An input is a HEIC/HEIF image, but pillow-heif (``kmpress[heif]``) is not installed.

    iPhones and many Android phones write HEIC. An input failure (the rest of a batch goes on),
    whose message says how to install the extra.
    """


class ImageWriteError(KmpressError):
    """An output could not be written (folder missing or read-only, disk full, would overwrite input)."""


class ServerError(KmpressError):
    """``kmpress serve`` cannot start (its folder is not private to the user, a path too long)."""


class TargetNotReachedError(KmpressError):
    """The quality target cannot be reached with the allowed number of colours (``strict``).

    Attributes
    ----------
    result : QualityResult or None; the best result found (at ``max_colors``), unwritten. It
        stays behind when the error is pickled (it holds the image).
    fields : tuple of str; the options whose change would help, as the message names them (for
        a front end to name its own flags)
    """

    result: Any = None

    def __init__(self, message: str, path: str | None = None, result: Any = None, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message, path)
        self.result = result
        self.fields = tuple(fields)
