"""The checkpoint file format: numeric arrays under any names, plus a little JSON metadata.

A checkpoint is a zip archive (as numpy's ``.npz``) written member by member with
``zipfile`` and ``np.lib.format.write_array``, never through ``np.savez``'s keyword
arguments, so a name may be anything (``allow_pickle``, ``file``, a newline, a lone
surrogate): the array of the i-th name is the member ``i.npy`` and the names, in order,
are in the member ``manifest.json`` with the metadata.  Only numeric arrays (bool,
integer, float, complex) are written, never objects, so nothing is ever unpickled.

Reading trusts nothing in the file.  Every member's npy header is checked before its
data is read: a numeric dtype and a shape that matches what the caller expects (or at
least fits in ``max_bytes``), and no member is inflated past the size its header
claims, so a zip bomb or a header claiming 10**12 entries costs nothing.  Every
problem (not a zip, truncated, corrupt, encrypted or unsupported compression, an
oversize claim, a bad manifest) is a :class:`CheckpointError` naming the file and the
entry.  Writing is deterministic: the same arrays, names and meta give the same bytes
(every member carries the same fixed time stamp; nothing of the moment or the process is
written).  Plain ``.npz`` files of numeric arrays (no manifest) are read the same way.
"""

import contextlib
import json
import math
import os
import struct
import tokenize
import zipfile
import zlib

import numpy as np

from .errors import CheckpointError, CheckpointNotFoundError, CheckpointWriteError
from .files import atomic_write, checked_path

FORMAT = "tinygraph-checkpoint"
VERSION = 1
MANIFEST = "manifest.json"
MAX_BYTES = 1 << 30            # the default bound on the data one load may read
MAX_MANIFEST_BYTES = 16 << 20
NUMERIC_KINDS = "biufc"
_READ_CHUNK = 1 << 22
ZIP_TIME = (1980, 1, 1, 0, 0, 0)      # every member's time stamp: the zip format's earliest

# what a corrupt or hostile archive makes zipfile, zlib and numpy's header parser raise
_BAD_FILE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
             NotImplementedError, RuntimeError, struct.error, OverflowError, SyntaxError,
             UnicodeDecodeError, tokenize.TokenError)


def _numeric(name, value, who):
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{who}: entry {name!r} is not an array ({e})") from None
    if arr.dtype.kind not in NUMERIC_KINDS or arr.dtype.fields is not None:
        raise CheckpointError(f"{who}: entry {name!r} has dtype {arr.dtype}; a checkpoint holds "
                              "only numeric arrays (put text and other metadata in meta=)")
    return arr


def save_arrays(path, arrays, meta=None):
    """Write a dict of numeric arrays (any names) and JSON ``meta`` to ``path``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
    arrays : dict name (str) -> array_like of numbers
    meta : dict of JSON values (numbers, text, lists, dicts with string keys), optional

    Raises
    ------
    CheckpointError
        A name that is not a string, a non-numeric array, or meta that JSON cannot hold
        (or would change: a dict key that is not a string);
        checked before anything is written.
    CheckpointWriteError
        The file cannot be written; an existing file at ``path`` is left as it was.
    """
    who = "save"
    path = checked_path(path, who, CheckpointError)
    names = list(arrays)
    for name in names:
        if not isinstance(name, str):
            raise CheckpointError(f"{who}: array names must be strings, got {name!r}")
    checked = [_numeric(name, arrays[name], who) for name in names]
    _check_meta_keys(meta, who)
    try:
        manifest = json.dumps({"format": FORMAT, "version": VERSION, "names": names,
                               "meta": {} if meta is None else meta})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{who}: meta must hold only JSON values (numbers, text, lists, "
                              f"dicts): {e}") from None
    with atomic_write(path, who, CheckpointWriteError) as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            zf.writestr(_member(MANIFEST), manifest)
            for i, arr in enumerate(checked):
                with zf.open(_member(f"{i}.npy"), "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, arr, allow_pickle=False)


def _check_meta_keys(meta, who):
    """Refuse a dict in ``meta`` (at any depth) with a key that is not a string: JSON would write
    it as text, so ``{1: "a"}`` would read back as ``{"1": "a"}`` (and ``{1: "a", "1": "b"}`` lose
    an entry).  Iterative: no recursion however deep the meta."""
    todo, seen = [("meta", meta)], set()
    while todo:
        where, value = todo.pop()
        if isinstance(value, (dict, list, tuple)):
            if id(value) in seen:      # a cycle: json.dumps refuses it below
                continue
            seen.add(id(value))
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    try:
                        back = next(iter(json.loads(json.dumps({key: 0}))))
                    except (TypeError, ValueError):
                        back = None         # not a JSON key at all: json.dumps says so below
                    if back is not None:
                        raise CheckpointError(
                            f"{who}: {where} has the key {key!r} ({type(key).__name__}); JSON keeps "
                            f"only string keys, so it would read back as {back!r}: use string keys")
                todo.append((f"{where}[{key!r}]", item))
        elif isinstance(value, (list, tuple)):
            todo.extend((f"{where}[{i}]", item) for i, item in enumerate(value))


def _member(name):
    """A zip member's header with nothing of the moment in it (a fixed time stamp and
    permissions), so the same arrays and meta always make the same bytes."""
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.external_attr = 0o644 << 16
    info.create_system = 3          # unix, whatever the platform writing it
    return info


class Checkpoint:
    """What :func:`read_checkpoint` returns: ``arrays`` (dict name -> array) and ``meta`` (dict)."""

    def __init__(self, arrays, meta):
        self.arrays = arrays
        self.meta = meta


def load_arrays(path, expect=None, max_bytes=MAX_BYTES):
    """The arrays of a checkpoint as a dict name -> np.ndarray (see :func:`read_checkpoint`)."""
    return read_checkpoint(path, expect, max_bytes).arrays


def read_checkpoint(path, expect=None, max_bytes=MAX_BYTES, *, required=()):
    """Read a checkpoint written by :func:`save_arrays`, checking everything it claims.

    Parameters
    ----------
    path : str or os.PathLike
    expect : dict name -> (shape, dtype), optional
        What the caller can use.  An entry not named here is refused, and an entry's
        header must give exactly this dtype and shape (a ``None`` in the shape allows
        any length there), before any data is read.  Every mismatch is named in one error
        (the unexpected and the missing names sorted, then each entry of another shape or
        dtype in the file's order), not only the first.
    max_bytes : int, the most array data one load reads (and allocates)
    required : names the file must hold (e.g. every name of ``expect``); a missing one is
        refused with the mismatches above

    Returns
    -------
    Checkpoint with ``arrays`` and ``meta``.

    Raises
    ------
    CheckpointNotFoundError
        No file at ``path``.
    CheckpointError
        Anything wrong with the file, naming the file and the entry.
    """
    with _reading(path) as (zf, members, where):
        where.entry = MANIFEST
        names, meta = _manifest(zf, members)
        missing = (_check_entries(zf, members, names, expect, required, where)
                   if expect is not None or required else [])
        arrays, budget = {}, max_bytes
        for name, member in names.items():
            where.entry = name
            arr = _read_member(zf, members[member], None if expect is None else expect[name],
                               budget)
            budget -= arr.nbytes
            arrays[name] = arr
        where.entry = None
        if missing:
            raise _Mismatch(f"missing {missing}")
    return Checkpoint(arrays, meta)


def _check_entries(zf, members, names, expect, required, where):
    """Raise one _Mismatch naming every name of the file not in ``expect`` (when given), every
    name of ``required`` not in the file and every header not as ``expect`` says, before any
    data is read (the missing names alone are returned, to be refused after the data is read);
    a mismatch of one entry alone names it as ``where.entry``, as before."""
    extra = [] if expect is None else sorted(n for n in names if n not in expect)  # {}: every name
    missing = sorted(n for n in required if n not in names)
    headers = []        # (entry, what is wrong with its header)
    for name, member in names.items():
        if expect is not None and name in expect:
            where.entry = name
            with zf.open(members[member]) as f:
                shape, _, dtype = _header(f)
            try:
                _check_expected(shape, dtype, *expect[name])
            except _Mismatch as e:
                headers.append((name, str(e)))
    where.entry = None
    problems = ([f"unexpected {extra} (not among the {len(expect)} entries wanted)"] if extra else []) + (
        [f"missing {missing}"] if missing else [])
    if not problems and len(headers) == 1:
        where.entry = headers[0][0]
        raise _Mismatch(headers[0][1])
    if extra and not missing and not headers:
        where.entry = extra[0]
    if extra or headers:
        alike = {}      # entries with the same mismatch (a model of another dtype: all) named once
        for name, text in headers:
            alike.setdefault(text, []).append(name)
        raise _Mismatch("; ".join(problems + [
            f"entry {names[0]!r}: {text}" if len(names) == 1
            else f"entries {names}: each {text.removeprefix('it ')}" for text, names in alike.items()]))
    return missing      # alone, refused after the data is read: a member cut short is named first


def read_entry(path, name, expect):
    """The one array ``name`` of a checkpoint, its header checked against ``expect`` (shape,
    dtype) before its data is read; no other array is read.  Raises CheckpointError as
    :func:`read_checkpoint` does, also when the file has no such entry."""
    with _reading(path) as (zf, members, where):
        where.entry = MANIFEST
        names, _ = _manifest(zf, members)
        where.entry = name
        if name not in names:
            raise _Mismatch("no such entry")
        return _read_member(zf, members[names[name]], expect, MAX_BYTES)


def read_meta(path):
    """The metadata of a checkpoint (its manifest only: no array is read)."""
    with _reading(path) as (zf, members, _):
        return _manifest(zf, members)[1]


def read_headers(path):
    """name -> (shape, dtype) of every array of a checkpoint, from the npy headers alone: no
    array data is read, so a caller can check what a file claims before loading it."""
    with _reading(path) as (zf, members, where):
        where.entry = MANIFEST
        names, _ = _manifest(zf, members)
        headers = {}
        for name, member in names.items():
            where.entry = name
            with zf.open(members[member]) as f:
                shape, _, dtype = _header(f)
            headers[name] = (shape, dtype)
    return headers


class _Where:
    """The entry of a checkpoint being read, for the error that names it."""
    entry = None


@contextlib.contextmanager
def _reading(path):
    """The open zip of checkpoint ``path``, its members and a :class:`_Where`; anything wrong
    inside becomes a CheckpointError naming the file and the entry being read."""
    path = checked_path(path, "load", CheckpointError)
    if os.path.isdir(path):
        raise CheckpointNotFoundError(f"load: '{path}' is a folder, not a checkpoint file; give "
                                      f"the file in it")
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f"load: no checkpoint file at '{path}'")
    where = _Where()
    try:
        with zipfile.ZipFile(path) as zf:
            yield zf, _members(zf), where
        return
    except _Mismatch as e:       # a sound file, of another model (dtype, shape, entries)
        detail, what = str(e), "is a readable checkpoint that does not match what loads it"
    except _Refused as e:
        detail, what = str(e), "is not a readable checkpoint"
    except _BAD_FILE as e:
        detail, what = f"{type(e).__name__}: {e}", "is not a readable checkpoint"
    at = "" if where.entry is None else f", entry {where.entry!r}"
    raise CheckpointError(f"load: '{path}' {what}{at}: {detail}") from None


class _Refused(Exception):
    """A reason to refuse the file, found by our own checks."""


class _Mismatch(_Refused):
    """A reason to refuse a sound file: it does not hold what the caller expects."""


def _members(zf):
    infos = zf.infolist()
    seen = {}
    for info in infos:
        if info.filename in seen:
            raise _Refused(f"the archive holds {info.filename!r} twice")
        if info.flag_bits & 0x1:
            raise _Refused(f"member {info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Refused(f"member {info.filename!r} uses an unsupported compression "
                           f"(method {info.compress_type}); only stored or deflated members")
        seen[info.filename] = info
    return seen


def _manifest(zf, members):
    """(name -> member, meta), from manifest.json, or from the member names of a plain npz."""
    if MANIFEST not in members:
        names = {m[:-4]: m for m in members if m.endswith(".npy")}
        if len(names) != len(members):
            raise _Refused("not a checkpoint: it has members other than .npy arrays and no "
                           "manifest.json")
        return names, {}
    info = members[MANIFEST]
    with zf.open(info) as f:
        raw = f.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise _Refused(f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    manifest = json.loads(raw.decode("utf-8"))
    if (not isinstance(manifest, dict) or manifest.get("format") != FORMAT
            or not isinstance(manifest.get("names"), list)
            or not all(isinstance(n, str) for n in manifest["names"])
            or not isinstance(manifest.get("meta", {}), dict)):
        raise _Refused(f"the manifest is not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise _Refused(f"format version {manifest.get('version')!r}; this tinygraph reads "
                       f"version {VERSION}")
    names = manifest["names"]
    if len(set(names)) != len(names):
        raise _Refused("the manifest names an array twice")
    wanted = {f"{i}.npy" for i in range(len(names))} | {MANIFEST}
    if set(members) != wanted:
        raise _Refused(f"the members {sorted(set(members) ^ wanted)} do not match the manifest")
    return {name: f"{i}.npy" for i, name in enumerate(names)}, manifest.get("meta", {})


def _header(f):
    """(shape, fortran order, dtype) of the npy member open in ``f``, checked."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise _Refused(f"npy format version {version} is not supported")
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.hasobject:
        raise _Refused(f"dtype {dtype} is not a numeric dtype (objects are never loaded)")
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise _Refused(f"the header claims an invalid shape {shape}")
    return shape, fortran, dtype


def _read_member(zf, info, expected, budget):
    with zf.open(info) as f:
        shape, fortran, dtype = _header(f)
        if expected is not None:
            _check_expected(shape, dtype, *expected)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > budget:
            raise _Refused(f"the header claims shape {shape} of {dtype} ({nbytes:,} bytes), more "
                           f"than the {budget:,} bytes this load may read")
        arr = np.empty(math.prod(shape), dtype)
        buf = arr.view(np.uint8)
        done = 0
        while done < nbytes:
            got = f.readinto(buf[done:done + _READ_CHUNK])
            if not got:
                raise _Refused(f"the data ends after {done:,} of {nbytes:,} bytes")
            done += got
        if f.read(1):
            raise _Refused("there is more data than its header claims")
    return arr.reshape(shape, order="F" if fortran else "C")


def _check_expected(shape, dtype, want_shape, want_dtype):
    want_dtype = np.dtype(want_dtype)
    if dtype != want_dtype:
        hint = ""
        if dtype.kind == "f" and want_dtype.kind == "f":    # another precision: never cast here
            hint = (f" (saved in another precision: make the model {dtype} to load it, or convert "
                    "it with model.load_state_dict(tg.load_arrays(path), cast=True))")
        raise _Mismatch(f"it has dtype {dtype}, expected {want_dtype}{hint}")
    want_shape = tuple(want_shape)
    if len(shape) != len(want_shape) or any(w is not None and w != n
                                            for n, w in zip(shape, want_shape)):
        raise _Mismatch(f"it has shape {shape}, expected {want_shape}")
