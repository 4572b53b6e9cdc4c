"""Single-threaded BLAS for the benchmarks, without touching ``os.environ`` at import.

BLAS reads its thread count from the environment once, when numpy loads it, so setting the
variables inside a process that has imported numpy changes nothing (the ``tinygraph`` program
sets OpenBLAS's count through OpenBLAS itself, ``viz.cli.one_blas_thread``; a benchmark of any
BLAS needs the variables).  :func:`run_single_threaded` runs a
benchmark's ``main`` in a process whose environment says one thread: this one when it
already does, else the same command started again (``os.execv``) with those variables set.
Importing a benchmark module (as the tests do) changes nothing in the importing process.
"""

import os
import sys

VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def single_threaded_env(environ=None, keep_set=False):
    """A copy of ``environ`` (default: this process's) with every BLAS thread variable "1";
    ``keep_set`` keeps a value the user set."""
    env = dict(os.environ if environ is None else environ)
    for name in VARIABLES:
        if not (keep_set and env.get(name)):
            env[name] = "1"
    return env


def run_single_threaded(main, keep_set=False):
    """``main()`` under single-threaded BLAS (see the module docstring)."""
    env = single_threaded_env(keep_set=keep_set)
    if any(os.environ.get(name) != env[name] for name in VARIABLES):
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, os.path.abspath(sys.argv[0]), *sys.argv[1:]],
                  env)
    return main()
