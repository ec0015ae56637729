"""A PyTorch module trained federatedly through SecAgg+ like the numpy models."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the optional [torch] extra")

from chainml.training.data import dirichlet_partition, load  # noqa: E402
from chainml.training.errors import TrainingError  # noqa: E402
from chainml.training.federated import train_federated  # noqa: E402
from chainml.training.models import from_safetensors, to_safetensors  # noqa: E402
from chainml.training.torch_adapter import TorchModel  # noqa: E402


def _net() -> TorchModel:
    torch.manual_seed(0)
    return TorchModel(
        torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    )


def test_a_torch_network_trains_through_secure_aggregation():
    data = load("digits", seed=0)
    shards = dirichlet_partition(data.y_train, 5, 0.5, seed=0)
    model, history = train_federated(
        data, shards, rounds=6, mode="secagg", make_model=_net, local_epochs=3, lr=0.05
    )
    assert history.accuracy[-1] > 0.9
    assert history.accuracy[-1] > history.accuracy[0]
    back = from_safetensors(to_safetensors(model.params))  # weights travel as safetensors
    assert set(back) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_parameters_round_trip_and_are_checked():
    net = _net()
    params = net.params
    params["0.bias"] = np.ones(32, dtype=np.float32)
    net.set_params(params)
    assert np.array_equal(net.params["0.bias"], np.ones(32, dtype=np.float32))
    with pytest.raises(TrainingError):
        net.set_params({"0.weight": np.zeros((2, 2), dtype=np.float32)})
