"""Which real abnormal images stand behind each number: the K keys each generator trained on and the K
keys the classifier arms of its level use, checked equal before any classifier trains.

A low-data claim ("with K real abnormals, synthetic images help") holds only if the generator saw
those same K images and no more. The generator's keys come from its training run (config.yaml's
`data.domain_b_keys`, else the checkpoint's config; unset = every domain-B image of its split); the
arms' keys from `low_data_keys`, the rule the pipeline also trains with. Hashes are SHA-256 of the
sorted keys, one per line (their first 16 hex digits are the checkpoint's `images_b_keys_sha`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from xraymunit.config.evaluate import EvaluateConfig, parse_level
from xraymunit.evaluation.datasets import low_data_keys
from xraymunit.evaluation.plan import EvaluateError, StudyPlan
from xraymunit.evaluation.runs import sha256_of


def training_runs(training_run, plan: StudyPlan) -> dict[str, list]:
    """{level → [run folder or None per given generator]} from None, one folder / list (every level),
    or {level: folder or [folders]} — a list must name one run per synthetic folder of the level."""
    def as_list(value) -> list:
        return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]

    if isinstance(training_run, Mapping):
        given = {str(parse_level(k if isinstance(k, (int, str)) else str(k))): as_list(v)
                 for k, v in training_run.items()}
    else:
        given = {lv.name: as_list(training_run) for lv in plan.levels}
    out = {}
    for lv in plan.levels:
        runs, n = given.get(lv.name, []), len(plan.syn_of[lv.name])
        if runs and len(runs) != n:
            raise EvaluateError(f"level {lv.name}: {len(runs)} training run(s) for {n} synthetic folder(s); give one "
                                "training run per generator, in the same order")
        out[lv.name] = runs if runs else [None] * n
    return out


def generator_keys(run: str | Path, plan: StudyPlan) -> tuple[list[str], str]:
    """(the real abnormal image_keys a generator trained on, where that was read)."""
    run = Path(run)
    data = None
    if (run / "config.yaml").is_file():
        data, where = (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("data"), "config.yaml"
    elif (run / "checkpoints" / "last.pt").is_file():
        from xraymunit import checkpoint

        saved = checkpoint.load(run / "checkpoints" / "last.pt").get("config") or {}
        data, where = saved.get("data"), "checkpoints/last.pt"
    if not isinstance(data, dict):
        raise EvaluateError(f"training run {run}: no config.yaml (nor checkpoints/last.pt) says which real abnormal "
                            "images its generator trained on; pass the generator's run folder")
    if data.get("domain_b_keys"):
        return sorted(map(str, data["domain_b_keys"])), f"{where}: data.domain_b_keys"
    ok = plan.cohort.ok()
    rows = ok[(ok["split"] == data.get("split", "train")) & (ok["label"] == data.get("domain_b", "abnormal"))]
    if data.get("source_datasets"):
        rows = rows[rows["source_dataset"].isin(data["source_datasets"])]
    return sorted(map(str, rows["image_key"])), f"{where}: every {data.get('domain_b', 'abnormal')} image of its split"


def _readable(run) -> bool:
    return (Path(run) / "config.yaml").is_file() or (Path(run) / "checkpoints" / "last.pt").is_file()


def classifier_keys(plan: StudyPlan, cfg: EvaluateConfig, level) -> dict[int, list[str]]:
    """{seed → the K real abnormal image_keys the level's arms train on with that seed}."""
    out = {}
    for seed in plan.seeds:
        subset_seed = cfg.seed_base if cfg.real_abnormal_subset == "shared" else seed
        out[seed] = low_data_keys(plan.cohort, level.n_abnormal, subset_seed, cfg.normal_label, cfg.abnormal_label)
    return out


def check(plan: StudyPlan, cfg: EvaluateConfig, training_run) -> dict:
    """{level → hashes of the arms' keys and of each generator's}; EvaluateError when one generator of a
    one-generator-per-level study trained on other real abnormals than its level's arms use."""
    runs_of = training_runs(training_run, plan)
    out = {}
    for lv in plan.levels:
        arms = classifier_keys(plan, cfg, lv)
        arm_sha = {str(seed): sha256_of(keys) for seed, keys in arms.items()}
        entries, usable = [], [made.root for made in plan.synthetic.get(lv.name) or []]
        for g, (syn, run) in enumerate(zip(plan.syn_of[lv.name], runs_of[lv.name])):
            number = usable.index(str(syn.root)) + 1 if str(syn.root) in usable else None
            entry = {"generator": number, "synthetic": str(syn.root), "training_run": None if run is None else str(run),
                     "real_abnormal_keys_sha256": None, "n_real_abnormal": None, "keys_from": None, "matches": None}
            if run is not None and not plan.per_level and not _readable(run):
                entry["keys_from"] = "not recorded: the training run has no config.yaml"  # only a caveat here
            elif run is not None:
                keys, where = generator_keys(run, plan)
                entry.update(real_abnormal_keys_sha256=sha256_of(keys), n_real_abnormal=len(keys), keys_from=where,
                             matches=all(sha == sha256_of(keys) for sha in arm_sha.values()))
                if plan.per_level and not entry["matches"]:
                    raise EvaluateError(_mismatch(lv, g, syn, keys, arms, cfg))
            entries.append(entry)
        out[lv.name] = {"classifier_real_abnormal_keys_sha256": arm_sha, "generators": entries}
    return out


def _mismatch(lv, g: int, syn, keys: list[str], arms: dict, cfg: EvaluateConfig) -> str:
    seed, used = next((s, k) for s, k in arms.items() if k != keys)
    hint = ("; set real_abnormal_subset: shared" if cfg.real_abnormal_subset != "shared" and len(arms) > 1
            and keys == arms[cfg.seed_base] else "")
    return (f"level {lv.name}: generator {g + 1} ({syn.root}) trained on {len(keys)} real abnormal images "
            f"(sha256 {sha256_of(keys)[:16]}) but the level's classifier arms (seed {seed}) use {len(used)} others "
            f"(sha256 {sha256_of(used)[:16]}): the study would not be low-data{hint}")


def with_arms(checked: dict, runs: list[dict]) -> dict:
    """The checked hashes plus, per level, {arm → [{seed, generator, train_keys_sha256}]}: what each run
    trained on (every training image, repeats kept; see RunExecutor.training_keys)."""
    out = {level: {**entry, "arms": {}} for level, entry in checked.items()}
    for r in runs:
        level = out.setdefault(r["level"], {"arms": {}})
        level["arms"].setdefault(r["arm"], []).append(
            {"seed": r["seed"], "generator": r.get("generator"), "train_keys_sha256": r.get("train_keys_sha256")})
    return out
