"""Test harness: a provider node that serves another model than the version granted to it.
Run instead of ``chainml.cli.main`` (``python -m tests.inference.zk_swapper node run
--config ...``); nothing in ``src`` knows about it.  It answers with the model whose
safetensors are in ``$ZK_SWAP_WEIGHTS``, with valid proofs of that model (its bundle in
``$ZK_SWAP_BUNDLE``), while advertising the granted version and the bundle its manifest
names: what a provider that cut costs by serving a cheaper model would do."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from chainml.cli.main import app
from chainml.inference.service import ServedModel
from chainml.inference.zkml import ZkBundle, ZkProver
from chainml.node.inference import ProviderRole, serve_model
from chainml.training.models import classifier_from_safetensors

_real = ProviderRole._with_proofs


def _with_proofs(self: ProviderRole, model: ServedModel, blob: bytes) -> ServedModel:
    granted = _real(self, model, blob)  # the bundle's CID, as an honest provider finds it
    if granted.prover is not None:
        granted.prover.close()
    other = Path(os.environ["ZK_SWAP_WEIGHTS"]).read_bytes()
    bundle = ZkBundle.decode(Path(os.environ["ZK_SWAP_BUNDLE"]).read_bytes())
    _, params, activation = classifier_from_safetensors(other)
    served = serve_model(other, model.version, price=model.price, batch_price=model.batch_price)
    prover = ZkProver(bundle, params, activation, workdir=self._zk_dir)
    return dataclasses.replace(served, prover=prover, zk_bundle=granted.zk_bundle)


ProviderRole._with_proofs = _with_proofs  # type: ignore[method-assign]

if __name__ == "__main__":
    app()
