"""A client for any EVM chain that speaks standard Ethereum JSON-RPC.

Transactions are signed locally (keys never go to a node), nonces are handed out per
account under a lock so concurrent senders never collide, receipts are awaited with a
deadline, and every revert comes back as one of chainml's typed errors.  The same client
serves chainml's embedded dev chain and any other node (Anvil, geth, an L2).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from chainml.ledger.abi import ContractABI, Event, decode_revert
from chainml.ledger.errors import (
    ChainDataError,
    ChainUnavailable,
    ContractRevert,
    InvalidParameter,
    RpcError,
    TransactionTimeout,
    UnknownRevert,
    revert_error,
)

if TYPE_CHECKING:
    from chainml.ledger.settle import Settlement

Clock = Callable[[], float]
_SSTORE_HEADROOM = 25_000
Sleep = Callable[[float], None]


class TransactionSigner(Protocol):
    """Anything that can sign an EIP-1559 transaction for one account, locally."""

    @property
    def address(self) -> str: ...

    def sign_transaction(self, tx: Mapping[str, Any]) -> bytes: ...


class LocalSigner:
    """A secp256k1 account key held in this process.  Its repr never shows the key."""

    def __init__(self, account: LocalAccount) -> None:
        self._account = account

    @classmethod
    def from_key(cls, key: bytes | str) -> LocalSigner:
        return cls(Account.from_key(key))

    @classmethod
    def generate(cls) -> LocalSigner:
        return cls(Account.create())

    @property
    def address(self) -> str:
        return str(self._account.address)

    def sign_transaction(self, tx: Mapping[str, Any]) -> bytes:
        return bytes(self._account.sign_transaction(dict(tx)).raw_transaction)

    def __repr__(self) -> str:
        return f"LocalSigner({self.address})"


@dataclass(frozen=True)
class Receipt:
    """A mined transaction."""

    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    gas_used: int
    contract_address: str | None
    logs: Sequence[Mapping[str, Any]] = field(repr=False)


def _hex(value: int) -> str:
    return hex(value)


def _int(value: Any) -> int:
    return int(str(value), 16)


class LedgerClient:
    """One JSON-RPC endpoint, with local signing, per-account nonces and typed errors.

    ``clock`` and ``sleep`` are injected so that waiting can be driven by the caller.
    Raises ``ChainUnavailable`` when the endpoint cannot be reached, ``RpcError`` for other
    node errors, a ``ContractRevert`` subclass for reverts, ``TransactionTimeout`` when no
    receipt arrives in time.  A client given a ``settlement`` (``chainml.ledger.settle``)
    sends nothing while that policy holds the node's view of the chain (``ViewDistrusted``).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        poll_interval: float = 0.02,
        gas_margin: float = 1.25,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        settlement: Settlement | None = None,
    ) -> None:
        self.url = url
        self.settlement = settlement
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.gas_margin = gas_margin
        self._clock = clock
        self._sleep = sleep
        self._session = requests.Session()
        self._ids = iter(range(1, 1 << 62))
        self._id_lock = threading.Lock()
        self._nonces: dict[str, int] = {}
        self._nonce_locks: dict[str, threading.Lock] = {}
        self._nonce_guard = threading.Lock()
        self._chain_id: int | None = None

    # -- raw JSON-RPC -------------------------------------------------------------------

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """Call ``method``; returns its result or raises a typed error."""
        with self._id_lock:
            request_id = next(self._ids)
        body: dict[str, Any] = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": method,
            "params": list(params),
        }
        try:
            response = self._session.post(self.url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ChainUnavailable(f"{method}: cannot reach {self.url}") from exc
        if response.status_code != 200:
            raise ChainUnavailable(f"{method}: {self.url} answered HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise RpcError(f"{method}: the node's answer is not JSON") from exc
        if not isinstance(answer, dict):
            raise RpcError(f"{method}: the node's answer is not a JSON-RPC object")
        error = answer.get("error")
        if error is not None:
            raise self._error(method, error)
        return answer.get("result")

    @staticmethod
    def _error(method: str, error: Any) -> Exception:
        message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
        data = error.get("data") if isinstance(error, dict) else None
        if isinstance(data, dict):  # some nodes nest the revert data
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x") and len(data) > 2:
            try:
                return decode_revert(bytes.fromhex(data[2:]))
            except ValueError:
                pass
        if "revert" in message.lower():
            reason = message.split("reverted:", 1)[1].strip() if "reverted:" in message else None
            return revert_error(reason)
        return RpcError(f"{method}: {message[:200]}")

    # -- reading ------------------------------------------------------------------------

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = _int(self.rpc("eth_chainId"))
        return self._chain_id

    def block_number(self) -> int:
        return _int(self.rpc("eth_blockNumber"))

    def block(self, number: int | str = "latest") -> Mapping[str, Any]:
        tag = _hex(number) if isinstance(number, int) else number
        block = self.rpc("eth_getBlockByNumber", [tag, False])
        if not isinstance(block, dict):
            raise ChainDataError(f"no block {number}")
        return block

    def balance(self, address: str, block: int | str = "latest") -> int:
        tag = _hex(block) if isinstance(block, int) else block
        return _int(self.rpc("eth_getBalance", [address, tag]))

    def code(self, address: str) -> bytes:
        return bytes.fromhex(str(self.rpc("eth_getCode", [address, "latest"]))[2:])

    def call(
        self, to: str, data: bytes, *, sender: str | None = None, block: int | str = "latest"
    ) -> bytes:
        """``eth_call``; a revert raises its typed error."""
        tx: dict[str, Any] = {"to": to, "data": "0x" + data.hex()}
        if sender:
            tx["from"] = sender
        tag = _hex(block) if isinstance(block, int) else block
        return bytes.fromhex(str(self.rpc("eth_call", [tx, tag]))[2:])

    def logs(
        self,
        *,
        address: str | Sequence[str],
        from_block: int,
        to_block: int,
        topics: Sequence[Any] | None = None,
    ) -> list[Mapping[str, Any]]:
        flt: dict[str, Any] = {
            "address": address,
            "fromBlock": _hex(from_block),
            "toBlock": _hex(to_block),
        }
        if topics:
            flt["topics"] = list(topics)
        result = self.rpc("eth_getLogs", [flt])
        if not isinstance(result, list):
            raise ChainDataError("eth_getLogs did not return a list")
        return result

    # -- writing ------------------------------------------------------------------------

    def _lock_for(self, address: str) -> threading.Lock:
        with self._nonce_guard:
            return self._nonce_locks.setdefault(address, threading.Lock())

    def _fees(self) -> tuple[int, int]:
        base = _int(self.block("latest").get("baseFeePerGas", "0x0"))
        try:
            tip = _int(self.rpc("eth_maxPriorityFeePerGas"))
        except RpcError:
            tip = 10**9
        return 2 * base + tip, tip

    def send(
        self,
        signer: TransactionSigner,
        *,
        to: str | None,
        data: bytes = b"",
        value: int = 0,
        gas: int | None = None,
        wait: bool = True,
    ) -> Receipt | str:
        """Sign and send a transaction; returns its receipt (or only its hash if not ``wait``).

        Gas is estimated first, so a call that would revert raises its typed error before
        anything is sent.  A transaction mined with status 0 raises its revert reason too.
        While the client's settlement policy holds the view, raises ``ViewDistrusted``.
        """
        if self.settlement is not None:
            self.settlement.check()
        sender = to_checksum_address(signer.address)
        tx: dict[str, Any] = {"from": sender, "value": _hex(value), "data": "0x" + data.hex()}
        if to is not None:
            tx["to"] = to_checksum_address(to)
        if gas is None:
            # The estimate reflects state now; other transactions mined first can make storage
            # writes dearer (a slot set back to zero costs 20k gas to fill again).  Unused
            # gas is not charged, so headroom is cheap.
            estimate = _int(self.rpc("eth_estimateGas", [tx]))
            gas = int(estimate * self.gas_margin) + _SSTORE_HEADROOM
        max_fee, tip = self._fees()
        with self._lock_for(sender):
            for attempt in (1, 2):
                nonce = self._nonces.get(sender)
                if nonce is None:
                    nonce = _int(self.rpc("eth_getTransactionCount", [sender, "pending"]))
                unsigned = {
                    "type": 2,
                    "chainId": self.chain_id,
                    "nonce": nonce,
                    "value": value,
                    "data": data,
                    "gas": gas,
                    "maxFeePerGas": max_fee,
                    "maxPriorityFeePerGas": tip,
                }
                if "to" in tx:
                    unsigned["to"] = tx["to"]
                raw = signer.sign_transaction(unsigned)
                try:
                    tx_hash = str(self.rpc("eth_sendRawTransaction", ["0x" + raw.hex()]))
                except (RpcError, ContractRevert) as exc:
                    self._nonces.pop(sender, None)  # re-read the nonce from the chain next time
                    # another process sent from this account since we cached its nonce:
                    # once more with the chain's count
                    if attempt == 1 and isinstance(exc, RpcError) and "nonce" in str(exc).lower():
                        continue
                    raise
                self._nonces[sender] = nonce + 1
                break
        if not wait:
            return tx_hash
        receipt = self.wait_for_receipt(tx_hash)
        if receipt.status != 1:
            raise self._failure_reason(tx, receipt)
        return receipt

    def transact(
        self,
        signer: TransactionSigner,
        *,
        to: str | None,
        data: bytes = b"",
        value: int = 0,
        gas: int | None = None,
    ) -> Receipt:
        """``send`` and wait: always returns the receipt of a successful transaction."""
        receipt = self.send(signer, to=to, data=data, value=value, gas=gas, wait=True)
        assert isinstance(receipt, Receipt)
        return receipt

    def _failure_reason(self, tx: Mapping[str, Any], receipt: Receipt) -> ContractRevert:
        # Replaying the call on the state before the block tells why it reverted.
        try:
            self.call(
                str(tx.get("to", "")),
                bytes.fromhex(str(tx["data"])[2:]),
                sender=str(tx["from"]),
                block=max(receipt.block_number - 1, 0),
            )
        except ContractRevert as exc:
            exc.tx_hash = receipt.tx_hash
            exc.args = (f"contract reverted: {exc.reason} (tx {receipt.tx_hash})",)
            return exc
        except RpcError:
            pass
        return UnknownRevert("reverted on chain", tx_hash=receipt.tx_hash)

    def wait_for_receipt(self, tx_hash: str, timeout: float | None = None) -> Receipt:
        """Poll until ``tx_hash`` is mined; raises ``TransactionTimeout`` past the deadline."""
        deadline = self._clock() + (self.timeout if timeout is None else timeout)
        while True:
            raw = self.rpc("eth_getTransactionReceipt", [tx_hash])
            if isinstance(raw, dict) and raw.get("blockNumber"):
                return Receipt(
                    tx_hash=tx_hash,
                    block_number=_int(raw["blockNumber"]),
                    block_hash=str(raw["blockHash"]),
                    status=_int(raw.get("status", "0x1")),
                    gas_used=_int(raw["gasUsed"]),
                    contract_address=raw.get("contractAddress"),
                    logs=list(raw.get("logs", [])),
                )
            if self._clock() >= deadline:
                raise TransactionTimeout(f"no receipt for {tx_hash} after the deadline")
            self._sleep(self.poll_interval)

    def deploy(
        self,
        signer: TransactionSigner,
        abi: ContractABI,
        bytecode: bytes,
        args: Sequence[Any] = (),
        *,
        value: int = 0,
    ) -> tuple[str, Receipt]:
        """Deploy a contract; returns its checksummed address and the receipt."""
        receipt = self.transact(
            signer, to=None, data=bytecode + abi.encode_constructor(args), value=value
        )
        if not receipt.contract_address:
            raise ChainDataError(f"deployment {receipt.tx_hash} created no contract")
        return to_checksum_address(receipt.contract_address), receipt

    # -- development chains -------------------------------------------------------------

    def increase_time(self, seconds: int) -> None:
        """Move the chain's clock forward and mine a block (dev chains and Anvil only)."""
        self.rpc("evm_increaseTime", [seconds])
        self.rpc("evm_mine", [])

    def close(self) -> None:
        self._session.close()


class BoundContract:
    """A deployed contract: typed calls and transactions against one address."""

    def __init__(self, client: LedgerClient, address: str, abi: ContractABI) -> None:
        self.client = client
        self.address = to_checksum_address(address)
        self.abi = abi

    def call(self, fn: str, *args: Any, block: int | str = "latest") -> Any:
        data = self.client.call(self.address, self.abi.encode_call(fn, args), block=block)
        return self.abi.decode_result(fn, len(args), data)

    def transact(self, signer: TransactionSigner, fn: str, *args: Any, value: int = 0) -> Receipt:
        return self.client.transact(
            signer, to=self.address, data=self.abi.encode_call(fn, args), value=value
        )

    def past_events(
        self,
        name: str | None = None,
        *,
        from_block: int = 0,
        to_block: int | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[Event]:
        """This contract's events in a block range (only those called ``name`` if given),
        oldest first; ``where`` selects by indexed arguments, in the node's log index."""
        last = self.client.block_number() if to_block is None else to_block
        if where and name is None:
            raise InvalidParameter("selecting by indexed arguments needs the event's name")
        topics = self.abi.event_filter(name, where) if name and where else None
        found = []
        for log in self.client.logs(
            address=self.address, from_block=from_block, to_block=last, topics=topics
        ):
            event = self.abi.decode_log(log)
            if event is not None and (name is None or event.name == name):
                found.append(event)
        return found

    def events(self, receipt: Receipt, name: str | None = None) -> list[Event]:
        """This contract's events in ``receipt`` (only those called ``name`` if given)."""
        found = []
        for log in receipt.logs:
            if str(log.get("address", "")).lower() != self.address.lower():
                continue
            event = self.abi.decode_log(log)
            if event is not None and (name is None or event.name == name):
                found.append(event)
        return found
