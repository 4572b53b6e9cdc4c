"""The bundled texts by name, and the held-out split a language model is measured on."""

import numpy as np
import pytest

import rnn
import tinygraph as tg


def test_the_default_corpus_is_the_harbour_text_and_lighthouse_stays_available():
    vocab, ids = rnn.datasets.char_corpus()
    assert vocab.decode(ids) == rnn.datasets.load_text("harbour")
    small_vocab, small_ids = rnn.datasets.char_corpus("lighthouse")
    assert small_vocab.decode(small_ids) == rnn.datasets.load_text("lighthouse")
    assert len(ids) > 5 * len(small_ids)


def test_an_unknown_text_name_lists_the_available_ones():
    with pytest.raises(tg.ConfigError, match=r"'poems'.*\['harbour', 'lighthouse'\]"):
        rnn.datasets.char_corpus("poems")


def test_split_holds_out_the_last_fraction_of_the_stream_in_order():
    ids = np.arange(100)
    train, held = rnn.datasets.split(ids, held_out=0.1)
    np.testing.assert_array_equal(train, np.arange(90))
    np.testing.assert_array_equal(held, np.arange(90, 100))


def test_split_is_deterministic_and_covers_the_text_without_overlap():
    _, ids = rnn.datasets.char_corpus()
    first, second = rnn.datasets.split(ids), rnn.datasets.split(ids)
    np.testing.assert_array_equal(np.concatenate(first), ids)
    np.testing.assert_array_equal(first[1], second[1])
    assert len(first[1]) == round(0.1 * len(ids))


@pytest.mark.parametrize("held_out", [0, 1, 1.5, -0.1, True, "0.1"])
def test_split_rejects_a_fraction_outside_zero_and_one(held_out):
    with pytest.raises(tg.ConfigError, match="held_out"):
        rnn.datasets.split(np.arange(100), held_out=held_out)


def test_split_refuses_parts_too_short_for_an_input_and_a_target():
    with pytest.raises(tg.ShapeError, match="5 ids"):
        rnn.datasets.split(np.arange(5), held_out=0.1)


def test_the_year_task_holds_out_sentences_never_trained_on():
    # 560 sentences are possible: a second draw shared 162 of its 256 with the training set
    task = rnn.tasks.YearTask(0)
    trained = set(task.data.sentences)
    assert len(task.test.sentences) == 256
    assert not trained & set(task.test.sentences)
    again = rnn.tasks.YearTask(0)
    assert again.test.sentences == task.test.sentences          # deterministic per seed
    assert rnn.datasets.year_task(50, seed=3).sentences == rnn.datasets.year_task(
        50, seed=3, exclude=()).sentences                       # without exclude: as before


def test_year_task_refuses_to_exclude_every_sentence():
    every = {f"i went to {p} in 2000" for p in ("nepal", "peru", "oslo", "kenya", "chile", "lima",
                                                "rome")}
    task = rnn.datasets.year_task(20, years=[2000], seed=0, exclude=every)
    assert not every & set(task.sentences)
    everything = set(rnn.datasets.year_task(5000, years=[2000], seed=0).sentences)
    with pytest.raises(tg.ConfigError, match="year_task: exclude holds all 56"):
        rnn.datasets.year_task(1, years=[2000], seed=0, exclude=everything)
