"""Built-in data, nothing downloaded: a bundled text, the chapter's year task, a copy task.

- :func:`load_text` / :class:`Vocab` / :func:`char_corpus`: short stories written for
  this project as character ids for a language model: ``harbour`` (25 KB, the default)
  and ``lighthouse`` (3.6 KB, small enough to memorise in seconds); :func:`split`
  holds out the end of a stream for measuring a held-out loss.
- :func:`year_task`: sentences in which a year stands at different positions
  ("i went to nepal in 2009" / "in 2009 , i went to nepal"), the chapter's example of
  why parameters are shared across time: one set of weights must read the year
  wherever it stands.  Labels are the year's class.
- :func:`copy_task`: a long-memory task: remember a few symbols across a delay and
  write them back after a "go" marker.
- :func:`lookahead_task`: name the symbol that comes next, a task that needs the future
  (section 10.3's bidirectional RNN).
- :func:`reverse_task`: read a sequence, write it reversed and an end symbol: an output of
  another length than the input (section 10.4's encoder-decoder).
- :func:`stream_batches` and :func:`pad_sequences` lay sequences out as (T, B) arrays.
"""

import os

import numpy as np

from tinygraph import BadIndexError, ConfigError, DTypeError, ShapeError

from . import checks

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def load_text(name="harbour"):
    """The bundled text ``rnn/data/<name>.txt`` as a string."""
    path = os.path.join(DATA_DIR, f"{name}.txt")
    if not os.path.isfile(path):
        available = sorted(f[:-4] for f in os.listdir(DATA_DIR) if f.endswith(".txt"))
        raise ConfigError(f"load_text: no bundled text '{name}'; available: {available}")
    with open(path, encoding="utf-8") as f:
        return f.read()


class Vocab:
    """Characters (or any hashable tokens) <-> integer ids, in sorted order.

    Parameters
    ----------
    tokens : iterable of the tokens that may appear (e.g. a text: its characters)
    """

    def __init__(self, tokens):
        try:
            self.tokens = sorted(set(tokens))
        except TypeError as e:      # unhashable, or tokens of kinds that have no order (1 and "a")
            raise ConfigError(f"Vocab: tokens must be hashable and of one sortable kind (e.g. "
                              f"characters): {e}") from None
        self.index = {tok: i for i, tok in enumerate(self.tokens)}

    def __len__(self):
        return len(self.tokens)

    def encode(self, seq):
        """Tokens -> int64 ids (N,); an unknown token raises BadIndexError naming it."""
        try:
            return np.array([self.index[tok] for tok in seq], dtype=np.int64)
        except KeyError as e:
            raise BadIndexError(f"Vocab.encode: token {e.args[0]!r} is not in the vocabulary "
                                f"of {len(self)} tokens") from None

    def decode(self, ids):
        """ids (N,) -> a string (for characters) made by joining the tokens.

        An id outside [0, len(vocab)) raises BadIndexError (never a negative index's
        silent wrap-around to the end of the vocabulary).  A batch (T, B), such as ``generate``
        returns for a batch of prompts, is a ShapeError: flattened, its sequences would be
        interleaved token by token into one string.
        """
        ids = checks.as_array(ids, "Vocab.decode", "ids")
        if ids.ndim > 1:
            raise ShapeError(f"Vocab.decode: ids must be one sequence (N,), got shape {ids.shape}; "
                             "decode each sequence of a batch (T, B) alone, e.g. "
                             "[vocab.decode(ids[:, b]) for b in range(ids.shape[1])]")
        ids = ids.reshape(-1)
        if ids.size and ids.dtype.kind not in "iu":
            raise DTypeError(f"Vocab.decode: ids must be integers, got dtype {ids.dtype}")
        bad = np.flatnonzero((ids < 0) | (ids >= len(self)))
        if bad.size:
            raise BadIndexError(f"Vocab.decode: id {ids[bad[0]]} at position {bad[0]} is out of "
                                f"range [0, {len(self)})")
        return "".join(str(self.tokens[i]) for i in ids.tolist())


def char_corpus(name="harbour"):
    """(vocab, ids): the bundled text ``name`` ("harbour" or "lighthouse") as character ids (N,)."""
    text = load_text(name)
    vocab = Vocab(text)
    return vocab, vocab.encode(text)


def split(ids, held_out=0.1):
    """Split a stream into a training part and a held-out part: the last ``held_out`` of it.

    Deterministic (no shuffling: the held-out text is one contiguous passage the model
    never trains on), so a held-out loss is comparable from run to run.

    Parameters
    ----------
    ids : (N,) ids, e.g. from :func:`char_corpus`
    held_out : float in (0, 1), the fraction held out (rounded to whole ids)

    Returns
    -------
    train, held : (N - M,) and (M,) with M = round(held_out * N); each at least 2 ids long,
        so that both have an input and a next-id target.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ShapeError(f"split: ids must be one stream (N,), got shape {ids.shape}")
    if isinstance(held_out, bool) or not isinstance(held_out, (int, float, np.floating)) or not 0 < held_out < 1:
        raise ConfigError(f"split: held_out must be a fraction between 0 and 1, got {held_out!r}")
    n_held = int(round(held_out * len(ids)))
    if min(n_held, len(ids) - n_held) < 2:
        raise ShapeError(f"split: {len(ids)} ids cannot give two parts of at least 2 ids "
                         f"with held_out={held_out}")
    return ids[:len(ids) - n_held], ids[len(ids) - n_held:]


def stream_batches(ids, batch_size):
    """Cut a long id stream into ``batch_size`` parallel streams for truncated BPTT.

    Stream b is the b-th contiguous slice of the text, so the state carried from one
    chunk to the next continues the same text.

    Returns
    -------
    xs, ys : int64 (N, B); ys is xs shifted by one step (the next character).
    """
    batch_size = checks.positive_int(batch_size, "stream_batches", "batch_size")
    ids = checks.as_array(ids, "stream_batches", "ids")
    if ids.ndim != 1:
        raise ShapeError(f"stream_batches: ids must be one stream (N,), got shape {ids.shape}")
    if ids.dtype.kind not in "iu":    # float "ids" (T, B) would read as T vectors of width B
        raise DTypeError(f"stream_batches: ids must be integer ids, got dtype {ids.dtype}")
    ids = checks.as_int64(ids, "stream_batches", "ids", False)
    n = (len(ids) - 1) // batch_size
    if n < 1:
        raise ShapeError(f"stream_batches: {len(ids)} ids are too few for {batch_size} streams")
    xs = ids[:n * batch_size].reshape(batch_size, n).T
    ys = ids[1:n * batch_size + 1].reshape(batch_size, n).T
    return np.ascontiguousarray(xs), np.ascontiguousarray(ys)


def pad_sequences(seqs, pad=0):
    """Right-pad sequences of different lengths into a batch.

    Parameters
    ----------
    seqs : list of B sequences of ids (length T_b >= 1) or of float vectors (T_b, n_in); a
        sequence of float values among sequences of ids (or the other way) is a DTypeError
        naming it (padded together they would be floats, which no model reads as ids)
    pad : the value written into padded positions

    Returns
    -------
    xs : (T, B) or (T, B, n_in), T = max T_b
    mask : (T, B) float, 1 at real steps, 0 at padding
    """
    who = "pad_sequences"
    arrays = [checks.as_array(s, who, f"sequence {b}") for b, s in enumerate(seqs)]
    if not arrays or any(a.ndim == 0 or len(a) == 0 for a in arrays):
        raise ShapeError(f"{who}: need at least one sequence, each at least one step long "
                         "(ids (T_b,) or vectors (T_b, n_in))")
    for b, a in enumerate(arrays):
        if a.shape[1:] != arrays[0].shape[1:]:
            raise ShapeError(f"{who}: sequence {b} has steps of shape {a.shape[1:]}, sequence 0 "
                             f"has {arrays[0].shape[1:]}")
    kinds = ["ids" if a.dtype.kind in "biu" else "floats" for a in arrays]
    if arrays[0].ndim == 1 and len(set(kinds)) > 1:
        b = kinds.index(next(k for k in kinds if k != kinds[0]))
        raise DTypeError(f"{who}: sequence {b} holds {kinds[b]} (dtype {arrays[b].dtype}) but "
                         f"sequence 0 holds {kinds[0]} (dtype {arrays[0].dtype}); a batch of "
                         "integer ids padded with floats would be floats, which no model reads "
                         "as ids: give every sequence as integer ids (or every one as float "
                         "vectors (T_b, n_in))")
    dtype = np.result_type(*arrays)           # int and float vectors mixed: floats, never truncated
    if not _fits(pad, dtype):
        raise ConfigError(f"{who}: pad={pad!r} cannot be stored in the sequences' dtype {dtype}")
    steps = max(len(a) for a in arrays)
    xs = np.full((steps, len(arrays)) + arrays[0].shape[1:], pad, dtype=dtype)
    mask = np.zeros((steps, len(arrays)))
    for b, a in enumerate(arrays):
        xs[:len(a), b] = a
        mask[:len(a), b] = 1
    return xs, mask


def _fits(value, dtype):
    """Whether the number ``value`` can be stored in ``dtype`` as it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(value).is_integer() and info.min <= value <= info.max
    return dtype.kind == "f" or value in (0, 1)


_YEAR_TEMPLATES = (
    "i went to {place} in {year}",
    "in {year} , i went to {place}",
    "in {year} we moved to {place}",
    "we moved to {place} in {year} and stayed",
    "{year} was the year i saw {place}",
    "my sister was born in {place} in {year}",
    "the summer of {year} was hot in {place}",
    "she left {place} in {year}",
)
_PLACES = ("nepal", "peru", "oslo", "kenya", "chile", "lima", "rome")


class YearTask:
    """Sentences with a year somewhere in them; the label is which year.

    Attributes
    ----------
    xs : int64 (T, B) word ids, right-padded;  mask : (T, B) 1 at real words
    labels : int64 (B,) index of the year in ``years``
    vocab : Vocab of words and years;  years : list of the year strings
    sentences : list of B strings
    """

    def __init__(self, xs, mask, labels, vocab, years, sentences):
        self.xs, self.mask, self.labels = xs, mask, labels
        self.vocab, self.years, self.sentences = vocab, years, sentences


def year_task(n, years=range(2000, 2010), seed=0, exclude=()):
    """``n`` sentences of the year task, from templates that put the year at different positions.

    There are only len(templates) x len(places) x len(years) different sentences (560 by
    default), so two draws share most of them: a held-out set must pass the training
    sentences as ``exclude`` to hold only sentences never trained on.

    Parameters
    ----------
    n : int, number of sentences
    years : the possible years (the classes)
    seed : int
    exclude : sentences (strings) never drawn: a sentence drawn from among them is drawn again
    """
    n = checks.positive_int(n, "year_task", "n")
    years = [str(y) for y in years]
    words = {w for tpl in _YEAR_TEMPLATES for w in tpl.split() if "{" not in w}
    vocab = Vocab(words | set(_PLACES) | set(years))
    exclude = set(exclude)
    possible = {tpl.format(place=p, year=y) for tpl in _YEAR_TEMPLATES for p in _PLACES
                for y in years}
    if not possible - exclude:
        raise ConfigError(f"year_task: exclude holds all {len(possible)} possible sentences; "
                          "none is left to draw")
    rng = np.random.default_rng(seed)
    sentences, seqs, labels = [], [], []
    while len(sentences) < n:
        label = int(rng.integers(len(years)))
        text = _YEAR_TEMPLATES[rng.integers(len(_YEAR_TEMPLATES))].format(
            place=_PLACES[rng.integers(len(_PLACES))], year=years[label])
        if text in exclude:
            continue
        sentences.append(text)
        seqs.append(vocab.encode(text.split()))
        labels.append(label)
    xs, mask = pad_sequences(seqs)
    return YearTask(xs, mask, np.array(labels, dtype=np.int64), vocab, years, sentences)


def copy_task(batch, length=5, delay=10, n_symbols=8, seed=0):
    """The copy problem: read ``length`` symbols, wait ``delay`` steps, write them back.

    Ids 0..n_symbols-1 are symbols, ``n_symbols`` is the blank and ``n_symbols + 1`` the
    "go" marker (vocabulary n_symbols + 2).  Inputs: the symbols, ``delay - 1`` blanks,
    "go", then ``length`` blanks.  Targets: blanks, then the symbols during the last
    ``length`` steps.  A model that forgets scores log(n_symbols) per recalled symbol.

    Returns
    -------
    xs, ys : int64 (T, batch) with T = 2 * length + delay
    """
    batch, length, delay, n_symbols = (checks.positive_int(v, "copy_task", name) for v, name in (
        (batch, "batch"), (length, "length"), (delay, "delay"), (n_symbols, "n_symbols")))
    rng = np.random.default_rng(seed)
    blank, go = n_symbols, n_symbols + 1
    steps = 2 * length + delay
    symbols = rng.integers(n_symbols, size=(length, batch))
    xs = np.full((steps, batch), blank, dtype=np.int64)
    ys = np.full((steps, batch), blank, dtype=np.int64)
    xs[:length] = symbols
    xs[length + delay - 1] = go
    ys[length + delay:] = symbols
    return xs, ys


def _symbols(batch, length, n_symbols, seed, who):
    batch, length, n_symbols = (checks.positive_int(v, who, name) for v, name in (
        (batch, "batch"), (length, "length"), (n_symbols, "n_symbols")))
    return np.random.default_rng(seed).integers(n_symbols, size=(length, batch))


def lookahead_task(batch, length=10, shift=1, n_symbols=4, seed=0):
    """Name the symbol ``shift`` steps ahead: y(t) = x(t + shift).

    A causal model has not read x(t + shift) when it must name it, so it can only guess
    (1 / n_symbols); a bidirectional one reads it.  The last ``shift`` steps have nothing
    ahead: their target is the end id ``n_symbols`` (targets have n_symbols + 1 classes).

    Returns
    -------
    xs, ys : int64 (length, batch)
    """
    xs = _symbols(batch, length, n_symbols, seed, "lookahead_task")
    if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)) or not 1 <= shift < length:
        raise ConfigError(f"lookahead_task: shift must be in [1, length), got {shift}")
    ys = np.full((length, batch), n_symbols, dtype=np.int64)
    ys[:length - shift] = xs[shift:]
    return xs, ys


def reverse_task(batch, length=5, n_symbols=6, seed=0):
    """Read ``length`` symbols, write them in reverse order and then the end id ``n_symbols``.

    Returns
    -------
    xs : int64 (length, batch);  ys : int64 (length + 1, batch), n_symbols + 1 classes
    """
    xs = _symbols(batch, length, n_symbols, seed, "reverse_task")
    end = np.full((1, batch), n_symbols, dtype=np.int64)
    return xs, np.concatenate([xs[::-1], end])
