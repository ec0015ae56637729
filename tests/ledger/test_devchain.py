"""The embedded chain as a real process: standard JSON-RPC, durability across restarts and SIGKILL."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import requests

from chainml.ledger.client import LedgerClient, LocalSigner
from chainml.ledger.devchain import DevChainProcess
from chainml.ledger.devchain.chain import Journal
from chainml.ledger.errors import ChainUnavailable, LedgerError

from .conftest import DEV_KEYS


def _rpc(url: str, body: object, raw: bytes | None = None) -> requests.Response:
    if raw is not None:
        return requests.post(
            url, data=raw, headers={"Content-Type": "application/json"}, timeout=10
        )
    return requests.post(url, json=body, timeout=10)


def test_standard_json_rpc_answers(devchain_url: str):
    c = LedgerClient(devchain_url)
    assert c.chain_id == 1337
    assert c.rpc("net_version") == "1337"
    assert c.balance("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266") > 0
    block = c.block("latest")
    for key in ("hash", "parentHash", "number", "timestamp", "baseFeePerGas", "miner", "logsBloom"):
        assert key in block, key
    assert len(block["logsBloom"]) == 2 + 512
    batch = _rpc(
        devchain_url,
        [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
            {"jsonrpc": "2.0", "id": 2, "method": "eth_chainId", "params": []},
        ],
    ).json()
    assert [r["id"] for r in batch] == [1, 2] and batch[1]["result"] == "0x539"


@pytest.mark.parametrize(
    "raw, code",
    [
        (b"{not json", -32700),
        (b'{"jsonrpc": "2.0", "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_nothing", "params": []}', -32601),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": []}', -32602),
        (
            b'{"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": ["0x12", "latest"]}',
            -32602,
        ),
        (
            b'{"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": ["0xdeadbeef"]}',
            -32000,
        ),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "evm_increaseTime", "params": ["ten"]}', -32602),
        (b"[]", -32600),
    ],
)
def test_malformed_requests_get_errors_not_crashes(devchain_url: str, raw: bytes, code: int):
    answer = _rpc(devchain_url, None, raw).json()
    assert answer["error"]["code"] == code
    assert LedgerClient(devchain_url).block_number() >= 0  # still serving


def test_oversized_body_is_refused(devchain_url: str):
    response = _rpc(devchain_url, None, b"[" + b"1," * (1 << 20) + b"1]")
    assert response.status_code == 413


def test_increase_time_moves_block_timestamps(devchain_url: str):
    c = LedgerClient(devchain_url)
    before = int(c.block("latest")["timestamp"], 16)
    c.increase_time(3600)
    after = int(c.block("latest")["timestamp"], 16)
    assert after >= before + 3600


def _snapshot(c: LedgerClient, upto: int) -> list[str]:
    return [str(c.block(n)["hash"]) for n in range(upto + 1)]


def test_restart_keeps_blocks_balances_and_logs(tmp_path: Path):
    bob = LocalSigner.generate().address
    with DevChainProcess(tmp_path / "chain") as chain:
        c = LedgerClient(chain.url)
        dev = LocalSigner.from_key(DEV_KEYS[1])
        receipts = [c.transact(dev, to=bob, value=10**15 * (i + 1)) for i in range(5)]
        c.increase_time(100)
        head = c.block_number()
        hashes = _snapshot(c, head)
        balance = c.balance(bob)
    with DevChainProcess(tmp_path / "chain") as chain:
        c = LedgerClient(chain.url)
        assert c.block_number() == head
        assert _snapshot(c, head) == hashes
        assert c.balance(bob) == balance == 15 * 10**15
        for r in receipts:
            assert c.wait_for_receipt(r.tx_hash, timeout=1).block_hash == r.block_hash
        # and it keeps going from there
        c.transact(LocalSigner.from_key(DEV_KEYS[1]), to=bob, value=1)
        assert c.block_number() == head + 1


@pytest.mark.slow
def test_sigkill_loses_no_confirmed_transaction(tmp_path: Path):
    """Kill -9 the chain while a client sends, at several points; every tx whose hash the
    client received survives with its receipt, and block hashes never change."""
    datadir = tmp_path / "chain"
    confirmed: dict[str, str] = {}  # tx hash -> block hash
    dev = LocalSigner.from_key(DEV_KEYS[2])
    bob = LocalSigner.generate().address
    for kill_after in (0.3, 0.7, 1.1, 0.5):
        chain = DevChainProcess(datadir).start()
        try:
            c = LedgerClient(chain.url, timeout=5)
            for tx_hash, block_hash in confirmed.items():  # everything from before survived
                assert c.wait_for_receipt(tx_hash, timeout=1).block_hash == block_hash
            stop = threading.Event()

            def send(client: LedgerClient = c, stop: threading.Event = stop) -> None:
                deadline = time.monotonic() + 10
                while not stop.is_set() and time.monotonic() < deadline:
                    try:
                        r = client.transact(dev, to=bob, value=1, gas=21_000)
                    except LedgerError:  # the kill cuts requests off mid-way
                        return
                    confirmed[r.tx_hash] = r.block_hash

            sender = threading.Thread(target=send)
            sender.start()
            time.sleep(kill_after)
            chain.kill()
            stop.set()
            sender.join(timeout=15)
        finally:
            chain.kill()
    assert len(confirmed) > 5
    with DevChainProcess(datadir) as chain:
        c = LedgerClient(chain.url)
        for tx_hash, block_hash in confirmed.items():
            assert c.wait_for_receipt(tx_hash, timeout=1).block_hash == block_hash
        assert c.balance(bob) >= len(confirmed)


def test_a_torn_journal_tail_is_dropped(tmp_path: Path):
    datadir = tmp_path / "chain"
    with DevChainProcess(datadir) as chain:
        c = LedgerClient(chain.url)
        r = c.transact(
            LocalSigner.from_key(DEV_KEYS[3]), to=LocalSigner.generate().address, value=7
        )
    journal = datadir / "journal.log"
    good = journal.read_bytes()
    journal.write_bytes(good + b"\x00\x00\x01\x00garbage-cut-short")
    assert len(Journal(journal).read()) == 1
    assert journal.read_bytes() == good  # the torn tail was cut off
    with DevChainProcess(datadir) as chain:
        assert LedgerClient(chain.url).wait_for_receipt(r.tx_hash, timeout=1).status == 1


def test_a_corrupted_record_stops_replay_at_the_last_good_one(tmp_path: Path):
    path = tmp_path / "journal.log"
    j = Journal(path)
    for i in range(3):
        j.append({"k": "time", "s": i})
    j.close()
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip a byte inside the last record
    path.write_bytes(bytes(data))
    assert [r["s"] for r in Journal(path).read()] == [0, 1]


def test_refuses_a_public_address_without_the_flag(tmp_path: Path):
    from chainml.ledger.devchain.process import serve

    with pytest.raises(ChainUnavailable):
        serve(tmp_path, "0.0.0.0", 0)


def test_cli_up_status_down(tmp_path: Path):
    from typer.testing import CliRunner

    from chainml.cli.main import app
    from chainml.ledger.anvil import free_port

    runner = CliRunner()
    datadir = str(tmp_path / "chain")
    port = str(free_port())
    try:
        up = runner.invoke(
            app, ["chain", "up", "--datadir", datadir, "--port", port, "--finality-depth", "2"]
        )
        assert up.exit_code == 0, up.output
        assert f"http://127.0.0.1:{port}" in up.output
        status = runner.invoke(app, ["chain", "status", "--datadir", datadir])
        assert status.exit_code == 0 and "1337" in status.output
        client = LedgerClient(f"http://127.0.0.1:{port}")
        dev = LocalSigner.from_key(DEV_KEYS[1])
        for _ in range(3):
            client.transact(dev, to=dev.address, value=1)
        head = int(client.block("latest")["number"], 16)
        assert int(client.block("finalized")["number"], 16) == head - 2
    finally:
        down = runner.invoke(app, ["chain", "down", "--datadir", datadir])
    assert down.exit_code == 0
    status = runner.invoke(app, ["chain", "status", "--datadir", datadir])
    assert status.exit_code == 1 and "not running" in status.output
    assert json.loads((tmp_path / "chain" / "genesis.json").read_text())["chain_id"] == 1337
