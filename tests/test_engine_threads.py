"""The modes (no_grad, enable_grad, scope, detect_anomaly) belong to the thread that sets them."""

import threading

import numpy as np

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
