"""Atomic file writes: the one way tinygraph, rnn and viz write a file.

:func:`atomic_write` hands out a temporary file in the target's folder and, when the
``with`` block succeeds, fsyncs it, renames it over the target and fsyncs the folder,
so a reader (or a crash, a full disk, ``kill -9``, a second writer) only ever sees the
old file whole or the new file whole.  A path that is a symbolic link is written through to
the file it points to (the link stays), as ``open`` writes.  A file that is replaced keeps its
permission bits; a new one gets the usual ``0666 & ~umask``.  Temporary files of our own naming
(``.<name>.<pid>.<token>.tmp``, the name a digest when it is too long) left behind by a process that no longer runs are
removed the next time the same target is written.
"""

import contextlib
import hashlib
import os
import re
import secrets
import stat

from .errors import WriteError


NAME_MAX = 255        # the longest file name (bytes) of the common file systems, if unknown


def _name_max(folder):
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return NAME_MAX


def _stem(folder, base):
    """What names the temporary files of ``base``: the name itself when ``.<name>.<pid>.<token>.tmp``
    fits in the folder's longest file name, else a short digest of it (so a legal long name
    still saves)."""
    room = _name_max(folder) - len(".." + "." + "0" * 12 + ".tmp") - 10     # a pid has <= 10 digits
    if len(os.fsencode(base)) <= room:
        return base
    return "~" + hashlib.sha256(os.fsencode(base)).hexdigest()[:24]


def _temp_name(stem):
    return f".{stem}.{os.getpid()}.{secrets.token_hex(6)}.tmp"


def _orphans(folder, stem):
    """Temporary files of ours for ``stem`` whose writing process is gone."""
    pattern = re.compile(rf"\.{re.escape(stem)}\.(\d+)\.[0-9a-f]+\.tmp")
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [name for name in names
            if (m := pattern.fullmatch(name)) and not _process_alive(int(m.group(1)))]


def _process_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:        # exists, but belongs to someone else
        return True
    return True


def _fsync_folder(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checked_path(path, who, error):
    """``path`` as a str or bytes path; anything else (None, a number) raises ``error`` naming
    ``who`` instead of a bare TypeError."""
    try:
        return os.fspath(path)
    except TypeError:
        raise error(f"{who}: the path must be a str or os.PathLike, got "
                    f"{type(path).__name__} {path!r:.60}") from None


@contextlib.contextmanager
def atomic_write(path, who="write", error=WriteError, make_folder=False):
    """Write ``path`` atomically: ``with atomic_write(path) as f: f.write(data)``.

    Parameters
    ----------
    path : str or os.PathLike, the file to create or replace
    who : str, names the caller in error messages (e.g. "viz.save")
    error : the exception class raised (with the path and the reason) when an OSError
        stops the write; the target is then left as it was
    make_folder : bool, create missing parent folders first

    Yields
    ------
    a binary file object open for writing.
    """
    path = checked_path(path, who, error)
    target = os.path.realpath(path) if os.path.islink(path) else path   # through a symlink to its
    folder = os.path.dirname(os.path.abspath(target))   # file, as open() writes (renaming over
    base = os.path.basename(target)                      # the link would leave the file as it was)
    tmp = None
    try:
        if make_folder:
            os.makedirs(folder, exist_ok=True)
        if os.path.isdir(target):
            raise IsADirectoryError(21, "Is a directory")
        stem = _stem(folder, base)
        for name in _orphans(folder, stem):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))
        while tmp is None:
            candidate = os.path.join(folder, _temp_name(stem))
            try:
                fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            tmp = candidate
        with os.fdopen(fd, "wb") as f:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(fd, stat.S_IMODE(os.stat(target).st_mode))
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        tmp = None
        _fsync_folder(folder)
    except OSError as e:
        raise error(f"{who}: cannot write {path!r}: {e.strerror or e}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
