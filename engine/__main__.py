"""``python -m kmpress``: the same as the ``kmpress`` command."""

from kmpress.cli import run

# The guard matters: batch workers use the spawn start method, which re-imports the main module.
if __name__ == "__main__":
    run()
