"""Flower's SecAgg+ on the same n, m and dropout as chainml's, for ``benchmarks.secagg``.

Runs under the Flower virtualenv (``scripts/setup-flower.sh``), never imported by chainml.
Each client's four stages are Flower's own client functions
(``flwr.client.mod.secure_aggregation.secaggplus_mod``), timed one by one; the server's
work is what Flower's ``SecAggPlusWorkflow`` computes between stages, done with Flower's
own functions (routing the ciphertexts, summing the masked vectors, rebuilding seeds with
``combine_shares`` and removing masks with ``pseudo_rand_gen``), minus its messaging.

Usage: python _flower_secaggplus.py N M DROPOUT SHARES THRESHOLD   -> one JSON line
"""

from __future__ import annotations

import importlib
import json
import random
import sys
import time

import numpy as np
from flwr.common import ConfigRecord, bytes_to_ndarray, ndarrays_to_parameters
from flwr.common.secure_aggregation.crypto.shamir import combine_shares
from flwr.common.secure_aggregation.crypto.symmetric_encryption import generate_shared_key
from flwr.common.secure_aggregation.ndarrays_arithmetic import (
    factor_extract,
    parameters_addition,
    parameters_mod,
    parameters_subtraction,
)
from flwr.common.secure_aggregation.quantization import dequantize
from flwr.common.secure_aggregation.secaggplus_constants import Key
from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen
from flwr.supercore.primitives.asymmetric import bytes_to_private_key, bytes_to_public_key

# the module, not the function of the same name that the package re-exports
mod = importlib.import_module("flwr.client.mod.secure_aggregation.secaggplus_mod")


def main() -> None:
    n, m = int(sys.argv[1]), int(sys.argv[2])
    dropout, shares, threshold = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    clip, qrange, mrange, max_weight = 8.0, 4194304, 4294967296, 1000.0
    ids = list(range(1, n + 1))
    order = ids[:]
    random.Random(0).shuffle(order)
    half = shares >> 1
    neighbours = {
        nid: {order[(i + d) % n] for d in range(-half, half + 1)} for i, nid in enumerate(order)
    }
    states = {nid: mod.SecAggPlusState(nid=nid) for nid in ids}
    client = dict.fromkeys(ids, 0.0)
    sent = dict.fromkeys(ids, 0)
    server = 0.0
    rng = np.random.default_rng(0)
    vectors = {nid: rng.normal(scale=0.1, size=m).astype(np.float32) for nid in ids}

    def timed(nid: int, fn, *args):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        out = fn(states[nid], *args)
        client[nid] += time.perf_counter() - started
        return out

    setup = ConfigRecord(
        {
            Key.SAMPLE_NUMBER: n,
            Key.SHARE_NUMBER: shares,
            Key.THRESHOLD: threshold,
            Key.CLIPPING_RANGE: clip,
            Key.TARGET_RANGE: qrange,
            Key.MOD_RANGE: mrange,
            Key.MAX_WEIGHT: max_weight,
        }
    )
    keys = {}
    for nid in ids:
        out = timed(nid, mod._setup, setup)
        keys[nid] = (out[Key.PUBLIC_KEY_1], out[Key.PUBLIC_KEY_2])
        sent[nid] += 64
    fwd: dict[int, list[tuple[int, bytes]]] = {nid: [] for nid in ids}
    for nid in ids:
        cfg = ConfigRecord({str(j): list(keys[j]) for j in neighbours[nid]})
        out = timed(nid, mod._share_keys, cfg)
        started = time.perf_counter()
        for dst, ct in zip(out[Key.DESTINATION_LIST], out[Key.CIPHERTEXT_LIST], strict=True):
            fwd[dst].append((nid, ct))
            sent[nid] += len(ct)
        server += time.perf_counter() - started
    # the same share of clients drops after sharing keys, before sending its vector
    dropped = set(sorted(ids)[: round(dropout * n)])
    active = [nid for nid in ids if nid not in dropped]
    total = None
    for nid in active:
        cfg = ConfigRecord(
            {
                Key.CIPHERTEXT_LIST: [c for _, c in fwd[nid]],
                Key.SOURCE_LIST: [s for s, _ in fwd[nid]],
            }
        )
        params = ndarrays_to_parameters([vectors[nid]])
        out = timed(nid, mod._collect_masked_vectors, cfg, 10, params)
        blobs = out[Key.MASKED_PARAMETERS]
        sent[nid] += sum(len(b) for b in blobs)
        started = time.perf_counter()
        vec = [bytes_to_ndarray(b) for b in blobs]
        total = vec if total is None else parameters_addition(total, vec)
        server += time.perf_counter() - started
    started = time.perf_counter()
    total = parameters_mod(total, mrange)
    server += time.perf_counter() - started
    collected: dict[int, list[bytes]] = {nid: [] for nid in ids}
    for nid in active:
        cfg = ConfigRecord(
            {
                Key.ACTIVE_NODE_ID_LIST: sorted(neighbours[nid] - dropped),
                Key.DEAD_NODE_ID_LIST: sorted(neighbours[nid] & dropped),
            }
        )
        out = timed(nid, mod._unmask, cfg)
        for owner, share in zip(out[Key.NODE_ID_LIST], out[Key.SHARE_LIST], strict=True):
            collected[owner].append(share)
            sent[nid] += len(share)
    started = time.perf_counter()
    combine = 0.0
    shapes = [a.shape for a in total]  # the weight factor first, then the vector
    for nid, got in collected.items():
        t0 = time.perf_counter()
        secret = combine_shares(got)
        combine += time.perf_counter() - t0
        if nid not in dropped:
            total = parameters_subtraction(total, pseudo_rand_gen(secret, mrange, shapes))
        else:
            for other in neighbours[nid] - {nid}:
                key = generate_shared_key(
                    bytes_to_private_key(secret), bytes_to_public_key(keys[other][0])
                )
                mask = pseudo_rand_gen(key, mrange, shapes)
                total = (parameters_addition if nid > other else parameters_subtraction)(
                    total, mask
                )
    total = parameters_mod(total, mrange)
    _, total = factor_extract(total)
    result = dequantize(total, clip, qrange)
    server += time.perf_counter() - started
    expected = sum(vectors[nid] for nid in active)
    offset = -(len(active) - 1) * clip
    error = float(np.abs((result[0] + offset) * max_weight / 10 - expected).max())
    print(
        json.dumps(
            {
                "client_s": sum(client[nid] for nid in active) / len(active),
                "server_s": server,
                "server_combine_s": combine,
                "bytes_per_client": sum(sent[nid] for nid in active) / len(active),
                "max_abs_error": error,
            }
        )
    )


if __name__ == "__main__":
    main()
