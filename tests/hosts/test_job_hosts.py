"""A full job across four hosts: an aggregator and three trainers, each node in its own
network namespace on its own address, the chain on a fifth host, every blob between them
over IPFS (the embedded kubo engine of each node, peers named explicitly), and an auditor
on a trainer's host that verifies every round from what it fetched by CID.  Mid-job the
aggregator's host is cut off the network as round 2 starts, then healed: that attempt is
void, the retry completes, nothing is recorded twice."""

from __future__ import annotations

from pathlib import Path

from chainml.devtools import hostjob


def test_a_job_across_four_hosts_with_blobs_over_ipfs_and_the_aggregator_cut_off(
    tmp_path: Path,
):
    said: list[str] = []
    # off the network longer than a node's envelope timeout (10 s): every message of that
    # attempt fails before the link comes back.  At 7 s a connection's third SYN retry
    # (1, 3, 7 s) raced the heal, and now and then carried the attempt through.
    result = hostjob.run(tmp_path, trainers=3, rounds=3, cut_aggregator_s=12, say=said.append)
    assert result.rounds == 3 and len(result.round_seconds) == 3
    # round 2's first attempt died with the aggregator's link; the second was recorded,
    # and every round was recorded exactly once
    assert result.attempts == {1: 1, 2: 2, 3: 1}, said
    assert result.recorded == [1, 2, 3]
    # every round counted all three trainers, checked against the chain by another host
    assert result.audited == {1: [1, 2, 3], 2: [1, 2, 3], 3: [1, 2, 3]}
    # it fetched every round's blobs by CID from the aggregator's host, and pins them
    assert result.fetched == {
        "records": 3,
        "transcripts": 3,
        "masked_inputs": 9,
        "sealed_aggregates": 3,
    }
    assert set(result.record_cids) <= set(result.pinned) and len(result.pinned) >= 3 * 7
    # traffic went over each host's own link: the trainers sent their masked updates, the
    # aggregator the models and records
    for name in ("aggregator", "trainer-1", "trainer-2", "trainer-3"):
        assert result.link_bytes[name].sent > 10_000, (name, result.link_bytes)
    assert result.accuracy is not None and result.accuracy > 0.3
    assert all(url.startswith("http://10.231.7.") for url in result.node_urls.values())
    # no shared directory: the aggregator's store is its own engine's repository
    assert not (tmp_path / "store").exists()
    assert (tmp_path / "aggregator" / "ipfs" / "kubo").is_dir()
    # and once it returned, no namespace, link or process of it is left
    assert result.leftovers == []
