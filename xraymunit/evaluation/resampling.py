"""The interval of a level with several generators: a hierarchical bootstrap over generators,
classifier seeds and test patients, so the generator's own variance is inside every interval.

Per replicate b: draw G generators with replacement (of the level's G), k classifier seeds with
replacement (of its k), and the test patients with replacement (row b of the patient weight matrix);
an arm's replicate value is its metric averaged over every drawn (generator, seed) pair on the drawn
patients, and a paired difference is the difference of two arms' replicate values — the same draws for
every arm of the level, which is what pairs them. An arm that does not depend on the generator (real,
classical) uses the drawn seeds only. p-values come from the same replicates.

With one generator nothing but patients is resampled: the seeds stay fixed and are averaged, exactly
the patient bootstrap of a single-generator study (its numbers do not change).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xraymunit.evaluation import metrics as M

HIERARCHICAL = ("hierarchical bootstrap: per replicate, the level's G generators drawn with replacement, the k "
                "classifier seeds drawn with replacement and the test patients drawn with replacement; each arm "
                "averaged over every drawn (generator, seed) pair on the drawn patients, a paired difference is "
                "the difference of the two averages (same draws for every arm); arms without a generator use "
                "the drawn seeds; two-sided p from the same replicates")
PATIENTS_ONLY = ("patient bootstrap: per replicate the test patients drawn with replacement; each arm averaged "
                 "over its fixed classifier seeds (one generator: generators and seeds are not resampled); "
                 "two-sided p from the same replicates")


@dataclass
class Grid:
    """One arm's runs at a level, per metric: point values (G, k) and bootstrap values (B, G, k).

    G = 1 for an arm that does not depend on the generator (`depends` False)."""

    point: dict
    boot: dict
    depends: bool
    counts: list


@dataclass
class Draws:
    """The generator and seed draws of every replicate (None when only patients are resampled)."""

    generators: np.ndarray | None
    seeds: np.ndarray | None

    @classmethod
    def make(cls, n_boot: int, n_generators: int, n_seeds: int, seed: int) -> "Draws":
        if n_generators < 2:
            return cls(None, None)
        rng = np.random.default_rng([seed, 0x6E7E])
        return cls(rng.integers(0, n_generators, (n_boot, n_generators)), rng.integers(0, n_seeds, (n_boot, n_seeds)))

    @property
    def hierarchical(self) -> bool:
        return self.generators is not None

    def describe(self) -> str:
        return HIERARCHICAL if self.hierarchical else PATIENTS_ONLY

    def replicate_values(self, boot: np.ndarray) -> np.ndarray:
        """(B,) the arm's value in each replicate, from its (B, G, k) bootstrap values."""
        n_boot, n_gen, n_seeds = boot.shape
        if not self.hierarchical:
            return np.nanmean(boot.reshape(n_boot, n_gen * n_seeds), axis=1)
        gens = self.generators if n_gen > 1 else np.zeros((n_boot, 1), np.int64)
        drawn = boot[np.arange(n_boot)[:, None, None], gens[:, :, None], self.seeds[:, None, :]]
        return np.nanmean(drawn.reshape(n_boot, -1), axis=1)


def summary(draws: Draws, grid: Grid, metric: str, ci: float) -> dict:
    """An arm's value (mean over generators and seeds), its CI, per-seed and per-generator values."""
    point = grid.point[metric]
    per_seed = point[0] if len(point) == 1 else np.nanmean(point, axis=0)
    out = M.summarise(per_seed, draws.replicate_values(grid.boot[metric])[:, None], ci)
    if grid.depends:
        out["per_generator"] = [{"generator": g + 1, "value": _mean(row), "per_seed": _floats(row)}
                                for g, row in enumerate(point)]
    return out


def difference(draws: Draws, a: Grid, b: Grid, metric: str, ci: float) -> dict:
    """Arm a − arm b: estimate, CI and p over the same replicates, every per-seed and per-generator difference."""
    pa, pb = a.point[metric], b.point[metric]
    out = M.paired_difference((pa.ravel(), draws.replicate_values(a.boot[metric])[:, None]),
                              (pb.ravel(), draws.replicate_values(b.boot[metric])[:, None]), ci)
    out["per_seed"] = _floats(_gen_mean(pa) - _gen_mean(pb))
    if a.depends or b.depends:
        rows = max(len(pa), len(pb))
        out["per_generator"] = [{"generator": g + 1, "delta": _diff(pa[min(g, len(pa) - 1)], pb[min(g, len(pb) - 1)]),
                                 "per_seed": _floats(pa[min(g, len(pa) - 1)] - pb[min(g, len(pb) - 1)])}
                                for g in range(rows)]
    return out


def _gen_mean(point: np.ndarray) -> np.ndarray:
    return point[0] if len(point) == 1 else np.nanmean(point, axis=0)


def _diff(a: np.ndarray, b: np.ndarray) -> float | None:
    return M._f(np.nanmean(a) - np.nanmean(b)) if np.isfinite(a).any() and np.isfinite(b).any() else None


def _mean(row: np.ndarray) -> float | None:
    return M._f(np.nanmean(row)) if np.isfinite(row).any() else None


def _floats(values) -> list:
    return [M._f(v) for v in values]
