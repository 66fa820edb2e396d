"""mc.save / mc.load: state dicts, optimiser states and tensors, with no pickle anywhere.

A file is a zip archive (stored, not compressed) holding `manifest.json`, which describes the
saved object as a tree, and one `.npy` member per array. Loading only ever parses JSON and .npy
headers, so a file from a stranger cannot run code. A save writes a temporary file beside the
target, fsyncs it and renames it over the target, so the target is always either the old file or
the complete new one.
"""

import io
import json
import math
import os
import secrets
import zipfile

import numpy as np

from .tensor import Tensor

FORMAT_NAME = "minitorch_conv"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
NUMERIC_KINDS = "biufc"
MAX_NPY_HEADER = 10_000


def save(obj, path):
    """Save a Tensor, a numpy array, or a (nested) dict / list / tuple of them and plain scalars.

    Dict keys must be str or int. Inside a container a Tensor is saved as its array, so load()
    gives back numpy arrays there; a Tensor saved on its own comes back as a Tensor.
    """
    path = os.fspath(path)
    manifest, arrays = _encode_root(obj)  # fails on bad input before the disk is touched
    directory = os.path.dirname(os.path.abspath(path))
    temp_path = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    # O_EXCL: never reuse someone else's file; 0o666: the usual umask-governed permissions.
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            _write_archive(file, manifest, arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        try:
            os.unlink(temp_path)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def load(path):
    """Load what save() wrote. FileNotFoundError if `path` is missing; ValueError if it is not ours."""
    path = os.fspath(path)
    with open(path, "rb") as file:
        try:
            return _read_archive(file)
        except (ValueError, KeyError, IndexError, TypeError, EOFError, RecursionError,
                zipfile.BadZipFile, NotImplementedError, RuntimeError) as error:
            reason = str(error) or type(error).__name__
            raise ValueError(f"{path} is not a minitorch_conv file (or it is damaged): {reason}") from None


# --- the object <-> manifest tree -------------------------------------------------------------
# Nodes: {"array": i}, {"scalar": i} (a numpy scalar), {"tensor": i, "requires_grad": b} (root only),
# {"value": x} (None, bool, int, float, str), {"dict": [[key, node], ...]}, {"list": [...]}, {"tuple": [...]}.


def _encode_root(obj):
    arrays = []
    if isinstance(obj, Tensor):
        root = {"tensor": _add_array(arrays, obj.data, "the tensor"), "requires_grad": bool(obj.requires_grad)}
    else:
        root = _encode(obj, arrays, "obj", set())
    return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "root": root}, arrays


def _encode(obj, arrays, where, open_containers):
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": obj}
    if isinstance(obj, Tensor):
        return {"array": _add_array(arrays, obj.data, where)}
    if isinstance(obj, np.ndarray):
        return {"array": _add_array(arrays, obj, where)}
    if isinstance(obj, np.generic):
        return {"scalar": _add_array(arrays, np.asarray(obj), where)}
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in open_containers:
            raise ValueError(f"save: {where} contains itself")
        open_containers.add(id(obj))
        if isinstance(obj, dict):
            node = {"dict": [[_check_key(key, where), _encode(value, arrays, f"{where}[{key!r}]", open_containers)]
                             for key, value in obj.items()]}
        else:
            items = [_encode(value, arrays, f"{where}[{index}]", open_containers) for index, value in enumerate(obj)]
            node = {"tuple" if isinstance(obj, tuple) else "list": items}
        open_containers.discard(id(obj))
        return node
    raise TypeError(f"save: cannot save {where} of type {type(obj).__name__} "
                    "(Tensors, numpy arrays, dicts, lists, tuples and plain scalars only)")


def _check_key(key, where):
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise TypeError(f"save: dict keys must be str or int, {where} has key {key!r}")
    return key


def _add_array(arrays, array, where):
    if array.dtype.kind not in NUMERIC_KINDS or array.dtype.fields is not None:
        raise TypeError(f"save: {where} has dtype {array.dtype}; only numeric arrays can be saved")
    arrays.append(array)
    return len(arrays) - 1


def _decode(node, arrays):
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise ValueError(f"malformed manifest node {node!r:.80}")
    if "value" in node:
        value = node["value"]
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise ValueError(f"malformed value node {node!r:.80}")
        return value
    if "array" in node:
        return arrays[_array_index(node["array"], arrays)]
    if "scalar" in node:
        return arrays[_array_index(node["scalar"], arrays)][()]
    if "dict" in node:
        return {_decoded_key(key): _decode(value, arrays) for key, value in node["dict"]}
    if "list" in node:
        return [_decode(item, arrays) for item in node["list"]]
    if "tuple" in node:
        return tuple(_decode(item, arrays) for item in node["tuple"])
    raise ValueError(f"unknown manifest node {node!r:.80}")


def _decoded_key(key):
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise ValueError(f"malformed dict key {key!r:.80}")
    return key


def _array_index(index, arrays):
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(arrays):
        raise ValueError(f"manifest refers to array {index!r:.20}, but the file holds {len(arrays)}")
    return index


# --- the archive -----------------------------------------------------------------------------


def _member_name(index):
    return f"arrays/{index}.npy"


def _write_archive(file, manifest, arrays):
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr(MANIFEST_NAME, json.dumps(manifest, allow_nan=True))
        for index, array in enumerate(arrays):
            with archive.open(_member_name(index), "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


def _read_archive(file):
    with zipfile.ZipFile(file, "r") as archive:
        members = {info.filename: info for info in archive.infolist()}
        if MANIFEST_NAME not in members:
            raise ValueError(f"it has no {MANIFEST_NAME}")
        for info in members.values():
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"member {info.filename} is compressed; minitorch_conv never compresses")
        manifest = json.loads(archive.read(MANIFEST_NAME).decode("utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise ValueError("its manifest does not say minitorch_conv")
        if manifest.get("version") != FORMAT_VERSION:
            raise ValueError(f"format version {manifest.get('version')!r} is not {FORMAT_VERSION}")
        array_count = sum(1 for name in members if name.startswith("arrays/"))
        arrays = [_parse_npy(archive.read(_member_name(index))) for index in range(array_count)]
    root = manifest.get("root")
    if isinstance(root, dict) and "tensor" in root:
        data = arrays[_array_index(root["tensor"], arrays)]
        if data.dtype not in (np.float32, np.float64):
            raise ValueError(f"a saved tensor must be float32 or float64, got {data.dtype}")
        if not isinstance(root.get("requires_grad"), bool):
            raise ValueError(f"a saved tensor's requires_grad must be true or false, got {root.get('requires_grad')!r}")
        return Tensor(data, requires_grad=root["requires_grad"])
    return _decode(root, arrays)


def _parse_npy(raw):
    """An .npy member -> a fresh, writable, native-endian array; any inconsistency is a ValueError.

    Parsed by hand rather than with np.load so that a forged header cannot request a huge
    allocation: the data must be exactly as long as the header's shape and dtype say.
    """
    stream = io.BytesIO(raw)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream, max_header_size=MAX_NPY_HEADER)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream, max_header_size=MAX_NPY_HEADER)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.hasobject:
        raise ValueError(f"an array has dtype {dtype}, which minitorch_conv never writes")
    body = memoryview(raw)[stream.tell():]
    count = math.prod(shape)
    if len(body) != count * dtype.itemsize:
        raise ValueError(f"an array of shape {shape} and dtype {dtype} has {len(body)} bytes of data")
    flat = np.frombuffer(body, dtype=dtype, count=count)
    array = flat.reshape(shape[::-1]).T if fortran_order else flat.reshape(shape)
    return np.array(array, dtype=dtype.newbyteorder("="), order="C")  # copy: own, writable memory


def _fsync_directory(directory):
    # Makes the rename itself durable on POSIX; not possible (nor needed) on every platform.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
