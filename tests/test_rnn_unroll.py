"""The shared unroll: scopes and names for viz, long unrolls, teacher forcing, user-defined recurrences."""

import numpy as np
import pytest

import rnn
import tinygraph as tg


def _named_nodes(roots):
    """(scope, name) of every named node reachable from the roots."""
    seen, stack, found = set(), list(roots), set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.name:
            found.add((node.scope, node.name))
        stack.extend(node.parents)
    return found


def _per_step(model, names, steps):
    return {(f"{model}/t={t}", n) for t in range(1, steps + 1) for n in names}


@pytest.mark.parametrize("model, per_step, extra", [
    (rnn.ElmanRNN(3, 4, 3), "xahoyL", {("elman/t=0", "h")}),
    (rnn.JordanRNN(3, 4, 3), "xahoyL", {("jordan/t=0", "y")}),
    (rnn.ConditionalRNN(3, 4, 3), "xahoyL", {("conditional/t=0", "h"), ("conditional/t=0", "y")}),
    (rnn.VectorToSequence(3, 4, 3), "ahoyL", {("vec2seq", "x"), ("vec2seq/t=0", "h"),
                                             ("vec2seq/t=0", "y")}),
])
def test_trace_names_every_variable_of_every_step_in_its_scope(model, per_step, extra):
    roots = model.trace(steps=3)
    params = {(None, n) for n, _ in model.named_parameters()}
    assert _named_nodes(roots) == _per_step(model.name, per_step, 3) | extra | params


def test_sequence_to_one_trace_has_the_output_and_loss_only_at_the_end():
    found = _named_nodes(rnn.SequenceToOne(3, 4, 2).trace(steps=3))
    assert {n for s, n in found if s == "seq2one/t=3"} == set("xahoyL")
    assert {n for s, n in found if s == "seq2one/t=2"} == set("xah")


def test_input_ids_and_targets_are_parents_in_the_dag():
    m = rnn.ElmanRNN(3, 4, 3)
    run = m.run(np.array([0, 1]), np.array([1, 2]))
    x1 = next(n for n in _walk(run.loss) if n.name == "x" and n.scope == "elman/t=1")
    y1 = next(n for n in _walk(run.loss) if n.name == "y" and n.scope == "elman/t=1")
    assert any(p is x1 for node in _walk(run.loss) if node.op == "take" for p in node.parents)
    assert any(p is y1 for p in run.losses[0].parents)


def _walk(root):
    seen, stack = set(), [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            yield node
            stack.extend(node.parents)


def test_every_step_node_of_an_unroll_is_scoped_by_model_and_time_step():
    loss = rnn.ElmanRNN(3, 4, 3).loss(np.array([0, 1, 2]), np.array([1, 2, 0]))
    scopes = {n.scope for n in _walk(loss) if n.op is not None}
    assert scopes == {"elman", "elman/t=1", "elman/t=2", "elman/t=3"}


def test_trace_builds_a_graph_even_under_no_grad():
    with tg.no_grad():
        roots = rnn.ElmanRNN(3, 4, 3).trace(steps=2)
    assert roots[0].requires_grad and roots[0].parents


def test_teacher_forcing_decouples_the_steps():
    m = rnn.JordanRNN(3, 4, 3, seed=1)
    xs, ys = np.array([0, 2, 1, 1]), np.array([1, 0, 2, 2])
    run = m.run(xs, ys, teacher_forcing=True)
    for s, loss in enumerate(run.losses):
        grads = tg.grad(loss, run.states, retain_graph=True)
        for t, g in enumerate(grads):
            assert np.any(g != 0) == (t == s), f"dL({s + 1})/dh({t + 1})"


def test_without_teacher_forcing_a_loss_depends_on_earlier_hidden_states():
    m = rnn.JordanRNN(3, 4, 3, seed=1)
    run = m.run(np.array([0, 2, 1]), np.array([1, 0, 2]), teacher_forcing=False)
    grads = tg.grad(run.losses[2], run.states)
    assert all(np.any(g != 0) for g in grads)


def test_a_100000_step_unroll_builds_and_back_propagates():
    steps = 100_000
    W = tg.Parameter(np.eye(2), name="W")
    system = rnn.Recurrence(lambda s: s @ W, [W], n_state=2, state_name="s")
    s0 = np.array([0.5, -2.0])
    final = system.run(steps=steps, h0=s0).last
    final.sum().backward()
    # s(t) = s0 for every t, so dL/dW = sum_t s(t-1)^T 1 = steps * outer(s0, 1)
    np.testing.assert_allclose(W.grad, steps * np.outer(s0, np.ones(2)))


@pytest.mark.parametrize("replayable, op", [(True, "replay"), (False, "stack")])
def test_an_unrolled_graph_is_freed_by_reference_counting_alone(replayable, op):
    import gc
    import weakref
    model = rnn.ElmanRNN(3, 4, 3)
    model.replayable = replayable
    xs = np.arange(2000) % 3
    enabled = gc.isenabled()
    gc.disable()
    try:
        loss = model.loss(xs, (xs + 1) % 3)
        states = weakref.ref(next(n for n in _walk(loss) if n.op == op))   # all h(t) at once
        loss.backward()
        del loss
        assert states() is None           # freed without any collection
    finally:
        if enabled:
            gc.enable()


def _collector_settings():
    import gc
    return gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()


@pytest.mark.parametrize("enabled", [True, False])
def test_unrolls_and_backward_leave_the_cycle_collector_as_they_found_it(enabled):
    import gc
    before_enabled = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        before = _collector_settings()
        model = rnn.ElmanRNN(3, 4, 3)
        xs = np.arange(300) % 3
        model.loss(xs, xs).backward()
        assert _collector_settings() == before
        model.run(xs, xs).loss.backward()
        assert _collector_settings() == before
        rnn.Trainer(model).step(xs, xs)
        assert _collector_settings() == before
    finally:
        (gc.enable if before_enabled else gc.disable)()


class _Garbage:
    """100 KB in a reference cycle: only the cycle collector can free it."""

    def __init__(self):
        self.payload = bytearray(100_000)
        self.me = self


def _most_garbage_alive(step=None, steps=1500):
    """The most _Garbage cycles alive at any hundredth step of a loop that makes one per step
    (after ``step()``, when given), and whether a final collection frees them all."""
    import gc
    import weakref
    refs, most = [], 0
    for k in range(steps):
        if step is not None:
            step()
        refs.append(weakref.ref(_Garbage()))
        if k % 100 == 99:
            most = max(most, sum(r() is not None for r in refs))
    gc.collect()
    return most, all(r() is None for r in refs)


def test_training_beside_garbage_cycles_keeps_memory_flat_and_the_collector_frees_them():
    # the interpreter's own collector lets some cycles pile up between its runs (its first
    # threshold: 700 objects up to Python 3.12, 2000 on 3.13); training must not let more
    model = rnn.ElmanRNN(3, 4, 3)
    trainer = rnn.Trainer(model, lr=0.01)
    xs = np.arange(8) % 3
    alone, freed_alone = _most_garbage_alive()
    training, freed = _most_garbage_alive(lambda: trainer.step(xs, (xs + 1) % 3))
    assert freed and freed_alone
    assert training <= alone + 100      # at most one check's worth later than without training
    assert training < 1500              # the collector ran while training


def test_the_loss_keeps_only_the_recurrence_per_step_and_its_per_step_run_draws_every_op():
    model = rnn.ElmanRNN(3, 4, 3)
    xs = np.array([0, 1, 2, 1])
    fast = [n for n in _walk(model.loss(xs, xs)) if n.scope == "elman/t=2"]
    full = [n for n in _walk(model.run(xs, xs).loss) if n.scope == "elman/t=2"]
    assert sorted(n.name for n in fast if n.name) == ["a", "h"]
    assert sorted(n.name for n in full if n.name) == ["L", "a", "h", "o", "x", "y"]


def _figure_10_2():
    rng = np.random.default_rng(0)
    U = tg.Parameter(rng.normal(size=(3, 2)), name="U")
    W = tg.Parameter(rng.normal(size=(3, 3)) * 0.5, name="W")
    V = tg.Parameter(rng.normal(size=(2, 3)), name="V")
    system = rnn.Recurrence(lambda h, x: (h @ W.T + x @ U.T).tanh(), [U, W, V], n_state=3, n_in=2,
                            readout=lambda h: h @ V.T, name="mine")
    return system, (U, W, V)


def test_a_user_recurrence_is_unrolled_with_scopes_and_names():
    system, _ = _figure_10_2()
    found = _named_nodes(system.trace(steps=2))
    assert _per_step("mine", "xhoyL", 2) | {("mine/t=0", "h")} <= found
    assert system.edge_label == "f"


def test_a_user_recurrence_without_input_is_figure_10_1():
    W = tg.Parameter(np.eye(2) * 0.9, name="W")
    system = rnn.Recurrence(lambda s: (s @ W.T).tanh(), [W], n_state=2, name="fig10_1",
                            state_name="s")
    found = _named_nodes(system.trace(steps=3))
    assert found == {("fig10_1/t=0", "s"), ("fig10_1/t=1", "s"), ("fig10_1/t=2", "s"),
                     ("fig10_1/t=3", "s"), (None, "W")}


def test_a_user_recurrence_has_exact_gradients_and_trains():
    system, params = _figure_10_2()
    xs = np.random.default_rng(1).normal(size=(5, 4, 2))
    ys = (xs[:, :, 0] > 0).astype(np.int64)
    assert tg.gradcheck(lambda *_: system.loss(xs, ys), list(params))
    trainer = rnn.Trainer(system, lr=0.05)
    losses = [trainer.step(xs, ys)[0] for _ in range(60)]
    assert losses[-1] < 0.5 * losses[0]
    assert [n for n, _ in system.named_parameters()] == ["U", "W", "V"]


def test_a_program_that_freezes_objects_itself_keeps_its_frozen_objects():
    import gc
    model = rnn.ElmanRNN(3, 4, 3)
    xs = np.arange(50) % 3
    gc.unfreeze()
    mine = [[i] for i in range(1000)]
    gc.freeze()                                 # e.g. a server before it forks workers
    frozen = gc.get_freeze_count()
    try:
        for _ in range(2):
            model.loss(xs, (xs + 1) % 3).backward()
            assert gc.get_freeze_count() == frozen and gc.isenabled()
    finally:
        gc.unfreeze()
    del mine


def _collections_during(work):
    """Run ``work()`` with the cycle collector on; how many collections ran meanwhile."""
    import gc
    runs = []

    def callback(phase, info):
        if phase == "start":
            runs.append(info["generation"])

    was_enabled = gc.isenabled()
    gc.enable()
    gc.callbacks.append(callback)
    try:
        work()
    finally:
        gc.callbacks.remove(callback)
        if not was_enabled:
            gc.disable()
    return len(runs)


def test_the_cycle_collector_keeps_running_through_unrolls_and_training_steps(monkeypatch):
    """No pause (gc.disable is process-wide): the collector runs as usual, for every thread.
    (A replayed unroll makes so few objects that the collector may have nothing to do in it:
    that it is never switched off is checked on gc itself.)"""
    import gc
    switched = []
    monkeypatch.setattr(gc, "disable", lambda: switched.append("disable"))
    monkeypatch.setattr(gc, "freeze", lambda: switched.append("freeze"))
    model = rnn.ElmanRNN(3, 4, 3)
    trainer = rnn.Trainer(model, lr=0.01)
    xs = np.arange(2000) % 3
    ys = (xs + 1) % 3
    model.replayable = False
    assert _collections_during(lambda: model.loss(xs, ys).backward()) > 0
    assert _collections_during(lambda: trainer.step(xs, ys)) > 0
    model.replayable = True
    assert _collections_during(lambda: model.run(xs, ys).loss.backward()) > 0
    model.loss(xs, ys).backward()
    trainer.step(xs, ys)
    rnn.truncated_bptt(trainer, xs, ys, chunk=500)
    assert switched == [] and gc.isenabled()
