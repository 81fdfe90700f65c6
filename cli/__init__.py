"""The ``kmpress`` command line (typer). It parses, calls :mod:`engine`, and prints."""
