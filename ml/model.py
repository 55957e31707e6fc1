"""A trained model's description: what a training job stores beside its weights (its
output's info), and what a [predict] job, the servers' admission and the recipient read back.

It travels and is stored as JSON (as_dict, from_dict): the keys and their order are those
recipients see in `twofold reveal --json`, so they do not change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from twofold.ml.features import Scaling
from twofold.ml.sgd import Hyper
from twofold.mpc.privacy import Privacy


@dataclass(frozen=True)
class ModelDescription:
    hyper: Hyper  # the model's kind (linear or logistic) and its training's hyperparameters
    features: tuple[str, ...]  # expressions, in the weights' order (the intercept last)
    label: str
    scaling: Scaling  # how training scaled the features, the intercept's column last
    label_range: tuple[float, float]  # the label's declared range (linear: scaled to [0, 1])
    privacy_level: int
    min_join_size: int  # as applied: the spec's, raised to the owners' floors
    join_size: int | None  # opened at level 3 only
    dp_ledger: dict[str, Any] | None  # level 5: the training's noise calibration (dp.Ledger)
    size_check: Privacy | None  # level 5: the noisy join-size check's parameters

    @property
    def model(self) -> str:
        return self.hyper.model

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "features": list(self.features), "label": self.label,
                "centers": list(self.scaling.centers), "factors": list(self.scaling.factors),
                "label_range": list(self.label_range), "privacy_level": self.privacy_level,
                "min_join_size": self.min_join_size, "hyper": asdict(self.hyper),
                "join_size": self.join_size, "dp_ledger": self.dp_ledger,
                "size_check": self.size_check.as_dict() if self.size_check else None}

    @classmethod
    def from_dict(cls, info: dict[str, Any]) -> ModelDescription:
        """From a model output's info (which may hold more, such as the job's DP charge)."""
        low, high = info["label_range"]
        size_check = info.get("size_check")
        return cls(Hyper(**info["hyper"]), tuple(info["features"]), info["label"],
                   Scaling(tuple(info["centers"]), tuple(info["factors"])), (low, high),
                   info["privacy_level"], info["min_join_size"], info.get("join_size"),
                   info.get("dp_ledger"), Privacy(**size_check) if size_check else None)
