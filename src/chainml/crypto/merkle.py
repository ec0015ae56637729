"""Merkle trees over Keccak-256, verifiable on chain by chainml's contracts.

``leaf = keccak256(0x00 || data)``, ``node(a, b) = keccak256(0x01 || min(a, b) || max(a, b))``:
the prefixes keep leaves and nodes apart (no second preimages), and sorted pairs make a proof
just the list of sibling hashes.  A level with an odd count carries its last node up.  The
root of no leaves is ``keccak256(b"chainml/merkle/empty/v1")``.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address

from chainml.crypto.errors import InvalidProof
from chainml.crypto.hashing import keccak256

EMPTY_ROOT = keccak256(b"chainml/merkle/empty/v1")


def leaf_hash(data: bytes) -> bytes:
    return keccak256(b"\x00" + data)


def node_hash(a: bytes, b: bytes) -> bytes:
    return keccak256(b"\x01" + min(a, b) + max(a, b))


class MerkleTree:
    """A tree over ``leaves`` (raw leaf data); ``root`` and ``proof(i)``."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        level = [leaf_hash(d) for d in leaves]
        self.levels: list[list[bytes]] = [level]
        while len(level) > 1:
            nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            self.levels.append(nxt)
            level = nxt

    def __len__(self) -> int:
        return len(self.levels[0])

    @property
    def root(self) -> bytes:
        return self.levels[-1][0] if self.levels[0] else EMPTY_ROOT

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from leaf ``index`` up to the root."""
        if not 0 <= index < len(self):
            raise IndexError("leaf index out of range")
        path = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index //= 2
        return path


def verify_inclusion(root: bytes, leaf_data: bytes, proof: Sequence[bytes]) -> None:
    """Raise ``InvalidProof`` unless ``leaf_data`` is under ``root`` by ``proof``."""
    node = leaf_hash(leaf_data)
    for sibling in proof:
        if len(sibling) != 32:
            raise InvalidProof("a proof element is 32 bytes")
        node = node_hash(node, sibling)
    if node != root:
        raise InvalidProof("leaf is not under this root")


def commitment_leaf(participant: str, job_id: int, round_no: int, commitment: bytes) -> bytes:
    """Leaf data of a participant's round commitment: abi.encode(address, uint, uint, bytes32)."""
    return abi_encode(
        ["address", "uint256", "uint256", "bytes32"],
        [to_checksum_address(participant), job_id, round_no, commitment],
    )
