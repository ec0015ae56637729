"""The proof-of-stake devnet harness, without its clients: what does not need the ~300 MB
install (``make posdevnet``; the devnet itself runs in ``python -m benchmarks posdevnet``):
the install is detected, a missing one is a typed error, a minority partition cuts exactly
the minority off and heals, and the clients are stopped however the run ends."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chainml.devtools import posdevnet, posdevnet_job
from chainml.devtools.hosts import Network
from chainml.devtools.posdevnet import Devnet, DevnetError

from .test_harness import SERVE, _connect


def test_an_absent_or_stale_install_is_reported_not_used(tmp_path: Path) -> None:
    assert not posdevnet.installed(tmp_path)
    (tmp_path / posdevnet.STAMP).write_text("0" * 64 + "\n")  # another manifest's install
    assert not posdevnet.installed(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "chainml.devtools.posdevnet", "check", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "not installed" in done.stdout
    with Network(["pos-a"]) as net, Devnet(net, tmp_path) as devnet:
        with pytest.raises(DevnetError, match="make posdevnet"):
            devnet.start()
        assert devnet.processes() == []


def test_the_install_manifest_pins_lodestar_and_every_transitive_package() -> None:
    manifest = json.loads(posdevnet.MANIFEST.read_text())
    assert manifest["dependencies"] == {"@chainsafe/lodestar": posdevnet.LODESTAR_VERSION}
    overrides = manifest["overrides"]
    assert len(overrides) == 1862
    # exact versions only: a range would let npm pull the libraries that crash 1.5.1
    assert all(v[0].isdigit() and " " not in v for v in _leaves(overrides))


def _leaves(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    assert isinstance(node, dict)
    return [leaf for value in node.values() for leaf in _leaves(value)]


@pytest.mark.skipif(shutil.which("nft") is None, reason="partitions need nftables")
def test_a_minority_partition_cuts_it_off_from_the_others_only_and_heals() -> None:
    with Network(["pos-a", "pos-b", "pos-c"]) as net, Devnet(net) as devnet:
        a, b, c = net["pos-a"], net["pos-b"], net["pos-c"]
        for host in (a, b, c):
            server = host.popen(
                [sys.executable, "-c", SERVE, host.address, "7000"], stdout=subprocess.PIPE
            )
            assert server.stdout is not None and server.stdout.readline() == b"up\n"
        hello = {h.name: f"hello from {h.address}" for h in (a, b, c)}
        with pytest.raises(ValueError):
            devnet.partition(["pos-a", "pos-b", "pos-c"])  # nobody left on the other side
        devnet.partition(["pos-c"])
        assert c.call(_connect, a.address, 7000) == "TimeoutError"
        assert a.call(_connect, c.address, 7000) == "TimeoutError"
        assert b.call(_connect, c.address, 7000) == "TimeoutError"
        assert a.call(_connect, b.address, 7000) == hello["pos-b"]  # the majority still talks
        assert c.call(_connect, c.address, 7000) == hello["pos-c"]  # and c to itself
        devnet.heal()
        assert c.call(_connect, a.address, 7000) == hello["pos-a"]
        assert b.call(_connect, c.address, 7000) == hello["pos-c"]
        # a chain node's peers cut, its RPC port left open: only that port crosses
        for host in (a, c):
            server = host.popen(
                [sys.executable, "-c", SERVE, host.address, "7001"], stdout=subprocess.PIPE
            )
            assert server.stdout is not None and server.stdout.readline() == b"up\n"
        with pytest.raises(ValueError):
            devnet.partition(["pos-c"], keep_tcp_ports=(0,))
        devnet.partition(["pos-c"], keep_tcp_ports=(7000,))
        assert c.call(_connect, a.address, 7000) == hello["pos-a"]  # c reaches a's port
        assert a.call(_connect, c.address, 7000) == hello["pos-c"]  # and a reaches c's
        assert c.call(_connect, a.address, 7001) == "TimeoutError"  # nothing else crosses
        assert a.call(_connect, c.address, 7001) == "TimeoutError"
        assert a.call(_connect, b.address, 7000) == hello["pos-b"]
        devnet.heal()
        assert a.call(_connect, c.address, 7001) == hello["pos-c"]


def _states(netns: str) -> list[str]:
    """The run state (R, S, T, ...) of every process inside ``netns``."""
    pids = subprocess.run(
        ["ip", "netns", "pids", netns], capture_output=True, text=True, timeout=30
    ).stdout.split()
    return [Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] for p in pids]


def test_a_paused_pair_is_stopped_whole_and_every_client_ends_when_a_run_fails(
    tmp_path: Path,
) -> None:
    with Network(["pos-a", "pos-b"]) as net:
        devnet = Devnet(net)
        devnet.workdir = tmp_path
        for pair in devnet.pairs.values():  # stand-ins run as the clients are: under timeout
            pair.el = pair.host.popen(["timeout", "600", "sleep", "600"])
            pair.cl = pair.host.popen(["timeout", "600", "sleep", "600"])
        devnet._closed = False
        time.sleep(0.5)
        devnet.pause("pos-b")
        time.sleep(0.2)
        paused, running = _states(net["pos-b"].netns), _states(net["pos-a"].netns)
        assert len(paused) == 4 and set(paused) == {"T"}  # timeout and what it runs
        assert len(running) == 4 and "T" not in running
        with pytest.raises(RuntimeError, match="the run failed"), devnet:
            raise RuntimeError("the run failed")
        assert all(p.poll() is not None for p in devnet.processes())
        assert _states(net["pos-a"].netns) == _states(net["pos-b"].netns) == []
        assert devnet.keep_logs and tmp_path.exists()
    assert net.leftovers() == []


INSTALL = Path(__file__).resolve().parents[2] / ".posdevnet"


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.skipif(
    not os.environ.get("CHAINML_BENCH_FULL") or not posdevnet.installed(INSTALL),
    reason="the devnet takes minutes: make bench runs this (CHAINML_BENCH_FULL=1, make posdevnet)",
)
def test_a_chain_node_cut_off_its_peers_is_alarmed_by_the_chainml_node_beside_it(
    tmp_path: Path,
) -> None:
    """Three validator pairs, chainml's nodes beside them; pos-3's chain node loses its
    peers for three epochs (its RPC still answers): the chainml node on pos-3 sees its own
    endpoint fall behind the others (when its chain node stalls) or disagree with them
    (when it builds a fork of its own) and stops acting, the aggregator's node on pos-1
    names pos-3's endpoint; after the heal it acts again, and if pos-3 had built blocks of
    its own that its monitor saw buried, their replacement is a deep_reorg alert."""
    compiled = posdevnet_job.paris_contracts()
    with Network(["pos-1", "pos-2", "pos-3"]) as net, Devnet(net, INSTALL) as devnet:
        devnet.start(timeout=180)
        devnet.wait_blocks(2, timeout=180)
        deployment, _, _ = posdevnet_job.deploy(devnet, compiled)
        job = posdevnet_job.prepare(devnet, tmp_path, deployment)
        with posdevnet_job.running_nodes(job):
            out = posdevnet_job.partition_alerts(job, node="trainer-2", epochs=3)
    assert net.leftovers() == []
    alerted = set(out["alerts_on_partitioned_host"])
    # its chain node stalls (its head lags) or builds a fork of its own (the hashes differ)
    assert alerted & {"endpoint_behind", "endpoints_disagree"}, out
    assert "acting_stopped" in alerted and out["own_endpoint_named"], out
    if out["max_head_lag_blocks"] > 5 and out["minority_blocks_alone"] == 0:
        assert "endpoint_behind" in alerted, out
    assert out["aggregator_names_the_cut_off_endpoint"], out  # seen from pos-1 too
    assert out["acting_again"], out
    if out["minority_blocks_alone"] >= 3:  # its own fork, seen two blocks deep, replaced
        assert out["deep_reorg"], out
