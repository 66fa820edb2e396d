"""mc.save / mc.load: round trips, atomic writes, and refusing damaged or foreign files safely."""
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

import minitorch_conv as mc
from minitorch_conv import nn, serialization
from minitorch_conv.serialization import load, save


def test_exported_as_mc_save_and_mc_load():
    assert mc.save is save and mc.load is load


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_dict_round_trip_keeps_order_values_and_dtype(dtype, tmp_path):
    model = nn.Sequential(nn.Linear(3, 4, dtype=dtype), nn.ReLU(), nn.Linear(4, 2, dtype=dtype))
    state = model.state_dict()
    save(state, tmp_path / "model.mc")
    loaded = load(tmp_path / "model.mc")
    assert list(loaded) == list(state)
    for name, value in state.items():
        assert type(loaded[name]) is np.ndarray and loaded[name].dtype == dtype
        np.testing.assert_array_equal(loaded[name], value)
    fresh = nn.Sequential(nn.Linear(3, 4, dtype=dtype), nn.ReLU(), nn.Linear(4, 2, dtype=dtype))
    fresh.load_state_dict(loaded)
    x = mc.randn(5, 3, dtype=dtype)
    np.testing.assert_array_equal(fresh(x).numpy(), model(x).numpy())


def test_nested_containers_and_scalars_round_trip(tmp_path):
    obj = {
        "state": {0: {"step": 3, "exp_avg": np.arange(6, dtype=np.float32).reshape(2, 3)}, 1: {}},
        "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "nesterov": False, "name": "all", "none": None}],
        "ints": np.array([[1, 2], [3, 4]], dtype=np.int64),
        "flags": np.array([True, False]),
        "numpy_scalar": np.int32(7),
        "empty": np.zeros((0, 3), dtype=np.float64),
        "zero_d": np.array(2.5),
        "special": [float("inf"), float("-inf")],
    }
    save(obj, tmp_path / "nested")
    loaded = load(tmp_path / "nested")
    assert list(loaded) == list(obj)
    assert list(loaded["state"]) == [0, 1] and loaded["state"][1] == {}  # int keys stay ints
    assert loaded["state"][0]["step"] == 3 and type(loaded["state"][0]["step"]) is int
    np.testing.assert_array_equal(loaded["state"][0]["exp_avg"], obj["state"][0]["exp_avg"])
    assert loaded["state"][0]["exp_avg"].dtype == np.float32
    assert loaded["param_groups"] == obj["param_groups"] and isinstance(loaded["param_groups"][0]["betas"], tuple)
    assert loaded["ints"].dtype == np.int64 and loaded["flags"].dtype == np.bool_
    assert loaded["numpy_scalar"] == 7 and type(loaded["numpy_scalar"]) is np.int32
    assert loaded["empty"].shape == (0, 3) and loaded["zero_d"].shape == ()
    assert loaded["special"] == [float("inf"), float("-inf")]


def test_nan_values_round_trip(tmp_path):
    save({"x": float("nan"), "a": np.array([np.nan, 1.0])}, tmp_path / "nan")
    loaded = load(tmp_path / "nan")
    assert np.isnan(loaded["x"]) and np.isnan(loaded["a"][0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_tensor_round_trips_as_a_tensor(dtype, requires_grad, tmp_path):
    tensor = mc.tensor(np.arange(12, dtype=dtype).reshape(3, 4), requires_grad=requires_grad)
    save(tensor, tmp_path / "t.mc")
    loaded = load(tmp_path / "t.mc")
    assert isinstance(loaded, mc.Tensor) and loaded.dtype == dtype and loaded.requires_grad == requires_grad
    np.testing.assert_array_equal(loaded.numpy(), tensor.numpy())


def test_tensors_inside_a_state_dict_come_back_as_arrays(tmp_path):
    save({"weight": mc.tensor([1.0, 2.0]), "bias": nn.Parameter(np.zeros(2))}, tmp_path / "sd")
    loaded = load(tmp_path / "sd")
    assert type(loaded["weight"]) is np.ndarray and type(loaded["bias"]) is np.ndarray
    np.testing.assert_array_equal(loaded["weight"], [1.0, 2.0])


def test_plain_array_and_non_contiguous_arrays(tmp_path):
    array = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    for name, value in {"c": array, "fortran": np.asfortranarray(array), "strided": array[:, ::2, 1:]}.items():
        save(value, tmp_path / name)
        loaded = load(tmp_path / name)
        assert type(loaded) is np.ndarray and loaded.flags.writeable
        np.testing.assert_array_equal(loaded, value)


def test_accepts_str_and_pathlike_and_follows_umask(tmp_path):
    save({"a": np.ones(1)}, str(tmp_path / "s"))
    assert load(str(tmp_path / "s"))["a"][0] == 1
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.stat(tmp_path / "s").st_mode & 0o777 == 0o666 & ~umask


def test_overwrites_an_existing_file(tmp_path):
    save({"version": 1}, tmp_path / "f")
    save({"version": 2}, tmp_path / "f")
    assert load(tmp_path / "f") == {"version": 2}
    assert os.listdir(tmp_path) == ["f"]


# --- atomicity -----------------------------------------------------------------------------------


def failing_writer(file, manifest, arrays):
    file.write(b"PK\x03\x04 half an archive")
    raise RuntimeError("disk on fire")


def test_a_failed_write_leaves_the_old_file_intact_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.mc"
    save({"w": np.arange(3.0)}, path)
    old_bytes = path.read_bytes()
    monkeypatch.setattr(serialization, "_write_archive", failing_writer)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save({"w": np.zeros(1000)}, path)
    assert path.read_bytes() == old_bytes
    assert os.listdir(tmp_path) == ["ckpt.mc"]
    np.testing.assert_array_equal(load(path)["w"], np.arange(3.0))


def test_a_failed_rename_leaves_the_old_file_intact_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.mc"
    save({"w": np.arange(3.0)}, path)

    def failing_replace(source, target):
        raise OSError("rename failed")

    monkeypatch.setattr(serialization.os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        save({"w": np.zeros(2)}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.mc"]
    np.testing.assert_array_equal(load(path)["w"], np.arange(3.0))


def test_a_failed_first_write_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(serialization, "_write_archive", failing_writer)
    with pytest.raises(RuntimeError):
        save({"w": np.zeros(3)}, tmp_path / "new.mc")
    assert os.listdir(tmp_path) == []


def test_unsaveable_objects_raise_before_touching_the_disk(tmp_path):
    path = tmp_path / "x"
    cyclic = {}
    cyclic["self"] = cyclic
    cases = [
        ({"a": object()}, TypeError, "object"),
        ({("a", "b"): np.ones(1)}, TypeError, "key"),
        ({"a": np.array([object()])}, TypeError, "dtype"),
        ({"a": np.array(["text"])}, TypeError, "dtype"),
        (cyclic, ValueError, "contains itself"),
    ]
    for obj, error, message in cases:
        with pytest.raises(error, match=message):
            save(obj, path)
    assert os.listdir(tmp_path) == []


# --- damaged, foreign and missing files ------------------------------------------------------


def assert_rejected(path):
    with pytest.raises(ValueError, match="not a minitorch_conv file") as error:
        load(path)
    assert str(path) in str(error.value)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.mc")


@pytest.mark.parametrize("content", [b"", b"hello, world", b"PK\x03\x04" + b"\x00" * 40, pickle.dumps({"a": 1})])
def test_garbage_is_rejected(content, tmp_path):
    path = tmp_path / "garbage"
    path.write_bytes(content)
    assert_rejected(path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated_file_is_rejected(fraction, tmp_path):
    path = tmp_path / "t"
    save({"w": np.arange(1000.0), "b": np.ones(10)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    assert_rejected(path)


def test_flipped_byte_in_array_data_is_rejected(tmp_path):
    path = tmp_path / "flip"
    save({"w": np.zeros(1000)}, path)
    data = bytearray(path.read_bytes())
    position = data.index(b"\x00" * 64) + 32  # inside the array's zero bytes
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))
    assert_rejected(path)


def test_foreign_npz_is_rejected(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, w=np.ones(3))
    assert_rejected(path)


def rewrite_member(path, name, content):
    members = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            members[info.filename] = archive.read(info.filename)
    members[name] = content
    with zipfile.ZipFile(path, "w") as archive:
        for member_name, member_content in members.items():
            archive.writestr(member_name, member_content)


class Alarm:
    triggered = []

    def __reduce__(self):
        return (Alarm.triggered.append, ("unpickled!",))


def test_pickled_array_inside_our_archive_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "evil"
    save({"w": np.ones(3)}, path)
    buffer = io.BytesIO()
    np.save(buffer, np.array([Alarm()], dtype=object), allow_pickle=True)
    rewrite_member(path, "arrays/0.npy", buffer.getvalue())
    assert_rejected(path)
    assert Alarm.triggered == []


@pytest.mark.parametrize(
    "manifest",
    [
        b"not json",
        b'{"format": "something_else", "version": 1, "root": {"value": 1}}',
        b'{"format": "minitorch_conv", "version": 99, "root": {"value": 1}}',
        b'{"format": "minitorch_conv", "version": 1, "root": {"array": 5}}',
        b'{"format": "minitorch_conv", "version": 1, "root": {"dict": [[1.5, {"value": 1}]]}}',
        b'{"format": "minitorch_conv", "version": 1, "root": {"mystery": 1}}',
        b'{"format": "minitorch_conv", "version": 1, "root": {"value": [1, 2]}}',
    ],
)
def test_bad_manifest_is_rejected(manifest, tmp_path):
    path = tmp_path / "m"
    save({"w": np.ones(3)}, path)
    rewrite_member(path, "manifest.json", manifest)
    assert_rejected(path)


def test_npy_header_claiming_a_huge_array_is_rejected_without_allocating(tmp_path):
    path = tmp_path / "huge"
    save({"w": np.ones(3)}, path)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    rewrite_member(path, "arrays/0.npy", buffer.getvalue() + b"\x00" * 24)
    assert_rejected(path)


def test_compressed_members_are_rejected(tmp_path):
    path = tmp_path / "deflated"
    save({"w": np.ones(3)}, path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info.filename) for info in archive.infolist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    assert_rejected(path)
