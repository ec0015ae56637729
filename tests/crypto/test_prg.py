"""The PRG behind SecAgg+'s masks: HKDF-SHA256 key derivation (byte-equal to pyca's HKDF),
ChaCha20 keystreams that differ by label and by seed."""

from __future__ import annotations

import os

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chainml.crypto.errors import InvalidKey
from chainml.crypto.hazmat import prg


def test_derive_is_rfc5869_hkdf_sha256():
    for _ in range(200):
        seed, context = os.urandom(32), os.urandom(1 + os.urandom(1)[0])
        reference = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=context)
        assert prg.derive(seed, context) == reference.derive(seed)


def test_masks_depend_on_seed_and_label_and_refuse_bad_input():
    seed = os.urandom(32)
    a, b = prg.mask(seed, b"pair|1|2", 4096), prg.mask(seed, b"pair|1|3", 4096)
    assert a.dtype == np.uint32 and a.shape == (4096,)
    assert np.array_equal(a, prg.mask(seed, b"pair|1|2", 4096))
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, prg.mask(os.urandom(32), b"pair|1|2", 4096))
    assert abs(float(np.mean(a / 2**32)) - 0.5) < 0.02  # 4,096 uniform values: sd 0.0045
    with pytest.raises(InvalidKey):
        prg.derive(b"short", b"x")
    with pytest.raises(ValueError):
        prg.derive(seed, b"")
