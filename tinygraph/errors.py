"""Exception types of tinygraph.

Every error the library raises on purpose is a :class:`TinygraphError` that
also subclasses the built-in exception a numpy or PyTorch user would expect
(``ValueError`` for a shape mismatch, ``TypeError`` for a wrong dtype, ...),
so ``except ValueError`` keeps working while ``except tg.TinygraphError``
catches everything of ours.
"""


class TinygraphError(Exception):
    """Base class of every error raised on purpose by tinygraph, rnn and viz."""


class ShapeError(TinygraphError, ValueError):
    """Shapes that do not fit an op (names the op, the shapes and the scope)."""


class BadIndexError(TinygraphError, IndexError):
    """An index out of range, or of the wrong kind, for an indexing op."""


class DTypeError(TinygraphError, TypeError):
    """A dtype an op or a leaf cannot take (e.g. an integer tensor asked to require grad)."""


class DomainError(TinygraphError, ValueError):
    """Values an op cannot compute in its inputs' dtype: an integer tensor to a negative integer
    power (numpy's ValueError; the result is no integer), named with the op and the shapes."""


class OutOfRangeError(TinygraphError, OverflowError):
    """A value that does not fit a dtype: a Python int beyond an integer tensor's dtype
    (``int8_tensor * 300``: the tensor's dtype is kept, NEP 50, so numpy raises its
    OverflowError), integer values numpy would wrap (``tg.arange``, ``tg.where``), or a
    parameter ``Module.to`` would make infinite; named with the op."""


class AllocationError(TinygraphError, MemoryError):
    """A result too large to allocate: more than this machine's physical memory, or refused by
    the allocator (names the op, the shapes and the size in GiB)."""


class BackwardError(TinygraphError, RuntimeError):
    """``backward`` cannot run: a non-scalar without ``grad=``, or nothing to differentiate."""


class GraphFreedError(BackwardError):
    """A second backward through a graph whose saved buffers were freed."""


class StaleGraphError(BackwardError):
    """Backward through a graph whose inputs were changed in place after it used them."""


class InPlaceError(TinygraphError, RuntimeError):
    """An in-place operator that would make a gradient wrong (outside ``no_grad``)."""


class AnomalyError(TinygraphError, FloatingPointError):
    """A NaN or Inf where a finite number is needed: met under ``tg.detect_anomaly()``, in a
    logit to sample or predict from, in a training loss (``rnn.NonFiniteLossError``), or in the
    data given (:class:`NonFiniteError`)."""


class NonFiniteError(AnomalyError, ShapeError):
    """A NaN or Inf in the data given where it would be used (an input that requires grad at a
    padded step, a float target at a kept step, a reservoir state an echo state network would
    fit to), naming where.  An AnomalyError as every non-finite value is, and still a
    ShapeError (a ``ValueError``), the class these checks raised before."""


class GradcheckError(TinygraphError, AssertionError):
    """Backprop and finite differences disagree (names the worst entry)."""


class CheckpointError(TinygraphError, ValueError):
    """A checkpoint that cannot be loaded: corrupt, or names, shapes or dtypes that do not match."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint file that does not exist."""


class WriteError(TinygraphError, OSError):
    """A file could not be written (missing or read-only folder, full disk, ...); what was
    there before is left as it was."""


class CheckpointWriteError(CheckpointError, WriteError):
    """A checkpoint that cannot be written (missing or read-only folder, full disk)."""


class ConfigError(TinygraphError, ValueError):
    """A bad setting: non-positive learning rate, empty parameter list, ..."""


class UnsupportedOptionError(ConfigError, TypeError):
    """An option (keyword argument) that is not supported, such as PyTorch's ``nesterov=`` given
    to ``tg.optim.SGD``: a ConfigError that is also the TypeError Python raises for an
    unexpected keyword argument."""
