"""Every EIP-712 struct chainml signs, declared once, and the one way to hash them.

A struct is its name and its typed fields; from that declaration come its type string, its
type hash and the encoding of its values (``encodeData``: each atomic value as a 32-byte
word, each ``string`` or ``bytes`` as its keccak-256), so no module writes a type string or
an ABI type list of its own: round commitments (``signing``), SecAgg+ keys and approvals
(``training.secagg``), envelopes (``node.envelope``), key requests and releases
(``storage.access``), inference requests (``inference.service``) and receipts
(``inference.receipts``) all hash here.  ``tests/crypto/test_eip712.py`` checks each
struct's digest against ``eth_account.messages.encode_typed_data`` on random values.

Domains are ``EIP712Domain(string name,string version,uint256 chainId,address
verifyingContract)`` with version ``"1"``; which name and contract each struct is signed
under is written beside it (``docs/protocol/`` has the same table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from chainml.crypto.hashing import keccak256


@dataclass(frozen=True)
class Struct:
    """An EIP-712 struct of atomic fields (``uintN``, ``address``, ``bytes32``, ``bool``)
    and dynamic ones (``string``, ``bytes``)."""

    name: str
    fields: tuple[tuple[str, str], ...]  # (type, name), in signing order
    domain: str = "chainml"  # the domain's name; its contract is the caller's to give
    typehash: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for kind, _ in self.fields:
            if kind not in _ATOMIC and kind not in ("string", "bytes"):
                raise ValueError(f"{self.name}: unsupported EIP-712 type {kind}")
        object.__setattr__(self, "typehash", keccak256(self.type_string.encode()))

    @property
    def type_string(self) -> str:
        return f"{self.name}({','.join(f'{t} {n}' for t, n in self.fields)})"

    def hash(self, *values: object) -> bytes:
        """``hashStruct``: keccak-256 of the type hash and each value's 32-byte word."""
        if len(values) != len(self.fields):
            raise ValueError(f"{self.name} has {len(self.fields)} fields")
        out = bytearray(self.typehash)
        for (kind, name), value in zip(self.fields, values, strict=True):
            out += _word(kind, name, value)
        return keccak256(bytes(out))

    def digest(self, chain_id: int, contract: str, *values: object) -> bytes:
        """What is signed: ``keccak256(0x1901 ‖ domainSeparator ‖ hashStruct)``."""
        return keccak256(
            b"\x19\x01" + domain_separator(chain_id, contract, self.domain) + self.hash(*values)
        )


_ATOMIC = {"address", "bytes32", "bool", *(f"uint{n}" for n in range(8, 257, 8))}
DOMAIN = Struct(
    "EIP712Domain",
    (
        ("string", "name"),
        ("string", "version"),
        ("uint256", "chainId"),
        ("address", "verifyingContract"),
    ),
)


def _word(kind: str, name: str, value: object) -> bytes:
    if kind in ("string", "bytes"):
        if kind == "string" and isinstance(value, str):
            return keccak256(value.encode())
        if kind == "bytes" and isinstance(value, bytes):
            return keccak256(value)
    elif kind == "bytes32":
        if isinstance(value, bytes) and len(value) == 32:
            return value
    elif kind == "address":
        if isinstance(value, str) and len(value) == 42 and value[:2] in ("0x", "0X"):
            try:
                return bytes(12) + bytes.fromhex(value[2:])
            except ValueError:
                pass
    elif kind == "bool":
        if isinstance(value, bool):
            return int(value).to_bytes(32, "big")
    elif isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < 1 << int(kind[4:]):
            return value.to_bytes(32, "big")
    raise ValueError(f"{name} is not a {kind}")


@lru_cache(maxsize=256)
def domain_separator(chain_id: int, contract: str, name: str = "chainml") -> bytes:
    return DOMAIN.hash(name, "1", chain_id, contract)


# -- every struct chainml signs ------------------------------------------------------------

# a trainer's commitment to its input for one round (domain chainml, the Jobs contract;
# the contract recomputes it to check double-signing evidence)
ROUND_COMMITMENT = Struct(
    "RoundCommitment", (("uint256", "jobId"), ("uint256", "round"), ("bytes32", "commitment"))
)
# a SecAgg+ client's signed keys and commitments (domain chainml, the Jobs contract)
SECAGG_KEYS = Struct(
    "SecAggKeys",
    (
        ("uint256", "jobId"),
        ("uint256", "round"),
        ("bytes32", "context"),
        ("uint256", "client"),
        ("bytes32", "maskKey"),
        ("bytes32", "seedCommitment"),
        ("bytes32", "shares"),
    ),
)
# a SecAgg+ client's approval of the survivor list (domain chainml, the Jobs contract)
SECAGG_SURVIVORS = Struct(
    "SecAggSurvivors", (("uint256", "jobId"), ("uint256", "round"), ("bytes32", "survivors"))
)
# a node-to-node envelope (domain chainml-envelope, the Registry)
ENVELOPE = Struct(
    "Envelope",
    (
        ("address", "sender"),
        ("address", "recipient"),
        ("string", "purpose"),
        ("uint256", "jobId"),
        ("uint256", "round"),
        ("uint64", "timestamp"),
        ("bytes32", "nonce"),
        ("bytes32", "payloadHash"),
    ),
    domain="chainml-envelope",
)
# a grantee's request to a guardian for its key share (domain chainml, the Models contract)
KEY_REQUEST = Struct(
    "KeyRequest",
    (
        ("uint256", "grantId"),
        ("address", "guardian"),
        ("address", "requester"),
        ("uint64", "timestamp"),
        ("bytes32", "nonce"),
    ),
)
# a guardian's release of its sealed share (domain chainml, the Models contract)
KEY_RELEASE = Struct(
    "KeyRelease", (("bytes32", "request"), ("uint8", "index"), ("bytes32", "sealedShare"))
)
# a client's inference request (domain chainml-inference, the Receipts contract)
INFERENCE_REQUEST = Struct(
    "InferenceRequest",
    (
        ("address", "client"),
        ("address", "provider"),
        ("uint256", "modelVersion"),
        ("string", "mode"),
        ("bytes32", "keySet"),
        ("bytes32", "replyKey"),
        ("uint64", "timestamp"),
        ("bytes32", "nonce"),
        ("bytes32", "bodyHash"),
    ),
    domain="chainml-inference",
)
# a provider's receipt for one answer (domain chainml, the Receipts contract)
RECEIPT = Struct(
    "Receipt",
    (
        ("address", "provider"),
        ("address", "client"),
        ("uint256", "modelVersion"),
        ("bytes32", "request"),
        ("bytes32", "response"),
        ("uint256", "price"),
        ("uint64", "counter"),
    ),
)

STRUCTS = (
    ROUND_COMMITMENT,
    SECAGG_KEYS,
    SECAGG_SURVIVORS,
    ENVELOPE,
    KEY_REQUEST,
    KEY_RELEASE,
    INFERENCE_REQUEST,
    RECEIPT,
)
