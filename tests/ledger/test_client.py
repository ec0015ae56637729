"""The ledger client against real nodes: the embedded dev chain and Anvil, same tests."""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import pytest
import vyper

from chainml.ledger.abi import ContractABI
from chainml.ledger.client import BoundContract, LedgerClient, LocalSigner
from chainml.ledger.errors import (
    ChainUnavailable,
    InvalidParameter,
    NotAuthorized,
    ReorgDetected,
    TransactionTimeout,
    UnknownRevert,
)
from chainml.ledger.events import Cursor, EventStream, MemoryCursorStore

SOURCE = """
event Stored:
    who: indexed(address)
    value: uint256

owner: public(address)
value: public(uint256)

@deploy
def __init__(start: uint256):
    self.owner = msg.sender
    self.value = start

@external
def store(v: uint256):
    assert v < 1000, "InvalidParameter"
    self.value = v
    log Stored(who=msg.sender, value=v)

@external
def owner_only():
    assert msg.sender == self.owner, "NotAuthorized"

@external
def strange():
    assert False, "SomethingNotOurs"
"""


@cache
def _compiled() -> tuple[ContractABI, bytes]:
    out = vyper.compile_code(SOURCE, output_formats=["abi", "bytecode"])
    return ContractABI(out["abi"]), bytes.fromhex(out["bytecode"][2:])


def _funded(client: LedgerClient, dev: LocalSigner, ether: int = 10) -> LocalSigner:
    signer = LocalSigner.generate()
    client.transact(dev, to=signer.address, value=ether * 10**18)
    return signer


def _deploy(client: LedgerClient, signer: LocalSigner, start: int = 7) -> BoundContract:
    abi, code = _compiled()
    address, _ = client.deploy(signer, abi, code, [start])
    return BoundContract(client, address, abi)


def test_value_transfer_moves_exactly_the_value(client: LedgerClient, dev_signer: LocalSigner):
    alice = _funded(client, dev_signer, 3)
    bob = LocalSigner.generate()
    receipt = client.transact(alice, to=bob.address, value=10**18)
    assert receipt.status == 1
    assert client.balance(bob.address) == 10**18
    assert client.balance(alice.address) < 2 * 10**18


def test_deploy_call_transact_and_events(client: LedgerClient, dev_signer: LocalSigner):
    signer = _funded(client, dev_signer)
    contract = _deploy(client, signer, 7)
    assert contract.call("value") == 7
    assert contract.call("owner") == signer.address
    receipt = contract.transact(signer, "store", 42)
    assert contract.call("value") == 42
    (event,) = contract.events(receipt, "Stored")
    assert event["who"] == signer.address and event["value"] == 42
    assert event.block_number == receipt.block_number


def test_past_events_select_by_indexed_argument(client: LedgerClient, dev_signer: LocalSigner):
    """The node's log index does the selecting (on both backends): only the named
    sender's events come back, and a filter on what is not indexed is refused."""
    alice, bob = _funded(client, dev_signer), _funded(client, dev_signer)
    contract = _deploy(client, alice)
    for signer, v in [(alice, 1), (bob, 2), (alice, 3)]:
        contract.transact(signer, "store", v)
    assert [e["value"] for e in contract.past_events("Stored", where={"who": bob.address})] == [2]
    alices = contract.past_events("Stored", where={"who": alice.address.lower()})
    assert [e["value"] for e in alices] == [1, 3]
    assert len(contract.past_events("Stored")) == 3
    with pytest.raises(InvalidParameter):
        contract.past_events("Stored", where={"value": 2})
    with pytest.raises(InvalidParameter):
        contract.past_events(where={"who": bob.address})


def test_reverts_become_typed_errors_before_sending(client: LedgerClient, dev_signer: LocalSigner):
    signer = _funded(client, dev_signer)
    contract = _deploy(client, signer)
    stranger = _funded(client, dev_signer, 1)
    nonce_before = client.rpc("eth_getTransactionCount", [stranger.address, "latest"])
    with pytest.raises(NotAuthorized):
        contract.transact(stranger, "owner_only")
    with pytest.raises(InvalidParameter) as info:
        contract.transact(signer, "store", 5000)
    assert info.value.reason == "InvalidParameter"
    with pytest.raises(UnknownRevert) as unknown:
        contract.call("strange")
    assert unknown.value.reason == "SomethingNotOurs"
    # Nothing was sent: the estimate failed first.
    assert client.rpc("eth_getTransactionCount", [stranger.address, "latest"]) == nonce_before


def test_a_transaction_mined_with_status_0_raises_its_reason(
    client: LedgerClient, dev_signer: LocalSigner
):
    signer = _funded(client, dev_signer)
    contract = _deploy(client, signer)
    data = contract.abi.encode_call("store", [5000])
    with pytest.raises(InvalidParameter) as info:
        client.transact(signer, to=contract.address, data=data, gas=100_000)
    assert info.value.tx_hash is not None
    receipt = client.wait_for_receipt(info.value.tx_hash)
    assert receipt.status == 0
    # The account's next transaction still goes through: the nonce moved on.
    contract.transact(signer, "store", 1)
    assert contract.call("value") == 1


def test_concurrent_senders_never_collide_on_nonces(client: LedgerClient, dev_signer: LocalSigner):
    signer = _funded(client, dev_signer)
    contract = _deploy(client, signer)
    errors: list[BaseException] = []
    hashes: list[str] = []
    lock = threading.Lock()

    def send(base: int) -> None:
        try:
            for i in range(5):
                receipt = contract.transact(signer, "store", base + i)
                with lock:
                    hashes.append(receipt.tx_hash)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(100 * t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert len(set(hashes)) == 20
    start = int(client.rpc("eth_getTransactionCount", [signer.address, "latest"]), 16)
    assert start == 21  # the deployment and twenty stores, each with its own nonce


def test_an_account_shared_by_two_processes_recovers_its_nonce(
    client: LedgerClient, chain_url: str, dev_signer: LocalSigner
):
    """An operator's CLI and its node may send from one account: a stale cached nonce is
    re-read from the chain once, not turned into an error."""
    other = LedgerClient(chain_url, timeout=20)
    try:
        target = LocalSigner.generate().address
        client.transact(dev_signer, to=target, value=1)  # caches the next nonce here
        other.transact(dev_signer, to=target, value=1)  # the account moves on elsewhere
        client.transact(dev_signer, to=target, value=1)  # stale cache: retried, not failed
        assert client.balance(target) == 3
    finally:
        other.close()


def test_unreachable_node_and_missing_receipt(client: LedgerClient):
    from chainml.ledger.anvil import free_port

    dead = LedgerClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(ChainUnavailable):
        dead.block_number()
    now = [0.0]

    def fake_sleep(seconds: float) -> None:
        now[0] += seconds

    waiting = LedgerClient(client.url, clock=lambda: now[0], sleep=fake_sleep, timeout=1.0)
    with pytest.raises(TransactionTimeout):
        waiting.wait_for_receipt("0x" + "ab" * 32)
    assert now[0] >= 1.0


def _stream(client: LedgerClient, contract: BoundContract, store: Any, depth: int) -> EventStream:
    return EventStream(
        client,
        [contract],
        name="test",
        store=store,
        confirmations=depth,
        start_block=client.block_number(),
    )


def test_event_stream_waits_for_confirmations_and_resumes(
    client: LedgerClient, dev_signer: LocalSigner
):
    signer = _funded(client, dev_signer)
    contract = _deploy(client, signer)
    store = MemoryCursorStore()
    stream = _stream(client, contract, store, depth=2)
    for v in (1, 2, 3):
        contract.transact(signer, "store", v)
    batch = stream.poll()
    assert [e["value"] for e in batch.events] == [1]  # 2 and 3 are not 2 blocks deep yet
    stream.ack(batch)
    client.increase_time(1)
    client.increase_time(1)
    resumed = EventStream(client, [contract], name="test", store=store, confirmations=2)
    batch = resumed.poll()
    assert [e["value"] for e in batch.events] == [2, 3]
    resumed.ack(batch)
    assert resumed.poll().events == []


def test_event_stream_detects_a_changed_block(client: LedgerClient, dev_signer: LocalSigner):
    signer = _funded(client, dev_signer)
    contract = _deploy(client, signer)
    store = MemoryCursorStore()
    contract.transact(signer, "store", 9)
    store.save("test", Cursor(client.block_number() - 1, "0x" + "00" * 32))
    with pytest.raises(ReorgDetected):
        _stream(client, contract, store, depth=0).poll()
