"""ABI encoding and decoding for chainml's contracts, without web3's global contract machinery.

``ContractABI`` turns a function name and Python arguments into call data, decodes return
data and event logs, and decodes revert data into chainml's typed errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError, EncodingError
from eth_abi.grammar import TupleType
from eth_abi.grammar import parse as parse_type
from eth_utils.abi import (
    collapse_if_tuple,
    event_abi_to_log_topic,
    function_abi_to_4byte_selector,
)
from eth_utils.address import to_checksum_address

from chainml.ledger.errors import ChainDataError, ContractRevert, InvalidParameter, revert_error

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)


@dataclass(frozen=True)
class Event:
    """A decoded contract event."""

    name: str
    args: Mapping[str, Any]
    address: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int

    def __getitem__(self, key: str) -> Any:
        return self.args[key]


def _types(params: Sequence[Mapping[str, Any]]) -> list[str]:
    return [collapse_if_tuple(dict(p)) for p in params]


def decode_revert(data: bytes, *, tx_hash: str | None = None) -> ContractRevert:
    """The typed error for revert ``data`` returned by a node."""
    if data[:4] == ERROR_SELECTOR:
        try:
            (reason,) = abi_decode(["string"], data[4:])
        except (DecodingError, ValueError, OverflowError):
            return revert_error(None, tx_hash=tx_hash)
        return revert_error(str(reason), tx_hash=tx_hash)
    if data[:4] == PANIC_SELECTOR and len(data) >= 36:
        code = int.from_bytes(data[4:36], "big")
        return revert_error(f"Panic(0x{code:02x})", tx_hash=tx_hash)
    return revert_error(None, tx_hash=tx_hash)


def _normalise(kind: str, value: Any) -> Any:
    """Checksum every address in a decoded value, following its ABI type into tuples."""
    return _normalise_parsed(parse_type(kind), value)


def _normalise_parsed(node: Any, value: Any) -> Any:
    if isinstance(node, TupleType):
        if node.is_array:
            inner = node.item_type
            return tuple(_normalise_parsed(inner, v) for v in value)
        return tuple(_normalise_parsed(c, v) for c, v in zip(node.components, value, strict=True))
    if node.is_array:
        return tuple(_normalise_parsed(node.item_type, v) for v in value)
    return to_checksum_address(value) if node.base == "address" else value


def _check_sizes(node: Any, value: Any, where: str) -> None:
    """Refuse a ``bytesN`` value of another length: the ABI encoder would pad a short one
    with zeros (a 31-byte hash posted as a different 32-byte one)."""
    if isinstance(node, TupleType) and not node.is_array:
        if isinstance(value, (list, tuple)) and len(value) == len(node.components):
            for component, item in zip(node.components, value, strict=True):
                _check_sizes(component, item, where)
    elif node.is_array:
        if isinstance(value, (list, tuple)):
            for item in value:
                _check_sizes(node.item_type, item, where)
    elif node.base == "bytes" and isinstance(node.sub, int):
        if isinstance(value, (bytes, bytearray)) and len(value) != node.sub:
            raise InvalidParameter(
                f"{where}: bytes{node.sub} takes {node.sub} bytes, not {len(value)}"
            )


def _encode(types: Sequence[str], args: Sequence[Any], where: str) -> bytes:
    for kind, value in zip(types, args, strict=True):
        _check_sizes(parse_type(kind), value, where)
    return abi_encode(list(types), list(args))


class ContractABI:
    """One contract's ABI: encode calls and constructor arguments, decode results and logs."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self.abi = list(abi)
        self._functions: dict[str, list[Mapping[str, Any]]] = {}
        self._events: dict[bytes, Mapping[str, Any]] = {}
        self._event_names: dict[str, bytes] = {}
        self._constructor: Mapping[str, Any] | None = None
        for item in self.abi:
            kind = item.get("type")
            if kind == "function":
                self._functions.setdefault(item["name"], []).append(item)
            elif kind == "event":
                topic = event_abi_to_log_topic(cast(Any, item))
                self._events[topic] = item
                self._event_names[item["name"]] = topic
            elif kind == "constructor":
                self._constructor = item

    def _function(self, name: str, nargs: int) -> Mapping[str, Any]:
        try:
            candidates = self._functions[name]
        except KeyError:
            raise InvalidParameter(f"the contract has no function {name!r}") from None
        for item in candidates:
            if len(item.get("inputs", [])) == nargs:
                return item
        raise InvalidParameter(f"{name} takes no {nargs} arguments")

    def encode_call(self, name: str, args: Sequence[Any]) -> bytes:
        """Call data for ``name(*args)``; Vyper's default-argument overloads are chosen by count."""
        item = self._function(name, len(args))
        selector = function_abi_to_4byte_selector(cast(Any, item))
        try:
            return selector + _encode(_types(item.get("inputs", [])), args, name)
        except (EncodingError, TypeError, ValueError, OverflowError) as exc:
            raise InvalidParameter(f"arguments do not fit {name}: {exc}") from exc

    def decode_result(self, name: str, nargs: int, data: bytes) -> Any:
        """Decode what ``name`` returned; one output is returned bare, several as a tuple."""
        outputs = self._function(name, nargs).get("outputs", [])
        if not outputs:
            return None
        try:
            raw = abi_decode(_types(outputs), data)
        except (DecodingError, ValueError, OverflowError) as exc:
            raise ChainDataError(f"could not decode the result of {name}") from exc
        values = [_normalise(t, v) for t, v in zip(_types(outputs), raw, strict=True)]
        return values[0] if len(values) == 1 else tuple(values)

    def encode_constructor(self, args: Sequence[Any]) -> bytes:
        """ABI-encoded constructor arguments (appended to the deploy bytecode)."""
        inputs = self._constructor.get("inputs", []) if self._constructor else []
        if len(inputs) != len(args):
            raise InvalidParameter(f"the constructor takes {len(inputs)} arguments")
        try:
            return _encode(_types(inputs), args, "constructor") if inputs else b""
        except (EncodingError, TypeError, ValueError, OverflowError) as exc:
            raise InvalidParameter(f"constructor arguments do not fit: {exc}") from exc

    def event_topic(self, name: str) -> bytes:
        """topic0 of event ``name``."""
        try:
            return self._event_names[name]
        except KeyError:
            raise InvalidParameter(f"the contract has no event {name!r}") from None

    def event_filter(self, name: str, where: Mapping[str, Any]) -> list[str | None]:
        """``eth_getLogs`` topics selecting event ``name`` whose indexed arguments equal
        ``where`` (static types only; an argument left out matches anything)."""
        item = self._events[self.event_topic(name)]
        indexed = [p for p in item["inputs"] if p.get("indexed")]
        unknown = set(where) - {p["name"] for p in indexed}
        if unknown:
            raise InvalidParameter(f"{name} has no indexed argument {sorted(unknown)}")
        topics: list[str | None] = ["0x" + self.event_topic(name).hex()]
        for param in indexed:
            kind = collapse_if_tuple(dict(param))
            if param["name"] not in where:
                topics.append(None)
            elif kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("("):
                raise InvalidParameter(f"{name}.{param['name']} is dynamic: not filterable")
            else:
                try:
                    topics.append("0x" + abi_encode([kind], [where[param["name"]]]).hex())
                except (EncodingError, TypeError, ValueError, OverflowError) as exc:
                    raise InvalidParameter(f"{name}.{param['name']}: {exc}") from exc
        while topics[-1] is None:
            topics.pop()
        return topics

    def decode_log(self, log: Mapping[str, Any]) -> Event | None:
        """Decode a raw JSON-RPC log of this contract; None if it is none of its events."""
        topics = [bytes.fromhex(str(t).removeprefix("0x")) for t in log["topics"]]
        if not topics or topics[0] not in self._events:
            return None
        item = self._events[topics[0]]
        indexed = [p for p in item["inputs"] if p.get("indexed")]
        plain = [p for p in item["inputs"] if not p.get("indexed")]
        try:
            args: dict[str, Any] = {}
            for param, topic in zip(indexed, topics[1:], strict=True):
                kind = collapse_if_tuple(dict(param))
                if kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("("):
                    args[param["name"]] = topic  # dynamic values are indexed by their hash
                else:
                    (args[param["name"]],) = abi_decode([kind], topic)
                    args[param["name"]] = _normalise(kind, args[param["name"]])
            data = bytes.fromhex(str(log["data"]).removeprefix("0x"))
            for param, value in zip(plain, abi_decode(_types(plain), data), strict=True):
                args[param["name"]] = _normalise(collapse_if_tuple(dict(param)), value)
        except (DecodingError, ValueError) as exc:
            raise ChainDataError(f"malformed {item['name']} log") from exc
        return Event(
            name=item["name"],
            args=args,
            address=str(log["address"]),
            block_number=int(str(log["blockNumber"]), 16),
            block_hash=str(log["blockHash"]),
            tx_hash=str(log["transactionHash"]),
            log_index=int(str(log["logIndex"]), 16),
        )
