"""Bad input to a recurrent design: one clear tinygraph error, raised before any graph is built."""

import importlib

import numpy as np
import pytest

import rnn
import tinygraph as tg

tg_tensor = importlib.import_module("tinygraph.tensor")   # the module (tg.tensor is the function)


@pytest.fixture
def model():
    return rnn.ElmanRNN(n_in=5, n_hidden=4, n_out=3)


@pytest.mark.parametrize("call, error, words", [
    (lambda m: m.loss([0, 7, 1], [0, 1, 2]), tg.BadIndexError, ["xs id 7", "t=2", "[0, 5)"]),
    (lambda m: m.loss([[0, 1], [2, -1]], [[0, 1], [2, 0]]), tg.BadIndexError,
     ["xs id -1", "t=2, b=1", "[0, 5)"]),
    (lambda m: m.loss([0, 1, 2], [0, 3, 1]), tg.BadIndexError, ["ys id 3", "t=2", "[0, 3)"]),
    (lambda m: m.loss(np.zeros((3, 4)), [0, 1, 2]), tg.ShapeError, ["width n_in=5", "(3, 4)"]),
    (lambda m: m.loss([0, 1, 2], [0, 1]), tg.ShapeError, ["3 steps", "ys has 2"]),
    (lambda m: m.loss([], []), tg.ShapeError, ["empty sequence"]),
    (lambda m: m.loss([[0, 1], [2]], [[0, 1], [2]]), tg.ShapeError, ["ragged", "mask="]),
    (lambda m: m.loss([0, 1], [0, 1], h0=np.zeros(3)), tg.ShapeError, ["h0", "(4,)", "(3,)"]),
    (lambda m: m.loss([[0], [1]], [[0], [1]], h0=np.zeros((2, 4))), tg.ShapeError, ["h0", "(1, 4)"]),
    (lambda m: m.loss([0.0, 1.0], [0, 1]), tg.DTypeError, ["float", "ids"]),
    (lambda m: m.loss([0, 1], [0.0, 1.0]), tg.DTypeError, ["ys", "integer"]),
    (lambda m: m.loss([[0], [1]], [[0], [1]], mask=[[1, 1], [1, 0]]), tg.ShapeError, ["mask", "(2, 1)"]),
    (lambda m: m.loss([[0, 1], [1, 1]], [[0, 1], [1, 0]], mask=[[1, 0], [1, 0]]), tg.ShapeError,
     ["b=1", "empty"]),
    (lambda m: m.loss([0, 1], [0, 1], mask=[[1], [1]]), tg.ShapeError, ["mask", "batch"]),
])
def test_bad_input_raises_a_clear_error_naming_what_is_wrong(model, call, error, words):
    with pytest.raises(error) as info:
        call(model)
    message = str(info.value)
    assert message.startswith("elman:")
    for word in words:
        assert word in message


def test_errors_are_raised_before_any_node_is_made(model, monkeypatch):
    made = []
    init, init_leaf, make_node = tg.Tensor.__init__, tg_tensor._init_leaf, tg_tensor.make_node
    monkeypatch.setattr(tg.Tensor, "__init__", lambda self, *a, **k: made.append(1) or init(self, *a, **k))
    monkeypatch.setattr(tg_tensor, "_init_leaf", lambda *a: made.append(1) or init_leaf(*a))
    monkeypatch.setattr(tg_tensor, "make_node", lambda *a: made.append(1) or make_node(*a))
    with pytest.raises(tg.BadIndexError):
        model.loss(np.arange(6) % 5, np.array([0, 1, 2, 0, 1, 9]))   # bad target at the last step
    assert made == []
    model.loss(np.arange(6) % 5, np.array([0, 1, 2, 0, 1, 2]))       # the counter does count
    assert made


def test_a_failed_call_leaves_the_model_unchanged(model):
    state = model.state_dict()
    with pytest.raises(tg.TinygraphError):
        rnn.Trainer(model, lr=0.1).step([0, 1, 2], [0, 1, 5])
    after = model.state_dict()
    assert all(np.array_equal(state[k], after[k]) for k in state)


@pytest.mark.parametrize("call, error, words", [
    (lambda: rnn.JordanRNN(3, 4, 2).loss([0, 1], None), tg.ConfigError, ["teacher forcing", "ys"]),
    (lambda: rnn.SequenceToOne(3, 4, 2).loss([[0], [1]], [0, 1]), tg.ShapeError, ["y", "(1,)"]),
    (lambda: rnn.VectorToSequence(3, 4, 2).loss(np.ones(2), [0, 1]), tg.ShapeError, ["x", "(3,)"]),
    (lambda: rnn.VectorToSequence(3, 4, 2, h0_from_x=True).loss(np.ones(3), [0, 1], h0=np.zeros(4)),
     tg.ConfigError, ["h0_from_x", "h0"]),
    (lambda: rnn.ConditionalRNN(3, 4, 2).loss([0, 3], [0, 1]), tg.BadIndexError, ["xs id 3"]),
    (lambda: rnn.ElmanRNN(3, 4, 3).generate([0], 5, temperature=-1), tg.ConfigError, ["temperature"]),
    (lambda: rnn.ElmanRNN(3, 4, 3).trace(steps=0), tg.ConfigError, ["steps"]),
    (lambda: rnn.ElmanRNN(0, 4, 3), tg.ConfigError, ["n_in"]),
])
def test_every_design_checks_its_own_inputs(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("call", [
    lambda: rnn.SequenceToOne(3, 4, 2).loss(np.zeros((5, 2), dtype=np.int64), [0, 1, 1]),
    lambda: rnn.RecursiveNet(3, 4, 2).loss(([0, 1], [1, 2]), [0, 1, 1]),
], ids=["SequenceToOne", "RecursiveNet"])
def test_one_label_per_sequence_of_the_wrong_count_is_named_against_the_batch(call):
    # 5 steps of 2 sequences (a batch of 2 trees) and 3 labels: the message said 'the inputs
    # have 2 steps but y has 3', the batch called steps
    with pytest.raises(tg.ShapeError, match=r"the inputs have a batch of 2 but y has 3 "
                                            r"\(shape \(3,\), need \(2,\)\)"):
        call()


@pytest.mark.parametrize("model, x", [(rnn.VectorToSequence(3, 4, 2), np.ones(3)),
                                      (rnn.EncoderDecoder(3, 4, 2), np.array([0, 1, 2]))],
                         ids=["VectorToSequence", "EncoderDecoder"])
def test_steps_that_disagree_with_the_targets_are_refused_not_ignored(model, x):
    # steps=5 with 3 targets ran 3 steps without a word (the targets' length won); the
    # explorer passes its steps= on to run beside ys
    ys = np.array([1, 0, 1])
    with pytest.raises(tg.ConfigError, match=rf"{model.name}: steps=5 .*3 targets"):
        model.run(x, ys, steps=5)
    assert len(model.run(x, ys, steps=3).outputs) == 3      # the same number: taken
    assert len(model.run(x, ys).outputs) == 3


def test_a_recurrence_with_input_refuses_steps_that_disagree_with_xs():
    # steps=6 beside 4 steps of xs ran 4 without a word
    W, U = tg.Parameter(np.eye(3) * 0.5, name="W"), tg.Parameter(np.ones((3, 2)), name="U")
    cell = rnn.Recurrence(lambda h, x: (h @ W.T + x @ U.T).tanh(), [W, U], 3, n_in=2)
    xs = np.ones((4, 2))
    with pytest.raises(tg.ConfigError, match=r"system: steps=6 .*4 steps of xs"):
        cell.run(xs, steps=6)
    with pytest.raises(tg.ConfigError, match=r"system: steps=6 .*4 steps of xs"):
        cell.run_for_loss(xs, steps=6)
    assert len(cell.run(xs, steps=4).states) == 4 and len(cell.run(xs).states) == 4


@pytest.mark.parametrize("replayable", [True, False])
def test_targets_beyond_a_readouts_own_classes_are_named_with_their_step(replayable):
    """The targets are checked against n_out when they are given; a readout that gives fewer
    classes than n_out (a subclass's) has them checked again against its own, and the loss
    names the step, batched or not, replayed or not."""
    class Fewer(rnn.ElmanRNN):
        def readout(self, state):
            return super().readout(state)[..., :3]

    model = Fewer(4, 3, 4, seed=0)
    model.replayable = replayable
    xs = np.zeros((8, 2), dtype=int)
    ys = np.zeros((8, 2), dtype=int)
    ys[4, 1] = 3                       # < n_out = 4, but not < 3
    with pytest.raises(tg.BadIndexError, match=r"target 3 out of range \[0, 3\).*t=5"):
        model.loss(xs, ys)
    with pytest.raises(tg.BadIndexError, match=r"target 3 out of range \[0, 3\).*t=5"):
        model.loss(xs[:, 0], ys[:, 1])
    ys[4, 1] = 2
    assert np.isfinite(model.loss(xs, ys).item())


def test_an_argument_the_loss_does_not_take_is_named_for_loss_and_the_trainer():
    # Python's TypeError named run_for_loss, which the user never called, and not run(...).loss
    jordan = rnn.JordanRNN(3, 4, 2, criterion="squared_error")
    xs, ys = np.zeros((4, 3)), np.zeros((4, 2))
    with pytest.raises(tg.ConfigError, match=r"^jordan\.loss: got an unexpected keyword argument "
                       r"'feedback'; the loss takes \(xs, ys, teacher_forcing, y0, mask\): run "
                       r"takes feedback=, and run\(\.\.\., feedback=\.\.\.\)\.loss is that loss"):
        jordan.loss(xs, ys, feedback="output")
    trainer = rnn.Trainer(jordan, tg.optim.SGD(jordan.parameters(), 0.1))
    with pytest.raises(tg.ConfigError, match=r"^Trainer\.step: .*'h0'; the loss takes \(xs, "
                                             r"ys, teacher_forcing, y0, mask\)$"):
        trainer.step(xs, ys, h0=np.zeros(4))
    assert trainer.steps == 0
