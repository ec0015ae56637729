"""What a training job asks of its trainers, and one trainer's step of one round.

A ``JobConfig`` is canonical JSON; its keccak-256 is the ``config_hash`` the job records
on chain, so a trainer can check that the aggregator sends the configuration the requester
paid for.  ``local_update`` is a trainer's whole contribution to a round: train from the
global parameters on its own data, take the change, clip it to the job's L2 bound, scale
it by the trainer's weight, and append that weight, so that the secure sum carries the
total weight as its last coordinate (the aggregator learns the sum of the weights and
nothing about any one of them).

A job may ask for differential privacy (``dp``): Gaussian noise of standard deviation
``noise_multiplier * C`` (``C`` the job's clip bound) on the delta part of the sum, never
on the weight coordinate.  ``"central"``: the aggregator adds it to the unmasked sum
(``central_noise``); ``"distributed"``: each of the ``n`` trainers adds its share of
standard deviation ``noise_multiplier * C / sqrt(n)`` before masking (``add_trainer_noise``),
and the SecAgg+ range (``secagg_bound``) leaves room for it.  ``round_multiplier`` is what
the Rényi-DP accountant is charged for a round; ``epsilon`` the job's ε at ``dp_delta``.
A configuration without DP encodes exactly as before DP existed (the DP keys are left out).

A job may ask for norm-bound proofs (``norm_proofs``, secure aggregation only, not with
distributed noise): each trainer commits to its fixed-point delta and proves in zero
knowledge that its L2 norm is within the job's clip bound (docs/protocol/zk-norm.md §7, §12);
the blinding of its commitment crosses SecAgg+ as ``NORM_WORDS`` extra coordinates after
the weight (``secagg_len``).  Left out of the encoding when false, so every configuration
without it keeps its bytes and its ``config_hash``.  With norm proofs a job may also ask for
an L∞ bound (``linf_bound``): every coordinate of a trainer's delta within ±``linf_bound``
times its weight, proven on the same commitment (zk-norm.md §11, §14); left out when 0.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from chainml.crypto.hashing import keccak256
from chainml.training import privacy, robust
from chainml.training.errors import TrainingError
from chainml.training.models import CNN, CNN_ACTIVATIONS, MLP, Params, flatten
from chainml.training.secagg import clip_l2

DP_MODES = ("central", "distributed")
MODELS = {"mlp": ("relu", "square"), "cnn": CNN_ACTIVATIONS}  # model -> its activations
CNN_KEYS = ("image", "channels", "kernel", "stride", "pool")
MAX_HIDDEN_LAYERS = 16
DEFAULT_MULTIPLIER = 1.0
DEFAULT_DELTA = 1e-5
NORM_WORDS = 16  # a commitment's blinding as 16-bit limbs, one per 32-bit word (zk-norm §7)


@dataclass(frozen=True)
class JobConfig:
    n_features: int
    n_classes: int
    hidden: tuple[int, ...] = (64,)
    activation: str = "relu"
    epochs: int = 5
    lr: float = 0.1
    seed: int = 0
    weight_base: int = 1000  # records per party that count as weight 1
    model: str = "mlp"
    verifiable: bool = True  # rounds carry lattice commitments: anyone checks the sum
    aggregation: str = "secagg"  # or a robust rule over plaintext updates: krum, median, ...
    dp: str | None = None  # differential privacy: None, "central" or "distributed"
    noise_multiplier: float = DEFAULT_MULTIPLIER  # z: noise of deviation z * clip on the sum
    dp_delta: float = DEFAULT_DELTA  # the δ at which the job's ε is reported
    # a CNN job's shape (model "cnn"; left out of an MLP's encoding, so its hash is as before)
    image: tuple[int, ...] = ()  # (channels, height, width) of each record's n_features
    channels: int = 4  # convolution filters
    kernel: int = 7  # each filter kernel × kernel, no padding
    stride: int = 3
    pool: int = 2  # average pooling pool × pool, stride pool
    norm_proofs: bool = False  # each trainer proves its delta's L2 norm (zk-norm.md)
    linf_bound: float = 0.0  # and, if > 0, every coordinate within ±linf_bound (§14)

    def __post_init__(self) -> None:
        # every field's type and range, so that no configuration a requester posts can make
        # a trainer's or an aggregator's arithmetic fail later (bool is not an integer here)
        def integer(name: str, value: object, least: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise TrainingError(f"{name} is an integer of at least {least}")

        for name, least in (("n_features", 1), ("n_classes", 2), ("epochs", 1)):
            integer(name, getattr(self, name), least)
        integer("seed", self.seed, 0)
        integer("weight_base", self.weight_base, 1)
        if not isinstance(self.hidden, tuple) or len(self.hidden) > MAX_HIDDEN_LAYERS:
            raise TrainingError(f"hidden is a list of at most {MAX_HIDDEN_LAYERS} layer sizes")
        for size in self.hidden:
            integer("a hidden layer size", size, 1)
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)):
            raise TrainingError("lr is a number")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise TrainingError("lr is a positive number")
        if self.model not in MODELS:
            raise TrainingError(f"model is one of {', '.join(MODELS)}")
        if self.activation not in MODELS[self.model]:
            raise TrainingError(f"a {self.model}'s activation is one of {MODELS[self.model]}")
        if self.model == "cnn":
            self._check_cnn()
        if not isinstance(self.verifiable, bool):
            raise TrainingError("verifiable is true or false")
        if self.aggregation not in ("secagg", *robust.RULES):
            raise TrainingError(f"aggregation is secagg or one of {', '.join(robust.RULES)}")
        if not isinstance(self.norm_proofs, bool):
            raise TrainingError("norm_proofs is true or false")
        if self.norm_proofs and (self.aggregation != "secagg" or self.dp == "distributed"):
            # a robust rule sees each update itself; a trainer's noise is outside the bound
            raise TrainingError("norm_proofs needs secure aggregation without distributed DP")
        if isinstance(self.linf_bound, bool) or not isinstance(self.linf_bound, (int, float)):
            raise TrainingError("linf_bound is a number")
        object.__setattr__(self, "linf_bound", float(self.linf_bound))
        if not (math.isfinite(self.linf_bound) and self.linf_bound >= 0):
            raise TrainingError("linf_bound is a non-negative number")
        if self.linf_bound and not self.norm_proofs:
            raise TrainingError("linf_bound needs norm_proofs")
        for name in ("noise_multiplier", "dp_delta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TrainingError(f"{name} is a number")
            object.__setattr__(self, name, float(value))
        if self.dp is None:
            if (self.noise_multiplier, self.dp_delta) != (DEFAULT_MULTIPLIER, DEFAULT_DELTA):
                raise TrainingError("noise_multiplier and dp_delta are set only with dp")
            return
        if self.dp not in DP_MODES:
            raise TrainingError("dp is 'central' or 'distributed'")
        if self.aggregation != "secagg":
            raise TrainingError("dp needs secure aggregation: a robust rule is not supported")
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0):
            raise TrainingError("the noise multiplier is a positive number")
        if not 0 < self.dp_delta < 1:
            raise TrainingError("dp_delta is in (0, 1)")
        # the Jobs contract records z in thousandths and δ as 10^-e: both must be exact
        if abs(self.noise_multiplier * 1000 - round(self.noise_multiplier * 1000)) > 1e-6:
            raise TrainingError("the noise multiplier has at most three decimals")
        exponent = round(-math.log10(self.dp_delta))
        if not 1 <= exponent <= 30 or self.dp_delta != float(f"1e-{exponent}"):
            raise TrainingError("dp_delta is a power of ten, 1e-1 to 1e-30")

    def encode(self) -> bytes:
        doc = asdict(self)
        doc["hidden"] = list(self.hidden)
        if self.dp is None:  # as before DP existed: the same bytes, the same config_hash
            for name in ("dp", "noise_multiplier", "dp_delta"):
                del doc[name]
        if not self.norm_proofs:  # as before norm proofs existed
            del doc["norm_proofs"]
        if not self.linf_bound:  # as before the L-infinity option existed
            del doc["linf_bound"]
        if self.model == "mlp":  # as before CNNs existed
            for name in CNN_KEYS:
                del doc[name]
        else:
            doc["image"] = list(self.image)
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> JobConfig:
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or not isinstance(doc.get("hidden"), list):
                raise TypeError("not an object with a hidden list")
            doc["hidden"] = tuple(doc["hidden"])
            if "image" in doc:
                if not isinstance(doc["image"], list):
                    raise TypeError("image is a list")
                doc["image"] = tuple(doc["image"])
            config = cls(**doc)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise TrainingError("not a job configuration") from exc
        if config.encode() != raw:
            raise TrainingError("a job configuration is canonical JSON")
        return config

    def architecture(self) -> dict[str, str]:
        """What a server needs, beside the weights, to rebuild the model (safetensors
        metadata)."""
        model = self.initial_model()
        if isinstance(model, CNN):
            return model.architecture()
        return {"model": self.model, "activation": self.activation}

    @property
    def config_hash(self) -> bytes:
        return keccak256(self.encode())

    def initial_model(self) -> MLP | CNN:
        if self.model == "cnn":
            c, h, w = self.image
            return CNN(
                (c, h, w),
                self.n_classes,
                channels=self.channels,
                kernel=self.kernel,
                stride=self.stride,
                pool=self.pool,
                activation=self.activation,
                seed=self.seed,
            )
        return MLP(
            self.n_features, self.n_classes, self.hidden, activation=self.activation, seed=self.seed
        )

    def _check_cnn(self) -> None:
        if len(self.image) != 3 or self.hidden:
            raise TrainingError("a CNN job names image = [channels, height, width] and no hidden")
        for size in self.image:
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise TrainingError("image sizes are integers of at least 1")
        for name in ("channels", "kernel", "stride", "pool"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TrainingError(f"{name} is an integer of at least 1")
        c, h, w = self.image
        if c * h * w != self.n_features:
            raise TrainingError("n_features is channels × height × width of the image")
        if self.kernel > min(h, w) or min(self._pooled()) < 1:
            raise TrainingError("the kernel and the pooling window fit inside the image")

    def _pooled(self) -> tuple[int, int]:
        _, h, w = self.image
        out = ((h - self.kernel) // self.stride + 1, (w - self.kernel) // self.stride + 1)
        return out[0] // self.pool, out[1] // self.pool

    def vector_len(self) -> int:
        """What a trainer feeds SecAgg+: the model's parameters and the weight coordinate
        (counted from the layer sizes: no model is built on every round's path)."""
        if self.model == "cnn":
            c = self.image[0]
            ph, pw = self._pooled()
            units = self.channels * ph * pw
            conv = self.channels * c * self.kernel * self.kernel + self.channels
            return conv + units * self.n_classes + self.n_classes + 1
        sizes = [self.n_features, *self.hidden, self.n_classes]
        return sum(a * b + b for a, b in itertools.pairwise(sizes)) + 1

    def secagg_len(self) -> int:
        """What SecAgg+ sums for this job: ``vector_len`` and, with norm proofs, the
        ``NORM_WORDS`` words of the trainer's commitment blinding after the weight."""
        return self.vector_len() + (NORM_WORDS if self.norm_proofs else 0)

    def local_update(
        self,
        global_params: Params,
        x: NDArray[np.float64],
        y: NDArray[np.int64],
        *,
        round_no: int,
        clip: float,
    ) -> NDArray[np.float64]:
        model = self.initial_model()
        model.set_params(global_params)
        start = flatten(model.params).astype(np.float64)
        model.fit(x, y, epochs=self.epochs, lr=self.lr, seed=self.seed * 1000 + round_no)
        weight = min(1.0, len(y) / self.weight_base)
        delta = clip_l2(flatten(model.params).astype(np.float64) - start, clip)
        return np.append(delta * weight, weight)

    # -- differential privacy -------------------------------------------------------------

    def secagg_bound(self, clip: float, n_trainers: int) -> float:
        """The L2 bound of what each trainer feeds SecAgg+ (and so its fixed-point range):
        the clipped, weighted delta, the weight coordinate (at most 1) and, with
        distributed DP, the trainer's noise (``privacy.noise_headroom``)."""
        bound = clip + 1.0
        if self.dp == "distributed":
            length = self.vector_len() - 1
            bound += privacy.noise_headroom(self.noise_multiplier, clip, n_trainers, length)
        return bound

    def add_trainer_noise(
        self,
        update: NDArray[np.float64],
        *,
        clip: float,
        n_trainers: int,
        rng: np.random.Generator | None = None,
    ) -> NDArray[np.float64]:
        """A trainer's ``local_update`` with its share of the job's distributed noise on
        the delta (the weight coordinate untouched); unchanged for other jobs.  The noise
        comes from a generator seeded by the operating system unless ``rng`` is given."""
        if self.dp != "distributed":
            return update
        noise = privacy.distributed_noise(
            len(update) - 1,
            clip,
            self.noise_multiplier,
            n_trainers,
            rng if rng is not None else privacy.secure_rng(),
        )
        return np.append(update[:-1] + noise, update[-1])

    def central_noise(
        self, length: int, clip: float, rng: np.random.Generator | None = None
    ) -> NDArray[np.float64]:
        """What the aggregator adds to the delta part of the unmasked sum: N(0, (z C)²)
        per coordinate for a central-DP job, zeros otherwise."""
        if self.dp != "central":
            return np.zeros(length)
        return privacy.central_noise(
            length, clip, self.noise_multiplier, rng if rng is not None else privacy.secure_rng()
        )

    def chain_dp(self) -> tuple[int, int]:
        """What the job records on chain for this configuration, ``(dp_noise_multiplier,
        dp_delta_exponent)``: z in thousandths and the e of δ = 10^-e; (0, 0) without DP."""
        if self.dp is None:
            return 0, 0
        return round(self.noise_multiplier * 1000), round(-math.log10(self.dp_delta))

    def round_multiplier(self, survivors: int, n_trainers: int) -> float | None:
        """The noise multiplier the accountant is charged for a round with ``survivors`` of
        ``n_trainers`` counted (distributed noise: only the survivors' shares are in the
        sum); None for a job without DP."""
        if self.dp == "central":
            return self.noise_multiplier
        if self.dp == "distributed":
            return privacy.effective_multiplier(self.noise_multiplier, survivors, n_trainers)
        return None

    def epsilon(self, multipliers: Iterable[float]) -> float:
        """ε at ``dp_delta`` after rounds charged with these multipliers (RDP accountant,
        full participation)."""
        accountant = privacy.RdpAccountant()
        for z in multipliers:
            accountant.step(z)
        return accountant.epsilon(self.dp_delta)
