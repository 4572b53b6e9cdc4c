"""Two threads at once over one model or one process: what one thread switches (a model's
evaluation mode for a drawing or a diagnosis, the engine's modes) stays that thread's, and
nothing is left switched after.  The interleavings are forced with events, not sleeps."""

import re
import threading

import numpy as np

import rnn
import tinygraph as tg
import viz
from rnn.core import evaluating

H, N_IN, N_OUT = 4, 3, 3
XS, YS = np.array([0, 2, 1, 1, 0, 2, 1]), np.array([1, 0, 0, 1, 1, 2, 0])


def _dropout_cell():
    """h(t) = drop(tanh(W h(t-1) + E[x(t)])), the Dropout seeded and held by the cell."""
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.normal(0, 0.5, (H, H)), name="W")
    E = tg.Parameter(rng.normal(0, 0.5, (N_IN, H)), name="E")
    V = tg.Parameter(rng.normal(0, 0.5, (N_OUT, H)), name="V")
    drop = tg.Dropout(0.5, seed=7)
    cell = rnn.Recurrence(lambda h, u: drop((h @ W.T + u).tanh()), [W, E, V], H, n_in=N_IN,
                          readout=lambda h: h @ V.T, input_map=lambda x: tg.take(E, x, axis=0),
                          name="cell", ids=True)
    cell.drop = drop
    return cell


def _run_together(*targets):
    errors = []

    def guarded(target):
        try:
            target()
        except BaseException as e:      # noqa: BLE001 - reported by the test
            errors.append(e)
    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_a_model_evaluated_in_one_thread_still_trains_with_dropout_in_another():
    # evaluating() (what trace, the diagrams, the diagnostics and the explorer run in) set
    # every module's training flag on the shared model: a training thread's dropout was off
    # while another thread drew the model, its loss and gradients silently those of eval mode
    cell = _dropout_cell()
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def drawing():
        with evaluating(cell):
            seen["drawing"] = (cell.training, cell.drop.training)
            inside.set()
            done.wait(10)

    def training():
        inside.wait(10)
        seen["training"] = (cell.training, cell.drop.training)
        done.set()

    _run_together(drawing, training)
    assert seen == {"drawing": (False, False), "training": (True, True)}
    assert cell.training and cell.drop.training


def test_two_overlapping_evaluations_leave_the_model_in_training_mode():
    # each evaluating() saved the modes it found: the second one to enter found the first's
    # eval mode and, leaving last, put it back -- the model stayed in eval mode for good
    cell = _dropout_cell()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first():
        with evaluating(cell):
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second():
        first_in.wait(10)
        with evaluating(cell):
            second_in.set()
            first_out.wait(10)
            assert not cell.training and not cell.drop.training

    _run_together(first, second)
    assert cell.training and cell.drop.training


def test_training_beside_a_thread_drawing_the_model_gives_the_single_threaded_gradients():
    def train(cell, steps, each=None):
        out = []
        for i in range(steps):
            cell.zero_grad()
            loss = cell.loss(XS, YS)
            loss.backward()
            out.append((loss.item(), [p.grad.copy() for p in cell.parameters()]))
            if each is not None:
                each(i)
        return out

    alone = train(_dropout_cell(), 40)
    cell = _dropout_cell()
    inside = [threading.Event() for _ in range(40)]
    updated = [threading.Event() for _ in range(40)]
    drawn, together = [], {}

    def trainer():      # every update runs while the other thread is inside an evaluation
        together["grads"] = train(cell, 40, each=lambda i: updated[i].set())

    def drawer():
        for i in range(40):
            with evaluating(cell):
                inside[i].set()
                updated[i].wait(10)
                drawn.append(viz.unrolled(cell, steps=2).source)

    def waiting_trainer():
        original = cell.loss

        def loss(*args):
            inside[len(together.setdefault("calls", []))].wait(10)
            together["calls"].append(True)
            return original(*args)
        cell.loss = loss
        try:
            trainer()
        finally:
            del cell.loss

    _run_together(waiting_trainer, drawer)
    assert len(together["grads"]) == len(alone) == 40
    for (loss_a, grads_a), (loss_b, grads_b) in zip(alone, together["grads"]):
        assert loss_a == loss_b
        assert all(np.array_equal(a, b) for a, b in zip(grads_a, grads_b))
    assert len(set(drawn)) == 1
    assert cell.training and cell.drop.training and cell.drop._calls == _calls_after(40)


def _calls_after(updates):
    cell = _dropout_cell()
    for _ in range(updates):
        cell.loss(XS, YS)
    return cell.drop._calls



def test_nested_evaluations_and_one_left_by_an_error_leave_this_threads_mode_as_it_was():
    cell = _dropout_cell()
    try:
        with evaluating(cell):
            with evaluating(cell):
                assert not cell.drop.training
            assert not cell.drop.training       # the outer block still holds
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert cell.training and cell.drop.training
    cell.eval()
    with evaluating(cell):
        assert not cell.training
    assert not cell.training and not cell.drop.training     # eval() by the user stays


class _Pause:
    """An artist whose drawing signals ``inside`` and waits for ``go``: a save of its figure
    stops midway, in the thread saving it."""

    def __new__(cls, inside, go):
        from matplotlib.artist import Artist

        class Pause(Artist):
            def draw(self, renderer):
                inside.set()
                go.wait(10)
        return Pause()


def test_saving_a_chart_changes_no_matplotlib_setting_another_thread_reads_or_makes():
    # the save ran in matplotlib.rc_context({"svg.hashsalt": "tinygraph"}): process-wide, so
    # another thread's plots saw the salt meanwhile, and the context's exit put back every
    # rcParam as it was before, undoing a setting another thread made meanwhile
    import matplotlib
    from viz import plots
    fig, ax = plots.new_figure()
    ax.plot([1, 2, 3], [1.0, 2.0, 1.5])
    alone = plots.figure_bytes(fig, "svg")
    inside, go = threading.Event(), threading.Event()
    fig.add_artist(_Pause(inside, go))
    saved, seen = {}, {}
    before = matplotlib.rcParams.copy()

    def saving():
        saved["svg"] = plots.figure_bytes(fig, "svg")

    def user():
        inside.wait(10)
        seen["salt"] = matplotlib.rcParams["svg.hashsalt"]
        matplotlib.rcParams["lines.linewidth"] = before["lines.linewidth"] + 1.5
        go.set()

    try:
        _run_together(saving, user)
        assert seen["salt"] == before["svg.hashsalt"]
        assert matplotlib.rcParams["lines.linewidth"] == before["lines.linewidth"] + 1.5
        assert saved["svg"] == alone        # the same bytes, the pausing artist drawing nothing
    finally:
        matplotlib.rcParams.update(before)


def test_a_chart_saves_to_the_same_bytes_whatever_the_svg_salt_setting():
    import matplotlib
    from viz import plots
    fig, ax = plots.new_figure()
    ax.plot([1, 2, 3], [1.0, 2.0, 1.5], marker="o")       # markers and clip paths get ids
    other, _ = plots.new_figure()
    other.axes[0].plot([1, 2], [2.0, 1.0], marker="s")
    first = plots.figure_bytes(fig, "svg")
    with matplotlib.rc_context({"svg.hashsalt": "someone else's"}):
        assert plots.figure_bytes(fig, "svg") == first
    assert plots.figure_bytes(fig, "svg") == first
    ids = set(re.findall(rb'id="([mp][0-9a-f]{10})"', first))
    assert ids and not ids & set(re.findall(rb'id="([mp][0-9a-f]{10})"',
                                            plots.figure_bytes(other, "svg")))
