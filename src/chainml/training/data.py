"""Data sets shipped inside packages, and how to split them among parties.

Nothing is downloaded at run time: digits (1,797 8×8 images, 10 classes), breast cancer
(569 × 30, 2 classes) and wine (178 × 13, 3 classes) come with scikit-learn;
Fashion-MNIST (70,000 28×28 grey images of clothing, 10 classes, its own 60,000/10,000
split) comes with Debian's ``dataset-fashion-mnist`` (``make test`` installs it), read from
its IDX files under ``/usr/share/datasets/fashion-mnist``.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sklearn import datasets as skdata
from sklearn.model_selection import train_test_split

from chainml.training.errors import TrainingError

_LOADERS = {
    "digits": skdata.load_digits,
    "breast_cancer": skdata.load_breast_cancer,
    "wine": skdata.load_wine,
}


@dataclass(frozen=True)
class Dataset:
    """Features scaled to [0, 1] (per column on the training split; images by 1/255),
    integer labels."""

    name: str
    x_train: NDArray[np.float64]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.float64]
    y_test: NDArray[np.int64]

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max()) + 1)


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_IDX_MAX_BYTES = 64 << 20


def _read_idx(path: Path, dims: int) -> NDArray[np.uint8]:
    """An IDX file of unsigned bytes (gzip'd): the magic 0x08 0x0{dims}, then big-endian
    sizes; ``TrainingError`` if it is missing, malformed or of another shape."""
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read(_IDX_MAX_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise TrainingError(
            f"cannot read {path}: install Debian's dataset-fashion-mnist (make test does)"
        ) from exc
    header = 4 + 4 * dims
    if len(raw) < header or raw[:4] != bytes([0, 0, 8, dims]) or len(raw) > _IDX_MAX_BYTES:
        raise TrainingError(f"{path} is not an IDX file of {dims}-dimensional bytes")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    if len(raw) != header + int(np.prod(shape)):
        raise TrainingError(f"{path}: its size does not match its header {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(directory: str | os.PathLike[str] | None = None) -> Dataset:
    """Fashion-MNIST from Debian's package (or ``directory`` holding the same four
    ``*-idx?-ubyte.gz`` files): its 60,000 training and 10,000 test images, each a row of
    784 pixels (row-major 28×28) scaled to [0, 1] by 1/255, labels 0-9
    (``FASHION_MNIST_CLASSES``).  No network: ``TrainingError`` if the files are absent or
    malformed."""
    root = Path(directory) if directory is not None else FASHION_MNIST_DIR
    parts = []
    for split in ("train", "t10k"):
        images = _read_idx(root / f"{split}-images-idx3-ubyte.gz", 3)
        labels = _read_idx(root / f"{split}-labels-idx1-ubyte.gz", 1)
        if images.shape[1:] != (28, 28) or len(images) != len(labels) or labels.max() > 9:
            raise TrainingError(f"{root}: {split} images and labels do not match")
        parts.append((images.reshape(len(images), -1) / 255.0, labels.astype(np.int64)))
    (x_tr, y_tr), (x_te, y_te) = parts
    return Dataset("fashion_mnist", x_tr, y_tr, x_te, y_te)


def load(name: str, *, test_size: float = 0.3, seed: int = 0) -> Dataset:
    """Load a bundled data set, split into train and test, stratified by label
    (``"fashion_mnist"``: its own split, ``load_fashion_mnist``)."""
    if name == "fashion_mnist":
        return load_fashion_mnist()
    try:
        loader = _LOADERS[name]
    except KeyError:
        choices = sorted([*_LOADERS, "fashion_mnist"])
        raise TrainingError(f"unknown data set {name!r}; choose from {choices}") from None
    bunch = loader()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    low, high = x_tr.min(axis=0), x_tr.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return Dataset(
        name,
        (x_tr - low) / span,
        y_tr,
        np.clip((x_te - low) / span, 0.0, 1.0),
        y_te,
    )


def dirichlet_partition(
    labels: NDArray[np.int64], n_parties: int, alpha: float, *, seed: int = 0, min_size: int = 5
) -> list[NDArray[np.int64]]:
    """Split sample indices among parties with label proportions drawn from Dirichlet(alpha).

    Small ``alpha`` gives each party few labels (strongly non-IID); large ``alpha`` tends to
    IID.  Every party receives at least ``min_size`` samples (redrawn until it does).
    """
    if n_parties < 1 or alpha <= 0:
        raise TrainingError("need at least one party and alpha > 0")
    if n_parties * min_size > len(labels):
        raise TrainingError("too few samples for that many parties")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(n_parties)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            shares = rng.dirichlet(np.full(n_parties, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for party, chunk in enumerate(np.split(idx, cuts)):
                parts[party].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise TrainingError("could not draw a partition with every party above min_size")


def iid_partition(n_samples: int, n_parties: int, *, seed: int = 0) -> list[NDArray[np.int64]]:
    """Split sample indices uniformly at random into ``n_parties`` near-equal parts."""
    if n_parties < 1 or n_parties > n_samples:
        raise TrainingError("need 1 <= n_parties <= n_samples")
    rng = np.random.default_rng(seed)
    return [np.sort(p) for p in np.array_split(rng.permutation(n_samples), n_parties)]
