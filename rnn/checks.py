"""Input validation for the recurrent designs.

Every check runs before any graph is built, so bad input raises one clear
tinygraph error (naming the model, the argument, the time step and the valid
range) and never a numpy traceback from the middle of an unroll.  The checked
arrays come back in the layout the unroll wants: time first, ids as int64,
floats in the model's dtype, masked positions replaced by a harmless id 0 or zero vector.
"""

import contextlib
import threading

import numpy as np

from tinygraph import (AnomalyError, BadIndexError, ConfigError, DTypeError, NonFiniteError,
                        OutOfRangeError, ShapeError, Tensor, is_grad_enabled)


def as_array(value, who, what):
    """``value`` as a numpy array of numbers; ragged nesting raises ShapeError, other data DTypeError."""
    if isinstance(value, Tensor):
        value = value.data
    if value is None:
        raise ShapeError(f"{who}: {what} is None; need an array of numbers")
    try:
        arr = np.asarray(value)
    except ValueError:      # numpy refuses nesting of different lengths: ragged
        raise ShapeError(f"{who}: {what} is ragged (sequences of different lengths); pad them "
                         "to one length and pass mask=, e.g. xs, mask = rnn.pad_sequences(seqs)"
                         ) from None
    if arr.dtype == object:
        raise DTypeError(f"{who}: {what} holds {_not_a_number(arr)}; need an array of numbers")
    if arr.dtype.kind not in "biuf":
        raise DTypeError(f"{who}: {what} must be integer ids or float vectors, got dtype {arr.dtype}")
    return arr


def _not_a_number(arr):
    """What an object array holds that is not a number: the first such entry and where."""
    for index in np.ndindex(arr.shape):
        item = arr[index]
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, float, np.number)):
            kind = "None" if item is None else f"a {type(item).__name__} ({item!r:.40})"
            return f"{kind} at index {list(index) if len(index) > 1 else index[0]}"
    return f"Python objects (dtype object, shape {arr.shape})"


def in_dtype(arr, dtype, who, what, steps=False):
    """``arr`` (float or integer values) cast to the model's ``dtype``; a finite value beyond
    that dtype's range is refused (OutOfRangeError naming ``who``, ``what`` and where: t and b
    with ``steps``), where the cast made it inf without a word (1e39 into float32, 7e4 into
    float16) and the loss inf or NaN."""
    with np.errstate(over="ignore"):
        out = arr.astype(dtype)
    if np.dtype(dtype).itemsize < arr.dtype.itemsize or arr.dtype.kind != "f":
        grown = ~np.isfinite(out) & np.isfinite(arr)
        if grown.any():
            index = tuple(int(i) for i in np.argwhere(grown)[0])
            where = (f"t={index[0] + 1}" + (f", b={index[1]}" if len(index) == 3 else "")
                     if steps else f"index {index}")
            raise OutOfRangeError(f"{who}: {what} holds {arr[index].item()!r} at {where}, beyond "
                                  f"the range of the model's {np.dtype(dtype)} (largest "
                                  f"{np.finfo(dtype).max:.4g}): it would become inf")
    return out


def tensor_dtype(tensor, dtype, who, what):
    """A float Tensor ``what`` in the model's ``dtype``.  One that requires grad is read as it
    is (its gradient flows), so another dtype is a DTypeError naming ``who``, ``what`` and both
    dtypes: numpy would promote every op it meets, e.g. a float64 h0 would run a float32 model's
    whole unroll in float64 without a word (PyTorch refuses the mix too); a narrower one (float32
    into a float64 model) computes in the model's dtype and gets its gradient in its own.  One
    that does not require grad is a value, cast as an array is (rounded to a float32 model's
    precision)."""
    dtype = np.dtype(dtype)
    if tensor.dtype.kind != "f" or tensor.dtype == dtype:
        return tensor
    if not tensor.requires_grad:
        return Tensor(in_dtype(tensor.data, dtype, who, what, what == "xs"), name=tensor.name)
    if np.promote_types(tensor.dtype, dtype) == dtype:   # e.g. float32 into float64: the
        return tensor                                      # unroll stays in the model's dtype
    raise DTypeError(f"{who}: {what} is a {tensor.dtype} Tensor that requires grad but the "
                     f"model's parameters are {dtype}; mixing them would run the unroll in "
                     f"{tensor.dtype} without a word: give {what} as "
                     f"{dtype} (e.g. tg.Tensor(v.data.astype(np.{dtype}), requires_grad=True)), "
                     f"or convert the model with .to(np.{tensor.dtype})")


def generator(seed, who):
    """The random generator of a design's initial weights: ``seed`` an integer >= 0, or a
    np.random.Generator used as it is; anything else is a ConfigError naming ``who``."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"{who}: seed must be an integer >= 0 or a np.random.Generator, "
                          f"got {seed!r}")
    return np.random.default_rng(int(seed))


def batch_size(batch, steps, who):
    """Refuse an unroll of no steps or of an empty batch (a mean over no examples is NaN, and
    training on it would move every parameter); the one check every design goes through."""
    if steps is not None and steps < 1:
        raise ShapeError(f"{who}: an empty sequence (0 time steps); need at least one step")
    if batch is not None and batch < 1:
        raise ShapeError(f"{who}: an empty batch (B = 0 sequences); need at least one example")


def _where(index, batched, axis="t"):
    if axis == "b":
        return f"b={index[0]}"
    t = index[0] + 1
    return f"t={t}, b={index[1]}" if batched and len(index) > 1 else f"t={t}"


def check_ids(ids, n, who, what, batched, mask=None, axis="t"):
    """Raise BadIndexError naming the first id outside [0, n) at a position the mask keeps.

    ``axis`` says what the first axis of ``ids`` is: "t" (time, with a batch axis after it
    when ``batched``) or "b" (one id per example)."""
    bad = (ids < 0) | (ids >= n)
    if mask is not None:
        bad &= mask
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise BadIndexError(f"{who}: {what} id {ids[index]} at {_where(index, batched, axis)} is out of "
                            f"range [0, {n})")


def as_int64(ids, who, what, batched):
    """Integer ids as int64; a uint64 id beyond int64 raises BadIndexError naming it (a plain
    cast would wrap it around to a negative id)."""
    if ids.dtype.kind == "u" and ids.size and ids.max() > np.iinfo(np.int64).max:
        index = tuple(int(i) for i in np.argwhere(ids > np.iinfo(np.int64).max)[0])
        at = f" at {_where(index, batched)}" if index else ""
        raise BadIndexError(f"{who}: {what} id {ids[index]}{at} is out of range (beyond int64)")
    return ids.astype(np.int64)


def inputs(xs, n_in, who, dtype):
    """Check a sequence of inputs.

    Parameters
    ----------
    xs : ids (T,) or (T, B), or floats (T, n_in) or (T, B, n_in).

    Returns
    -------
    (xs, is_ids, batched) with xs int64 ids or floats of ``dtype``.  Id ranges are
    checked by :func:`check_ids` once the mask is known.
    """
    arr = as_array(xs, who, "xs")
    if arr.dtype.kind == "b":
        raise DTypeError(f"{who}: xs must be integer ids or float vectors, got booleans")
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ShapeError(f"{who}: xs is an empty sequence (shape {arr.shape}); need at least one step")
    if arr.dtype.kind in "iu":
        if arr.ndim not in (1, 2):
            raise ShapeError(f"{who}: integer ids xs must have shape (T,) or (T, B), got {arr.shape}")
        if arr.ndim == 2 and arr.shape[1] == 0:
            raise ShapeError(f"{who}: xs has an empty batch (shape {arr.shape})")
        return as_int64(arr, who, "xs", arr.ndim == 2), True, arr.ndim == 2
    if arr.ndim == 1:
        raise DTypeError(f"{who}: xs of shape {arr.shape} looks like ids but has float dtype "
                         f"{arr.dtype}; pass integer ids, or float vectors of shape (T, {n_in})")
    if arr.ndim not in (2, 3):
        raise ShapeError(f"{who}: float inputs xs must have shape (T, {n_in}) or (T, B, {n_in}), "
                         f"got {arr.shape}")
    if arr.shape[-1] != n_in:
        raise ShapeError(f"{who}: each input vector must have width n_in={n_in}, got xs of shape "
                         f"{arr.shape}")
    if arr.ndim == 3 and arr.shape[1] == 0:
        raise ShapeError(f"{who}: xs has an empty batch (shape {arr.shape})")
    return in_dtype(arr, dtype, who, "xs", steps=True), False, arr.ndim == 3


def mask(value, steps, batch, batched, who):
    """Check a (T, B) mask of 0/1; returns a bool array, or None for no mask."""
    if value is None:
        return None
    if not batched:
        raise ShapeError(f"{who}: mask= needs a batch; unbatched sequences have no padding")
    arr = as_array(value, who, "mask")
    if arr.shape != (steps, batch):
        raise ShapeError(f"{who}: mask must have shape (T, B) = {(steps, batch)}, got {arr.shape}")
    if not np.isin(arr, (0, 1)).all():
        raise ShapeError(f"{who}: mask entries must be 0 or 1")
    arr = arr.astype(bool)
    empty = np.flatnonzero(~arr.any(axis=0))
    if empty.size and not getattr(_chunks, "on", False):
        raise ShapeError(f"{who}: mask keeps no step of sequence b={empty[0]} (an empty sequence)")
    return arr


_chunks = threading.local()


@contextlib.contextmanager
def chunk_masks():
    """In this thread, within the block: a mask may keep no step of a sequence (a chunk of
    truncated BPTT after that sequence's end, its state carried unchanged; the whole mask was
    checked for empty sequences before); restored on exit, also on an error."""
    was = getattr(_chunks, "on", False)
    _chunks.on = True
    try:
        yield
    finally:
        _chunks.on = was


def padded_inputs(arr, keep, is_ids, who, tensor=None):
    """The checked inputs ``arr`` with what the mask ``keep`` pads replaced by 0 (id 0, or a zero
    vector): a padded step reads nothing of x(t), so a pad value that is no valid id (e.g. -1 or
    n_in) or no number (NaN padding) changes nothing.  ``tensor``, a float Tensor of these inputs
    that requires grad, is returned as it is (its gradient flows to it); a NaN or inf at a padded
    position of it is a NonFiniteError naming ``who``, t and b."""
    if tensor is not None:
        tensor_dtype(tensor, arr.dtype, who, "xs")
    if keep is None:
        return arr if tensor is None else tensor
    if tensor is not None:
        bad = ~np.isfinite(arr).all(axis=-1) & ~keep
        if bad.any():
            t, b = (int(i) for i in np.argwhere(bad)[0])
            raise NonFiniteError(f"{who}: xs (a Tensor that requires grad) holds a non-finite "
                                 f"value at padded step t={t + 1}, b={b}, which would make every "
                                 "gradient NaN: pad it with zeros, or pass the values as an array")
        return tensor
    return np.where(keep if is_ids else keep[..., None], arr, 0).astype(arr.dtype, copy=False)


def no_holes(keep, who):
    """Refuse a (T, B) mask with a hole (a kept step after a padded one, e.g. [1, 0, 1]) in a
    cell that feeds y(t-1) into step t: the state is carried over the hole, but the y(t-1) the
    step after it reads would be the padded target, not the last kept one.  ShapeError naming
    the sequence and the steps."""
    holes = keep[1:] & ~keep[:-1]          # kept at t+1 after a padded step t
    if holes.any():
        t, b = (int(i) for i in np.argwhere(holes)[0])
        raise ShapeError(f"{who}: mask of sequence b={b} keeps step t={t + 2} after padded step "
                         f"t={t + 1}; this design feeds y(t-1) into step t, so its masks must be "
                         "right padding (kept steps first, as rnn.pad_sequences makes), not holes")


def targets(ys, shape, n_out, who, batched, keep=None, what="ys", axis="t"):
    """Check target ids of the given shape (T,), (T, B), () or (B,); returns int64 ids.

    ``n_out`` None skips the range check (the loss op checks it).
    Where ``keep`` (a bool mask of that shape) is False the id is not checked and set to 0.
    ``axis`` says what the first axis of ``shape`` is: "t" (steps) or "b" (the batch).
    """
    arr = as_array(ys, who, what)
    if arr.dtype.kind not in "iu":
        raise DTypeError(f"{who}: {what} must be integer class ids, got dtype {arr.dtype}")
    if arr.shape != shape:
        if arr.ndim and shape and arr.shape[0] != shape[0]:
            have = f"{shape[0]} steps" if axis == "t" else f"a batch of {shape[0]}"
            raise ShapeError(f"{who}: the inputs have {have} but {what} has "
                             f"{arr.shape[0]} (shape {arr.shape}, need {shape})")
        raise ShapeError(f"{who}: {what} must have shape {shape}, got {arr.shape}")
    arr = as_int64(arr, who, what, batched)
    if n_out is None:
        return arr if keep is None else np.where(keep, arr, 0)
    if arr.ndim == 0:
        if not 0 <= arr < n_out:
            raise BadIndexError(f"{who}: {what} id {int(arr)} is out of range [0, {n_out})")
        return arr
    check_ids(arr, n_out, who, what, batched, keep, axis)
    return arr if keep is None else np.where(keep, arr, 0)


def step_targets(ys, shape, n_out, who, design, keep=None, regression=False, dtype=np.float64):
    """Targets of every step for the design's criterion: integer class ids of ``shape`` ((T,) or
    (T, B)) for cross-entropy, float vectors ``shape + (n_out,)`` for the squared error
    (``n_out`` None: any width K).  A target of the other kind is a clear error naming the
    ``design``, the criterion and the shapes."""
    untracked_target(ys, who, "ys")
    arr = as_array(ys, who, "ys")
    wanted = shape + ("n_out" if n_out is None else n_out,)
    if regression:
        if arr.dtype.kind != "f":
            raise DTypeError(f"{who}: this {design} has criterion='squared_error', which takes "
                             f"float targets ys of shape {wanted}; got {_kind(arr)} of shape "
                             f"{arr.shape} (class ids need criterion='cross_entropy')")
        width = n_out
        if width is None:
            if arr.ndim != len(shape) + 1:
                raise ShapeError(f"{who}: float targets ys must have shape {shape + ('K',)} "
                                 f"(K the width of o), got {arr.shape}")
            width = arr.shape[-1]
        return float_targets(arr, shape + (width,), who, dtype, keep)
    if arr.dtype.kind == "f":
        raise DTypeError(f"{who}: ys are floats (dtype {arr.dtype}, shape {arr.shape}) but this "
                         f"{design}'s criterion is cross_entropy, which takes integer class ids "
                         f"of shape {shape}; for regression make it with "
                         "criterion='squared_error'")
    return targets(arr, shape, n_out, who, len(shape) == 2, keep)


def _kind(arr):
    return "integer ids" if arr.dtype.kind in "iu" else f"dtype {arr.dtype}"


def state(h0, shape, batch, who, dtype, what="h0"):
    """Check an initial state: None (zeros), ``shape`` or ``(B,) + shape``; returns array or Tensor."""
    if h0 is None:
        return np.zeros(shape if batch is None else (batch,) + shape, dtype=dtype)
    arr_shape = h0.shape if isinstance(h0, Tensor) else np.shape(h0)
    ok = (shape,) if batch is None else (shape, (batch,) + shape)
    if arr_shape not in ok:
        raise ShapeError(f"{who}: {what} must have shape {' or '.join(map(str, ok))}, got {arr_shape}")
    if isinstance(h0, Tensor):
        return tensor_dtype(h0, dtype, who, what)
    arr = as_array(h0, who, what)
    if arr.dtype.kind != "f":
        raise DTypeError(f"{who}: {what} must be floats, got dtype {arr.dtype}")
    return in_dtype(arr, dtype, who, what)


def states(h0, parts, batch, who, dtype, what="h0"):
    """Check the initial state of a cell with state ``parts`` (name -> size): ``h0`` is None
    (zeros), one array or Tensor for a one-part state, or a dict of parts (missing ones are
    zeros).  Returns a dict part -> array or Tensor.  ``what`` names the argument in errors."""
    if isinstance(h0, dict):
        unknown = [k for k in h0 if k not in parts]
        if unknown:
            raise ConfigError(f"{who}: {what} has no state part {unknown[0]!r}; the parts are "
                              f"{list(parts)}")
        return {k: state(h0.get(k), (n,), batch, who, dtype, what=f"{what}[{k!r}]")
                for k, n in parts.items()}
    if h0 is not None and len(parts) != 1:
        raise ShapeError(f"{who}: {what} must be a dict of the state parts {list(parts)}, got "
                         f"{type(h0).__name__}")
    return {k: state(h0, (n,), batch, who, dtype, what=what) for k, n in parts.items()}


def batch_of_state(h0, parts, who):
    """The batch size B that an initial state of shape (B, size) gives (None when unbatched)."""
    if isinstance(h0, dict):
        h0 = next((h0[k] for k in parts if h0.get(k) is not None), None)
    if h0 is None:
        return None
    shape = h0.shape if isinstance(h0, Tensor) else np.shape(h0)
    return shape[0] if len(shape) == 2 else None


def previous_output(y0, n_out, batch, who, dtype):
    """The feedback before step 1: zeros by default; ids () or (B,) (a previous target), or
    outputs (n_out,) / (B, n_out) as floats (e.g. a Tensor carried from the previous chunk of
    truncated BPTT), an array or a Tensor.  As h0 of shape (H,) is, one y0 ((), or (n_out,))
    given to a batched run is the same for every sequence: ids are repeated here, a float
    Tensor is broadcast in the unroll (its gradient is the sum over the batch).  A (1, n_out)
    is refused, not broadcast (it is one sequence's output, not one for all)."""
    if y0 is None:
        return np.zeros((n_out,) if batch is None else (batch, n_out), dtype=dtype)
    kind = (y0.dtype if isinstance(y0, Tensor) else as_array(y0, who, "y0").dtype).kind
    if kind == "f":
        ok = ((n_out,),) if batch is None else ((n_out,), (batch, n_out))
        shape = y0.shape if isinstance(y0, Tensor) else np.shape(y0)
        if shape not in ok:
            raise ShapeError(f"{who}: y0 as outputs (floats) must have shape "
                             f"{' or '.join(map(str, ok))} (n_out={n_out}"
                             f"{'' if batch is None else f', B={batch}'}), got {shape}")
        if isinstance(y0, Tensor):
            return tensor_dtype(y0, dtype, who, "y0")
        arr = in_dtype(as_array(y0, who, "y0"), dtype, who, "y0")
        return arr if arr.shape == ok[-1] else np.broadcast_to(arr, ok[-1]).copy()
    data = y0.data if isinstance(y0, Tensor) else y0
    if batch is not None and kind in "iu" and np.ndim(data) == 0:
        data = np.full((batch,), data)       # one previous id for every sequence
    elif isinstance(y0, Tensor) and kind in "iu":
        targets(data, () if batch is None else (batch,), n_out, who, batch is not None,
                what="y0")
        return y0
    return targets(data, () if batch is None else (batch,), n_out, who, batch is not None,
                   what="y0")


def positive_int(value, who, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{who}: {what} must be a positive integer, got {value!r}")
    return int(value)


def sampling(temperature, seed, who):
    """Check a sampling temperature (a number >= 0; 0 is greedy) and seed (an int >= 0 or a
    np.random.Generator); returns (temperature as float, the Generator)."""
    if (isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating))
            or not np.isfinite(temperature) or temperature < 0):
        raise ConfigError(f"{who}: temperature must be a number >= 0 (0 is greedy decoding), "
                          f"got {temperature!r}")
    if isinstance(seed, np.random.Generator):
        return float(temperature), seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"{who}: seed must be an integer >= 0 or a np.random.Generator, "
                          f"got {seed!r}")
    return float(temperature), np.random.default_rng(seed)


def float_targets(ys, shape, who, dtype, keep=None, what="ys"):
    """Check regression targets of the given shape ((T, K) or (T, B, K)); returns ``dtype`` floats.

    Where ``keep`` (a bool (T, B) mask) is False the target is set to 0 (it adds no loss) and
    may be anything (NaN padding); a NaN or inf target at a kept step is a NonFiniteError.
    """
    untracked_target(ys, who, what)
    arr = as_array(ys, who, what)
    if arr.dtype.kind != "f":
        raise DTypeError(f"{who}: {what} must be float target vectors, got dtype {arr.dtype}")
    if arr.shape != shape:
        if arr.ndim and arr.shape[0] != shape[0]:
            raise ShapeError(f"{who}: the inputs have {shape[0]} steps but {what} has "
                             f"{arr.shape[0]} (shape {arr.shape}, need {shape})")
        raise ShapeError(f"{who}: {what} must have shape {shape}, got {arr.shape}")
    bad = ~np.isfinite(arr)
    if keep is not None:      # a padded target is not read: NaN padding is padding
        bad &= keep[..., None]
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise NonFiniteError(f"{who}: {what} has a non-finite value at t={index[0] + 1}"
                             + (f", b={index[1]}" if len(index) == 3 else ""))
    if keep is not None:    # a padded target is not read: anything there is padding
        arr = np.where(keep[..., None], arr, 0)
    return in_dtype(arr, dtype, who, what, steps=True)


def untracked_target(ys, who, what="ys"):
    """Refuse float targets given as a Tensor that requires grad (outside ``no_grad``): the
    designs read the targets' values, so they would get no gradient without a word."""
    if isinstance(ys, Tensor) and ys.requires_grad and is_grad_enabled():
        raise ConfigError(f"{who}: the targets {what} are a Tensor that requires grad, but a "
                          "design's loss takes targets as values: they would get no gradient; "
                          f"pass {what}.detach(), or compute the loss from the outputs o(t) with "
                          "tg.mse_loss for a gradient with respect to the targets")


def unit_interval(value, who, what):
    """A float strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not 0 < value < 1:
        raise ConfigError(f"{who}: {what} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def class_ids(logits, who, what, steps=False):
    """argmax over the last axis of ``logits`` (the outputs ``what``, stacked over time first
    when ``steps``).  A NaN or inf logit raises AnomalyError naming ``who``, the step, the batch
    entry and the class: argmax would give a class id for it without a word (the first NaN's,
    or 0 for a row of NaN)."""
    bad = ~np.isfinite(logits)
    if bad.any():
        index = [int(i) for i in np.argwhere(bad)[0]]
        where = ([f"t={index[0] + 1}"] if steps else []) + (
            [f"b={index[int(steps)]}"] if len(index) > 1 + int(steps) else [])
        at = f" at {', '.join(where)}" if where else ""
        raise AnomalyError(f"{who}: {what}{at} has a non-finite logit {logits[tuple(index)]} "
                           f"(class {index[-1]}), so it has no class (are the inputs or the "
                           "parameters NaN or inf?)")
    return logits.argmax(axis=-1)
