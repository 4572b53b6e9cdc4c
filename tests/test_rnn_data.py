"""Built-in data: the bundled text and its vocabulary, the year task, the copy task."""

import numpy as np
import pytest

import rnn
import tinygraph as tg


def test_vocab_round_trips_the_bundled_text():
    text = rnn.datasets.load_text()
    vocab, ids = rnn.datasets.char_corpus()
    assert len(text) > 2000
    assert vocab.decode(ids) == text
    assert len(vocab) == len(set(text)) and ids.max() == len(vocab) - 1


def test_vocab_rejects_an_unknown_token():
    with pytest.raises(tg.BadIndexError, match="'#'"):
        rnn.Vocab("abc").encode("a#")


def test_stream_batches_targets_are_the_next_character():
    ids = np.arange(23)
    xs, ys = rnn.datasets.stream_batches(ids, 4)
    assert xs.shape == (5, 4)
    np.testing.assert_array_equal(ys, xs + 1)
    np.testing.assert_array_equal(xs[:, 1], np.arange(5, 10))   # stream 1 continues its own text


def test_year_task_puts_the_year_at_different_positions():
    task = rnn.datasets.year_task(200, seed=0)
    positions = set()
    for sentence, label in zip(task.sentences, task.labels):
        words = sentence.split()
        assert task.years[label] in words
        positions.add(words.index(task.years[label]))
    assert len(positions) >= 4
    lengths = task.mask.sum(axis=0).astype(int)
    for b, sentence in enumerate(task.sentences[:20]):
        assert task.vocab.decode(task.xs[:lengths[b], b]) == sentence.replace(" ", "")


def test_copy_task_targets_repeat_the_inputs_after_the_delay():
    xs, ys = rnn.datasets.copy_task(batch=3, length=4, delay=6, n_symbols=5, seed=0)
    assert xs.shape == ys.shape == (14, 3)
    np.testing.assert_array_equal(ys[10:], xs[:4])
    assert (xs[9] == 6).all() and (ys[:10] == 5).all()     # the go marker; blanks before recall
