"""SSDA and the paper's comparison methods as settings of one training loop (no per-method loops).

Each method says which head the labelled source batch trains, whether labelled FLAIRs are used, whether the
adversarial domain branch is on, and whether a non-adversarial pre-training phase comes first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from flairqc_app.train.labels import TIER_TASK


@dataclass(frozen=True)
class Method:
    name: str
    source_head: str | None  # head trained by labelled T1w batches; None: the source is not used
    target_labels: bool  # labelled FLAIR batches train C_T
    adversarial: bool  # domain head behind the GRL, with an unlabelled FLAIR batch each iteration
    pretrain: bool  # first a phase without the adversarial part on all labelled data (paper 2.4.1)

    @property
    def label_heads(self) -> tuple[str, ...]:
        return tuple(sorted({"target"} | ({self.source_head} if self.source_head else set())))

    def pretraining(self) -> Method:
        return replace(self, name=f"{self.name}-pretrain", adversarial=False, pretrain=False)


METHODS = {
    "ssda": Method("ssda", source_head="source", target_labels=True, adversarial=True, pretrain=True),
    "dann": Method("dann", source_head="target", target_labels=True, adversarial=True, pretrain=True),
    "target-only": Method(
        "target-only", source_head=None, target_labels=True, adversarial=False, pretrain=False
    ),
    "source-only": Method(
        "source-only", source_head="target", target_labels=False, adversarial=False, pretrain=False
    ),
}
METHOD_CHOICES = tuple(METHODS) + ("direct-tier",)


def resolve(method: str, task: str) -> tuple[Method, str]:
    """The method and task actually trained: `direct-tier` is SSDA on the 3-class tier task."""
    if method == "direct-tier":
        return METHODS["ssda"], TIER_TASK
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; methods are {', '.join(METHOD_CHOICES)}")
    return METHODS[method], task
