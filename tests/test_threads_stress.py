"""One thread trains (loss().backward(), replayed) while another evaluates, diagnoses, draws,
records or trains another model: each thread's results equal its results alone, bit for bit.
A barrier starts every round of the two threads together, and the interpreter switches
threads every 10 microseconds meanwhile (restored after), so their ops interleave densely;
nothing waits on a clock."""

import sys
import threading

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz
from tinygraph import tape

T, ROUNDS = 12, 90
_RNG = np.random.default_rng(0)
IDS, YS = _RNG.integers(0, 4, size=(T, 3)), _RNG.integers(0, 4, size=(T, 3))


@pytest.fixture
def dense_switching():
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _update(model):
    """One round of training without the step: the loss and every parameter's gradient."""
    model.zero_grad()
    loss = model.loss(IDS, YS)
    loss.backward()
    return loss.item(), [p.grad.copy() for p in model.parameters()]


def _stepping(model):
    """:func:`_update`, then an SGD step (in place, each parameter's version bumped)."""
    out = _update(model)
    with tg.no_grad():
        for p in model.parameters():
            p -= 0.05 * p.grad
    return out


def _no_grad_loss(model):
    with tg.no_grad():
        return model.loss(IDS, YS).item()


def _anomaly_update(model):
    with tg.detect_anomaly():
        return _update(model)


def _recorded(_):
    x = tg.tensor(np.linspace(-1, 1, 5), requires_grad=True)
    with tape.recording() as rec:
        y = (x * 2.0).tanh().sum()
    return len(rec.ops), rec.read, y.item()


def _jacobians(model):
    return rnn.jacobians(model, IDS[:6, 0])


def _drawing(model):
    return viz.unrolled(model, steps=2, grads=True).source


OTHERS = {      # what the second thread does each round, and on which model
    "no_grad evaluation of another model": (_no_grad_loss, lambda: rnn.LSTM(4, 5, 4, seed=1)),
    "no_grad evaluation of the trained model": (_no_grad_loss, None),
    "training under detect_anomaly": (_anomaly_update, lambda: rnn.GRU(4, 5, 4, seed=2)),
    "a float32 model training": (_update, lambda: rnn.ElmanRNN(4, 6, 4, seed=3,
                                                                dtype=np.float32)),
    "a model of the same shapes training": (_update, lambda: rnn.ElmanRNN(4, 6, 4, seed=4)),
    "a recording of its own": (_recorded, lambda: None),
    "the Jacobians of the trained model": (_jacobians, None),
    "a drawing of the trained model with gradients": (_drawing, None),
}


def _equal(a, b):
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


@pytest.mark.parametrize("other", sorted(OTHERS))
@pytest.mark.parametrize("design", ["ElmanRNN", "LSTM"])
def test_training_beside_another_thread_gives_each_its_results_alone(design, other,
                                                                     dense_switching):
    work, make = OTHERS[other]
    # the trainer steps unless the other thread reads the model it trains
    train = _update if make is None else _stepping

    def models():
        trained = getattr(rnn, design)(4, 6, 4, seed=0)
        return trained, trained if make is None else make()
    trained, target = models()
    alone_a = [train(trained) for _ in range(ROUNDS)]
    alone_b = [work(target) for _ in range(ROUNDS // 3)]
    trained, target = models()
    start = threading.Barrier(2, timeout=30)
    together, errors = {}, []

    def thread(name, fn, model, rounds):
        try:
            out = []
            for _ in range(rounds):
                start.wait()
                out.append(fn(model))
            together[name] = out
        except BaseException as e:      # noqa: BLE001 - reported below
            start.abort()
            errors.append(e)

    # both threads take ROUNDS // 3 rounds together, then the trainer goes on alone
    threads = [threading.Thread(target=thread, args=("a", train, trained, ROUNDS // 3)),
               threading.Thread(target=thread, args=("b", work, target, ROUNDS // 3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and not any(t.is_alive() for t in threads)
    rest = [train(trained) for _ in range(ROUNDS - ROUNDS // 3)]
    assert _equal(together["a"] + rest, alone_a)
    assert _equal(together["b"], alone_b)
