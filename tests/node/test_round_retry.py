"""A retried round across node processes: an aggregator killed after the trainers sent
their keys, but before any sent its input, leaves them free to join the next attempt with
fresh keys, and the round completes; no trainer ever signs two commitments for a round."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from chainml.ledger.anvil import stop_process
from chainml.ledger.devchain import DevChainProcess
from chainml.node.rounds import _may_join, audit_round
from tests.node.test_rounds import TRAINERS, _network, _post_job, _start, _state, _wait


def test_who_may_join_an_attempt():
    assert _may_join(None, 1)
    assert _may_join("keys:1", 2) and _may_join("keys:2", 5)
    assert not _may_join("keys:2", 2) and not _may_join("keys:3", 2)  # never an old attempt
    assert not _may_join("committed:" + "ab" * 32, 9)  # an input sent: never again
    assert not _may_join("keys", 2)  # a record without its attempt: stay out


def test_an_attempt_killed_before_any_input_is_retried_with_the_same_trainers(tmp_path: Path):
    with DevChainProcess(tmp_path / "chain") as chain:
        client, cm, nodes, store = _network(tmp_path, chain.url)
        trainers, aggregator = nodes[:TRAINERS], nodes[TRAINERS]
        with ExitStack() as running:
            for node in trainers:
                running.callback(stop_process, _start(node), 20)
            job_id = _post_job(cm, store, aggregator, rounds=1)
            _wait(lambda: cm.jobs.job(job_id).participant_count == TRAINERS)
            agg = _start(aggregator, "aggregator:keys")  # dies holding every key advert
            _wait(lambda: agg.poll() is not None, 60)
            assert _state(aggregator, f"round:{job_id}:1") == "running:1"
            for node in trainers:  # each advertised keys in attempt 1 and sent nothing else
                assert _state(node, f"secagg:{job_id}:1") == "keys:1"
            agg = _start(aggregator)
            running.callback(stop_process, agg, 20)
            _wait(lambda: cm.jobs.job(job_id).rounds_done == 1, 120)
            assert len(audit_round(cm, store, job_id, 1)) == TRAINERS
            assert _state(aggregator, f"round:{job_id}:1") == "done:2"
            for node in trainers:  # one commitment each, made in attempt 2
                assert (_state(node, f"secagg:{job_id}:1") or "").startswith("committed:")
