"""Model files load without pickle, and a refusal never suggests enabling it."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from abkit_recommenders.baselines import read_npz, write_npz

from abkit.errors import ModelError


def test_round_trip_of_plain_arrays(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    write_npz(path, {"counts": np.arange(3.0)}, {"model": "popularity", "params": {}})
    arrays, meta = read_npz(path, model="popularity", keys=("counts",))
    assert arrays["counts"].tolist() == [0.0, 1.0, 2.0]
    assert meta["model"] == "popularity"


def test_object_arrays_are_refused_without_suggesting_pickle(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    np.savez(path, meta=np.asarray('{"model": "popularity"}'), counts=np.array([{}], dtype=object))
    with pytest.raises(ModelError) as err:
        read_npz(path, model="popularity", keys=("counts",))
    assert "pickle" not in str(err.value).split(": ", 1)[1].lower()
    assert str(err.value).startswith(f"{path}: the file holds Python objects")


def test_a_pickle_file_named_npz_is_refused_without_suggesting_pickle(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    path.write_bytes(pickle.dumps({"counts": [1, 2]}))
    with pytest.raises(ModelError) as err:
        read_npz(path, model="popularity", keys=("counts",))
    assert "pickle" not in str(err.value).split(": ", 1)[1].lower()


def test_writing_an_object_array_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dtype object"):
        write_npz(tmp_path / "m.npz", {"x": np.array([{}], dtype=object)}, {"model": "x"})
