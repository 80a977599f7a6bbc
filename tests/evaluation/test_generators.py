"""Several generators per level: the runs (once per generator where the arm depends on it), the
hierarchical bootstrap over generators, seeds and test patients, the provenance check of the K real
abnormal keys, and that one generator gives exactly the single-generator study's numbers."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from helpers.evaluate_data import write_cohort, write_synthetic
from xraymunit import config
from xraymunit.config.evaluate import EvaluateConfig
from xraymunit.evaluation import metrics as M
from xraymunit.evaluation import provenance, resampling
from xraymunit.evaluation.datasets import ImageSet, low_data_keys
from xraymunit.evaluation.plan import EvaluateError, Level, plan_study
from xraymunit.evaluation.runs import sha256_of
from xraymunit.evaluation.stage import evaluate
from xraymunit.evaluation.statistics import study_statistics
from xraymunit.io.cohort import Cohort

REPO = Path(__file__).resolve().parents[2]
K = 3


def quick(*overrides) -> EvaluateConfig:
    return config.load(EvaluateConfig, REPO / "configs" / "evaluate_tiny.yaml", [
        "progress=false", "quality.enabled=false", "classifier.steps=4", "classifier.eval_every=2",
        "stats.bootstrap=50", f"real_abnormal=[{K}]", "real_abnormal_subset=shared", "seeds=2", *overrides])


def _distinct(folder: Path, tag: str, sha: str) -> Path:
    """Give a synthetic folder its own synth_keys and checkpoint: another generator's images."""
    m = pd.read_parquet(folder / "manifest.parquet")
    m["synth_key"] = tag + m["synth_key"].str[len(tag):]
    m["checkpoint_sha256"] = sha
    m.to_parquet(folder / "manifest.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("generators")
    cohort = write_cohort(root / "cohort", n_patients=30, size=32, seed=5)
    g1 = _distinct(write_synthetic(root / "synth_g1", cohort, n_styles=2, seed=21, unknown_sources=0), "a1", "a" * 64)
    g2 = _distinct(write_synthetic(root / "synth_g2", cohort, n_styles=2, seed=22, unknown_sources=0), "b2", "b" * 64)
    g3 = _distinct(write_synthetic(root / "synth_g3", cohort, n_styles=3, seed=23, unknown_sources=0), "c3", "c" * 64)
    return SimpleNamespace(root=root, cohort=cohort, g1=g1, g2=g2, g3=g3)


def training_run(folder: Path, keys) -> Path:
    """A generator's run folder as train writes it, as far as evaluate reads it (config.yaml's data)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"data": {"domain_a": "normal", "domain_b": "abnormal",
                                                                 "split": "train", "domain_b_keys": keys}}))
    return folder


# --------------------------------------------------------------------------- the runs


def test_generator_arms_run_once_per_generator_and_duplicate_real_once_per_count(data):
    cfg = quick("arms=[real, synthetic, intensity_control, duplicate_real]")
    plan = plan_study(data.cohort, {str(K): [data.g1, data.g2, data.g3]}, cfg)
    jobs = {(arm, seed, g) for _, seed, arm, g in plan.jobs()}
    seeds = plan.seeds
    assert {j for j in jobs if j[0] == "real"} == {("real", s, None) for s in seeds}
    for arm in ("synthetic", "intensity_control"):
        assert {j for j in jobs if j[0] == arm} == {(arm, s, g) for s in seeds for g in (0, 1, 2)}
    # generators 1 and 2 add as many images (the same sources, 2 styles): one duplicate_real run serves both
    assert {j for j in jobs if j[0] == "duplicate_real"} == {("duplicate_real", s, g) for s in seeds for g in (0, 2)}
    assert [plan.run_generator(str(K), "duplicate_real", g) for g in range(3)] == [0, 0, 2]

    one = plan_study(data.cohort, [data.g1], cfg)  # a list of one is today's single generator
    assert [(lv.name, s, a, g) for lv, s, a, g in one.jobs()] == \
        [(lv.name, s, a, g) for lv, s, a, g in plan_study(data.cohort, data.g1, cfg).jobs()]
    with pytest.raises(EvaluateError, match="listed twice"):
        plan_study(data.cohort, {str(K): [data.g1, str(data.g1)]}, cfg)


@pytest.fixture(scope="module")
def two(data, tmp_path_factory):
    """A study with two generators at level K, their training runs on the level's own K keys."""
    cfg = quick("arms=[real, synthetic, intensity_control, duplicate_real]")
    keys = low_data_keys(Cohort.open(data.cohort), K, cfg.seed_base)
    runs = [training_run(data.root / f"train_g{i}", keys) for i in (1, 2)]
    out = tmp_path_factory.mktemp("two") / "report"
    pools = []
    runs_module = importlib.import_module("xraymunit.evaluation.runs")
    real_pool = runs_module.TrainPool

    def spy(**kwargs):
        pools.append(kwargs["synthetic"])
        return real_pool(**kwargs)

    runs_module.TrainPool = spy
    try:
        m = evaluate(data.cohort, {str(K): [data.g1, data.g2]}, out, cfg, training_run={str(K): runs})
    finally:
        runs_module.TrainPool = real_pool
    return SimpleNamespace(m=m, out=out, cfg=cfg, keys=keys, runs=runs, pools=pools)


def test_each_generator_s_runs_train_on_its_own_images_and_are_filed_apart(data, two):
    m, name = two.m, str(K)
    got = sorted((r["arm"], r["generator"], r["seed"]) for r in m["runs"])
    seeds = m["seeds"]
    assert got == sorted([("real", None, s) for s in seeds] + [("duplicate_real", 1, s) for s in seeds]
                         + [(a, g, s) for a in ("synthetic", "intensity_control") for g in (1, 2) for s in seeds])
    synthetic_pools = [p for p, r in zip(two.pools, m["runs"]) if r["arm"] == "synthetic"]
    by_generator = {r["generator"]: p for p, r in zip(two.pools, m["runs"]) if r["arm"] == "synthetic"}
    assert len(synthetic_pools) == 4 and not torch.equal(by_generator[1], by_generator[2])
    files = {p.name for p in (two.out / "runs").glob("*.npz")}
    assert f"{name}__synthetic__g2__seed{seeds[1]}.npz" in files and f"{name}__real__seed{seeds[0]}.npz" in files
    # each run's training images hashed: the two generators' synthetic arms trained on different images
    sha = {(r["arm"], r["generator"]): r["train_keys_sha256"] for r in m["runs"] if r["seed"] == seeds[0]}
    assert sha["synthetic", 1] != sha["synthetic", 2] and len(sha["real", None]) == 64
    assert m["generators"]["levels"][name]["n_generators"] == 2
    assert [g["checkpoint_sha256"] for g in m["generators"]["levels"][name]["generators"]] == [["a" * 64], ["b" * 64]]


def test_a_rerun_resumes_every_run_and_reports_the_same(data, two):
    again = evaluate(data.cohort, {str(K): [data.g1, data.g2]}, two.out, two.cfg, training_run={str(K): two.runs})
    assert again["resumed_runs"] == len(two.m["runs"])
    assert json.dumps(again["results"], sort_keys=True) == json.dumps(two.m["results"], sort_keys=True)


def test_quality_measures_every_generator_alike(data, two, tmp_path):
    """The main quality section assesses generator 1 of the largest level; per_generator measures each one
    the same way, so the quality numbers carry the generators' variance too."""
    import shutil

    out = shutil.copytree(two.out, tmp_path / "report")
    m = evaluate(data.cohort, {str(K): [data.g1, data.g2]}, out,
                 quick("arms=[real, synthetic, intensity_control, duplicate_real]", "quality.enabled=true"),
                 training_run={str(K): two.runs})
    assert m["resumed_runs"] == len(two.m["runs"])  # measuring trains no classifier again
    q, each = m["quality"], m["quality"]["per_generator"]
    assert [(e["level"], e["generator"], Path(e["folder"]).name) for e in each] == \
        [(str(K), 1, "synth_g1"), (str(K), 2, "synth_g2")]
    assert each[0]["judged_abnormal"] == q["judged_abnormal"]  # generator 1 is the set the main section assesses
    main_fd = q["realism"]["synthetic_vs_real_abnormal"]["frechet"]
    assert each[0]["realism"]["synthetic_vs_real_abnormal"]["frechet"] == pytest.approx(main_fd, rel=1e-6)
    assert each[1]["realism"]["synthetic_vs_real_abnormal"]["frechet"] != pytest.approx(main_fd, rel=1e-6)
    assert each[0]["n_synthetic"] > 0 and each[1]["n_synthetic"] > 0
    summary = (out / "summary.md").read_text()
    table = summary.split("### Every generator, measured alike")[1].split("\n\n")[2]
    assert [line.split("|")[2].strip() for line in table.splitlines()[2:]] == ["1", "2", "real"]


def test_metrics_keep_every_generator_and_seed_and_say_how_the_interval_was_drawn(two):
    res = two.m["results"][str(K)]
    assert res["n_generators"] == 2 and res["n_seeds"] == 2 and res["bootstrap"]["hierarchical"]
    assert res["bootstrap"]["method"] == resampling.HIERARCHICAL
    syn, real = res["arms"]["synthetic"]["auroc"], res["arms"]["real"]["auroc"]
    assert [g["generator"] for g in syn["per_generator"]] == [1, 2] and "per_generator" not in real
    comp = res["synthetic_vs_controls"]["synthetic"]["comparisons"]["synthetic vs real"]["auroc"]
    for g, entry in zip(syn["per_generator"], comp["per_generator"]):
        assert entry["per_seed"] == pytest.approx(np.subtract(g["per_seed"], real["per_seed"]).tolist())
        assert entry["delta"] == pytest.approx(np.mean(g["per_seed"]) - np.mean(real["per_seed"]))
    assert comp["delta"] == pytest.approx(np.mean([g["per_seed"] for g in syn["per_generator"]]) - real["value"])
    assert comp["per_seed"] == pytest.approx(
        (np.mean([g["per_seed"] for g in syn["per_generator"]], axis=0) - real["per_seed"]).tolist())
    assert "p_holm" in comp and comp["n_boot"] == 50
    summary = (two.out / "summary.md").read_text()
    answer = summary.split("## Does synthetic help?\n\n")[1].split("## Arms")[0]
    assert f"| {K} | synthetic | 2 × 2 |" in answer and resampling.HIERARCHICAL in answer
    assert "(paired bootstrap over generators, seeds and patients, Holm-adjusted" in answer.splitlines()[0]
    assert "Checked: every generator's training run" in summary


def test_provenance_hashes_the_keys_and_refuses_a_generator_trained_on_others(data, two, tmp_path):
    prov = two.m["provenance"][str(K)]
    want = sha256_of(two.keys)
    assert set(prov["classifier_real_abnormal_keys_sha256"].values()) == {want}
    assert [(g["generator"], g["real_abnormal_keys_sha256"], g["matches"]) for g in prov["generators"]] == \
        [(1, want, True), (2, want, True)]
    assert want.startswith(two.m["runs"][0]["real_abnormal_keys_sha"])  # the checkpoint's short hash
    assert {e["generator"] for e in prov["arms"]["synthetic"]} == {1, 2}

    other = low_data_keys(Cohort.open(data.cohort), K, two.cfg.seed_base + 1)
    assert other != two.keys
    bad = training_run(tmp_path / "train_other", other)
    out = tmp_path / "refused"
    with pytest.raises(EvaluateError, match=r"^level 3: generator 2 \(.*synth_g2\) trained on 3 real abnormal images "
                                            r"\(sha256 [0-9a-f]{16}\) but the level's classifier arms"):
        evaluate(data.cohort, {str(K): [data.g1, data.g2]}, out, two.cfg, training_run={str(K): [two.runs[0], bad]})
    assert not (out / "runs").exists()  # refused before any classifier trained
    everything = training_run(tmp_path / "train_all", None)  # domain_b_keys unset: every train abnormal
    with pytest.raises(EvaluateError, match="generator 1"):
        evaluate(data.cohort, {str(K): data.g1}, out, two.cfg, training_run={str(K): everything})
    with pytest.raises(EvaluateError, match="1 training run\\(s\\) for 2 synthetic folder\\(s\\)"):
        evaluate(data.cohort, {str(K): [data.g1, data.g2]}, out, two.cfg, training_run={str(K): [everything]})
    # one generator for every level (not per level): recorded, not refused (the report's warning says it)
    plan = plan_study(data.cohort, data.g1, two.cfg)
    single = provenance.check(plan, two.cfg, everything)[str(K)]["generators"][0]
    assert single["matches"] is False and single["n_real_abnormal"] > K


# --------------------------------------------------------------------------- the statistics


def fake_study(n_generators: int, effects: dict, seeds=(0, 1, 2), n_test=40, seed=0):
    """Runs with synthetic scores: the label plus noise plus a per-(arm, generator, seed) signal strength."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(n_test // 2), np.ones(n_test // 2)].astype(np.int64)
    test = ImageSet(torch.zeros((n_test, 1, 2, 2)), labels, np.array([f"k{i}" for i in range(n_test)], object),
                    np.array([f"p{i // 2}" for i in range(n_test)], object))
    runs, noise = [], rng.normal(size=(len(seeds), n_test))
    for arm, strength in effects.items():
        gens = [None] if arm == "real" else range(n_generators)
        for g in gens:
            for i, s in enumerate(seeds):
                signal = strength(0 if g is None else g, i)
                runs.append({"level": "5", "arm": arm, "seed": s, "generator": None if g is None else g + 1,
                             "threshold": 0.5, "train_counts": {}, "_test_scores": labels * signal + noise[i]
                             + 0.3 * rng.normal(size=n_test)})
    plan = SimpleNamespace(levels=[Level(5, 5)], arms=list(effects), seeds=list(seeds), sets={"test": test},
                           n_generators=lambda level: n_generators, run_generator=lambda level, arm, g: g)
    return runs, plan, test


def test_one_generator_gives_exactly_the_patient_bootstrap_of_a_single_generator_study():
    runs, plan, test = fake_study(1, {"real": lambda g, s: 1.0, "synthetic": lambda g, s: 1.3})
    cfg = quick("stats.bootstrap=200")
    res = study_statistics(runs, plan, cfg)["5"]
    W = M.bootstrap_weights(test.labels, test.patients, 200, cfg.seed_base)
    dists = {arm: M.metric_distributions(test.labels, np.stack([r["_test_scores"] for r in runs if r["arm"] == arm]),
                                         [0.5] * 3, W, cfg.stats.specificity) for arm in ("real", "synthetic")}
    for arm in dists:  # what the single-generator study computed: its primitives, unchanged
        for name, d in dists[arm].items():
            want = M.summarise(*d, cfg.stats.ci)
            assert {k: res["arms"][arm][name][k] for k in want} == want
    for name in dists["real"]:
        want = M.paired_difference(dists["synthetic"][name], dists["real"][name], cfg.stats.ci)
        assert {k: res["comparisons"]["synthetic vs real"][name][k] for k in want} == want
    assert not res["bootstrap"]["hierarchical"] and res["bootstrap"]["method"] == resampling.PATIENTS_ONLY


def test_hierarchical_replicates_match_a_hand_computed_draw():
    rng = np.random.default_rng(3)
    boot = rng.random((6, 2, 3))  # B = 6 replicates, G = 2 generators, k = 3 seeds
    draws = resampling.Draws.make(6, 2, 3, seed=0)
    got = draws.replicate_values(boot)
    for b in range(6):
        cells = [boot[b, g, s] for g in draws.generators[b] for s in draws.seeds[b]]
        assert got[b] == pytest.approx(np.mean(cells))
    flat = draws.replicate_values(boot[:, :1])  # an arm without a generator uses the drawn seeds only
    assert flat == pytest.approx([np.mean(boot[b, 0, draws.seeds[b]]) for b in range(6)])
    assert resampling.Draws.make(6, 1, 3, seed=0).replicate_values(boot[:, :1]) == \
        pytest.approx(boot[:, 0].mean(axis=1))  # one generator: seeds fixed, patients only


def test_generator_variance_widens_the_interval_that_one_generator_would_have_drawn():
    """Generator 1 helps a lot, generator 2 hurts: each alone has an interval away from 0, together the
    interval must cover both and include 0, and keep each generator's own estimate."""
    effects = {"real": lambda g, s: 1.0, "synthetic": lambda g, s: 2.5 if g == 0 else 0.3}
    runs, plan, _ = fake_study(2, effects, n_test=80)
    cfg = quick("stats.bootstrap=300")
    both = study_statistics(runs, plan, cfg)["5"]["comparisons"]["synthetic vs real"]["auroc"]
    alone = []
    for g in (1, 2):
        keep = [{**r, "generator": r["generator"] and 1} for r in runs if r["generator"] in (None, g)]
        single = SimpleNamespace(**{**vars(plan), "n_generators": lambda level: 1})
        alone.append(study_statistics(keep, single, cfg)["5"]["comparisons"]["synthetic vs real"]["auroc"])
    assert alone[0]["ci_low"] > 0 and alone[1]["ci_high"] < 0  # each generator alone: a confident, opposite answer
    assert both["ci_low"] < 0 < both["ci_high"]
    assert both["ci_high"] - both["ci_low"] > max(a["ci_high"] - a["ci_low"] for a in alone)
    assert [e["delta"] for e in both["per_generator"]] == pytest.approx([a["delta"] for a in alone])
    assert both["p_bootstrap"] > 0.05
