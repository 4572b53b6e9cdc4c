"""viz.explore: what the page is made of (the engine's numbers), how it is written, and the
`tinygraph explore` command.  The page's behaviour in a browser is tested in
test_viz_explorer_browser.py."""

import os
import re

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz
from viz import explorer as explorer_module
from viz.cli import MODELS, main
from viz.derive import derive, param_behind
from viz_layout import readme_attention_decoder


def _elman(steps=6, seed=2):
    model = rnn.ElmanRNN(4, 3, 4, seed=seed)
    rng = np.random.default_rng(seed + 1)
    return model, rng.integers(0, 4, steps), rng.integers(0, 4, steps)


def test_the_page_holds_the_engines_values_gradients_connectivity_and_sweep():
    model, xs, ys = _elman()
    page = viz.explore(model, xs, ys)
    bundle = page.data["bundles"][0]
    run = model.run(xs, ys)
    variables = derive([run.loss], hide=("a",))
    assert page.data["names"] == variables.names
    for (name, t), node in variables.nodes.items():
        entry = bundle["vars"][name]
        key = "s" if t is None else str(t)
        np.testing.assert_allclose(entry["value"][key], node.data.reshape(-1), rtol=1e-5)
        if node.requires_grad:
            (g,) = tg.grad(run.loss, [node], retain_graph=True)
            np.testing.assert_allclose(entry["grad"][key], g.reshape(-1), rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(bundle["diag"]["connectivity"]["h"]["cells"],
                               rnn.connectivity(model, xs, ys), rtol=1e-5)
    key_of = {id(n): k for k, n in variables.nodes.items()}
    order = tg.sweep_order(run.loss)
    assert [(variables.names[i], t) for i, t, _ in bundle["sweep"]] == \
        [key_of[id(n)] for n in order if id(n) in key_of]
    assert bundle["sweep_total"] == len(order)
    for t in range(1, 7):          # each step's op nodes carry their places in the engine's sweep
        places = {n[2] for n in bundle["ops"][str(t)]["nodes"]} - {None}
        assert places == {i for i, n in enumerate(order)   # (W.T, made at step 1, is "param W")
                          if n.scope == f"elman/t={t}" and n.op is not None
                          and param_behind(n) is None}
    norms, radii = rnn.spectra(rnn.jacobians(model, xs))
    np.testing.assert_allclose(bundle["diag"]["spectra"]["norm"], norms, rtol=1e-5)
    np.testing.assert_allclose(bundle["diag"]["ratio"], rnn.gradient_ratio(model, xs, ys),
                               rtol=1e-5)


def test_the_page_is_one_file_that_fetches_nothing(tmp_path):
    model, xs, ys = _elman()
    path = viz.explore(model, xs, ys).save(tmp_path / "sub" / "page.html")
    assert os.listdir(tmp_path / "sub") == ["page.html"]       # no temporary file left
    text = open(path, encoding="utf-8").read()
    assert "<script src" not in text and "<link" not in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "fetch(" not in text and "XMLHttpRequest" not in text


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    model, xs, ys = _elman()
    page = viz.explore(model, xs, ys)
    path = tmp_path / "page.html"
    path.write_text("old")

    def fail(*_):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(explorer_module.os, "replace", fail)
    with pytest.raises(viz.OutputPathError, match="No space left"):
        page.save(path)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["page.html"]


def test_repr_html_is_the_page_in_an_iframe():
    model, xs, ys = _elman(steps=3)
    page = viz.explore(model, xs, ys)
    shown = page._repr_html_()
    assert shown.startswith("<iframe srcdoc=") and "explorer-data" in shown


def test_before_training_is_a_second_set_of_numbers_and_the_model_is_restored():
    model, xs, ys = _elman()
    before = rnn.ElmanRNN(4, 3, 4, seed=9).state_dict()
    after = model.state_dict()
    page = viz.explore(model, xs, ys, before=before)
    labels = [b["label"] for b in page.data["bundles"]]
    assert labels == ["before training", "after training"]
    assert all(np.array_equal(after[k], v) for k, v in model.state_dict().items())
    with tg.no_grad():
        other = rnn.ElmanRNN(4, 3, 4, seed=9)
        assert page.data["bundles"][0]["loss"] == pytest.approx(other.loss(xs, ys).item(), rel=1e-5)
        assert page.data["bundles"][1]["loss"] == pytest.approx(model.loss(xs, ys).item(), rel=1e-5)


def test_a_long_run_is_summarised_never_dropped():
    model, xs, ys = _elman(steps=420)
    page = viz.explore(model, xs, ys)
    data = page.data
    bundle = data["bundles"][0]
    assert len(data["windows"]) == explorer_module.MAX_WINDOWS
    assert tuple(data["windows"][0]) == (1, 10)
    assert tuple(data["windows"][-1]) == (411, 420)
    heat = bundle["diag"]["connectivity"]["h"]
    assert heat["sampled"] and len(heat["rows"]) == explorer_module.SAMPLED_ROWS
    assert len(heat["cells"][0]) == explorer_module.HEAT_BINS
    assert {str(t) for t in range(1, 421)} <= set(bundle["vars"]["h"]["norm"])   # every step
    full = rnn.connectivity(model, xs, ys, rows=heat["rows"][:2])
    edges = heat["col_edges"]
    for i, t in enumerate(heat["rows"][:2]):
        want = [np.max(full[t - 1, a:b]) for a, b in zip(edges, edges[1:])]
        np.testing.assert_allclose(heat["cells"][i], want, rtol=1e-5)


@pytest.mark.parametrize("model", ["elman", "jordan", "seq2one", "vec2seq", "conditional", "system"])
def test_explore_command_writes_a_page_for_every_model(tmp_path, model, capsys):
    assert main(["explore", "--model", model, "--steps", "12", "--out", str(tmp_path)]) == 0
    path = tmp_path / f"{model}_explorer.html"
    assert capsys.readouterr().out.strip() == str(path)
    assert "explorer-data" in path.read_text()


def test_explore_command_with_a_checkpoint_shows_before_and_after(tmp_path, capsys):
    assert main(["train", "--task", "year", "--steps", "3", "--out", str(tmp_path)]) == 0
    ckpt = str(tmp_path / "year_checkpoint.npz")
    assert main(["explore", "--model", "seq2one", "--checkpoint", ckpt, "--out", str(tmp_path)]) == 0
    text = (tmp_path / "seq2one_explorer.html").read_text()
    assert "before training" in text and "after training" in text
    capsys.readouterr()
    assert main(["explore", "--model", "elman", "--checkpoint", ckpt, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a seq2one model (task year), not elman" in err[0]


def test_explore_of_something_that_is_not_a_model_names_what_it_got():
    with pytest.raises(tg.DTypeError, match="viz.explore: .* got dict"):
        viz.explore({}, np.zeros(3, dtype=int))


def test_explore_with_an_h0_the_model_does_not_take_names_the_function_and_argument():
    # viz.explore(EncoderDecoder, ..., h0=...) raised a bare TypeError from run()
    model = rnn.EncoderDecoder(4, 5, 4)
    with pytest.raises(tg.ConfigError, match=r"viz\.explore: EncoderDecoder\.run takes no h0="):
        viz.explore(model, np.array([0, 1, 2]), np.array([1, 2]), h0=np.zeros(5))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_explore_command_writes_a_page_for_every_model_of_draw_or_says_why_not(name, tmp_path,
                                                                           capsys):
    argv = ["explore", "--model", name, "--out", str(tmp_path), "--steps", "6"]
    if name == "recursive":       # a tree, not an unroll over time: no choice of explore, exit 2
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and "invalid choice: 'recursive'" in capsys.readouterr().err
    else:
        assert main(argv) in (0, None) and (tmp_path / f"{name}_explorer.html").stat().st_size > 0


# ------------------------------------------------------------------ the run it was given

def _shown_states(page, name="h"):
    values = page.data["bundles"][-1]["vars"][name]["value"]
    return {int(k): np.array(v) for k, v in values.items() if k != "s"}


def test_a_carried_undetached_h0_shows_this_runs_states_not_the_earlier_runs():
    model, xs, ys = _elman(steps=7)
    last = model.run(xs[:5], ys[:5]).last            # the earlier run stays behind it
    page = viz.explore(model, xs, ys, h0=last)
    run = model.run(xs, ys, h0=last.data)
    shown = _shown_states(page)
    assert sorted(shown) == list(range(8))
    np.testing.assert_allclose(shown[0], last.data, rtol=1e-5)
    for t in range(1, 8):
        np.testing.assert_allclose(shown[t], run.parts["h"][t - 1].data, rtol=1e-5, err_msg=t)
    fresh = viz.explore(model, xs, ys, h0=last.data).data["bundles"][0]
    bundle = page.data["bundles"][0]
    assert bundle["loss"] == fresh["loss"] and bundle["diag"] == fresh["diag"]
    for t in range(1, 8):
        assert bundle["vars"]["h"]["grad"][str(t)] == fresh["vars"]["h"]["grad"][str(t)]
    (g0,) = tg.grad(model.run(xs, ys, h0=last).loss, [last])    # the carried h0 needs its gradient
    np.testing.assert_allclose(bundle["vars"]["h"]["grad"]["0"], g0, rtol=1e-5)
    assert page.data["svg"]["summary"].count("<g id=\"node") == \
        viz.explore(model, xs, ys, h0=last.data).data["svg"]["summary"].count("<g id=\"node")


def test_a_decoder_reading_another_models_states_shows_its_own_and_names_theirs_apart():
    rng = np.random.default_rng(1)
    encoded = []                                      # another model's h(1..7), scopes "enc/t=k"
    for k in range(1, 8):
        with tg.scope("enc"), tg.scope(f"t={k}"):
            encoded.append(tg.tensor(rng.normal(size=3), requires_grad=True, name="h"))
    memory = tg.stack(encoded)
    W = tg.Parameter(np.random.default_rng(2).normal(0, 0.5, (3, 3)), name="W")
    V = tg.Parameter(np.random.default_rng(3).normal(0, 0.5, (4, 3)), name="V")

    def step(s):                                       # dot attention over the encoder's states
        alpha = tg.softmax(memory @ s, axis=0).named("alpha")
        return ((alpha @ memory).named("ctx") + s @ W.T).tanh()
    dec = rnn.Recurrence(step, [W, V], 3, readout=lambda s: s @ V.T, name="dec", state_name="s")
    ys = np.array([1, 2, 3, 0, 1])
    page = viz.explore(dec, None, ys, h0=np.full(3, 0.1), steps=5)
    run = dec.run(None, ys, h0=np.full(3, 0.1), steps=5)
    shown = _shown_states(page, "s")
    assert sorted(shown) == list(range(6))
    for t in range(1, 6):
        np.testing.assert_allclose(shown[t], run.parts["s"][t - 1].data, rtol=1e-5, err_msg=t)
    assert "h" not in page.data["names"]              # the encoder's states are not this run's h(k)
    for k in range(1, 8):                             # each is an input of its own, as it is
        value = page.data["bundles"][0]["vars"][f"h@enc/t={k}"]["value"]["s"]
        np.testing.assert_allclose(value, encoded[k - 1].data, rtol=1e-5)


def test_a_decoder_over_an_encoder_memory_whose_graph_a_training_step_freed_is_explored():
    # the README's attention example, trained one step (its backward frees the encoder's graph
    # behind the memory): the page raised GraphFreedError "backward: ... call
    # backward(retain_graph=True)"; now the decoder's own variables get their gradients, the
    # encoder's states (behind the freed graph) none
    decoder = readme_attention_decoder()
    xs, ys = np.random.default_rng(1).normal(size=(3, 4)), np.array([0, 2, 1])
    rnn.Trainer(decoder, lr=0.1).step(xs, ys)
    page = viz.explore(decoder, xs, ys)
    bundle = page.data["bundles"][0]
    run = decoder.run(xs, ys)
    grads = tg.grad(run.loss, run.parts["h"], retain_graph=True)
    for t in range(1, 4):
        np.testing.assert_allclose(bundle["vars"]["h"]["grad"][str(t)], grads[t - 1], rtol=1e-5)
    assert bundle["vars"]["h@elman/t=1"]["grad"] == {"s": None}
    h = page.data["names"].index("h")
    swept = [(t, i) for name, t, i in bundle["sweep"] if name == h]   # the sweep grad ran
    assert [t for t, _ in swept] == [3, 2, 1] and all(i < bundle["sweep_total"] for _, i in swept)


# ------------------------------------------------------------------ bad input

@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # numpy's, on the non-finite run
@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("where", ["model", "before"])
def test_a_non_finite_parameter_is_shown_as_such(value, where):
    model, xs, ys = _elman()
    bad = {k: v.copy() for k, v in model.state_dict().items()}
    bad["W"][0, 1] = value
    if where == "model":
        model.load_state_dict(bad)
        page = viz.explore(model, xs, ys)
    else:
        page = viz.explore(model, xs, ys, before=bad)
    bundle = page.data["bundles"][0]
    assert bundle["loss"] in ("NaN", "Infinity")
    assert any("not finite" in note for note in bundle["diag"]["notes"])
    shown = [v for vals in bundle["vars"]["h"]["value"].values() for v in vals]
    assert "NaN" in shown or "Infinity" in shown or "-Infinity" in shown
    assert "NaN" in page.html or "Infinity" in page.html


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_parameters_near_the_largest_float_give_a_page_with_their_histograms():
    model, xs, ys = _elman()
    big = {k: np.full_like(v, 1e308) * np.sign(np.arange(v.size).reshape(v.shape) % 2 - 0.5)
           for k, v in model.state_dict().items()}
    model.load_state_dict(big)
    page = viz.explore(model, xs, ys)
    hist = page.data["bundles"][0]["vars"]["h"]["vhist"]["1"]
    assert sum(hist["counts"]) + hist["nonfinite"] == 3


def test_a_title_that_is_not_a_string_is_refused_by_name():
    model, xs, ys = _elman()
    with pytest.raises(tg.DTypeError, match="viz.explore: title must be a str, got int"):
        viz.explore(model, xs, ys, title=123)


def test_a_lone_surrogate_in_the_title_is_kept_in_the_data_and_the_page_saves(tmp_path):
    model, xs, ys = _elman()
    page = viz.explore(model, xs, ys, title="runs \ud800 here")
    assert page.data["title"] == "runs \ud800 here"
    path = page.save(tmp_path / "p.html")
    text = open(path, encoding="utf-8").read()
    assert "<title>runs \ufffd here</title>" in text


def test_ids_carry_the_symbols_they_stand_for_and_only_vectors_have_histograms():
    vocab = rnn.Vocab("hello world")
    model = rnn.ElmanRNN(len(vocab), 3, len(vocab), seed=0)
    ids = vocab.encode("hello wor")
    page = viz.explore(model, ids[:-1], ids[1:], symbols=vocab)
    assert page.data["symbols"] == vocab.tokens
    x = page.data["bundles"][0]["vars"]["x"]
    assert x["ids"] and x["value"]["1"] == [int(ids[0])]
    assert x["vhist"]["1"] is None                       # an id is no distribution
    h = page.data["bundles"][0]["vars"]["h"]
    assert not h["ids"] and sum(h["vhist"]["1"]["counts"]) == 3
    assert page.data["bundles"][0]["vars"]["L"]["vhist"]["1"] is None     # a scalar neither
    with pytest.raises(tg.DTypeError, match="symbols must be"):
        viz.explore(model, ids[:-1], ids[1:], symbols="helo wrd")


def test_fewer_symbols_than_the_ids_of_the_model_are_refused_naming_both_counts():
    # symbols=["h", "e"] for a model of 8 ids made a page showing ids 0 and 1 as 'h' and 'e'
    # and the other six as bare ids, without a word
    vocab = rnn.Vocab("hello world")
    ids = vocab.encode("hello wor")
    model = rnn.ElmanRNN(len(vocab), 3, len(vocab), seed=0)
    with pytest.raises(tg.ConfigError, match=r"symbols has 2 entries but elman's xs are ids "
                                             r"0\.\.7 \(n_in=8\)"):
        viz.explore(model, ids[:-1], ids[1:], symbols=["h", "e"])
    classes = rnn.ElmanRNN(len(vocab), 3, 12, seed=0)     # the targets' ids reach further
    with pytest.raises(tg.ConfigError, match=r"symbols has 8 entries but elman's ys are ids "
                                             r"0\.\.11 \(n_out=12\)"):
        viz.explore(classes, ids[:-1], ids[1:], symbols=vocab)
    assert viz.explore(model, ids[:-1], ids[1:], symbols=vocab.tokens + ["extra"]).data[
        "symbols"][-1] == "extra"                          # more symbols than ids: each id has one


def test_the_lag_decay_of_a_skip_connection_says_it_is_the_one_step_chain_only():
    # LeakyRNN(skip=2): h(t) reads h(t-2) too, so ‖∂h(t)/∂h(t-k)‖ (k >= 2) is not the norm of the
    # product of one-step Jacobians the lag decay plots (here 0.885 vs 0.868 at k = 2 and
    # 0.846 vs 0.754 at k = 4); the page said nothing
    ids = np.random.default_rng(0).integers(0, 4, 8)
    model = rnn.LeakyRNN(4, 3, 4, skip=2, seed=1)
    notes = viz.explore(model, ids, ids).data["bundles"][-1]["diag"]["notes"]
    assert any("skip connection" in n and "h(t-2)" in n for n in notes)
    plain = viz.explore(rnn.LeakyRNN(4, 3, 4, seed=1), ids, ids).data["bundles"][-1]["diag"]
    assert not any("skip connection" in n for n in plain["notes"])
    # a delay of 1 reads h(t-1) itself: its path is in the one-step Jacobian, so the lag
    # decay is exact and the page says nothing (it said the decay left out 'the paths through
    # h(t-1)')
    one = viz.explore(rnn.LeakyRNN(4, 3, 4, skip=1, seed=1), ids, ids).data["bundles"][-1]
    assert not any("skip connection" in n for n in one["diag"]["notes"])


def test_a_model_with_dropout_is_explored_in_evaluation_mode_and_left_as_it_was():
    """Every view of the page comes from runs of the model: with dropout on, each run drew
    other masks (the loss and the connectivity of two different functions) and a seeded
    tg.Dropout moved on by 12 masks, changing the masks training gets next.  The page is
    computed with dropout off, says so, and leaves every module's mode and count as they were."""
    from test_rnn_silent_cases import _dropout_cell
    cell, drop = _dropout_cell(hold=True)
    rng = np.random.default_rng(1)
    xs, ys = rng.normal(size=(6, 2)), rng.integers(0, 4, size=6)
    page = viz.explore(cell, xs, ys)
    assert drop._calls == 0 and cell.training and drop.training
    cell.eval()
    expected = cell.run(xs, ys).loss.item()
    cell.train()
    bundle = page.data["bundles"][-1]
    assert abs(float(bundle["loss"]) - expected) <= 1e-5 * expected
    assert any("evaluation mode" in note and "(drop)" in note for note in bundle["diag"]["notes"])
    without = viz.explore(rnn.ElmanRNN(3, 4, 3, seed=0), [0, 1, 2], [1, 2, 0])
    assert not any("evaluation mode" in n for n in without.data["bundles"][-1]["diag"]["notes"])


def test_the_backward_chain_of_a_one_step_run_points_left():
    # a run of one step has no g(2) -> g(1) edge to tell that g runs backward in time: the edge
    # from its initial state (made at t=0, as h(0)) was drawn coming in from the left
    from viz_svg import parse
    page = viz.explore(rnn.BidirectionalRNN(3, 2, 3), np.array([0]), np.array([1]))
    for svg in [page.data["svg"]["summary"]] + page.data["svg"]["windows"]:
        nodes, edges, _ = parse(svg)
        text = {nid: n["text"] for nid, n in nodes.items()}
        into = {b: a for a, b, _ in edges if text.get(b) == ""}
        for name, rightward in (("h", True), ("g", False)):
            chain = [(into.get(a, a), b) for a, b, _ in edges if text.get(b) != ""
                     and text[into.get(a, a)].split(" ")[0] == name
                     and text[b].split(" ")[0] == name]
            assert len(chain) == 2
            assert all((nodes[b]["x"] > nodes[a]["x"]) == rightward for a, b in chain), name


@pytest.mark.parametrize("model, kwargs, error, message", [
    (rnn.ElmanRNN(3, 4, 3), {"part": "zz"}, tg.ConfigError,
     r"part='zz' is not a state part of elman; its parts are \['h'\]"),
    (rnn.LSTM(3, 4, 3), {"part": "c"}, tg.ConfigError, r"part='c'.*its parts are \['s', 'h'\]"),
    (rnn.ElmanRNN(3, 4, 3), {"part": ""}, tg.ConfigError, "part=''"),
    (rnn.ElmanRNN(3, 4, 3), {"part": 0}, tg.DTypeError, "part must be the name of a state part"),
    (rnn.JordanRNN(3, 4, 3), {"part": "zz"}, tg.ConfigError,
     r"part='zz' is no variable of jordan's run .*'h'"),
    (rnn.ElmanRNN(3, 4, 3), {"steps": 5}, tg.ConfigError, "steps=5, but elman takes no steps"),
    (rnn.ElmanRNN(3, 4, 3), {"steps": 0}, tg.ConfigError, "steps=0, but elman takes no steps"),
], ids=["unknown-part", "lstm-part", "empty-part", "part-not-str", "jordan-part", "steps",
        "steps-0"])
def test_explore_refuses_an_argument_it_cannot_use_naming_it(model, kwargs, error, message):
    # an unknown part was only a note on the page ("elman carries no state part 'zz'"), "" was
    # taken as the default part, and steps= with xs was a bare TypeError from model.run
    xs, ys = np.array([0, 1, 2]), np.array([1, 2, 0])
    with pytest.raises(error, match=message):
        viz.explore(model, xs, ys, **kwargs)


def test_explore_takes_a_valid_part_and_steps_where_the_run_takes_them():
    xs, ys = np.array([0, 1, 2]), np.array([1, 2, 0])
    assert viz.explore(rnn.LSTM(3, 4, 3), xs, ys, part="s").data["part"] == "s"
    assert viz.explore(rnn.JordanRNN(3, 4, 3), xs, ys, part="h").data["part"] == "h"
    page = viz.explore(rnn.VectorToSequence(3, 4, 3), np.array([1.0, 0.0, 0.0]), ys, steps=3)
    assert page.data["steps"] == 3


@pytest.mark.parametrize("bad, words", [
    ({"bad": np.zeros(2)}, r"names do not match the model: missing \['U', 'V', 'W', 'b', 'c'\]"),
    ("W", "state must be a dict"),
    (lambda m: {**m.state_dict(), "W": np.zeros((2, 2))}, r"'W' has shape \(2, 2\)"),
])
def test_a_bad_before_is_refused_naming_explore_before_and_leaves_the_model_as_it_was(bad, words):
    # was: the error began "load_state_dict:", a call the user never made
    model, xs, ys = _elman()
    bad = bad(model) if callable(bad) else bad
    kept = {name: (p._data, p._version) for name, p in model.named_parameters()}
    with pytest.raises(tg.CheckpointError, match=r"^viz\.explore\(before=\.\.\.\): " + words):
        viz.explore(model, xs, ys, before=bad)
    assert all(p._data is kept[name][0] and p._version == kept[name][1]
               for name, p in model.named_parameters())


def test_a_graph_freed_inside_the_run_is_refused_naming_viz_explore():
    # the step itself runs a backward (without retain_graph) through a node the loss reads:
    # the page's second try (without the tensors made outside the run) fails too, and the
    # error names the function the user called, not the engine's grad inside it
    rng = np.random.default_rng(1)
    Wd, V = (tg.Parameter(rng.normal(0, 0.5, s), name=n) for n, s in
             (("Wd", (4, 4)), ("V", (3, 4))))

    def step(s, x):
        energy = (Wd * Wd).sum()
        energy.backward()                      # frees the 'sum' node's graph
        return (s @ Wd.T + x).tanh() + 0.1 * energy
    decoder = rnn.Recurrence(step, [Wd, V], n_state=4, n_in=4, readout=lambda s: s @ V.T,
                             name="dec")
    xs, ys = rng.normal(size=(3, 4)), np.array([0, 2, 1])
    with pytest.raises(tg.GraphFreedError, match=r"^viz\.explore: the graph through 'sum' in "
                       r"scope '[^']*dec/t=\d' was freed by an earlier backward"):
        viz.explore(decoder, xs, ys)
