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


def test_vocab_refuses_to_decode_a_batch_rather_than_interleave_its_sequences():
    # generate on a batch of prompts returns (steps, B); decode flattened it row by row,
    # 'aAbB' for the two sequences 'ab' and 'AB', without a word
    vocab = rnn.Vocab("abAB")
    batch = np.stack([vocab.encode("ab"), vocab.encode("AB")], axis=1)     # (2, 2)
    with pytest.raises(tg.ShapeError, match=r"Vocab.decode: ids must be one sequence \(N,\), "
                                            r"got shape \(2, 2\)"):
        vocab.decode(batch)
    assert [vocab.decode(batch[:, b]) for b in range(2)] == ["ab", "AB"]


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


def test_pad_sequences_never_truncates_floats_and_refuses_them_mixed_with_ids():
    xs, mask = rnn.pad_sequences([[[0, 1]], [[0.5, 0.25], [1, 0]]])  # int and float vectors
    assert xs.dtype == np.float64 and xs[:, 1].tolist() == [[0.5, 0.25], [1.0, 0.0]]
    assert mask.tolist() == [[1, 1], [0, 1]]
    with pytest.raises(tg.DTypeError, match="sequence 1 holds floats"):
        rnn.pad_sequences([[0, 1], [0.5]])        # ids and a float value: no batch of ids


def test_pad_sequences_keeps_a_small_integer_dtype_with_a_pad_it_can_hold():
    xs, _ = rnn.pad_sequences([np.array([1, 2], np.uint8), np.array([3], np.uint8)], pad=255)
    assert xs.dtype == np.uint8 and xs[:, 1].tolist() == [3, 255]


@pytest.mark.parametrize("make, message", [
    (lambda: rnn.datasets.year_task(2.5), "year_task: n must be a positive integer, got 2.5"),
    (lambda: rnn.datasets.copy_task(2.5), "copy_task: batch must be a positive integer"),
    (lambda: rnn.datasets.copy_task(2, length="3"), "copy_task: length must be a positive integer"),
    (lambda: rnn.datasets.lookahead_task(2, length=5, shift=1.5), r"shift must be in \[1, length\)"),
    (lambda: rnn.datasets.lookahead_task(2, length="5"), "lookahead_task: length must be"),
    (lambda: rnn.problems.delayed_product(10, delay=0), "delayed_product: delay must be"),
    (lambda: rnn.problems.noisy_sine(0), "noisy_sine: batch must be a positive integer"),
    (lambda: rnn.problems.associative_recall(2.0), "associative_recall: batch must be"),
])
def test_task_generators_refuse_counts_that_are_not_positive_integers(make, message):
    # year_task(2.5) drew 3 sentences, noisy_sine(0) an empty batch; the others ended in bare
    # TypeErrors or a broadcasting ValueError from numpy
    with pytest.raises(tg.ConfigError, match=message):
        make()


def test_delayed_product_with_a_delay_past_the_end_has_only_zero_targets():
    xs, ys = rnn.problems.delayed_product(10, delay=20)
    assert xs.shape == ys.shape == (10, 1) and not ys.any()
    xs, ys = rnn.problems.delayed_product(50, delay=5, seed=3)
    np.testing.assert_array_equal(ys[5:, 0], xs[5:, 0] * xs[:-5, 0])
    assert not ys[:5].any()


@pytest.mark.parametrize("tokens", [[1, "a"], [[1], [2]], 5])
def test_vocab_refuses_tokens_it_cannot_sort_or_hash(tokens):
    # a bare TypeError ('<' not supported between 'str' and 'int', unhashable type) before
    with pytest.raises(tg.ConfigError, match="Vocab: tokens must be hashable and of one sortable"):
        rnn.datasets.Vocab(tokens)


def test_stream_batches_gives_int64_streams_whatever_the_integer_dtype_of_the_ids():
    xs, ys = rnn.datasets.stream_batches(np.arange(11, dtype=np.uint8), 2)
    assert xs.dtype == ys.dtype == np.int64
    np.testing.assert_array_equal(xs[:, 1], np.arange(5, 10))
    np.testing.assert_array_equal(ys[:, 1], np.arange(6, 11))
