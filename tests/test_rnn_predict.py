"""``predict`` of every design with an output at every step, and what it does with outputs that
are not numbers: a NaN logit has no class, so predict says where it is instead of an id."""

import numpy as np
import pytest

import rnn
import tinygraph as tg


def _outputs(model, xs, **kwargs):
    with tg.no_grad():
        return np.stack([o.data for o in model(xs, **kwargs)[0]])


@pytest.mark.parametrize("make", [lambda: rnn.LeakyRNN(4, 5, 3, seed=1),
                                  lambda: rnn.LeakyRNN(4, 5, 3, alpha="learned", skip=2, seed=1)])
def test_leaky_rnn_predicts_the_argmax_of_every_step_as_the_other_designs(make):
    # LeakyRNN had no predict (AttributeError) where ElmanRNN, LSTM, GRU, DeepRNN... have one
    model = make()
    rng = np.random.default_rng(0)
    xs, mask = rng.integers(0, 4, (6, 3)), np.array([[1] * 3] * 4 + [[1, 0, 1]] * 2)
    h0 = rng.normal(size=(3, 5))
    ids = model.predict(xs, h0=h0, mask=mask)
    assert ids.shape == (6, 3) and ids.dtype.kind == "i"
    np.testing.assert_array_equal(ids, _outputs(model, xs, h0=h0, mask=mask).argmax(-1))
    np.testing.assert_array_equal(model.predict(xs[:, 0]), _outputs(model, xs[:, 0]).argmax(-1))


def test_regression_designs_predict_their_outputs():
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(7, 2, 4))
    leaky = rnn.LeakyRNN(4, 5, 2, criterion="squared_error", seed=0)
    esn = rnn.EchoStateNetwork(4, 6, 2, seed=0)
    for model in (leaky, esn):
        out = model.predict(xs)
        assert out.shape == (7, 2, 2)
        np.testing.assert_array_equal(out, _outputs(model, xs))


def _poisoned(shape, where):
    xs = np.random.default_rng(2).normal(size=shape)
    xs[where] = np.nan
    return xs


@pytest.mark.parametrize("model, words", [
    (rnn.ElmanRNN(3, 4, 3), ["elman.predict", "o(t) at t=3, b=1", "nan"]),
    (rnn.LeakyRNN(3, 4, 3), ["leaky.predict", "o(t) at t=3, b=1", "nan"]),
    (rnn.LSTM(3, 4, 3), ["lstm.predict", "o(t) at t=3, b=1", "nan"]),
    (rnn.BidirectionalRNN(3, 4, 3), ["bidirectional.predict", "t=1, b=1", "nan"]),
    (rnn.SequenceToOne(3, 4, 3), ["seq2one.predict", "o(τ) at b=1", "nan"]),
])
def test_predict_refuses_outputs_that_are_not_numbers_naming_the_step(model, words):
    # argmax of a row with a NaN gave the NaN's class (0 for a row of NaN) without a word:
    # ElmanRNN on inputs with one NaN at t=3, b=1 predicted class 0 from t=3 on for b=1
    with pytest.raises(tg.AnomalyError) as caught:
        model.predict(_poisoned((5, 2, 3), (2, 1, 0)))
    for word in words:
        assert word in str(caught.value)


def test_a_recursive_net_refuses_a_root_output_that_is_not_a_number():
    model = rnn.RecursiveNet(3, 4, 2)
    assert model.predict((np.array([0.0, 1, 0]), np.array([1.0, 0, 0]))) in (0, 1)
    with pytest.raises(tg.AnomalyError, match=r"recursive\.predict: the root's o .*nan"):
        model.predict((np.array([np.nan, 0, 0]), np.array([1.0, 0, 0])))


def test_regression_outputs_that_are_not_numbers_are_returned_as_they_are():
    # the outputs themselves are the prediction: a NaN is there to see, nothing is hidden
    model = rnn.LeakyRNN(3, 4, 2, criterion="squared_error")
    out = model.predict(_poisoned((5, 2, 3), (2, 1, 0)))
    assert np.isnan(out[2:, 1]).all() and np.isfinite(out[:, 0]).all()
