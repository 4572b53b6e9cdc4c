"""rnn: the recurrent networks of *Deep Learning* chapter 10, unrolled into the tinygraph DAG.

A recurrence is written once, as the book's step function; the shared
:func:`unroll` runs it over time inside ``tg.scope(model.name)`` /
``tg.scope(f"t={t}")`` and back-propagation through time is ``loss.backward()``.
"""

from . import datasets, diagnostics, problems, tasks, train
from .core import Cell, Chain, Recurrence, RecurrentModel, Unrolled, unroll
from .datasets import Vocab, pad_sequences
from .deep import DeepRNN
from .diagnostics import (LagDecay, connectivity, gradient_ratio, jacobians, lag_decay,
                          saturation, spectra)
from .esn import EchoStateNetwork
from .leaky import LeakyRNN
from .memory import MemoryNetwork
from .models import (GRU, LSTM, BidirectionalRNN, ConditionalRNN, ElmanRNN, EncoderDecoder,
                     JordanRNN, Sampler, SequenceToOne, VectorToSequence)
from .pytorch import from_torch
from .recursive import RecursiveNet, balanced_tree
from .train import (Carried, NonFiniteLossError, Trainer, load_training, save_training, stream_loss,
                    train_char_model, truncated_bptt)

__all__ = ["BidirectionalRNN", "Carried", "Cell", "Chain", "ConditionalRNN", "DeepRNN", "EchoStateNetwork",
           "ElmanRNN", "EncoderDecoder", "GRU", "JordanRNN", "LSTM", "LagDecay", "LeakyRNN",
           "MemoryNetwork", "NonFiniteLossError", "Recurrence", "RecurrentModel", "RecursiveNet",
           "Sampler", "SequenceToOne", "Trainer", "Unrolled", "VectorToSequence", "Vocab",
           "balanced_tree", "connectivity", "datasets", "diagnostics", "from_torch",
           "gradient_ratio", "jacobians", "lag_decay", "load_training", "pad_sequences",
           "problems", "saturation", "save_training", "spectra", "stream_loss", "tasks", "train",
           "train_char_model", "truncated_bptt", "unroll"]
