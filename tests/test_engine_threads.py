"""The modes (no_grad, enable_grad, scope, detect_anomaly) belong to the thread that sets them;
backward sweeps from several threads over graphs that share parameters take turns."""

import importlib
import linecache
import sys
import threading

import numpy as np
import pytest

import tinygraph as tg


def _run_together(*targets):
    threads = [threading.Thread(target=target) for target in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)


def test_no_grad_in_one_thread_leaves_graph_building_on_in_another():
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def quiet():
        with tg.no_grad():
            inside.set()
            done.wait(10)
            seen["quiet"] = (tg.tensor([1.0], requires_grad=True) * 2).requires_grad

    def trainer():
        inside.wait(10)
        w = tg.Parameter(np.ones(3))
        seen["trainer"] = [((w * w).sum()).requires_grad for _ in range(200)]
        done.set()

    _run_together(quiet, trainer)
    assert seen["trainer"] == [True] * 200
    assert seen["quiet"] is False
    assert tg.is_grad_enabled()


def test_scope_and_detect_anomaly_of_one_thread_do_not_reach_another():
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def tagged():
        with tg.scope("worker"), tg.detect_anomaly():
            inside.set()
            done.wait(10)

    def other():
        inside.wait(10)
        seen["scope"] = (tg.tensor([1.0], requires_grad=True) * 2).scope
        seen["anomaly"] = tg.is_anomaly_enabled()
        done.set()

    _run_together(tagged, other)
    assert seen == {"scope": None, "anomaly": False}


def test_a_new_thread_starts_with_grad_enabled_even_when_its_parent_is_in_no_grad():
    seen = []
    with tg.no_grad():
        thread = threading.Thread(target=lambda: seen.append(tg.is_grad_enabled()))
        thread.start()
        thread.join(10)
        assert not tg.is_grad_enabled()
    assert seen == [True]


def _paused_identity(inside, resume):
    """An identity op whose gradient rule signals ``inside`` and then waits (at most half a
    second) for ``resume``: a sweep through it stops midway, its partial gradients held."""
    def forward(x):
        def vjp(g):
            inside.set()
            resume.wait(0.5)
            return g
        return x.copy(), (vjp,)
    return lambda t: tg.apply("paused", forward, t)


def test_a_sweep_in_one_thread_does_not_mix_with_a_sweep_in_another_over_shared_parameters():
    # Thread one's backward stops inside its graph with part of w's gradient added up (w is
    # used on both sides of the paused op); thread two then runs tg.grad and backward through
    # w.  A sweep keeps its partial sums in the nodes, so two at once added into each other:
    # now the second waits for the first, and each gets its own gradient.
    w = tg.Parameter(np.arange(1.0, 4.0))
    inside, resume = threading.Event(), threading.Event()
    paused = _paused_identity(inside, resume)
    seen = {}

    def one():
        loss = (w * 3.0).sum() + paused(w * 2.0).sum() + (w * 5.0).sum()
        seen["one"] = tg.grad(loss, w)

    def two():
        inside.wait(10)
        seen["two"] = tg.grad((w * w).sum(), w)
        (w * 7.0).sum().backward()
        seen["two .grad"] = np.array(w.grad)
        resume.set()

    _run_together(one, two)
    np.testing.assert_array_equal(seen["one"], np.full(3, 10.0))
    np.testing.assert_array_equal(seen["two"], 2 * np.arange(1.0, 4.0))
    np.testing.assert_array_equal(seen["two .grad"], np.full(3, 7.0))


def test_backward_from_several_threads_adds_every_gradient_into_a_shared_parameter_once():
    w = tg.Parameter(np.ones(4))
    inside, resume = threading.Event(), threading.Event()
    paused = _paused_identity(inside, resume)

    def one():
        (paused(w * 2.0) * w).sum().backward()

    def two():
        inside.wait(10)
        (w * 3.0).sum().backward()
        resume.set()

    _run_together(one, two)
    np.testing.assert_array_equal(w.grad, np.full(4, 2.0 + 2.0 + 3.0))


def test_a_sweep_may_start_another_in_its_own_thread():
    # the sweeps' lock is re-entrant: an op's gradient rule can itself differentiate
    inner = tg.Parameter(np.array([2.0, 3.0]))

    def forward(x):
        def vjp(g):
            return g * tg.grad((inner * inner).sum(), inner)
        return x.copy(), (vjp,)

    w = tg.Parameter(np.array([1.0, 1.0]))
    np.testing.assert_array_equal(tg.grad(tg.apply("nested", forward, w).sum(), w), [4.0, 6.0])


def test_in_place_changes_from_several_threads_each_get_a_version_of_their_own():
    # every change is counted once, so a graph built between two changes in another thread
    # sees the later one as newer than itself (and refuses to back-propagate through it)
    import importlib
    import sys
    engine = importlib.import_module("tinygraph.tensor")
    tensors = [tg.Parameter(np.ones(2)) for _ in range(4)]
    versions = [[] for _ in tensors]
    start = engine._clock

    def changer(k):
        def run():
            for _ in range(3000):
                engine.bump_version(tensors[k])
                versions[k].append(tensors[k]._version)
        return run

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)     # threads switch as often as they can
    try:
        _run_together(*(changer(k) for k in range(len(tensors))))
    finally:
        sys.setswitchinterval(switch)
    issued = [v for vs in versions for v in vs]
    assert len(set(issued)) == len(issued) == 4 * 3000
    assert engine._clock == start + 4 * 3000 == max(issued)
    assert all(vs == sorted(vs) for vs in versions)


def _both_inside(shared, outer, probe):
    """Another thread enters ``outer``, then ``shared``, and waits there; the main thread then
    enters ``shared`` too, lets the other leave and end, and leaves.  ``probe()`` as each
    thread reads it inside ``shared`` and after it."""
    entered, leave = threading.Event(), threading.Event()
    seen = {}

    def other():
        with outer:
            with shared:
                seen["other inside"] = probe()
                entered.set()
                leave.wait(10)
            seen["other after"] = probe()

    thread = threading.Thread(target=other)
    thread.start()
    entered.wait(10)
    with shared:
        leave.set()
        thread.join()
        seen["main inside"] = probe()
    seen["main after"] = probe()
    return seen


def test_one_no_grad_object_entered_by_two_threads_restores_each_threads_own_mode():
    # the other thread was already off (an outer no_grad): it must stay off after
    seen = _both_inside(tg.no_grad(), tg.no_grad(), tg.is_grad_enabled)
    assert seen == {"other inside": False, "other after": False, "main inside": False,
                    "main after": True}


def test_a_thread_leaving_a_no_grad_object_as_another_enters_it_undoes_its_own_entry(
        monkeypatch):
    # the exit took the list's last entry as its own when the last entry it read was: another
    # thread's entry appended in between was popped instead, so that thread ran the rest of its
    # block with graph building on and this one stayed in no_grad for good.  Here the other
    # thread enters while this one's exit asks for its mode (no timing: the exit waits for it)
    off = tg.no_grad()
    entered, leave = threading.Event(), threading.Event()
    seen = {}

    def other():
        with off:
            entered.set()
            leave.wait(10)
            seen["other inside"] = tg.is_grad_enabled()
        seen["other after"] = tg.is_grad_enabled()

    thread = threading.Thread(target=other)
    engine = importlib.import_module("tinygraph.tensor")     # tg.tensor is the function
    real = engine._current

    def current():       # the main thread's exit: the other thread enters the object now
        if threading.current_thread() is threading.main_thread() and not entered.is_set():
            thread.start()
            entered.wait(10)
        return real()
    with off:
        monkeypatch.setattr(engine, "_current", current)
    monkeypatch.undo()
    seen["main after"] = tg.is_grad_enabled()
    leave.set()
    thread.join(10)
    assert seen == {"main after": True, "other inside": False, "other after": True}


def test_one_scope_object_entered_by_two_threads_gives_each_its_own_label_back():
    seen = _both_inside(tg.scope("shared"), tg.scope("outer"), tg.current_scope)
    assert seen == {"other inside": "outer/shared", "other after": "outer",
                    "main inside": "shared", "main after": None}


def test_two_threads_entering_one_scope_object_at_once_each_get_their_own_label_back():
    # the first entry's record was checked and set in two steps: another thread entering
    # between them (both saw no entry) had its record overwritten, so its exit put back this
    # thread's label and its own stayed 'shared' for good (every later node mislabelled), and
    # this thread's exit failed on the record the other's exit had cleared.  Here the other
    # thread enters at that very line of this thread's entry (a line tracer stops it there;
    # the fixed entry holds a lock there, so the other waits for it: the wait ends by timeout)
    shared = tg.scope("shared")
    engine = importlib.import_module("tinygraph.tensor")
    entered, leave = threading.Event(), threading.Event()
    seen = {}

    def other():
        with shared:
            seen["other inside"] = tg.current_scope()
            entered.set()
            leave.wait(10)
        seen["other after"] = tg.current_scope()

    thread = threading.Thread(target=other)

    def on_line(frame, event, arg):
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
        if event == "line" and line == "self._mode, self._prev = mode, prev" and not thread.is_alive():
            thread.start()
            entered.wait(1)
        return on_line

    def on_call(frame, event, arg):
        return on_line if frame.f_code is engine.scope.__enter__.__code__ else None

    before = sys.gettrace()
    sys.settrace(on_call)
    try:
        with shared:
            sys.settrace(before)
            entered.wait(10)
            seen["main inside"] = tg.current_scope()
            leave.set()
            thread.join(10)
    finally:
        sys.settrace(before)
    seen["main after"] = tg.current_scope()
    assert seen == {"other inside": "shared", "other after": None, "main inside": "shared",
                    "main after": None}


def test_tensor_of_a_list_holding_a_grad_tensor_is_refused_while_another_thread_converts():
    """``tg.tensor([t])`` of a tensor that requires grad is refused (a new leaf would cut it
    from the graph), whatever another thread's ``np.asarray(tensor)`` is in the middle of.  The
    other thread is held, by a trace, before each bytecode instruction of ``Tensor.__array__``
    in turn, and let go only once this thread's conversion inside ``tg.tensor`` has run: every
    place that other conversion can be interrupted, without sleeps or timing."""
    import dis
    code = tg.Tensor.__array__.__code__
    offsets = [ins.offset for ins in dis.get_instructions(code)]
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    other = tg.tensor([3.0])
    for offset in offsets:
        held, resume = threading.Event(), threading.Event()

        def hold_at(frame, event, arg):
            if event == "opcode" and frame.f_lasti == offset:
                held.set()
                resume.wait(10)
            return hold_at

        def enter(frame, event, arg):
            if event == "call" and frame.f_code is code:
                frame.f_trace_opcodes = True
                return hold_at
            return None

        def converter():
            sys.settrace(enter)
            try:
                np.asarray(other)
            finally:
                sys.settrace(None)
                held.set()       # finished (this offset is not on its path): nothing to hold

        def let_go(frame, event, arg):     # this thread: once its own __array__ returns
            if event == "call" and frame.f_code is code:
                return let_go
            if event == "return" and frame.f_code is code:
                resume.set()
                thread.join(10)
            return None

        thread = threading.Thread(target=converter)
        thread.start()
        assert held.wait(10)
        np.asarray(other)        # a conversion of this thread's own, before the constructor
        previous = sys.gettrace()
        sys.settrace(let_go)
        try:
            with pytest.raises(tg.DTypeError, match="a new leaf would cut it from the graph"):
                tg.tensor([w])
        finally:
            sys.settrace(previous)
            resume.set()
            thread.join(10)
        assert not thread.is_alive()
