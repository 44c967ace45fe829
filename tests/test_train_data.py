"""Data sets for S4D training: built-in tasks and user .npz files with their errors."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.errors import DataFileError
from cosim.train.data import load_dataset, load_npz


def test_digits_is_a_length_64_sequence_task_with_a_seeded_stratified_split():
    data = load_dataset("digits", split_seed=3)
    assert data.X_train.shape[1:] == (1, 64) and data.X_test.shape[1:] == (1, 64)
    assert data.y_train.size + data.y_test.size == 1797
    assert data.n_classes == 10 and 0.0 <= data.X_train.min() and data.X_train.max() <= 1.0
    again = load_dataset("digits", split_seed=3)
    other = load_dataset("digits", split_seed=4)
    assert np.array_equal(again.y_test, data.y_test)
    assert not np.array_equal(other.X_test, data.X_test)
    counts = np.bincount(data.y_test)
    assert counts.min() >= 30  # stratified: every class present in the test split


def test_gunpoint_ships_with_its_archive_split():
    data = load_dataset("gunpoint")
    assert data.X_train.shape == (50, 1, 150) and data.X_test.shape == (150, 1, 150)
    assert data.n_classes == 2
    assert np.allclose(data.X_train.mean(axis=-1), 0, atol=1e-5)  # z-normalised per series


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_user_npz_two_and_three_dimensional_with_label_remapping(tmp_path):
    rng = np.random.default_rng(0)
    path = _write(tmp_path / "d.npz", X_train=rng.normal(size=(6, 10)), y_train=np.array([5, 7, 5, 7, 9, 9]),
                  X_test=rng.normal(size=(3, 10)), y_test=np.array([7, 9, 5]))
    data = load_npz(path)
    assert data.X_train.shape == (6, 1, 10) and data.X_train.dtype == np.float32
    assert data.classes.tolist() == [5, 7, 9]
    assert data.y_test.tolist() == [1, 2, 0]
    path3 = _write(tmp_path / "e.npz", X_train=rng.normal(size=(4, 3, 8)), y_train=np.array([0, 1, 0, 1.0]),
                   X_test=rng.normal(size=(2, 3, 8)), y_test=np.array([1, 0]))
    data3 = load_npz(path3)
    assert data3.n_inputs == 3 and data3.length == 8 and data3.y_train.dtype == np.int64


@pytest.mark.parametrize(
    "change, message",
    [
        ({"X_test": None}, "missing array(s) X_test"),
        ({"y_train": np.array([0, 1, 0])}, "y_train must have shape (4,)"),
        ({"X_train": np.full((4, 8), np.nan)}, "X_train contains NaN"),
        ({"y_train": np.array([0.5, 1, 0, 1])}, "y_train must hold integer class labels"),
        ({"y_test": np.array([0, 3])}, "y_test has label(s) [3]"),
        ({"X_test": np.zeros((2, 9))}, "differ in channels or length"),
        ({"y_train": np.zeros(4, dtype=int)}, "at least 2 classes"),
        ({"X_train": np.zeros((4, 2, 2, 8))}, "X_train must have shape (n, L) or (n, C, L)"),
        ({"X_train": np.zeros((4, 0, 8)), "X_test": np.zeros((2, 0, 8))}, "C >= 1"),
    ],
)
def test_user_npz_errors_name_the_file_and_array(tmp_path, change, message):
    arrays = {"X_train": np.zeros((4, 8)), "y_train": np.array([0, 1, 0, 1]),
              "X_test": np.zeros((2, 8)), "y_test": np.array([1, 0])}
    arrays.update(change)
    path = _write(tmp_path / "bad.npz", **{k: v for k, v in arrays.items() if v is not None})
    with pytest.raises(DataFileError) as info:
        load_npz(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_not_an_npz_and_unknown_task(tmp_path):
    path = tmp_path / "x.npz"
    path.write_text("hello")
    with pytest.raises(DataFileError, match="not a readable .npz"):
        load_npz(path)
    objects = tmp_path / "objects.npz"
    np.savez(objects, X_train=np.array([np.zeros(3), np.zeros(4)], dtype=object), y_train=np.array([0, 1]),
             X_test=np.zeros((2, 3)), y_test=np.array([0, 1]))
    with pytest.raises(DataFileError) as info:
        load_npz(objects)
    assert "pickled objects are refused" in str(info.value) and "allow_pickle" not in str(info.value)
    with pytest.raises(DataFileError, match="unknown task 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(DataFileError, match="exactly one"):
        load_dataset("digits", path)
