"""A PyTorch module behind the same small interface as chainml's numpy models.

``TorchModel(module)`` exposes ``params`` (a name -> float32 numpy array dict built from
the module's ``state_dict``), ``set_params``, ``fit``, ``predict`` and ``accuracy``, so a
torch network takes part in FedAvg, SecAgg+ and the robust aggregators unchanged, and its
weights travel as safetensors like every other model.  Optional: ``pip install
'chainml[torch]'`` (torch 2.13.0, CPU).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chainml.training.errors import TrainingError
from chainml.training.models import Classifier, Params, check_shapes

try:
    import torch
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise TrainingError("the PyTorch adapter needs: pip install 'chainml[torch]'") from exc


class TorchModel(Classifier):
    def __init__(self, module: Any, *, lr: float = 0.1, momentum: float = 0.9) -> None:
        self.module = module
        self.lr, self.momentum = lr, momentum

    @property
    def params(self) -> Params:
        return {
            name: tensor.detach().cpu().numpy().astype(np.float32).copy()
            for name, tensor in self.module.state_dict().items()
        }

    def set_params(self, params: Mapping[str, NDArray[np.float32]]) -> None:
        check_shapes(self.params, params)
        self.module.load_state_dict(
            {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in params.items()}
        )

    def logits(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        self.module.eval()
        with torch.no_grad():
            out = self.module(torch.as_tensor(np.asarray(x, dtype=np.float32)))
        return np.asarray(out.numpy(), dtype=np.float64)

    def fit(
        self,
        x: NDArray[np.float64],
        y: NDArray[np.int64],
        *,
        epochs: int = 1,
        lr: float | None = None,
        batch: int = 32,
        seed: int = 0,
    ) -> None:
        """Local training from the current parameters (SGD with momentum, cross-entropy)."""
        generator = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.SGD(
            self.module.parameters(), lr=lr or self.lr, momentum=self.momentum
        )
        xs = torch.as_tensor(np.asarray(x, dtype=np.float32))
        ys = torch.as_tensor(np.asarray(y, dtype=np.int64))
        loss_fn: Callable[..., Any] = torch.nn.functional.cross_entropy
        self.module.train()
        for _ in range(epochs):
            order = torch.randperm(len(xs), generator=generator)
            for start in range(0, len(xs), batch):
                idx = order[start : start + batch]
                optimiser.zero_grad()
                loss = loss_fn(self.module(xs[idx]), ys[idx])
                loss.backward()
                optimiser.step()
