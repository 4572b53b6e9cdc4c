"""The ``tinygraph`` program's entry point (its console script; ``python -m tinygraph_command``
from a checkout).  A module of its own, outside the packages, that imports only what the
interpreter has already loaded: the program is :func:`viz.cli.command`, and importing it (the
engine, numpy, rnn, viz; about a second) happens here inside the handler, so that a Ctrl-C
then ends the program as quietly as one later does, with status 130 and no traceback.  (A
console script naming ``viz.cli:command`` imports all of that before any code of the program
runs.)"""

import signal
import sys


def command():
    """Import and run the program; a Ctrl-C before its own handling starts exits 130."""
    try:
        from viz.cli import command as program
        program()
    except KeyboardInterrupt:
        print("tinygraph: interrupted", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)


if __name__ == "__main__":
    command()
