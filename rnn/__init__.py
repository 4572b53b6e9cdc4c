"""rnn: the recurrent networks of *Deep Learning* chapter 10, unrolled into the tinygraph DAG.

A recurrence is written once, as the book's step function; the shared
:func:`unroll` runs it over time inside ``tg.scope(model.name)`` /
``tg.scope(f"t={t}")`` and back-propagation through time is ``loss.backward()``.
"""

from . import datasets, tasks, train
from .core import Cell, Chain, Recurrence, RecurrentModel, Unrolled, unroll
from .datasets import Vocab, pad_sequences
from .models import (GRU, LSTM, BidirectionalRNN, ConditionalRNN, ElmanRNN, EncoderDecoder,
                     JordanRNN, Sampler, SequenceToOne, VectorToSequence)
from .train import (Trainer, load_training, save_training, stream_loss, train_char_model,
                    truncated_bptt)

__all__ = ["BidirectionalRNN", "Cell", "Chain", "ConditionalRNN", "ElmanRNN", "EncoderDecoder",
           "GRU", "JordanRNN", "LSTM", "Recurrence", "RecurrentModel", "Sampler", "SequenceToOne",
           "Trainer", "Unrolled", "VectorToSequence", "Vocab", "datasets", "load_training",
           "pad_sequences", "save_training", "stream_loss", "tasks", "train", "train_char_model",
           "truncated_bptt", "unroll"]
from .deep import DeepRNN
from .esn import EchoStateNetwork
from .leaky import LeakyRNN
from .memory import MemoryNetwork
from .recursive import RecursiveNet, balanced_tree
from . import problems
