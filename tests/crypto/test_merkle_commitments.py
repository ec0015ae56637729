"""Merkle trees and salted data-set commitments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainml.crypto import (
    DatasetCommitment,
    InvalidKey,
    InvalidProof,
    MerkleTree,
    encode_float_records,
    keccak256,
    schema_hash,
    verify_inclusion,
    verify_opening,
)
from chainml.crypto.merkle import EMPTY_ROOT


def reference_root(leaves: list[bytes]) -> bytes:
    """A plain recursive rendering of the spec, to check the tree against."""
    if not leaves:
        return keccak256(b"chainml/merkle/empty/v1")
    level = [keccak256(b"\x00" + d) for d in leaves]
    while len(level) > 1:
        pairs = []
        for i in range(0, len(level), 2):
            if i + 1 == len(level):
                pairs.append(level[i])
            else:
                a, b = sorted((level[i], level[i + 1]))
                pairs.append(keccak256(b"\x01" + a + b))
        level = pairs
    return level[0]


@pytest.mark.parametrize("n", range(0, 34))
def test_root_matches_reference_and_every_proof_verifies(n):
    leaves = [bytes([i]) * (i + 1) for i in range(n)]
    tree = MerkleTree(leaves)
    assert tree.root == reference_root(leaves)
    for i, leaf in enumerate(leaves):
        verify_inclusion(tree.root, leaf, tree.proof(i))
    if n == 0:
        assert tree.root == EMPTY_ROOT


@given(st.lists(st.binary(min_size=1, max_size=40), min_size=2, max_size=40), st.data())
def test_tampering_is_rejected(leaves, data):
    tree = MerkleTree(leaves)
    i = data.draw(st.integers(0, len(leaves) - 1))
    proof = tree.proof(i)
    with pytest.raises(InvalidProof):
        verify_inclusion(tree.root, leaves[i] + b"x", proof)
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[j] = bytes([bad[j][0] ^ 1]) + bad[j][1:]
        with pytest.raises(InvalidProof):
            verify_inclusion(tree.root, leaves[i], bad)
    with pytest.raises(InvalidProof):
        verify_inclusion(keccak256(b"other root"), leaves[i], proof)


def test_a_node_cannot_pose_as_a_leaf():
    leaves = [b"a", b"b", b"c", b"d"]
    tree = MerkleTree(leaves)
    inner = tree.levels[1][0]
    with pytest.raises(InvalidProof):
        verify_inclusion(tree.root, inner, tree.proof(2)[1:])


def test_dataset_commitment_openings():
    x = np.arange(12, dtype=float).reshape(4, 3)
    y = np.array([0, 1, 0, 1])
    records = encode_float_records(x, y)
    assert len(records[0]) == 1 + 3 * 8 + 8
    c = DatasetCommitment.build(records)
    assert c.record_count == 4
    opening = c.opening(2)
    verify_opening(c.root, opening)
    forged = type(opening)(opening.index, records[1], opening.salt, opening.proof)
    with pytest.raises(InvalidProof):
        verify_opening(c.root, forged)
    # Same records, another salt: an unrelated root (the root hides the records).
    assert DatasetCommitment.build(records).root != c.root
    assert DatasetCommitment(records, c.master_salt()).root == c.root
    with pytest.raises(InvalidKey):
        DatasetCommitment(records, b"short")
    assert c.master_salt().hex() not in repr(c)
    assert schema_hash("a") != schema_hash("b") and len(schema_hash("a")) == 32
