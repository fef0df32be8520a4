"""Endless mini-batch streams over a pool, one per kind of data the loop draws each iteration.

A stream walks a fresh permutation of its pool and starts another one when it runs out, mid-batch if
needed, so every batch is full and a small pool (the labelled FLAIRs) is cycled more often than a large
one: this is the oversampling of the labelled target (paper 2.4.1). Its state is saved in checkpoints so a
resumed run draws exactly the batches an uninterrupted one would have.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flairqc_app.train.pools import Pool


class BatchStream:
    def __init__(self, pool: Pool, batch_size: int, seed: int | list[int]):
        if len(pool) == 0:
            raise ValueError("cannot stream an empty pool")
        self.pool = pool
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(pool))
        self.position = 0
        self.passes = 0  # completed permutations: how many times the pool was cycled

    def next_indices(self) -> np.ndarray:
        picked = []
        while len(picked) < self.batch_size:
            if self.position == len(self.order):
                self.order, self.position = self.rng.permutation(len(self.pool)), 0
                self.passes += 1
            take = min(self.batch_size - len(picked), len(self.order) - self.position)
            picked.extend(self.order[self.position : self.position + take])
            self.position += take
        return np.asarray(picked)

    def next(self) -> tuple[list[str], np.ndarray | None]:
        """Keys of the next batch and their labels (None for an unlabelled pool)."""
        idx = self.next_indices()
        keys = [self.pool.keys[i] for i in idx]
        labels = None if self.pool.labels is None else np.asarray([self.pool.labels[i] for i in idx])
        return keys, labels

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "order": self.order.tolist(),
            "position": self.position,
            "passes": self.passes,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order = np.asarray(state["order"], dtype=np.int64)
        self.position, self.passes = state["position"], state["passes"]
