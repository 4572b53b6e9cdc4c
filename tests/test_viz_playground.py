"""The playground's engine and server, without a browser: configuration bounds, bit-for-bit
replay, the security rules (token, Host), malformed requests, checkpoints, the command line."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz
from viz.cli import main
from viz.playground import (BadRequest, Run, _curve, build, check_config, recurrent_weights,
                            rescale)

WAIT = 120.0      # generous bound for anything the training thread must do (a loaded machine)


def _until(predicate, what):
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {WAIT:.0f} s: {what}")


class Client:
    def __init__(self, app):
        self.app = app

    def request(self, method, path, body=None, token=True, host=None, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.app.port, timeout=30)
        sep = "&" if "?" in path else "?"
        url = path + (f"{sep}token={self.app.token}" if token else "")
        headers = {"Host": host or f"127.0.0.1:{self.app.port}"}
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, url, body=data, headers=headers)
        r = conn.getresponse()
        payload = r.read()
        conn.close()
        return r.status, payload

    def state(self):
        status, payload = self.request("GET", "/api/state")
        assert status == 200
        return json.loads(payload)

    def post(self, path, body=None):
        return self.request("POST", path, body if body is not None else {})


@pytest.fixture
def app(tmp_path):
    started = viz.playground(hidden=8, delay=3, batch=4, out=str(tmp_path / "out"))
    yield started
    started.stop()


@pytest.fixture
def client(app):
    return Client(app)


# ------------------------------------------------------------------ configuration

@pytest.mark.parametrize("field, value, words", [
    ("hidden", 513, "hidden must be in 1..512"), ("batch", 257, "batch must be in 1..256"),
    ("delay", 1995, "delay must be in 1..1,994"), ("length", 2001, "length must be in 1..2,000"),
    ("hidden", "many", "hidden must be a whole number"), ("rho", "nan", "rho must be a finite"),
    ("design", "transformer", "design must be one of"), ("colour", 1, "unknown configuration")])
def test_config_out_of_bounds_is_refused_with_its_field(field, value, words):
    with pytest.raises(BadRequest, match=words):
        check_config({field: value})


def test_config_refuses_a_design_that_does_not_fit_the_task():
    with pytest.raises(BadRequest, match="lstm does not fit the task signal"):
        check_config({"design": "lstm", "task": "signal"})


def test_reset_rescales_every_recurrent_matrix_to_rho():
    for design in ("elman", "lstm", "gru"):
        model, _, _ = build(check_config({"design": design, "rho": 0.5, "hidden": 6}))
        weights = recurrent_weights(model)
        assert len(weights) == {"elman": 1, "lstm": 4, "gru": 3}[design]
        for w in weights:
            assert np.max(np.abs(np.linalg.eigvals(w.data))) == pytest.approx(0.5)


def test_rho_rescales_only_the_recurrent_matrices_of_a_users_model():
    # a JordanRNN with n_out == H had its W (it reads y(t-1), no state h) rescaled as if it were
    # h(t-1) -> h(t), and an attention's Wa (s(t-1) into the scores) too: rho changed them
    jordan = rnn.JordanRNN(4, 4, 4, seed=0)
    assert recurrent_weights(jordan) == []
    attend = rnn.EncoderDecoder(3, 4, 2, seed=0, attention="additive")
    assert [p.name for p in recurrent_weights(attend)] == ["W", "Wd"]
    wa = attend.Wa.data.copy()

    def task(b, s):
        r = np.random.default_rng(s)
        return r.normal(size=(5, b, 3)), r.integers(0, 2, (6, b))
    from viz.playground import _user_source
    config = check_config(dict(design=attend.name, task="custom", rho=0.5, batch=4), custom=True)
    Run(config, attend, _user_source(attend, task, 4, 0), attend.state_dict())
    np.testing.assert_array_equal(attend.Wa.data, wa)
    for w in (attend.W, attend.Wd):
        assert np.max(np.abs(np.linalg.eigvals(w.data))) == pytest.approx(0.5)


def test_rho_rescales_a_users_cell_or_is_refused_when_it_would_change_nothing():
    # a user's rnn.Recurrence has no n_hidden, and an echo state network's W is fixed: rho
    # found none of their matrices and trained them as given, without a word
    from viz_layout import designs
    cell = designs()["user_lstm"]
    assert [p.name for p in recurrent_weights(cell)] == ["Wf", "Wg", "Wq", "W"]
    rescale(cell, 0.5)
    for w in recurrent_weights(cell):
        assert np.max(np.abs(np.linalg.eigvals(w.data))) == pytest.approx(0.5)
    esn = rnn.EchoStateNetwork(3, 4, 3, seed=0)           # its W is fixed, and rescaled too
    rescale(esn, 0.5)
    assert np.max(np.abs(np.linalg.eigvals(esn.W.data))) == pytest.approx(0.5)
    jordan = rnn.JordanRNN(3, 3, 3, seed=0)                # (its W reads y(t-1))
    with pytest.raises(tg.ConfigError, match=r"rho 0\.5: jordan has no recurrent matrix to "
                                             "rescale"):
        viz.playground(jordan, lambda b, s: (np.zeros((4, b), int), np.zeros((4, b), int)),
                       rho=0.5)


def test_rho_sets_what_a_users_echo_state_network_reports_and_a_reset_puts_it_back():
    # was: rho rescaled the fixed W to radius 0.5 while the model still said
    # spectral_radius=1.0 (its attribute and repr)
    from viz.playground import Engine, _user_source
    esn = rnn.EchoStateNetwork(2, 4, 1, seed=0)

    def task(b, s):
        r = np.random.default_rng(s)
        return r.normal(size=(3, b, 2)), r.normal(size=(3, b, 1))
    config = check_config(dict(design=esn.name, task="custom", rho=0.5, batch=2), custom=True)
    engine = Engine(config, esn, _user_source(esn, task, 2, 0))
    engine.stop(timeout=5)
    assert np.max(np.abs(np.linalg.eigvals(esn.W.data))) == pytest.approx(0.5)
    assert esn.spectral_radius == 0.5 and "spectral_radius=0.5" in repr(esn)
    engine._apply("reset", dict(config, rho=0.0))       # W as given: radius 1 again
    assert np.max(np.abs(np.linalg.eigvals(esn.W.data))) == pytest.approx(1.0)
    assert esn.spectral_radius == 1.0


@pytest.mark.parametrize("kind,layers", [("mlp", 2), ("mlp", 3), ("skip", 2), ("skip", 3)])
def test_rho_is_the_radius_of_the_deep_transition_through_its_hidden_layer(kind, layers):
    # h(t) = tanh(b + U e + W tanh(bz + Wz h(t-1)) [+ Ws h(t-1)]): rho scaled Wz and W each to
    # 0.5, so dh(t)/dh(t-1) at h = 0, W Wz (+ Ws), had radius 0.32 (mlp, 2 layers), 0.063 (3)
    model = rnn.DeepRNN(3, 6, 2, layers=layers, kind=kind, seed=0)
    rescale(model, 0.5)
    jac = rnn.jacobians(model, np.zeros((1, 3)), h0=np.zeros(6))[0]     # at h = 0, x = 0
    assert np.max(np.abs(np.linalg.eigvals(jac))) == pytest.approx(0.5, rel=1e-9)


@pytest.mark.parametrize("clip", [0.0, 0.5])
def test_sgd_moves_the_parameters_by_lr_times_the_clipped_gradient_norm(clip):
    run = Run(check_config({"hidden": 6, "delay": 4, "rho": 1.5, "optimizer": "sgd", "lr": 0.1,
                            "clip": clip}))
    before = np.concatenate([p.data.ravel() for p in run.model.parameters()])
    _, norm = run.update()
    after = np.concatenate([p.data.ravel() for p in run.model.parameters()])
    moved = np.linalg.norm(after - before)
    assert norm > 0.5
    assert moved == pytest.approx(0.1 * (min(norm, clip) if clip else norm), rel=1e-9)


def test_views_after_the_parameters_blew_up_say_so_instead_of_failing():
    run = Run(check_config({"hidden": 4, "delay": 2}))
    run.model.W.data = run.model.W.data * np.nan
    run.measure()
    assert "no longer finite" in run.views()["notes"][0]


@pytest.mark.parametrize("design, trained", [("elman", True), ("esn", False)])
def test_the_signal_task_trains_the_recurrence_of_elman_and_only_the_readout_of_esn(design, trained):
    run = Run(check_config({"task": "signal", "design": design, "hidden": 5, "length": 12}))
    W, V = run.model.W.data.copy(), run.model.V.data.copy()
    run.update()
    assert not np.array_equal(run.model.V.data, V)
    assert (not np.array_equal(run.model.W.data, W)) == trained


# ------------------------------------------------------------------ replay

def _trained(config, updates):
    run = Run(check_config(config))
    for _ in range(updates):
        run.update()
    return run


def test_the_echo_state_networks_views_show_the_gradient_through_its_fixed_reservoir():
    # the playground said "no gradient through time to show" and showed none, where the
    # explorer shows dL/dh(t) through the fixed W from h(0) = 0 requiring grad; now both, in
    # one wording, against the numpy BPTT of the echo state network
    import bptt_reference_more as ref
    from viz.explorer import fixed_state_note
    run = Run(check_config({"task": "signal", "design": "esn", "hidden": 5, "length": 6}))
    views = run.views()
    model, (xs, ys) = run.model, run.source.probe
    assert fixed_state_note(model, ["h"], "∂L/∂h(t), the connectivity and the unrolled "
                                          "view's gradients") in views["notes"]
    assert views["connectivity"] and views["unrolled"]
    P = {k: np.asarray(getattr(model, k).data) for k in ("U", "W", "b", "V", "c")}
    h, states, want = np.zeros((1, 5)), [], []
    for x in xs:
        h = np.tanh(P["b"] + h @ P["W"].T + x @ P["U"].T)
        states.append(h)
    for t in range(1, len(xs) + 1):          # dL/dh(t): its own term's and the later steps'
        g = 2 * (P["c"] + states[t - 1] @ P["V"].T - ys[t - 1]) @ P["V"]
        if t < len(xs):
            g = g + ref.echo_state(P, xs[t:], ys[t:], h0=states[t - 1])[1]["h0"]
        want.append(np.linalg.norm(g))
    np.testing.assert_allclose(views["dldh"], want, rtol=1e-5)


def test_views_of_a_fixed_state_that_takes_no_h0_say_so():
    # an encoder-decoder whose recurrences are frozen: its state needs no gradient and its run
    # takes no h0 to start it from one that does (the views must not raise on it)
    from viz.playground import _user_source
    model = rnn.EncoderDecoder(3, 4, 2, seed=0)
    for name, p in model.named_parameters():
        p.requires_grad = name in ("V", "c")

    def task(b, s):
        r = np.random.default_rng(s)
        return r.normal(size=(5, b, 3)), r.integers(0, 2, (6, b))
    config = check_config(dict(design=model.name, task="custom", rho=0.0, batch=2), custom=True)
    views = Run(config, model, _user_source(model, task, 2, 0), model.state_dict()).views()
    assert "dldh" not in views and any("no gradient through time to show" in n
                                       for n in views["notes"])


@pytest.mark.parametrize("task", ["copy", "parity", "chars", "signal"])
def test_same_seed_and_config_give_the_same_parameters_bit_for_bit(task):
    config = {"task": task, "hidden": 6, "batch": 3, "trunc": 7, "length": 9, "seed": 5}
    a, b = _trained(config, 4), _trained(config, 4)
    assert a.digest() == b.digest()
    for key, value in a.model.state_dict().items():
        assert np.array_equal(value, b.model.state_dict()[key])
    assert a.losses == b.losses
    assert _trained(dict(config, seed=6), 4).digest() != a.digest()


def test_truncation_carries_the_state_detached_into_the_next_chunk():
    config = check_config({"hidden": 5, "delay": 4, "trunc": 5})      # T = 10: two chunks
    cut, fresh = Run(config), Run(config)
    xs, _ = fresh.source.batch(0)
    with tg.no_grad():
        h5 = fresh.model.run(xs[:5]).last.data
    cut.update()
    assert np.allclose(cut.carried["h0"].data, h5) and not cut.carried["h0"].requires_grad
    cut.update()
    assert len(cut.losses) == 2


def test_loss_falls_on_copy_with_delay_5():
    run = _trained({"hidden": 16, "delay": 5, "batch": 16, "lr": 0.02}, 120)
    assert np.mean(run.losses[-20:]) < 0.6 * np.mean(run.losses[:5])


def test_views_are_computed_from_the_current_parameters():
    run = Run(check_config({"hidden": 6, "delay": 4, "rho": 0.5}))
    views = run.views()
    steps = 2 * 3 + 4
    assert len(views["dldh"]) == steps
    assert len(views["connectivity"]["cells"]) == steps
    assert len(views["spectra"]["radius"]) == steps
    assert 0 < views["lag"]["rate"] < 1
    direct = rnn.connectivity(run.model, *run.source.probe)
    assert views["connectivity"]["cells"][-1][-1] == pytest.approx(direct[-1, -1], rel=1e-5)
    assert "<svg" in views["unrolled"]["svg"] and views["unrolled"]["nodes"]


# ------------------------------------------------------------------ the server

def test_a_request_without_the_token_is_refused(client):
    assert client.request("GET", "/api/state", token=False)[0] == 403
    assert client.request("GET", "/", token=False)[0] == 403
    assert client.request("GET", "/api/state?token=wrong", token=False)[0] == 403
    assert client.request("POST", "/api/play", {}, token=False)[0] == 403


def test_a_foreign_host_header_is_refused(client):
    status, payload = client.request("GET", "/api/state", host="evil.example:80")
    assert status == 403 and b"Host" in payload
    assert client.request("GET", "/api/state", host=f"localhost:{client.app.port}")[0] == 200


def test_the_page_and_its_assets_are_served_with_the_token(client):
    status, page = client.request("GET", "/")
    assert status == 200 and b"Content-Security-Policy" in page
    assert f"playground.js?token={client.app.token}".encode() in page
    assert client.request("GET", "/playground.js")[0] == 200
    assert client.request("GET", "/../setup.cfg")[0] == 404


def test_a_burst_of_malformed_requests_all_get_400_and_the_server_still_serves(client):
    bad = [("POST", "/api/reset", b"{not json"), ("POST", "/api/reset", b"[1, 2]"),
           ("POST", "/api/reset", json.dumps({"config": {"hidden": 100000}}).encode()),
           ("POST", "/api/reset", json.dumps({"config": {"hidden": "x"}}).encode()),
           ("POST", "/api/reset", json.dumps({"config": {"batch": -1}}).encode()),
           ("POST", "/api/reset", json.dumps({"config": "elman"}).encode()),
           ("POST", "/api/reset", b"\xff\xfe"), ("POST", "/api/step", b"x" * 5000)] * 5
    for method, path, raw in bad:
        status, payload = client.request(method, path, raw=raw)
        assert status == 400, (path, raw[:40], payload)
        assert json.loads(payload)["error"]
    before = client.state()["runs"][0]["steps"]
    assert client.post("/api/step")[0] == 200
    _until(lambda: client.state()["runs"][0]["steps"] == before + 1, "one step after the burst")


def test_bounds_are_refused_with_a_message(client):
    status, payload = client.post("/api/reset", {"config": {"hidden": 513}})
    assert status == 400 and "hidden must be in 1..512" in json.loads(payload)["error"]


def test_step_pause_reset_and_rho_change_the_run(client):
    client.post("/api/reset", {"config": {"hidden": 8, "delay": 3, "batch": 4, "rho": 0.5}})
    first = _until(lambda: (s := client.state())["config"]["rho"] == 0.5 and s, "the reset")
    heat = first["runs"][0]["views"]["connectivity"]["cells"]
    for _ in range(3):
        client.post("/api/step")
    _until(lambda: client.state()["runs"][0]["steps"] == 3, "three steps")
    client.post("/api/reset", {"config": {"hidden": 8, "delay": 3, "batch": 4, "rho": 1.5}})
    second = _until(lambda: (s := client.state())["config"]["rho"] == 1.5 and s, "the reset")
    assert second["runs"][0]["steps"] == 0
    assert second["runs"][0]["views"]["connectivity"]["cells"] != heat


def test_play_then_pause_stops_training(client):
    client.post("/api/play")
    _until(lambda: client.state()["runs"][0]["steps"] >= 3, "three updates while playing")
    client.post("/api/pause")
    paused = _until(lambda: not (s := client.state())["playing"] and s, "the pause")
    steps = paused["runs"][0]["steps"]
    time.sleep(0.3)
    assert client.state()["runs"][0]["steps"] == steps        # a published pause is final


def test_side_by_side_runs_train_together(client):
    client.post("/api/reset", {"config": {"hidden": 6, "delay": 3, "batch": 4, "compare": "lstm"}})
    _until(lambda: len(client.state()["runs"]) == 2, "two runs")
    client.post("/api/step")
    state = _until(lambda: (s := client.state())["runs"][1]["steps"] == 1 and s, "a step of both")
    assert [r["config"]["design"] for r in state["runs"]] == ["elman", "lstm"]
    assert state["runs"][0]["steps"] == 1


def test_the_replay_through_the_server_matches_a_fresh_run(client):
    config = {"hidden": 8, "delay": 3, "batch": 4, "seed": 11}
    client.post("/api/reset", {"config": config})
    for _ in range(5):
        client.post("/api/step")
    state = _until(lambda: (s := client.state())["runs"][0]["steps"] == 5 and s, "five steps")
    assert state["runs"][0]["digest"] == _trained(config, 5).digest()


def test_checkpoint_saves_and_resumes_in_out_atomically(client, app):
    for _ in range(3):
        client.post("/api/step")
    saved = _until(lambda: (s := client.state())["runs"][0]["steps"] == 3 and s, "three steps")
    client.post("/api/save")
    path = os.path.join(app.engine.out, "playground_0.npz")
    _until(lambda: os.path.exists(path), "the checkpoint")
    client.post("/api/step")
    _until(lambda: client.state()["runs"][0]["steps"] == 4, "a fourth step")
    client.post("/api/resume")
    resumed = _until(lambda: (s := client.state())["runs"][0]["steps"] == 3 and s, "the resume")
    assert resumed["runs"][0]["digest"] == saved["runs"][0]["digest"]
    # (and the folder's lock, held while the playground runs)
    assert sorted(os.listdir(app.engine.out)) == [".tinygraph.lock", "playground_0.npz"]


def test_without_out_save_is_refused():
    started = viz.playground(hidden=4, delay=2)
    try:
        status, payload = Client(started).post("/api/save")
        assert status == 400 and "--out" in json.loads(payload)["error"]
    finally:
        started.stop()


def test_a_users_own_model_and_task_from_python():
    model = rnn.GRU(2, 5, 2, seed=1)
    started = viz.playground(model, lambda batch, seed: rnn.problems.running_parity(batch, 6, seed))
    try:
        client = Client(started)
        assert started.url in started._repr_html_().replace("&amp;", "&")
        client.post("/api/step")
        state = _until(lambda: (s := client.state())["runs"][0]["steps"] == 1 and s, "a step")
        assert state["custom"] and state["runs"][0]["name"].startswith("gru")
        assert client.post("/api/reset", {"config": {"compare": "lstm"}})[0] == 400
    finally:
        started.stop()


def test_a_task_that_raises_is_shown_and_the_server_goes_on():
    calls = []

    def task(batch, seed):
        calls.append(seed)
        if len(calls) > 2:          # the held-out batch and the first update's batch are fine
            raise RuntimeError("the user's data ran out")
        return rnn.problems.running_parity(batch, 4, seed)

    started = viz.playground(rnn.ElmanRNN(2, 3, 2, seed=0), task)
    try:
        client = Client(started)
        client.post("/api/play")
        state = _until(lambda: (s := client.state())["error"] and s, "the error shown")
        assert "RuntimeError: the user's data ran out" in state["error"]
        assert not state["playing"] and state["runs"][0]["steps"] == 1
        assert client.post("/api/pause")[0] == 200
    finally:
        started.stop()


def test_the_command_line_prints_its_url_and_ctrl_c_stops_it(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-m", "viz.cli", "playground", "--no-browser",
                             "--out", str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("tinygraph playground: http://127.0.0.1:")
        url = line.split(": ", 1)[1].strip()
        port = int(url.split(":")[2].split("/")[0])
        token = url.split("token=")[1].split("#")[0]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", f"/api/state?token={token}")
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=WAIT) == 0
        assert os.path.exists(tmp_path / "playground_0.npz")      # saved on the way out
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


def test_the_heatmap_of_a_long_probe_shows_each_sampled_row_as_its_own_loss_term():
    # a probe of more than PROBE_ROWS steps samples 40 rows; the heatmap's row i was row i
    # of the whole (mostly NaN) matrix, so the row labelled t = rows[i] showed L(i + 1) or None
    run = Run(check_config({"task": "signal", "design": "elman", "length": 150, "hidden": 4}))
    heat = run.views()["connectivity"]
    assert heat["sampled"] and len(heat["cells"]) == len(heat["rows"]) == 40
    direct = rnn.connectivity(run.model, *run.source.probe)
    edges = heat["col_edges"]
    for i, t in enumerate(heat["rows"]):
        expected = [direct[t - 1, a:b].max() for a, b in zip(edges[:-1], edges[1:])]
        np.testing.assert_allclose(heat["cells"][i], expected, rtol=1e-5, atol=1e-12)


def test_a_runs_title_names_the_design_chosen():
    # the signal task's elman is an echo state network with U, W and b trained too: its title
    # said "esn (4 hidden)" under a control that said elman
    elman = Run(check_config({"task": "signal", "design": "elman", "length": 20, "hidden": 4}))
    esn = Run(check_config({"task": "signal", "design": "esn", "length": 20, "hidden": 4}))
    assert elman.name == "elman: esn with every weight trained (4 hidden)"
    assert esn.name == "esn (4 hidden)"


@pytest.mark.parametrize("design", ["elman", "lstm"])
def test_a_resumed_character_run_goes_on_from_the_state_it_had_reached(design, tmp_path):
    # the character model carries its state from chunk to chunk of the text; a resume in the
    # middle of a pass started from zeros (the first resumed update's loss 3.978, not 3.947)
    engine_of = sys.modules["viz.playground"].Engine
    config = check_config({"task": "chars", "design": design, "hidden": 8, "trunc": 20,
                           "batch": 2})
    whole = _trained(config, 6)
    engine = engine_of(config, out=str(tmp_path))
    try:
        for _ in range(3):
            engine.command("step")
        _until(lambda: engine.runs[0].steps == 3, "three steps")
        engine.command("save")
        engine.command("step")
        _until(lambda: engine.runs[0].steps == 4, "a fourth step")
        engine.command("resume")
        _until(lambda: engine.runs[0].steps == 3, "the resume")
        for _ in range(3):
            engine.command("step")
        _until(lambda: engine.runs[0].steps == 6, "six steps")
    finally:
        engine.stop(timeout=5)
    assert engine.runs[0].losses == whole.losses
    assert engine.runs[0].digest() == whole.digest()


def test_a_resume_refuses_checkpoints_of_two_different_saves(tmp_path, monkeypatch):
    # a save writes one file per run; one that failed partway left run 0's file new and run 1's
    # from the save before, and a resume put the two runs at different moments without a word
    engine = sys.modules["viz.playground"].Engine(
        check_config({"hidden": 4, "delay": 2, "batch": 2, "compare": "lstm"}), out=str(tmp_path))
    engine.stop(timeout=5)        # this thread drives it from here: no commands race
    engine.save()
    engine._one_update()
    before = [run.digest() for run in engine.runs]
    save_training = rnn.save_training

    def disk_full_at_run_1(path, *args, **kwargs):
        if path.endswith("_1.npz"):
            raise OSError(28, "No space left on device")
        return save_training(path, *args, **kwargs)

    monkeypatch.setattr(rnn, "save_training", disk_full_at_run_1)
    with pytest.raises(OSError):
        engine.save()
    with pytest.raises(tg.CheckpointError, match="another save"):
        engine.resume()
    assert [run.digest() for run in engine.runs] == before      # nothing changed
    monkeypatch.setattr(rnn, "save_training", save_training)
    engine.save()
    engine._one_update()
    engine.resume()
    assert [run.digest() for run in engine.runs] == before and engine.runs[0].steps == 1


def test_a_second_playground_on_the_same_out_is_refused_until_the_first_stops(tmp_path):
    # nothing locked out: a second playground's first save moved the first's checkpoints aside
    # and wrote its own, then the first's next save overwrote them: the second run was lost
    out = str(tmp_path / "out")
    first = viz.playground(hidden=4, delay=2, batch=2, out=out)
    try:
        with pytest.raises(tg.ConfigError, match="viz.playground: another tinygraph command is "
                                                 "writing into out '.*out' now"):
            viz.playground(hidden=4, delay=2, batch=2, seed=1, out=out)
        first.engine.command("save")
        _until(lambda: os.path.exists(os.path.join(out, "playground_0.npz")), "the save")
    finally:
        first.stop()
    assert sorted(os.listdir(out)) == ["playground_0.npz"]        # its lock file removed
    second = viz.playground(hidden=4, delay=2, batch=2, seed=1, out=out)    # now free
    second.stop()
    assert sorted(os.listdir(out)) == ["playground_0.npz", "playground_0.previous-1.npz"]


def test_the_command_line_runs_without_out(tmp_path):
    # --out is optional for the playground; main() made and locked it for every command and
    # os.makedirs(None) ended `tinygraph playground` in a bare TypeError traceback
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-m", "viz.cli", "playground", "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        assert line.startswith("tinygraph playground: http://127.0.0.1:"), proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=WAIT) == 0
        assert os.listdir(tmp_path) == []                         # nothing written
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()


def test_a_model_with_dropout_is_measured_and_viewed_in_evaluation_mode():
    """The views and held-out loss run when the training thread's CPU clock says so: with
    dropout on, each moved a seeded tg.Dropout on, so the masks of the next updates (and a
    link's 'same run, bit for bit') depended on the machine's speed."""
    cell, drop, config, task = _dropout_cell()
    run = Run(config, cell, task, initial=cell.state_dict())
    run.measure()
    views = run.views()
    assert drop._calls == 0 and cell.training and drop.training
    assert any("evaluation mode" in note for note in views["notes"])
    run.update()              # training still draws its masks
    assert drop._calls > 0


# ------------------------------------------------------------------ failed calls change nothing

def test_a_failed_update_inside_a_sequence_leaves_the_carried_state_where_it_was():
    config = check_config({"hidden": 5, "delay": 4, "trunc": 4})      # T = 10: three chunks
    failed, whole = Run(config), Run(config)
    failed.update()
    whole.update()
    carried = failed.carried["h0"].data.copy()
    failed.trainer.optimizer.param_groups[0]["lr"] = -1.0     # the step refuses, cleanly
    with pytest.raises(tg.ConfigError, match="lr must be a number >= 0"):
        failed.update()
    assert np.array_equal(failed.carried["h0"].data, carried)
    assert failed.steps == 1 and len(failed.losses) == 1
    failed.trainer.optimizer.param_groups[0]["lr"] = config["lr"]
    for _ in range(3):                     # the retry reads chunk 2 from h(4), as the whole run
        failed.update()
        whole.update()
    assert failed.losses == whole.losses
    assert failed.digest() == whole.digest()


@pytest.mark.parametrize("bad", ["another model", "steps disagree"])
def test_a_failed_resume_leaves_the_users_model_as_it_was(bad, tmp_path):
    # the resume made new runs over the user's own model, which put back its initial parameters
    # before reading the file; a file that was then refused left the model at those
    model = rnn.GRU(2, 5, 2, seed=1)
    task = lambda batch, seed: rnn.problems.running_parity(batch, 6, seed)      # noqa: E731
    engine = sys.modules["viz.playground"].Engine(
        check_config({"design": "gru", "task": "custom", "rho": 0.0, "batch": 3}, custom=True),
        model, sys.modules["viz.playground"]._user_source(model, task, 3, 0), out=str(tmp_path))
    engine.stop(timeout=5)        # this thread drives it from here: no commands race
    engine._one_update()
    engine.save()
    path = engine._path(0)
    meta = tg.read_meta(path)["user"]
    if bad == "another model":         # refused as the file is read
        rnn.save_training(path, rnn.Trainer(rnn.GRU(2, 6, 2, seed=1)), {}, meta=meta)
    else:                               # refused after the model was loaded from it
        rnn.save_training(path, engine.runs[0].trainer, {"losses": np.zeros(1), "norms": np.zeros(1)},
                          meta=dict(meta, steps=7))
    engine._one_update()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    run = engine.runs[0]
    with pytest.raises(tg.CheckpointError):
        engine.resume()
    assert engine.runs[0] is run and run.steps == 2
    for key, value in model.state_dict().items():
        assert np.array_equal(value, before[key]), key


@pytest.mark.parametrize("design, task", [("elman", "copy"), ("lstm", "parity"), ("esn", "signal")])
def test_a_save_inside_a_sequence_resumes_as_the_uninterrupted_run(design, task, tmp_path):
    # a save between two chunks of a sequence wrote no carried state (only the character
    # model's was kept), and its file could not be resumed ("stopped inside a sequence")
    config = check_config({"design": design, "task": task, "hidden": 5, "delay": 4, "length": 10,
                           "trunc": 4, "batch": 2})      # 10 steps: three chunks per sequence
    whole = _trained(config, 7)
    engine = sys.modules["viz.playground"].Engine(config, out=str(tmp_path))
    engine.stop(timeout=5)        # this thread drives it from here: no commands race
    for _ in range(4):            # the 2nd chunk of the 2nd sequence is next
        engine._one_update()
    engine.save()
    engine._one_update()
    engine.resume()
    assert engine.runs[0].steps == 4
    for _ in range(3):
        engine._one_update()
    assert engine.runs[0].losses == whole.losses
    assert engine.runs[0].digest() == whole.digest()


def test_a_file_that_stopped_inside_a_sequence_without_its_state_is_refused(tmp_path):
    config = check_config({"hidden": 5, "delay": 4, "trunc": 4, "batch": 2})
    engine = sys.modules["viz.playground"].Engine(config, out=str(tmp_path))
    engine.stop(timeout=5)
    engine._one_update()
    engine.save()
    path, run = engine._path(0), engine.runs[0]
    assert tg.read_checkpoint(path).arrays["extra/carried"].shape == (2, 5)
    rnn.save_training(path, run.trainer, {"losses": np.array(run.losses), "norms": np.array(run.norms)},
                      meta=tg.read_meta(path)["user"])         # as a save before the state was kept
    with pytest.raises(tg.CheckpointError, match="stopped inside a sequence .after update 1. "
                                                 "but holds no carried state"):
        engine.resume()
    assert engine.runs[0] is run


@pytest.mark.parametrize("design", ["leaky", "elman", "gru"])
def test_copy_recall_is_the_argmax_of_the_outputs_on_the_symbols_written_back(design):
    # the recall called model.predict, which LeakyRNN has not: the playground with design leaky
    # on the copy task did not start (AttributeError), and a reset to it showed the error once
    # and then no recall at all (the held-out loss of that update had been recorded already)
    run = _trained({"design": design, "hidden": 6, "delay": 3, "batch": 4, "lr": 0.05}, 3)
    run.measure()
    xs, ys = run.source.held
    with tg.no_grad():
        outputs = run.model.run(xs).outputs
    o = np.stack([out.data for out in outputs])                   # o(t): (T, B, n_out)
    assert o.shape == (len(xs), len(xs[0]), 10)
    picked = o[-3:].argmax(axis=-1)
    assert run.recall == [(3, float(np.mean(picked == ys[-3:])))]
    assert len(run.held) == 1 and run.held[0][0] == 3



def test_copy_recall_of_outputs_that_are_not_finite_is_no_number_not_symbol_0():
    # argmax of a NaN output row is 0: outputs made NaN by a NaN readout bias scored the
    # sequences whose symbol written back is 0 as recalled (0.112 here) beside a NaN loss
    run = _trained({"design": "elman", "hidden": 6, "delay": 3, "batch": 4, "lr": 0.05}, 3)
    xs, ys = run.source.held
    with tg.no_grad():
        run.model.c.data[:] = np.nan
    run.measure()
    assert np.isnan(run.held[-1][1])
    (step, recall), = run.recall
    assert step == 3 and np.isnan(recall)
    assert _curve(run.recall) == [[3, None]]                 # the page draws no point there

def test_side_by_side_runs_update_together_or_not_at_all(tmp_path):
    # the runs were updated one after the other: when the second failed, the first had taken
    # its update, and the two went on one update apart (a save then marked them as one moment)
    config = check_config({"hidden": 4, "delay": 2, "batch": 2, "trunc": 3, "compare": "lstm"})
    engine_of = sys.modules["viz.playground"].Engine
    engine, whole = engine_of(config), engine_of(config)
    for e in (engine, whole):
        e.stop(timeout=5)        # this thread drives them from here: no commands race
        e._one_update()
    first, second = engine.runs
    before = (first.digest(), first.trainer.optimizer.state_dict(), first.carried["h0"].data.copy())
    second.trainer.optimizer.param_groups[0]["lr"] = -1.0      # the second run's step refuses
    with pytest.raises(tg.ConfigError, match="lr must be a number >= 0"):
        engine._one_update()
    assert first.digest() == before[0]
    assert first.steps == first.trainer.steps == 1 and len(first.losses) == len(first.norms) == 1
    state = first.trainer.optimizer.state_dict()
    assert state.keys() == before[1].keys()
    assert all(np.array_equal(state[k], before[1][k]) for k in state)
    assert np.array_equal(first.carried["h0"].data, before[2])
    second.trainer.optimizer.param_groups[0]["lr"] = config["lr"]
    for _ in range(3):
        engine._one_update()
        whole._one_update()
    for run, twin in zip(engine.runs, whole.runs):
        assert run.losses == twin.losses and run.digest() == twin.digest()


def test_a_side_by_side_update_undone_keeps_the_first_runs_parameters_very_arrays_and_versions():
    # the first run's update was undone by load_state_dict, which gives every parameter a new
    # version: a graph built from them before the failed update then refused backward
    # (StaleGraphError), though they held the very values it was built from
    config = check_config({"hidden": 4, "delay": 2, "batch": 2, "trunc": 3, "compare": "lstm"})
    engine = sys.modules["viz.playground"].Engine(config)
    engine.stop(timeout=5)        # this thread drives it from here: no commands race
    engine._one_update()
    first, second = engine.runs
    params = first.model.parameters()
    arrays, values = [p._data for p in params], [p.data.copy() for p in params]
    y = sum((p * 2.0).sum() for p in params)
    second.trainer.optimizer.param_groups[0]["lr"] = -1.0      # the second run's step refuses
    with pytest.raises(tg.ConfigError, match="lr must be a number >= 0"):
        engine._one_update()
    assert all(p._data is a and np.array_equal(p.data, v) for p, a, v in zip(params, arrays, values))
    first.model.zero_grad()       # the gradients of the update undone
    y.backward()
    for p in params:
        np.testing.assert_array_equal(p.grad, np.full(p.shape, 2.0))


@pytest.mark.parametrize("bad", ["another model", "interrupted in the reset"])
def test_a_failed_resume_keeps_the_users_parameters_very_arrays_and_versions(bad, tmp_path,
                                                                              monkeypatch):
    # was: _reset ran outside the resume's try, so a failure in it (here an interrupt while W
    # was rescaled) left the user's model at its initial parameters, rescaled, without a word;
    # and a resume refused later put the values back by load_state_dict, with new arrays and
    # new versions, so a graph the user had built before refused backward
    playground = sys.modules["viz.playground"]
    model = rnn.GRU(2, 5, 2, seed=1)
    task = lambda batch, seed: rnn.problems.running_parity(batch, 6, seed)      # noqa: E731
    engine = playground.Engine(
        check_config({"design": "gru", "task": "custom", "rho": 0.5, "batch": 3}, custom=True),
        model, playground._user_source(model, task, 3, 0), out=str(tmp_path))
    engine.stop(timeout=5)        # this thread drives it from here: no commands race
    engine._one_update()
    engine.save()
    engine._one_update()
    if bad == "another model":
        meta = tg.read_meta(engine._path(0))["user"]
        rnn.save_training(engine._path(0), rnn.Trainer(rnn.GRU(2, 6, 2, seed=1)), {}, meta=meta)
    else:
        rescale = playground.rescale

        def interrupted(model, rho):
            rescale(model, rho)
            raise KeyboardInterrupt

        monkeypatch.setattr(playground, "rescale", interrupted)
    xs, ys = task(3, 9)
    loss = model.loss(xs, ys)             # a graph the user built before the resume
    kept = {name: (p._data, p._data.copy(), p._version) for name, p in model.named_parameters()}
    engine.refresh_seconds = refresh = 7.0     # as the views' timing had set it
    run = engine.runs[0]
    with pytest.raises((tg.CheckpointError, KeyboardInterrupt)):
        engine.resume()
    assert engine.runs[0] is run and run.steps == 2 and engine.refresh_seconds == refresh
    for name, p in model.named_parameters():
        data, values, version = kept[name]
        assert p._data is data and p._version == version, name
        np.testing.assert_array_equal(p._data, values)
    loss.backward()                       # still back-propagates
    assert model.W.grad is not None


def test_a_reset_of_a_users_model_with_seeded_dropout_replays_the_same_run():
    # was: reset put back the parameters as given but not the Dropout's calls, so the reset
    # run drew other masks: losses 0.7747, 0.7014, 0.7169 where the first run had 0.7506,
    # 0.7385, 0.6968, from the same configuration and parameters
    cell, drop, config, task = _dropout_cell()
    engine = sys.modules["viz.playground"].Engine(config, cell, task)
    engine.stop(timeout=5)        # this thread drives it from here: no commands race
    for _ in range(3):
        engine._one_update()
    first = list(engine.runs[0].losses), engine.runs[0].digest()
    assert drop._calls > 0
    engine._apply("reset", None)
    for _ in range(3):
        engine._one_update()
    assert (engine.runs[0].losses, engine.runs[0].digest()) == first


def _dropout_cell(seed=0):
    """(cell, its seeded tg.Dropout, configuration, task) of a user's cell with dropout."""
    from viz.playground import _user_source
    rng = np.random.default_rng(seed)
    W = tg.Parameter(rng.normal(scale=0.5, size=(4, 4)), name="W")
    E = tg.Parameter(rng.normal(scale=0.5, size=(2, 4)), name="E")
    V = tg.Parameter(rng.normal(scale=0.5, size=(2, 4)), name="V")
    drop = tg.Dropout(0.5, seed=1)
    cell = rnn.Recurrence(lambda h, u: drop((h @ W.T + u).tanh()), [W, E, V], 4, n_in=2,
                          readout=lambda h: h @ V.T, input_map=lambda x: tg.take(E, x, axis=0),
                          name="cell")
    cell.drop = drop
    config = check_config({"rho": 0.0, "design": "cell", "task": "custom"}, custom=True)
    task = _user_source(cell, lambda batch, seed: rnn.problems.running_parity(batch, 6, seed),
                        config["batch"], config["seed"])
    return cell, drop, config, task


def test_a_failed_update_of_a_model_with_seeded_dropout_is_retried_with_the_same_masks():
    # was: the failed attempt's forward had drawn its masks, so the retry drew the next ones
    # and the run went on from other masks than an uninterrupted run's
    runs = []
    for _ in range(2):
        cell, drop, config, task = _dropout_cell()
        runs.append(Run(config, cell, task, initial=cell.state_dict()))
    failed, whole = runs
    failed.update()
    whole.update()
    calls = failed.model.drop._calls
    failed.trainer.optimizer.param_groups[0]["lr"] = -1.0     # the step refuses, cleanly
    with pytest.raises(tg.ConfigError, match="lr must be a number >= 0"):
        failed.update()
    assert failed.model.drop._calls == calls and failed.steps == 1
    failed.trainer.optimizer.param_groups[0]["lr"] = config["lr"]
    for _ in range(3):
        failed.update()
        whole.update()
    assert failed.losses == whole.losses
    assert failed.digest() == whole.digest()


def test_a_reset_that_fails_leaves_the_run_and_the_users_model_as_they_were(monkeypatch):
    # was: the new run set the user's model to its initial parameters and rescaled W before
    # the failure (here an interrupt in the rescale), and the old run trained on from those
    playground = sys.modules["viz.playground"]
    cell, drop, config, task = _dropout_cell()
    engine = playground.Engine(dict(config, rho=0.5), cell, task)
    engine.stop(timeout=5)        # this thread drives it from here: no commands race
    engine._one_update()
    kept = {name: (p._data, p._data.copy(), p._version) for name, p in cell.named_parameters()}
    run, calls = engine.runs[0], drop._calls
    rescale = playground.rescale

    def interrupted(model, rho):
        rescale(model, rho)
        raise KeyboardInterrupt

    monkeypatch.setattr(playground, "rescale", interrupted)
    with pytest.raises(KeyboardInterrupt):
        engine._apply("reset", None)
    assert engine.runs[0] is run and run.steps == 1 and drop._calls == calls
    for name, p in cell.named_parameters():
        data, values, version = kept[name]
        assert p._data is data and p._version == version, name
        np.testing.assert_array_equal(p._data, values)


def test_a_file_with_only_some_parts_of_the_carried_state_is_refused_changing_nothing(tmp_path):
    # a hand-edited file holding carried/h but not carried/s of an LSTM was resumed, the
    # missing cell state s going on from zeros without a word
    config = check_config({"design": "lstm", "hidden": 5, "delay": 4, "trunc": 4, "batch": 2})
    engine = sys.modules["viz.playground"].Engine(config, out=str(tmp_path))
    engine.stop(timeout=5)
    engine._one_update()
    engine.save()
    path, run = engine._path(0), engine.runs[0]
    arrays = tg.read_checkpoint(path).arrays
    assert {"extra/carried/s", "extra/carried/h"} <= set(arrays)
    rnn.save_training(path, run.trainer, {"losses": np.array(run.losses),
                                          "norms": np.array(run.norms),
                                          "carried/h": arrays["extra/carried/h"]},
                      meta=tg.read_meta(path)["user"])
    engine._one_update()
    digest, carried = run.digest(), {k: v.data.copy() for k, v in run.carried["h0"].items()}
    with pytest.raises(tg.CheckpointError, match=r"holds only some parts of the carried state: "
                                                 r"\['h'\], not \['s'\]"):
        engine.resume()
    assert engine.runs[0] is run and run.steps == 2 and run.digest() == digest
    assert all(np.array_equal(run.carried["h0"][k].data, v) for k, v in carried.items())


def test_a_port_in_use_is_a_clear_error_that_leaves_no_thread_or_folder(tmp_path, capsys):
    """A taken port was '[Errno 98] Address already in use' (no port named), after the training
    thread had started (it ran on, idle, in the caller's process) and --out was made."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        before = {t.ident for t in threading.enumerate()}
        with pytest.raises(tg.ConfigError, match=f"cannot listen on 127.0.0.1:{port}: .*another port"):
            viz.playground(port=port, out=tmp_path / "never")
        assert [t.name for t in threading.enumerate() if t.ident not in before] == []
        assert not (tmp_path / "never").exists()
        assert main(["playground", "--no-browser", "--port", str(port)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"127.0.0.1:{port}" in err[0] and "--port" in err[0], err


# ------------------------------------------------------------------ the curves' points

def test_a_long_curve_keeps_its_first_and_last_points_its_spikes_and_its_lowest_value():
    from viz.playground import CURVE_POINTS, _series
    rng = np.random.default_rng(0)
    values = (1 + 0.1 * rng.random(5000)).tolist()
    values[1237] = 900.0            # a spike between two evenly spaced picks
    values[3001] = 0.01             # the lowest loss
    values[4321] = float("inf")     # a blow-up: a gap the chart must show
    values[4444] = float("nan")
    points = _series(values)
    assert len(points) <= CURVE_POINTS
    xs = [x for x, _ in points]
    assert xs == sorted(set(xs)) and xs[0] == 1 and xs[-1] == 5000
    shown = dict(points)
    assert shown[1238] == 900.0 and shown[3002] == 0.01
    assert shown[4322] is None and shown[4445] is None
    assert max(y for y in shown.values() if y is not None) == 900.0


def test_a_held_out_curve_of_irregular_updates_keeps_its_extremes():
    from viz.playground import _curve
    pairs = [(7 * k, 0.5) for k in range(1000)]
    pairs[612] = (7 * 612, 1.0)
    assert _curve(pairs)[0] == [0, 0.5] and _curve(pairs)[-1] == [6993, 0.5]
    assert [7 * 612, 1.0] in _curve(pairs)


def test_a_reset_and_a_play_taken_together_still_measure_update_0():
    # the page's presets post reset then play: a busy training thread takes both at once
    from viz.playground import Engine
    config = check_config({"hidden": 8, "delay": 3, "batch": 4, "compare": "lstm"})
    engine = Engine(check_config({"hidden": 4, "delay": 2, "batch": 2}))
    try:
        with engine.lock:
            engine.commands += [("reset", config), ("play", None)]
        engine.wake.set()
        state = _until(lambda: len((s := json.loads(engine.snapshot()))["runs"]) == 2
                       and all(r["steps"] >= 3 and r["recall"] for r in s["runs"]) and s,
                       "three updates of the new runs, measured")
    finally:
        engine.stopping.set()
        engine.wake.set()
        engine.thread.join()
    for run in state["runs"]:
        assert run["held"][0][0] == 0 and run["recall"][0][0] == 0


def _user_run(model, task):
    from viz.playground import _user_source
    config = check_config(dict(design=model.name, task="custom", rho=0.0, batch=4), custom=True)
    return Run(config, model, _user_source(model, task, 4, 0), model.state_dict())


@pytest.mark.parametrize("design", ["seq2one", "vec2seq"])
def test_the_probe_of_a_users_task_is_its_first_example_whatever_its_batch_axis(design):
    # the probe was a[:, :1] of every array: a SequenceToOne's labels (B,) were a bare
    # IndexError, a VectorToSequence's vectors (B, n) became B vectors of their first entry
    if design == "seq2one":
        model = rnn.SequenceToOne(3, 4, 2, seed=0)
        task = lambda b, s: (np.random.default_rng(s).normal(size=(10, b, 3)),   # noqa: E731
                             np.random.default_rng(s).integers(0, 2, b))
    else:
        model = rnn.VectorToSequence(3, 4, 2, seed=0)
        task = lambda b, s: (np.random.default_rng(s).normal(size=(b, 3)),       # noqa: E731
                             np.random.default_rng(s).integers(0, 2, (10, b)))
    run = _user_run(model, task)
    (xs, ys), (hx, hy) = run.source.probe, run.source.held
    first = (hx[:, :1], hy[:1]) if design == "seq2one" else (hx[:1], hy[:, :1])
    np.testing.assert_array_equal(xs, first[0])
    np.testing.assert_array_equal(ys, first[1])
    views = run.views()
    probe = model.run(xs, ys)
    want = [np.linalg.norm(g) for g in tg.grad(probe.loss, probe.parts["h"])]
    np.testing.assert_allclose(views["dldh"], want, rtol=1e-5)
    direct = rnn.connectivity(model, xs, ys)
    np.testing.assert_allclose(np.array(views["connectivity"]["cells"], dtype=float), direct,
                               rtol=1e-5, atol=1e-12)


def test_a_task_without_an_axis_of_examples_is_refused_naming_its_shapes():
    model = rnn.VectorToSequence(3, 4, 2, seed=0)
    with pytest.raises(tg.ShapeError, match=r"task's xs for a batch of 128 has shape \(3,\)"):
        _user_run(model, lambda b, s: (np.zeros(3), np.zeros((10, b), int)))


def test_the_sampled_rows_of_an_encoder_decoder_are_its_loss_terms_steps():
    # rows were sampled over 1..n_x (the encoder's steps), not the n_y loss terms: n_x = 150 >
    # n_y = 120 was a ShapeError (rows outside 1..120), n_x = 50 < n_y = 150 showed rows of
    # t <= 50 alone, the loss terms 51..150 missing without a word
    for n_x, n_y in ((150, 120), (50, 150)):
        model = rnn.EncoderDecoder(3, 4, 2, seed=0)
        run = _user_run(model, lambda b, s, n_x=n_x, n_y=n_y: (
            np.random.default_rng(s).normal(size=(n_x, b, 3)),
            np.random.default_rng(s).integers(0, 2, (n_y, b))))
        heat = run.views()["connectivity"]
        assert heat["sampled"] and heat["rows"][0] == 1 and heat["rows"][-1] == n_y
        assert heat["height"] == n_y and heat["width"] == n_x
        direct = rnn.connectivity(model, *run.source.probe, rows=heat["rows"])
        edges = heat["col_edges"]
        for i, t in enumerate(heat["rows"]):
            expected = [direct[t - 1, a:b].max() for a, b in zip(edges[:-1], edges[1:])]
            np.testing.assert_allclose(heat["cells"][i], expected, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("design", ["vec2seq", "encdec", "seq2one"])
def test_the_loss_per_step_of_a_users_model_is_per_loss_term(design):
    # it was the loss over len(xs): a VectorToSequence's xs (B, n) gave the training loss over
    # the batch of 4 and the held-out loss over 128 (curves 32x apart), an encoder-decoder's
    # over n_x = 9 steps where it sums n_y = 5 terms, a sequence-to-one net's over T
    def task(b, s):
        rng = np.random.default_rng(s)
        if design == "vec2seq":
            return rng.normal(size=(b, 3)), rng.integers(0, 2, (5, b))
        ys = rng.integers(0, 2, b if design == "seq2one" else (5, b))
        return rng.normal(size=(9, b, 3)), ys
    model = {"vec2seq": rnn.VectorToSequence, "encdec": rnn.EncoderDecoder,
             "seq2one": rnn.SequenceToOne}[design](3, 4, 2, seed=0)
    run = _user_run(model, task)
    terms = 1 if design == "seq2one" else 5
    xs, ys = run.source.batch(0)
    want = model.run_for_loss(xs, ys).loss.item() / terms
    assert run.update()[0] == pytest.approx(want, rel=1e-12)
    run.measure()
    hx, hy = run.source.held
    with tg.no_grad():
        assert run.held[-1][1] == pytest.approx(model.run_for_loss(hx, hy).loss.item() / terms,
                                                rel=1e-12)


def test_the_views_of_a_run_with_nan_jacobians_show_what_is_finite_and_say_why():
    # rnn.spectra refused the NaN Jacobians of t >= 3 (a NaN in x(3)), and the views failed
    # as a whole: no connectivity, no ‖∂L/∂h(t)‖, only "the views failed: AnomalyError"
    def task(batch, seed):
        rng = np.random.default_rng(seed)
        xs = rng.normal(size=(6, batch, 3))
        xs[2] = np.nan
        return xs, rng.integers(0, 2, (6, batch))
    model = rnn.ElmanRNN(3, 4, 2, seed=0)
    run = _user_run(model, task)
    with np.errstate(invalid="ignore"):
        views = run.views()
        jacs = rnn.jacobians(model, *run.source.probe[:1], ys=run.source.probe[1])
    np.testing.assert_allclose(views["spectra"]["norm"][:2],
                               [np.linalg.norm(J, 2) for J in jacs[:2]], rtol=1e-5)
    assert views["spectra"]["norm"][2:] == [None] * 4 and views["lag"] is None
    cells = views["connectivity"]["cells"]
    assert cells[0][0] is not None and cells[5][0] is None and cells[2][4] == 0.0
    assert any("not finite at 4 step(s) (first t=3)" in n for n in views["notes"])


def _user_run_cut(model, task, trunc):
    from viz.playground import _user_source
    config = check_config(dict(design=model.name, task="custom", rho=0.0, batch=4, trunc=trunc,
                               optimizer="sgd", lr=0.05), custom=True)
    return Run(config, model, _user_source(model, task, 4, 0), model.state_dict())


def _whole_tasks():
    rng = np.random.default_rng
    return {
        "vec2seq": (lambda: rnn.VectorToSequence(3, 4, 2, seed=0),
                    lambda b, s: (rng(s).normal(size=(b, 3)), rng(s + 1).integers(0, 2, (10, b)))),
        "seq2one": (lambda: rnn.SequenceToOne(3, 4, 2, seed=0),
                    lambda b, s: (rng(s).normal(size=(10, b, 3)), rng(s + 1).integers(0, 2, b))),
        "encdec": (lambda: rnn.EncoderDecoder(3, 4, 2, seed=0),
                   lambda b, s: (rng(s).normal(size=(7, b, 3)), rng(s + 1).integers(0, 2, (10, b)))),
    }


@pytest.mark.parametrize("design", ["vec2seq", "seq2one", "encdec"])
def test_a_model_whose_sequences_cannot_be_cut_refuses_a_trunc_shorter_than_them(design):
    # the update cut xs and ys at [i*trunc:(i+1)*trunc] whatever they were: a VectorToSequence's
    # vectors (B, n) along the batch, a SequenceToOne's labels (B,) too (ShapeErrors, or with
    # B <= trunc < T half the targets silently dropped); now refused before any update
    make, task = _whole_tasks()[design]
    with pytest.raises(tg.ConfigError, match=r"viz\.playground: trunc 4 would cut the task's "
                                             r"sequences of 10 steps.*set trunc >= 10"):
        _user_run_cut(make(), task, 4)
    with pytest.raises(tg.ConfigError, match=r"trunc 9 would cut the task's sequences of 10"):
        _user_run_cut(make(), task, 9)


def test_a_vector_to_sequence_with_trunc_at_least_its_length_trains_on_whole_sequences():
    # B = 4 <= trunc = 5 < T = 10 trained on the first 5 targets of each batch, then on an
    # empty batch of vectors: every update must be the loss of the whole batch (T steps, B rows)
    import bptt_reference as ref
    make, task = _whole_tasks()["vec2seq"]
    model = make()
    run = _user_run_cut(model, task, 10)
    for k in range(3):
        params = {n: v.copy() for n, v in model.state_dict().items()}
        x, ys = task(4, 0 * 100_003 + k)
        want = ref.vector_to_sequence(params, x, ys)[0]
        loss, _ = run.update()
        assert abs(loss - want / 10) < 1e-12
    assert run._per_sequence() == 1 and run.carried == {}


def test_a_jordan_network_cut_into_chunks_carries_its_fed_back_output():
    # the update carried {"h0": last} whatever the model: a JordanRNN's second chunk was a
    # TypeError (no h0), and a fed-back output would restart from zeros; it now carries what
    # model.carry gives, as rnn.truncated_bptt does.  Teacher-forced steps decouple, so each
    # chunk's loss is the sum of its steps' own numpy losses with f(0) = onehot(y(start-1)).
    import bptt_reference as ref
    model = rnn.JordanRNN(3, 4, 2, seed=0)
    rng = np.random.default_rng

    def task(b, s):
        return rng(s).normal(size=(10, b, 3)), rng(s + 1).integers(0, 2, (10, b))
    run = _user_run_cut(model, task, 4)
    xs, ys = task(4, 0)
    for start, stop in ((0, 4), (4, 8), (8, 10)):
        p = {n: v.copy() for n, v in model.state_dict().items()}
        f = ref.previous_targets(ys, 2)
        h = np.tanh(p["b"] + f @ p["W"].T + xs @ p["U"].T)
        o = p["c"] + h @ p["V"].T
        terms = [ref.cross_entropy_rows(o[t], ys[t]).mean() for t in range(start, stop)]
        loss, _ = run.update()
        assert abs(loss - sum(terms) / (stop - start)) < 1e-12
        if stop < 10:
            assert set(run.carried) == {"y0"}
    assert run.steps == 3


@pytest.mark.parametrize("design", ["jordan", "leaky_skip"])
def test_a_users_model_saved_inside_a_sequence_resumes_with_all_it_carries(design, tmp_path):
    # what a chunk carries beyond h0 (a Jordan network's fed-back output y0, a skip
    # connection's past states) is written and read back: the resumed run goes on bit for bit
    from viz.playground import Engine, _user_source
    rng = np.random.default_rng

    def make():
        if design == "jordan":
            return rnn.JordanRNN(3, 4, 2, seed=0)
        return rnn.LeakyRNN(3, 4, 2, skip=2, seed=0)

    def task(b, s):
        return rng(s).normal(size=(10, b, 3)), rng(s + 1).integers(0, 2, (10, b))
    config = check_config(dict(design=make().name, task="custom", rho=0.0, batch=2, trunc=4),
                          custom=True)
    whole = make()
    engine = Engine(config, whole, _user_source(whole, task, 2, 0))
    engine.stop(timeout=5)
    for _ in range(6):
        engine._one_update()
    want = (list(engine.runs[0].losses), engine.runs[0].digest())
    model = make()
    engine = Engine(config, model, _user_source(model, task, 2, 0), out=str(tmp_path))
    engine.stop(timeout=5)
    for _ in range(4):            # the 2nd chunk of the 2nd sequence is next
        engine._one_update()
    engine.save()
    saved = tg.read_checkpoint(engine._path(0)).arrays
    assert any(k.startswith("extra/carried_" + ("y0" if design == "jordan" else "past/"))
               for k in saved)
    engine._one_update()
    engine.resume()
    assert engine.runs[0].steps == 4
    for _ in range(2):
        engine._one_update()
    assert (engine.runs[0].losses, engine.runs[0].digest()) == want


def test_an_old_checkpoint_without_the_fed_back_output_names_what_is_missing_and_why(tmp_path):
    # a ConditionalRNN saved inside a sequence by a playground that carried {"h0": last} alone
    # (no carried_y0) was refused as "a file edited by hand?": it now names carried_y0, what it
    # is and where the file is from, and still changes nothing
    from viz.playground import Engine, _user_source
    rng = np.random.default_rng

    def task(b, s):
        return rng(s).normal(size=(10, b, 3)), rng(s + 1).normal(size=(10, b, 2))
    model = rnn.ConditionalRNN(3, 4, 2, seed=0, criterion="squared_error")
    config = check_config(dict(design=model.name, task="custom", rho=0.0, batch=2, trunc=4),
                          custom=True)
    engine = Engine(config, model, _user_source(model, task, 2, 0), out=str(tmp_path))
    engine.stop(timeout=5)
    engine._one_update()
    engine.save()
    path, run = engine._path(0), engine.runs[0]
    arrays = tg.read_checkpoint(path).arrays
    assert {"extra/carried", "extra/carried_y0"} <= set(arrays)
    rnn.save_training(path, run.trainer, {"losses": np.array(run.losses),   # as it was written
                                          "norms": np.array(run.norms),
                                          "carried": arrays["extra/carried"]},
                      meta=tg.read_meta(path)["user"])
    engine._one_update()
    digest, carried = run.digest(), {k: v.data.copy() for k, v in run.carried.items()}
    with pytest.raises(tg.CheckpointError) as caught:
        engine.resume()
    message = str(caught.value)
    assert "carried_y0 (the output y(t-1) fed back" in message
    assert "older than these arrays" in message and "by hand" not in message
    assert engine.runs[0] is run and run.steps == 2 and run.digest() == digest
    assert all(np.array_equal(run.carried[k].data, v) for k, v in carried.items())


def test_a_conditional_regression_net_cut_into_chunks_feeds_the_last_target_of_the_chunk_before():
    # the playground carried {"h0": last} alone: a ConditionalRNN's chunk after the first
    # read y(0) = 0 instead of the target y(start-1) (no error: a silently other loss).  Each
    # chunk's loss against bptt_reference from the numpy state carried, 1e-12
    import bptt_reference as ref
    rng = np.random.default_rng

    def task(b, s):
        return rng(s).normal(size=(10, b, 3)), rng(s + 1).normal(size=(10, b, 2))
    model = rnn.ConditionalRNN(3, 4, 2, seed=0, criterion="squared_error")
    run = _user_run_cut(model, task, 4)
    xs, ys = task(4, 0)
    h = np.zeros((4, 4))
    for start in (0, 4, 8):
        p = model.state_dict()
        x, y = xs[start:start + 4], ys[start:start + 4]
        y0 = ys[start - 1] if start else None
        want = ref.conditional_regression(p, x, y, h0=h, y0=y0)[0] / len(x)
        loss, _ = run.update()
        assert abs(loss - want) < 1e-12
        f = np.zeros((4, 2)) if y0 is None else y0
        for t in range(len(x)):
            h = np.tanh(p["b"] + h @ p["W"].T + x[t] @ p["U"].T + f @ p["R"].T)
            f = y[t]


def test_a_snapshot_says_which_update_its_views_are_of_when_the_curves_went_on():
    # a playing run publishes its curves (and the title's update and parameter digest) more
    # often than its views: the snapshot showed update 2 beside views of update 0, saying nothing
    from viz.playground import Engine
    engine = Engine(check_config({"hidden": 4, "delay": 2, "batch": 2}))
    engine.stopping.set()
    engine.wake.set()
    engine.thread.join()            # stopped: the test thread is the only one touching the runs
    run = engine.runs[0]
    assert json.loads(engine.snapshot())["runs"][0]["views"]["update"] == 0
    run.update()
    run.update()
    engine._publish(views=False)
    shown = json.loads(engine.snapshot())["runs"][0]
    assert shown["steps"] == 2 and shown["views"]["update"] == 0
    engine._publish(views=True)
    shown = json.loads(engine.snapshot())["runs"][0]
    assert shown["steps"] == 2 and shown["views"]["update"] == 2


def test_stop_waits_for_the_update_in_progress_and_saves_the_run_it_ends_with(tmp_path):
    # stop() waited 0.5 s for the training thread and went on: with an update still running,
    # it returned while the thread went on changing the user's model, and saved nothing into
    # out, without a word
    inside, go = threading.Event(), threading.Event()
    calls = []

    def task(batch, seed):
        calls.append(seed)
        if len(calls) == 2:     # the first update's batch (the first call made the held-out one)
            inside.set()
            go.wait(1.5)        # longer than the old wait; stop() now waits for it whatever it is
        return rnn.problems.running_parity(batch, 4, seed)

    model = rnn.ElmanRNN(2, 3, 2, seed=0)
    started = viz.playground(model, task, out=str(tmp_path))
    try:
        started.engine.command("step")
        assert inside.wait(WAIT)
    finally:
        started.stop()
    alive = started.engine.thread.is_alive()
    at_stop = {k: np.array(v) for k, v in model.state_dict().items()}
    go.set()
    started.engine.thread.join(WAIT)
    assert not alive
    assert all(np.array_equal(at_stop[k], v) for k, v in model.state_dict().items())
    saved = tg.read_meta(started.engine._path(0))
    assert saved["user"]["steps"] == 1 and started.engine.runs[0].steps == 1


def test_snapshots_read_by_requests_racing_a_playing_run_are_each_of_one_update(client):
    # two request threads read /api/state as fast as they can while the run plays: every
    # snapshot's update, loss curve and parameter digest belong to one update (the digest
    # that of a fresh run trained to that update), whatever the interleaving
    config = {"hidden": 8, "delay": 3, "batch": 4, "seed": 5}
    client.post("/api/reset", {"config": config})
    _until(lambda: (s := client.state())["config"]["seed"] == 5
           and s["runs"][0]["steps"] == 0, "the reset")
    client.post("/api/play")
    seen, errors = [], []

    def reader():
        try:
            while True:
                run = client.state()["runs"][0]
                seen.append((run["steps"], run["digest"], run["loss"], run["views"]["update"]))
                if run["steps"] >= 40:
                    return
        except BaseException as e:          # noqa: BLE001 - reported below
            errors.append(e)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for r in readers:
        r.start()
    for r in readers:
        r.join(WAIT)
    client.post("/api/pause")
    assert errors == [] and not any(r.is_alive() for r in readers)
    for steps, _, loss, views in seen:
        assert (loss[-1][0] if loss else 0) == steps and views <= steps
    digests = {steps: digest for steps, digest, _, _ in seen}
    fresh = Run(check_config(config))
    for steps in sorted(digests)[:: max(1, len(digests) // 4)] + [max(digests)]:
        while fresh.steps < steps:
            fresh.update()
        assert digests[steps] == fresh.digest(), f"update {steps}"


def test_a_task_that_gives_a_mask_is_refused_not_trained_on_its_padding():
    # the playground trains (xs, ys) without a mask: a task giving (xs, ys, mask) of padded
    # sequences stopped viz.playground with a bare "ValueError: too many values to unpack";
    # it now says why (the padding would be trained on) and what to do.  A batch drawn later
    # that gives one is refused as well, changing nothing
    from viz.playground import _user_source
    model = rnn.ElmanRNN(3, 4, 2, seed=0)

    def padded(b, s):
        r = np.random.default_rng(s)
        mask = np.ones((6, b))
        mask[4:, 0] = 0
        return r.normal(size=(6, b, 3)), r.integers(0, 2, (6, b)), mask
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(tg.ConfigError, match=r"^viz\.playground: the task gave 3 arrays .*"
                                             r"padded steps would be trained on"):
        viz.playground(model, padded)
    with pytest.raises(tg.ConfigError, match=r"must give a pair \(xs, ys\), got 1 array$"):
        viz.playground(model, lambda b, s: (np.zeros((6, b, 3)),))
    with pytest.raises(tg.ConfigError, match=r"must give a pair \(xs, ys\), got a dict$"):
        viz.playground(model, lambda b, s: {"xs": np.zeros((6, b, 3))})
    calls = []

    def later(b, s):            # the held-out batch is a pair, the first training batch not
        calls.append(s)
        xs, ys, mask = padded(b, s)
        return (xs, ys) if len(calls) == 1 else (xs, ys, mask)
    run = _user_run_cut(model, later, 6)
    with pytest.raises(tg.ConfigError, match="the task gave 3 arrays"):
        run.update()
    assert run.steps == 0 and run.losses == []
    assert all(np.array_equal(v, before[k]) for k, v in model.state_dict().items())


def test_settings_of_the_built_in_models_are_refused_for_a_users_model_not_ignored():
    # viz.playground(model, task, hidden=64) was accepted and trained the model's own 4 units
    # while the page said hidden 64; design="lstm" named an Elman network "lstm: elman with
    # every weight trained"; a reset from the page with another hidden, delay or length (the
    # controls were enabled) changed nothing but the page's numbers
    model = rnn.ElmanRNN(2, 4, 2, seed=0)

    def task(batch, seed):
        return rnn.problems.running_parity(batch, 6, seed)
    for key, value in (("hidden", 64), ("design", "lstm"), ("delay", 9), ("length", 7)):
        with pytest.raises(tg.ConfigError, match=rf"^viz\.playground: {key}= is a setting of the "
                                                 r"built-in models.*leave it out"):
            viz.playground(model, task, **{key: value})
    started = viz.playground(model, task)
    try:
        client = Client(started)
        state = client.state()
        assert state["config"]["hidden"] == 4 and state["config"]["design"] == "elman"
        status, payload = client.post("/api/reset", {"config": dict(state["config"], hidden=64)})
        assert status == 400 and "hidden 64: a model given from Python keeps its own (hidden 4)" \
            in json.loads(payload)["error"]
        # what the page sends: its design and task selects cannot show "custom" (empty values)
        page = dict(state["config"], design="", task="", lr=0.05)
        assert client.post("/api/reset", {"config": page})[0] == 200
        assert client.post("/api/reset", {"config": {"lr": 0.02}})[0] == 200    # the rest: own
        state = _until(lambda: (s := client.state())["config"]["lr"] == 0.02 and s, "the reset")
        assert state["config"]["design"] == "elman" and state["config"]["task"] == "custom"
        assert state["config"]["hidden"] == 4 and state["runs"][0]["name"] == "elman (4 hidden)"
    finally:
        started.stop()
    # a model of more units than the built-in ones may have: its own size, shown as it is
    assert check_config({"hidden": 600, "rho": 0.0}, custom=True)["hidden"] == 600
    with pytest.raises(BadRequest, match="hidden must be in 1..512"):
        check_config({"hidden": 600})


def test_a_task_whose_training_sequences_are_longer_than_its_held_out_ones_is_refused():
    # the chunks per sequence were counted on the held-out batch (6 steps: 2 chunks of 3), so
    # a training sequence of 10 steps was trained on its first 6 only, update after update,
    # without a word (and a shorter one ran out of chunks: a bare IndexError)
    model = rnn.ElmanRNN(3, 4, 2, seed=0)

    def task(b, s, train=10):
        T = 6 if s >= 2**40 else train          # the held-out batch's seed is 2**40 + seed
        r = np.random.default_rng(s)
        return r.normal(size=(T, b, 3)), r.integers(0, 2, (T, b))
    for train in (10, 3):
        run = _user_run_cut(model, lambda b, s: task(b, s, train), 3)
        before = run.digest()
        with pytest.raises(tg.ShapeError, match=rf"2 per sequence as its held-out batch of 6 "
                                                rf"steps has them, but the batch of update 1 has "
                                                rf"{train} steps"):
            run.update()
        assert run.steps == 0 and run.digest() == before
    run = _user_run_cut(model, lambda b, s: task(b, s, 5), 3)   # 5 steps: 2 chunks as well
    run.update()
    run.update()
    assert run.steps == 2


def test_a_new_run_keeps_an_earlier_runs_checkpoints_it_would_overwrite(tmp_path, capsys,
                                                                       monkeypatch):
    # `tinygraph playground --out DIR` saved into DIR/playground_0.npz when the server stopped,
    # over the checkpoint an earlier playground had left there: opening the page and pressing
    # Ctrl-C lost yesterday's run.  The first save of a run that did not resume them keeps
    # them aside (all of one save together), as the demo keeps its previous checkpoint
    from viz.playground import Engine
    config = check_config({"hidden": 4, "delay": 2, "batch": 2, "compare": "lstm"})
    first = Engine(config, out=str(tmp_path))
    first.stop(timeout=5)
    first._one_update()
    first.save()
    saved = {i: (tmp_path / f"playground_{i}.npz").read_bytes() for i in (0, 1)}
    second = Engine(check_config({"hidden": 5, "delay": 2, "batch": 2}), out=str(tmp_path))
    second.stop(timeout=5)
    second.save()
    second._one_update()
    second.save()               # its own file now: replaced, nothing more kept
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "playground_0.npz", "playground_0.previous-1.npz", "playground_1.previous-1.npz"]
    assert [(tmp_path / f"playground_{i}.previous-1.npz").read_bytes() for i in (0, 1)] \
        == [saved[0], saved[1]]
    assert second.kept == [str(tmp_path / f"playground_{i}.previous-1.npz") for i in (0, 1)]
    assert tg.read_meta(tmp_path / "playground_0.npz")["user"]["steps"] == 1
    third = Engine(check_config({"hidden": 5, "delay": 2, "batch": 2}), out=str(tmp_path))
    third.stop(timeout=5)
    third.resume()              # goes on from the second run's file: its saves replace it
    third._one_update()
    third.save()
    assert third.kept == [] and tg.read_meta(tmp_path / "playground_0.npz")["user"]["steps"] == 2
    fourth = Engine(check_config({"hidden": 5, "delay": 2, "batch": 2}), out=str(tmp_path))
    fourth.stop(timeout=5)
    fourth.save()
    assert fourth.kept == [str(tmp_path / "playground_0.previous-2.npz")]
    module = sys.modules["viz.playground"]

    def sleep(seconds):                         # the command's wait loop: Ctrl-C at once
        raise KeyboardInterrupt
    monkeypatch.setattr(module, "time", types.SimpleNamespace(
        sleep=sleep, perf_counter=time.perf_counter, thread_time=time.thread_time))
    capsys.readouterr()
    assert main(["playground", "--no-browser", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"kept the earlier run's checkpoint as {tmp_path / 'playground_0.previous-3.npz'}" in out
    assert (tmp_path / "playground_0.npz").exists()
