"""chainml's embedded development chain: py-evm, made deterministic and durable.

State lives in py-evm (through eth-tester's backend).  Every state-changing request — a raw
transaction, a time shift, an explicit mine — is appended to a journal and fsync'd before
its answer goes back, with the block timestamp it produced.  On start the journal is
replayed, so the chain is rebuilt block for block with the same hashes: a restart keeps
every block, balance and log, and a SIGKILL loses only requests never answered.

Two things eth-tester leaves to chance are fixed here so replay is exact: block timestamps
are set explicitly, and ``prevrandao`` (the block's mix hash) is derived from the parent
hash.  That makes prevrandao predictable on this chain: it is a development chain.

Finality, staged: the ``finalized`` block is ``finality_depth`` blocks under the head (0,
the default: every block is final at once, as on a chain without consensus) and the
``safe`` block half as deep; ``set_finality`` changes the depth or freezes the finalized
block where it is (a stalled consensus), and ``reorg`` replaces the newest blocks above
the finalized one by a longer branch without their transactions.  These are settings of
the running process, not journaled, except the reorganisation itself.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from eth.exceptions import Revert as EVMRevert
from eth.exceptions import VMError
from eth.vm.forks.prague import PragueVM
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm.main import get_default_genesis_params
from eth_tester.exceptions import BlockNotFound, TransactionNotFound, ValidationError
from eth_utils.crypto import keccak

from chainml.ledger.errors import ChainDataError

CHAIN_ID = 1337
DEV_MNEMONIC = "test test test test test test test test test test test junk"
# The mnemonic's first account (m/44'/60'/0'/0/0), funded on this chain and on Anvil: the
# deployer of development networks.  Public knowledge, worthless on any other chain.
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_BALANCE = 10_000 * 10**18
_FRAME = struct.Struct(">II")  # payload length, crc32


class JournalError(ChainDataError):
    """The journal cannot be read or written."""


class Journal:
    """Append-only records, each framed by length and CRC-32 and fsync'd on append."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: BinaryIO | None = None

    def read(self) -> list[dict[str, Any]]:
        """Every intact record; a torn or corrupt tail (a write cut by a kill) is cut off."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        records: list[dict[str, Any]] = []
        offset = 0
        while offset + _FRAME.size <= len(data):
            length, crc = _FRAME.unpack_from(data, offset)
            payload = data[offset + _FRAME.size : offset + _FRAME.size + length]
            if len(payload) != length or zlib.crc32(payload) != crc:
                break
            try:
                records.append(json.loads(payload))
            except ValueError:
                break
            offset += _FRAME.size + length
        if offset != len(data):
            with self.path.open("r+b") as fh:
                fh.truncate(offset)
                os.fsync(fh.fileno())
        return records

    def append(self, record: dict[str, Any]) -> None:
        payload = json.dumps(record, separators=(",", ":")).encode()
        if self._fh is None:
            self._fh = self.path.open("ab")
        try:
            self._fh.write(_FRAME.pack(len(payload), zlib.crc32(payload)) + payload)
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:
            raise JournalError(f"cannot write the journal {self.path}") from exc

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class _Backend(PyEVMBackend):  # type: ignore[misc]
    """eth-tester's py-evm backend with a deterministic prevrandao."""

    def mine_blocks(self, num_blocks: int = 1, coinbase: Any = b"\0" * 20) -> tuple[bytes, ...]:
        hashes = []
        for _ in range(num_blocks):
            parent = self.chain.get_canonical_head()
            kwargs: dict[str, Any] = {
                "coinbase": coinbase,
                "mix_hash": keccak(b"chainml/devchain/prevrandao/v1" + parent.hash),
            }
            if isinstance(self.chain.get_vm(), PragueVM):
                kwargs["blob_gas_used"] = 0
            hashes.append(self.chain.mine_block(**kwargs).hash)
        return tuple(hashes)


class DevChain:
    """The chain and its journal.  Thread-safe: one request at a time changes state.

    ``clock`` gives wall-clock seconds (injected so tests can drive time).
    """

    def __init__(
        self, datadir: Path, *, clock: Callable[[], float] = time.time, finality_depth: int = 0
    ) -> None:
        if finality_depth < 0:
            raise ValueError("finality_depth must be >= 0")
        self.datadir = datadir
        self.finality_depth = finality_depth
        self._frozen: int | None = None  # the finalized block, while finality is frozen
        self.lock = threading.RLock()
        self._clock = clock
        self._offset = 0
        self._min_next = 0  # evm_increaseTime: the next block is at least this late
        datadir.mkdir(parents=True, exist_ok=True)
        genesis_file = datadir / "genesis.json"
        if genesis_file.exists():
            genesis_time = int(json.loads(genesis_file.read_text())["timestamp"])
        else:
            genesis_time = int(clock())
            tmp = genesis_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"timestamp": genesis_time, "chain_id": CHAIN_ID}))
            os.replace(tmp, genesis_file)
        backend = _Backend.from_mnemonic(
            DEV_MNEMONIC,
            genesis_state_overrides={"balance": DEV_BALANCE},
            num_accounts=10,
            hd_path="m/44'/60'/0'/0",
            genesis_parameters=get_default_genesis_params({"timestamp": genesis_time}),
        )
        type(backend.chain).chain_id = CHAIN_ID
        self.backend = backend
        self.tester = EthereumTester(backend=backend, auto_mine_transactions=True)
        self.journal = Journal(datadir / "journal.log")
        self.replayed = 0
        for record in self.journal.read():
            self._apply(record)
            self.replayed += 1

    # -- state changes (each journaled) --------------------------------------------------

    def _next_timestamp(self) -> int:
        parent = int(self.backend.chain.get_canonical_head().timestamp)
        return max(parent + 1, int(self._clock()) + self._offset, self._min_next)

    def _set_pending_timestamp(self, ts: int) -> None:
        chain = self.backend.chain
        chain.header = chain.header.copy(timestamp=ts)

    def _apply(self, record: dict[str, Any]) -> Any:
        kind = record["k"]
        if kind == "tx":
            self._set_pending_timestamp(int(record["ts"]))
            return self.tester.send_raw_transaction(record["raw"])
        if kind == "mine":
            self._set_pending_timestamp(int(record["ts"]))
            return self.tester.mine_blocks(1)
        if kind == "time":
            seconds = int(record["s"])
            self._offset += seconds
            head = int(self.backend.chain.get_canonical_head().timestamp)
            self._min_next = max(self._min_next, head + seconds)
            return self._offset
        if kind == "reorg":
            return self._reorg(int(record["depth"]), int(record["ts"]))
        raise JournalError(f"unknown journal record {kind!r}")

    def _reorg(self, depth: int, ts: int) -> int:
        head = self.head()
        fork = self.backend.chain.get_canonical_block_header_by_number(head - depth).hash
        self.backend.revert_to_snapshot(fork)
        for i in range(depth + 1):
            self._set_pending_timestamp(ts + i)
            self.tester.mine_blocks(1)
        return self.head()

    def _journaled(self, record: dict[str, Any]) -> Any:
        with self.lock:
            result = self._apply(record)
            self.journal.append(record)
            return result

    def send_raw_transaction(self, raw_hex: str) -> str:
        """Execute and mine a signed transaction; its hash once it is durable."""
        with self.lock:
            return str(self._journaled({"k": "tx", "raw": raw_hex, "ts": self._next_timestamp()}))

    def mine(self) -> None:
        with self.lock:
            self._journaled({"k": "mine", "ts": self._next_timestamp()})

    def increase_time(self, seconds: int) -> int:
        if seconds < 0:
            raise ValueError("time only moves forward")
        return int(self._journaled({"k": "time", "s": seconds}))

    def reorg(self, depth: int) -> int:
        """Replace the newest ``depth`` blocks by ``depth + 1`` empty ones (their
        transactions are gone); returns the new head.  A finalized block never changes:
        ``ValueError`` if the branch would replace one."""
        with self.lock:
            head = self.head()
            if depth < 1 or head - depth < self.finalized():
                raise ValueError(f"a reorganisation of depth {depth} would undo finalized blocks")
            ts = max(self._next_timestamp(), int(self._clock()) + self._offset)
            return int(self._journaled({"k": "reorg", "depth": depth, "ts": ts}))

    def set_finality(self, *, depth: int | None = None, frozen: bool | None = None) -> int:
        """Change the finality depth and/or freeze (or thaw) the finalized block; returns
        the finalized block's number."""
        with self.lock:
            if depth is not None:
                if depth < 0:
                    raise ValueError("the finality depth must be >= 0")
                self.finality_depth = depth
            if frozen is not None:
                self._frozen = self.finalized() if frozen else None
            return self.finalized()

    # -- reads -----------------------------------------------------------------------

    def head(self) -> int:
        return int(self.tester.get_block_by_number("latest")["number"])

    def finalized(self) -> int:
        """The finalized block's number: ``finality_depth`` under the head, or frozen."""
        with self.lock:
            if self._frozen is not None:
                return min(self._frozen, self.head())
            return max(0, self.head() - self.finality_depth)

    def safe(self) -> int:
        """The safe block's number: half the finality depth under the head, never under
        the finalized block."""
        with self.lock:
            return max(self.finalized(), self.head() - self.finality_depth // 2)

    def _execute(self, tx: dict[str, Any], block: Any, gas: int | None = None) -> Any:
        """Run ``tx`` on a snapshot of ``block``'s state and roll back.

        As in geth, a call needs no funds: the sender's balance is topped up inside the
        snapshot, so ``eth_call`` and ``eth_estimateGas`` work from any address.
        """
        from eth_tester.backends.pyevm.main import (
            EVMSpoofTransaction,
            _get_vm_for_block_number,
        )

        normal = self.tester.normalizer.normalize_inbound_transaction(tx)
        normal["gas"] = gas if gas is not None else self.backend._max_available_gas()
        unsigned = self.backend._get_normalized_and_unsigned_evm_transaction(normal, block)
        spoof = EVMSpoofTransaction(unsigned, from_=normal["from"])
        state = _get_vm_for_block_number(self.backend.chain, block).state
        snapshot = state.snapshot()
        try:
            state.set_balance(normal["from"], state.get_balance(normal["from"]) + 10**30)
            return state.apply_transaction(spoof)
        finally:
            state.revert(snapshot)

    def call(self, tx: dict[str, Any], block: Any = "latest") -> bytes:
        """Execute without committing; raises ``CallReverted`` with the raw revert data."""
        with self.lock:
            computation = self._execute(tx, block)
            if computation.is_error:
                raise CallReverted(_revert_data(computation.error))
            return bytes(computation.output)

    def estimate_gas(self, tx: dict[str, Any]) -> int:
        """The least gas limit with which ``tx`` succeeds now; ``CallReverted`` if none does."""
        with self.lock:
            high = int(self.backend._max_available_gas())
            computation = self._execute(tx, "latest", high)
            if computation.is_error:
                raise CallReverted(_revert_data(computation.error))
            low = high - int(computation.get_gas_remaining())
            if not self._execute(tx, "latest", low).is_error:
                return low
            # The 63/64 rule or refunds can need more than what was used: search upwards.
            while high - low > 1000:
                mid = (low + high) // 2
                if self._execute(tx, "latest", mid).is_error:
                    low = mid
                else:
                    high = mid
            return high

    def close(self) -> None:
        with self.lock:
            self.journal.close()


class CallReverted(Exception):
    """A call or estimate reverted; ``data`` is the raw revert data."""

    def __init__(self, data: bytes) -> None:
        super().__init__("execution reverted")
        self.data = data


def _revert_data(error: VMError) -> bytes:
    if isinstance(error, EVMRevert) and error.args and isinstance(error.args[0], bytes):
        return error.args[0]
    return b""


__all__ = [
    "CHAIN_ID",
    "BlockNotFound",
    "CallReverted",
    "DevChain",
    "Journal",
    "JournalError",
    "TransactionNotFound",
    "ValidationError",
]
