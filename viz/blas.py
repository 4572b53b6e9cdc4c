"""One OpenBLAS thread while the tinygraph program trains (or a playground that asks for it,
``viz.playground(one_blas_thread=True)``), the count put back after.

The models' matrices are small (the demo's 57 x 128), so a second BLAS thread finds no work
worth sharing, and on a busy machine its spinning and waiting made training several times
slower (the demo's character model: 19 against 216 updates/s beside two busy processes on two
cores, bench/README.md).  OpenBLAS's count is process-wide (``openblas_set_num_threads``; its
``_local`` form sets the same global), so it is held, not set: every holder (a command of the
program, a running playground that asked) counts itself in, the first one sets one thread and the last one
out puts back the count it found, whatever the order in which they end.  Nothing changes when
numpy's BLAS is not an OpenBLAS that ``rnn.train.openblas`` finds, or when one of
``rnn.train.BLAS_THREAD_VARIABLES`` is set in the environment (the user's choice).
"""

import contextlib
import os
import threading

import rnn

_lock = threading.Lock()
_held = {"holders": 0, "put": None, "before": None}


def hold_one_blas_thread():
    """Count one holder in (the first sets numpy's OpenBLAS to one thread); returns the function
    that counts it out again (the last one out restores the count), which does something the
    first time it is called only."""
    with _lock:
        if _held["holders"] == 0:
            functions = rnn.train.openblas()
            if functions is None or any(os.environ.get(name, "").strip()
                                        for name in rnn.train.BLAS_THREAD_VARIABLES):
                return lambda: None
            get, put = functions
            _held["before"], _held["put"] = get(), put
            put(1)
        _held["holders"] += 1
    released = []

    def release():
        with _lock:
            if released:
                return
            released.append(True)
            _held["holders"] -= 1
            if _held["holders"] == 0:
                put, before = _held["put"], _held["before"]
                _held["put"] = _held["before"] = None
                put(before)
    return release


@contextlib.contextmanager
def one_blas_thread():
    """Within the block numpy's OpenBLAS runs with one thread (:func:`hold_one_blas_thread`);
    the count is restored after, also on an error or KeyboardInterrupt."""
    release = hold_one_blas_thread()
    try:
        yield
    finally:
        release()
