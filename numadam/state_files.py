"""Save a ``state_dict`` to one ``.npz`` file, atomically, or to a Zarr store, and read it back.

A state dict is plain data: dicts, lists, tuples, numbers, strings, ``None``
and arrays. Arrays are stored under generated names; the rest is stored as
JSON (the entry or attribute ``__numadam__``), with tuples and dicts whose keys
are not strings tagged so that they come back as they went in. No pickle is
involved, so loading never runs code.

A path ending in ``.zarr`` makes a Zarr store instead, for state too large for
one machine: each array a Zarr array chunked like it (a Dask array whose chunks
differ in size: to its largest), a Dask array's chunks written by the workers
that hold them, one file per chunk, each written
atomically (Zarr 3.1.3 and later: its local store writes a temporary file and renames it). The
JSON goes last, so a store whose save was interrupted has none and is refused.
"""

import json
import os
import secrets

import numpy as np

FORMAT = "numadam.state_dict"
VERSION = 1
_META = "__numadam__"


def save_state(state, path):
    """Write ``state`` to ``path`` as ``.npz``: a temporary file, fsynced, then renamed over ``path``
    (a reader sees either the old file or the new one, never a partial write); or, for a path
    ending in ``.zarr``, as a Zarr store (see the module's docstring).
    """
    arrays = {}
    document = {"format": FORMAT, "version": VERSION, "state": _encode(state, arrays)}
    path = os.fspath(path)
    if path.endswith(".zarr"):
        _save_zarr(document, arrays, path)
        return
    arrays = {name: _on_host(array) for name, array in arrays.items()}
    arrays[_META] = np.array(json.dumps(document))
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    # Like open(path, "xb"), the file gets a new file's mode (0o666 less the umask).
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _on_host(array):
    if hasattr(array, "compute"):  # a Dask array
        array = array.compute()
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)


def _save_zarr(document, arrays, path):
    import zarr

    group = zarr.open_group(path, mode="w")
    lazy = []
    for name, array in arrays.items():
        if hasattr(array, "dask"):  # written chunk by chunk where the chunks live
            import dask.array as da

            lazy.append(da.to_zarr(_regular(array), path, component=name, compute=False, overwrite=True))
        else:
            group.create_array(name, data=_on_host(array))
    if lazy:
        import dask

        dask.compute(*lazy)
    group.attrs[_META] = json.dumps(document)


def _regular(array):
    """A Dask array as Zarr stores it: chunks of one size along each axis (the last may be smaller),
    rechunked to its largest where they are not (8-bit state's scales: one chunk per chunk of its
    parameter, as many as its blocks)."""
    if all(len(set(sizes[:-1])) <= 1 and sizes[-1] <= sizes[0] for sizes in array.chunks if sizes):
        return array
    return array.rechunk(array.chunksize)


def load_state(path, lazy=False):
    """Read a state dict written by :func:`save_state`; arrays come back as NumPy arrays, or from a
    Zarr store with ``lazy`` as Dask arrays over it (chunked as saved; nothing read yet)."""
    if os.path.isdir(os.fspath(path)):
        return _load_zarr(os.fspath(path), lazy)
    with np.load(os.fspath(path), allow_pickle=False) as archive:
        if _META not in archive.files:
            raise ValueError(f"{path} is not a numadam state file (no {_META} entry)")
        document = _checked_document(json.loads(str(archive[_META])), path)
        return _decode(document["state"], archive)


def _load_zarr(path, lazy):
    import zarr

    group = zarr.open_group(path, mode="r")
    if _META not in group.attrs:
        raise ValueError(f"{path} is not a numadam state store (no {_META} attribute; an interrupted save "
                         "writes none)")
    document = _checked_document(json.loads(group.attrs[_META]), path)
    if lazy:
        import dask.array as da

        class Lazy(dict):
            def __missing__(self, name):
                return da.from_zarr(path, component=name)

        return _decode(document["state"], Lazy())
    return _decode(document["state"], {name: group[name][...] for name, _ in group.arrays()})


def _checked_document(document, path):
    if document.get("format") != FORMAT:
        raise ValueError(f"{path} is not a numadam state file (format {document.get('format')!r})")
    if document.get("version") != VERSION:
        raise ValueError(f"{path} has state format version {document.get('version')}; this numadam reads {VERSION}")
    return document


def _encode(value, arrays):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, complex):
        return {"__complex__": [value.real, value.imag]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(item, arrays) for item in value]}
    if isinstance(value, list):
        return [_encode(item, arrays) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("__") for key in value):
            return {key: _encode(item, arrays) for key, item in value.items()}
        return {"__dict__": [[_encode(key, arrays), _encode(item, arrays)] for key, item in value.items()]}
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        name = f"array{len(arrays)}"
        arrays[name] = value
        return {"__array__": name}
    raise TypeError(f"cannot save a value of type {type(value).__name__} in a state file: {value!r}")


def _decode(value, archive):
    if isinstance(value, list):
        return [_decode(item, archive) for item in value]
    if not isinstance(value, dict):
        return value
    if "__complex__" in value:
        return complex(*value["__complex__"])
    if "__tuple__" in value:
        return tuple(_decode(item, archive) for item in value["__tuple__"])
    if "__dict__" in value:
        return {_decode(key, archive): _decode(item, archive) for key, item in value["__dict__"]}
    if "__array__" in value:
        return archive[value["__array__"]]
    return {key: _decode(item, archive) for key, item in value.items()}
