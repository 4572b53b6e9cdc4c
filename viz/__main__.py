"""``python -m viz``: the ``tinygraph`` command (:func:`viz.cli.command`), for a checkout or an
environment where the console script is not on PATH."""

from .cli import command

if __name__ == "__main__":
    command()
