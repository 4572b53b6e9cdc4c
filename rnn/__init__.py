"""rnn: the recurrent networks of *Deep Learning* chapter 10, unrolled into the tinygraph DAG.

A recurrence is written once, as the book's step function; the shared
:func:`unroll` runs it over time inside ``tg.scope(model.name)`` /
``tg.scope(f"t={t}")`` and back-propagation through time is ``loss.backward()``.
"""

from .core import Recurrence, RecurrentModel, Unrolled, unroll
from .models import ElmanRNN, Sampler

__all__ = ["ElmanRNN", "Recurrence", "RecurrentModel", "Sampler", "Unrolled", "unroll"]
