"""Modules, parameters and checkpoints: parameters in definition order,
state dicts that copy, an exact save/load round trip, atomic saves, and loads
that refuse a mismatched, missing, corrupt or truncated file without changing
any parameter.
"""

import os

import numpy as np
import pytest

import tinygraph as tg


class Cell(tg.Module):
    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.W = tg.Parameter(rng.standard_normal((3, 3)))
        self.not_a_param = np.ones(3)
        self.b = tg.Parameter(rng.standard_normal(3))


class Net(tg.Module):
    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.U = tg.Parameter(rng.standard_normal((3, 2)))
        self.cell = Cell(seed + 1)
        self.heads = [tg.Parameter(rng.standard_normal(2)), Cell(seed + 2)]
        self.c = tg.Parameter(rng.standard_normal(1))
        self.by_name = {"gate": tg.Parameter(rng.standard_normal(2)), "note": "not a parameter"}
        self.alias = self.U                     # the same parameter twice: listed once


NAMES = ["U", "cell.W", "cell.b", "heads.0", "heads.1.W", "heads.1.b", "c", "by_name.gate"]


def _snapshot(model):
    return {name: p.data.copy() for name, p in model.named_parameters()}


def _assert_unchanged(model, snapshot):
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, snapshot[name])


def test_parameter_is_a_leaf_that_requires_grad():
    p = tg.Parameter([1.0, 2.0], name="b")
    assert p.requires_grad and p.op is None and p.name == "b"


def test_parameters_come_in_definition_order_through_nested_modules_lists_and_dicts():
    net = Net()
    assert [name for name, _ in net.named_parameters()] == NAMES
    assert net.parameters() == [p for _, p in net.named_parameters()]
    assert net.parameters()[0] is net.U and net.parameters()[4] is net.heads[1].W


def test_zero_grad_clears_every_parameter_gradient():
    net = Net()
    sum(p.sum() for p in net.parameters()).backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_is_a_copy():
    net = Net()
    state = net.state_dict()
    assert list(state) == NAMES
    state["U"][...] = 0.0
    assert not np.all(net.U.data == 0.0)


def test_load_state_dict_copies_values_in():
    src, dst = Net(seed=0), Net(seed=10)
    state = src.state_dict()
    dst.load_state_dict(state)
    state["U"][...] = 0.0
    np.testing.assert_array_equal(dst.U.data, src.U.data)


def test_load_state_dict_writes_into_the_parameters_so_their_views_follow():
    # the loaded arrays used to replace the parameters' arrays: a view made before (W.T, W[0],
    # W.detach()) kept the old values without a word, while after an optimizer step it follows
    src, dst = Net(seed=0), Net(seed=10)
    views = [dst.U.T, dst.U[0], dst.U.detach(), dst.cell.W.reshape(9)]
    dst.load_state_dict(src.state_dict())
    np.testing.assert_array_equal(views[0].data, src.U.data.T)
    np.testing.assert_array_equal(views[1].data, src.U.data[0])
    np.testing.assert_array_equal(views[2].data, src.U.data)
    np.testing.assert_array_equal(views[3].data, src.cell.W.data.reshape(9))


def test_load_state_dict_interrupted_part_way_puts_every_parameter_back(monkeypatch):
    src, dst = Net(seed=0), Net(seed=10)
    before = _snapshot(dst)
    arrays = [p.data for p in dst.parameters()]
    copyto, calls = np.copyto, []

    def interrupted(dst_array, src_array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:           # the third parameter's copy: two are written already
            raise KeyboardInterrupt
        return copyto(dst_array, src_array, *args, **kwargs)
    monkeypatch.setattr(np, "copyto", interrupted)
    versions = [p._version for p in dst.parameters()]
    with pytest.raises(KeyboardInterrupt):
        dst.load_state_dict(src.state_dict())
    monkeypatch.undo()
    _assert_unchanged(dst, before)
    assert all(p.data is a for p, a in zip(dst.parameters(), arrays))
    assert [p._version for p in dst.parameters()] == versions


def test_load_state_dict_gives_a_read_only_parameter_a_new_array():
    src, dst = Net(seed=0), Net(seed=10)
    frozen = np.array(dst.c.data)
    frozen.flags.writeable = False
    dst.c.data = frozen
    dst.load_state_dict(src.state_dict())
    np.testing.assert_array_equal(dst.c.data, src.c.data)
    assert dst.c.data is not frozen and frozen[0] != src.c.data[0]


def test_save_load_round_trip_is_exact(tmp_path):
    src, dst = Net(seed=0), Net(seed=10)
    src.save(tmp_path / "net.npz")
    dst.load(tmp_path / "net.npz")
    for (name, a), (_, b) in zip(src.named_parameters(), dst.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
        assert a.dtype == b.dtype


def test_save_leaves_no_temporary_file(tmp_path):
    Net().save(tmp_path / "net.npz")
    assert os.listdir(tmp_path) == ["net.npz"]


def test_save_replaces_an_existing_file_whole(tmp_path):
    path = tmp_path / "net.npz"
    path.write_bytes(b"x" * 1_000_000)      # larger than the checkpoint
    Net(seed=3).save(path)
    assert os.listdir(tmp_path) == ["net.npz"]
    assert path.stat().st_size < 1_000_000
    dst = Net(seed=10)
    dst.load(path)
    np.testing.assert_array_equal(dst.U.data, Net(seed=3).U.data)


def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "net.npz"
    Net(seed=0).save(path)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        tg.save_arrays(path, {"U": np.ones(2), "ragged": [[1.0], [1.0, 2.0]]})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["net.npz"]


def _state_with(change):
    state = Net(seed=0).state_dict()
    change(state)
    return state


@pytest.mark.parametrize("change,detail", [
    (lambda s: s.pop("cell.b"), "cell.b"),
    (lambda s: s.update(extra=np.ones(2)), "extra"),
    (lambda s: s.update(U=np.ones((2, 3))), "(2, 3)"),
    (lambda s: s.update(c=np.ones(1, dtype=np.float32)), "float32"),
    (lambda s: s.update(c=np.ones(1, dtype=np.int64)), "int64"),
], ids=["missing_name", "extra_name", "wrong_shape", "wrong_dtype_float32", "wrong_dtype_int"])
def test_load_state_dict_refuses_a_mismatch_and_changes_nothing(change, detail):
    net = Net(seed=10)
    before = _snapshot(net)
    with pytest.raises(tg.CheckpointError) as info:
        net.load_state_dict(_state_with(change))
    assert detail in str(info.value)
    _assert_unchanged(net, before)


@pytest.mark.parametrize("change,detail", [
    (lambda s: s.pop("heads.0"), "heads.0"),
    (lambda s: s.update(extra=np.ones(2)), "extra"),
    (lambda s: s.update(**{"heads.1.W": np.ones((3, 4))}), "heads.1.W"),
    (lambda s: s.update(U=s["U"].astype(np.float32)), "float32"),
], ids=["missing_name", "extra_name", "wrong_shape", "wrong_dtype"])
def test_load_refuses_a_mismatched_file_and_changes_nothing(tmp_path, change, detail):
    path = tmp_path / "other.npz"
    tg.save_arrays(path, _state_with(change))
    net = Net(seed=10)
    before = _snapshot(net)
    with pytest.raises(tg.CheckpointError, match=detail.replace(".", r"\.")):
        net.load(path)
    _assert_unchanged(net, before)


def test_load_of_a_missing_file_raises_file_not_found_and_changes_nothing(tmp_path):
    net = Net(seed=10)
    before = _snapshot(net)
    with pytest.raises(tg.CheckpointNotFoundError) as info:
        net.load(tmp_path / "nope.npz")
    assert isinstance(info.value, FileNotFoundError)
    assert "nope.npz" in str(info.value)
    _assert_unchanged(net, before)


def _corrupt(path):
    data = bytearray(path.read_bytes())
    for i in range(40, len(data), 7):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path):
    path.write_bytes(b"this is not a checkpoint")


def _empty(path):
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [_corrupt, _truncate, _garbage, _empty],
                         ids=["corrupt", "truncated", "garbage", "empty"])
def test_load_refuses_a_damaged_file_and_changes_nothing(tmp_path, damage):
    path = tmp_path / "net.npz"
    Net(seed=0).save(path)
    damage(path)
    net = Net(seed=10)
    before = _snapshot(net)
    with pytest.raises(tg.CheckpointError, match="net.npz"):
        net.load(path)
    _assert_unchanged(net, before)


def test_save_arrays_load_arrays_round_trip(tmp_path):
    arrays = {"a": np.arange(6.0).reshape(2, 3), "b": np.array(3), "c": np.ones(2, np.float32)}
    tg.save_arrays(tmp_path / "x.npz", arrays)
    back = tg.load_arrays(tmp_path / "x.npz")
    assert set(back) == set(arrays)
    for name in arrays:
        np.testing.assert_array_equal(back[name], arrays[name])
        assert back[name].dtype == arrays[name].dtype


def test_save_into_a_missing_folder_names_the_path(tmp_path):
    target = tmp_path / "no" / "such" / "folder" / "net.npz"
    with pytest.raises(tg.CheckpointWriteError) as e:
        Net().save(target)
    assert isinstance(e.value, OSError)
    assert str(target) in str(e.value)


def test_load_state_dict_strict_false_loads_the_names_that_match_as_pytorchs():
    """PyTorch's ``strict=False``: a parameter the state lacks keeps its values, a name the
    model lacks is left out, and what did not match comes back as (missing_keys,
    unexpected_keys); strict (the default) reports none, as it refuses a mismatch."""
    src, net = Net(seed=0), Net(seed=10)
    before = _snapshot(net)
    state = src.state_dict()
    del state["cell.b"], state["c"]
    state["extra"] = np.ones(2)
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == ["c", "cell.b"] and result.unexpected_keys == ["extra"]
    assert tuple(result) == (["c", "cell.b"], ["extra"])
    for name, p in net.named_parameters():
        want = before[name] if name in ("c", "cell.b") else src.state_dict()[name]
        np.testing.assert_array_equal(p.data, want, err_msg=name)
    assert tuple(Net(seed=3).load_state_dict(src.state_dict())) == ([], [])


def test_load_state_dict_strict_false_still_refuses_a_wrong_shape_and_changes_nothing():
    net = Net(seed=10)
    before = _snapshot(net)
    state = Net(seed=0).state_dict()
    del state["cell.b"]
    state["U"] = np.ones((2, 3))
    with pytest.raises(tg.CheckpointError, match=r"'U' has shape \(2, 3\)"):
        net.load_state_dict(state, strict=False)
    _assert_unchanged(net, before)
    with pytest.raises(tg.ConfigError, match="strict must be True or False"):
        net.load_state_dict(Net(seed=0).state_dict(), strict="no")


def test_load_state_dict_refuses_a_positional_flag_as_pytorchs_strict_would_be_misread():
    """PyTorch's ``load_state_dict(sd, False)`` means ``strict=False``; tinygraph's flags are
    keywords only, so a positional one is refused (naming both keywords), changing nothing."""
    net = Net(seed=10)
    before = _snapshot(net)
    state = Net(seed=0).state_dict()
    del state["c"]
    for flag in (False, True):
        with pytest.raises(tg.ConfigError, match=r"load_state_dict.*strict=.*cast="):
            net.load_state_dict(state, flag)
        _assert_unchanged(net, before)
    assert tuple(net.load_state_dict(state, strict=False)) == (["c"], [])
