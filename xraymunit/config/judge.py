"""Options of the judge: the normal-vs-abnormal classifier that measures translation quality.

One judge per cohort, trained on the real train split only, selected on val. It is a
measuring instrument (training-time quality, evaluate's quality metrics, notebooks), never
a training input of the classifier arms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from xraymunit.config import require
from xraymunit.config.evaluate import ClassifierConfig

WEAK_JUDGE_AUROC = 0.7
"""Below this val AUROC every judged number is flagged: the judge barely tells the domains apart."""


def _judge_classifier() -> ClassifierConfig:
    # The evaluation's small CPU DenseNet at 64 px, trained longer than one study arm: the judge is
    # trained once per cohort and reused, so its quality is worth a minute more.
    return ClassifierConfig(steps=600, eval_every=50)


@dataclass
class JudgeConfig:
    classifier: ClassifierConfig = field(default_factory=_judge_classifier)
    normal_label: str = "normal"
    abnormal_label: str = "abnormal"
    source_datasets: Optional[list[str]] = None
    seed: int = 0
    bootstrap: int = 1000
    ci: float = 0.95

    def validate(self) -> None:
        self.classifier.validate()
        require(self.normal_label != self.abnormal_label, "abnormal_label", "must differ from normal_label")
        require(self.bootstrap >= 0, "bootstrap", "must be >= 0")
        require(0.5 < self.ci < 1.0, "ci", "must be in (0.5, 1)")


__all__ = ["JudgeConfig", "WEAK_JUDGE_AUROC"]
