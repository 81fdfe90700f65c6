"""The bundled sample photo."""

from __future__ import annotations

from pathlib import Path

_DATA = Path(__file__).resolve().parent / "data"


def sample_path() -> Path:
    """Path of the bundled sample photo (the astronaut Eileen Collins, 512x512 JPEG, NASA, public domain; see data/SOURCES.md)."""
    return _DATA / "astronaut.jpg"
