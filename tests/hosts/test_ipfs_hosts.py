"""The embedded kubo engine on separate hosts: a blob added on one host is fetched by CID
on another over the bridge (bitswap), every block re-hashed; the engine listens on its
host's address and reaches nothing outside loopback and that network."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from chainml.devtools.hostjob import BlobPeer, HostJobError
from chainml.devtools.hosts import Network
from chainml.storage.ipfs_engine import IpfsEngineStore


def test_a_blob_crosses_hosts_by_cid(tmp_path: Path):
    data = random.Random(17).randbytes(3 * 256 * 1024 + 5)  # four chunks, a DAG of five blocks
    (tmp_path / "blob").write_bytes(data)
    with Network(["alpha", "beta"]) as net:
        alpha = BlobPeer(net["alpha"], tmp_path / "alpha")
        assert alpha.multiaddr.startswith(f"/ip4/{net['alpha'].address}/tcp/")
        beta = BlobPeer(net["beta"], tmp_path / "beta", peers=(alpha.multiaddr,))
        try:
            cid = alpha.ask(op="put", path=str(tmp_path / "blob"))["cid"]
            assert beta.ask(op="has", cid=cid) == {"has": False}
            before = net["beta"].link_bytes()
            got = beta.ask(op="get", cid=cid)
            assert got["sha256"] == hashlib.sha256(data).hexdigest() and got["size"] == len(data)
            assert (net["beta"].link_bytes() - before).received > len(data)  # over the bridge
            assert beta.ask(op="pin", cid=cid) == {"ok": True}
            assert beta.ask(op="has", cid=cid) == {"has": True}
            # a peer outside the engine's network is refused before any dial
            outside = alpha.multiaddr.replace(net["alpha"].address, "10.9.9.9")
            with pytest.raises(HostJobError, match="InvalidPeerAddress"):
                beta.ask(op="connect", peer=outside)
        finally:
            beta.close()
            alpha.close()
        assert alpha.proc.returncode == 0 and beta.proc.returncode == 0


@pytest.mark.parametrize(
    "address", ["8.8.8.8/24", "127.0.0.2/8", "10.231.7.0/24", "0.0.0.0/0", "10.1.2.3"]
)
def test_the_engine_listens_only_on_loopback_or_a_private_host_address(
    tmp_path: Path, address: str
):
    with pytest.raises(ValueError, match="swarm_address"):
        IpfsEngineStore(tmp_path / "x", swarm_address=address)
