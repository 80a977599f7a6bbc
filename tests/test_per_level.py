"""An honest low-data study: one generator per level, trained on the level's own K real abnormals.

(a) low_data_keys is nested and is what evaluate uses; (b) data.domain_b_keys trains on exactly
those images; (c) the pipeline's per-level mode trains each level's generator on the right keys
and the report names it; (d) evaluate with {level: folder} uses level K's images only for level K.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers.evaluate_data import write_cohort, write_synthetic
from helpers.training import tiny_train_config
from xraymunit import checkpoint, config
from xraymunit.config.evaluate import EvaluateConfig
from xraymunit.config.train import LoopConfig
from xraymunit.evaluation.stage import evaluate
from xraymunit.evaluation.datasets import low_data_keys, select_synthetic, synthetic_images
from xraymunit.evaluation.runcache import digest
from xraymunit.io.cohort import Cohort, SyntheticSet
from xraymunit.pipeline.config import PipelineConfig
from xraymunit.training.data import domain_indices
from xraymunit.training.errors import TrainingError

REPO = Path(__file__).resolve().parents[1]
TINY_EVAL = REPO / "configs" / "evaluate_tiny.yaml"

# extras of the training loop that cost time and are not what these tests are about (when present)
_LOOP = {f.name for f in dataclasses.fields(LoopConfig)}
QUIET_TRAIN = [o for key, o in (("quality_every", "train.quality_every=0"),
                                ("shortcut_test", "train.shortcut_test=false")) if key in _LOOP]


def quick_eval(*overrides) -> EvaluateConfig:
    return config.load(EvaluateConfig, TINY_EVAL, ["progress=false", "quality.enabled=false", "classifier.steps=4",
                                                   "classifier.eval_every=2", "stats.bootstrap=50", *overrides])


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("cohort"), n_patients=40, size=64, seed=5)


# --------------------------------------------------------------------------- (a) the shared subset rule


def test_low_data_keys_are_nested_train_abnormals(cohort):
    co = Cohort.open(cohort)
    ok = co.ok()
    train_abnormal = set(ok[(ok["split"] == "train") & (ok["label"] == "abnormal")]["image_key"])
    for seed in (0, 1, 7):
        k3, k6, everything = (low_data_keys(co, k, seed) for k in (3, 6, "all"))
        assert len(k3) == 3 and len(k6) == 6 and k3 == sorted(k3)
        assert set(k3) < set(k6) < set(everything) and set(everything) == train_abnormal
        assert low_data_keys(co, 10_000, seed) == everything  # K >= available is 'all'
    assert low_data_keys(co, 3, 0) != low_data_keys(co, 3, 1)  # per seed, different subsets


@pytest.mark.parametrize("subset", ["shared", "per_seed"])
def test_evaluate_keeps_exactly_low_data_keys(cohort, tmp_path, subset):
    co = Cohort.open(cohort)
    cfg = quick_eval("arms=[real]", "seeds=3", "seed_base=2", "real_abnormal=[3, all]", f"real_abnormal_subset={subset}")
    m = evaluate(cohort, None, tmp_path, cfg)
    for run in m["runs"]:
        level = 3 if run["level"] == "3" else "all"
        subset_seed = 2 if subset == "shared" else run["seed"]
        assert run["real_abnormal_keys_sha"] == digest(low_data_keys(co, level, subset_seed)), run["level"]
    low = {r["real_abnormal_keys_sha"] for r in m["runs"] if r["level"] == "3"}
    assert len(low) == (1 if subset == "shared" else 3)
    shared_line = "Low-data subsets are shared" in (tmp_path / "summary.md").read_text()
    assert shared_line == (subset == "shared")


# --------------------------------------------------------------------------- (b) training on a subset


def test_domain_b_keys_selects_exactly_those_images(cohort):
    co = Cohort.open(cohort)
    keys = low_data_keys(co, 4, 0)
    a_all, b_all = domain_indices(co, tiny_train_config())
    a, b = domain_indices(co, tiny_train_config(f"data.domain_b_keys=[{', '.join(repr(k) for k in keys)}]"))
    key_of = dict(zip(co.ok()["cache_index"], co.ok()["image_key"]))
    assert sorted(key_of[i] for i in b) == keys and len(b) < len(b_all)
    assert np.array_equal(a, a_all)  # domain A untouched

    cfg = tiny_train_config()
    cfg.data.domain_b_keys = [*keys[:2], "nosuchkey0000000", keys[0].upper() + "x"]
    with pytest.raises(TrainingError, match="2 of 4 image_keys are not 'abnormal' images"):
        domain_indices(co, cfg)
    with pytest.raises(config.ConfigError, match="domain_b_keys"):
        tiny_train_config("data.domain_b_keys=[]")


def test_training_records_the_domain_b_keys(cohort, tmp_path):
    from xraymunit.training import train

    co = Cohort.open(cohort)
    keys = low_data_keys(co, 4, 0)
    cfg = tiny_train_config("train.steps=2", *QUIET_TRAIN)
    cfg.data.domain_b_keys = keys
    train(cohort, tmp_path / "run", cfg, progress=False)
    extra = checkpoint.load(tmp_path / "run" / "checkpoints" / "last.pt")["extra"]
    assert extra["images_b"] == 4 and extra["images_b_keys_sha"] == digest(keys)
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["data"]["domain_b_keys"] == keys


# --------------------------------------------------------------------------- (d) evaluate with one folder per level


@pytest.fixture(scope="module")
def two_generators(cohort, tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    small = write_synthetic(root / "synth_3", cohort, n_styles=2, seed=11, unknown_sources=0)
    large = write_synthetic(root / "synth_all", cohort, n_styles=3, seed=12, unknown_sources=0)
    for folder, sha in ((small, "a" * 64), (large, "b" * 64)):  # two distinct generators
        import pandas as pd

        m = pd.read_parquet(folder / "manifest.parquet")
        m["checkpoint_sha256"] = sha
        m.to_parquet(folder / "manifest.parquet", index=False)
    return {"3": small, "all": large}


def test_evaluate_with_a_folder_per_level_uses_each_level_s_own_images(cohort, two_generators, tmp_path, monkeypatch):
    seen = []
    runs_module = importlib.import_module("xraymunit.evaluation.runs")  # where the runs build their pools
    real_pool = runs_module.TrainPool

    def spy(**kwargs):
        seen.append(kwargs["synthetic"])
        return real_pool(**kwargs)

    monkeypatch.setattr(runs_module, "TrainPool", spy)
    cfg = quick_eval("arms=[real, synthetic]", "seeds=1", "real_abnormal=[3, all]", "real_abnormal_subset=shared",
                     "quality.enabled=true", "quality.max_sources=4", "quality.max_images=12",
                     "quality.kid_subsets=2", "quality.fd_bootstrap=0", "quality.bootstrap=0")
    m = evaluate(cohort, {"3": two_generators["3"], "all": str(two_generators["all"])}, tmp_path, cfg)

    co = Cohort.open(cohort)
    expected = {}
    for name, folder in two_generators.items():
        syn = SyntheticSet.open(folder)
        used = select_synthetic(syn.manifest, co.manifest, cfg.synthetic).used
        expected[name] = synthetic_images(syn, used, cfg.classifier.image_size, dtype=torch.float16).images
    pools = [p for p in seen if p is not None]
    order = [r["level"] for r in m["runs"] if r["arm"] == "synthetic"]
    assert order == ["3", "all"] and len(pools) == 2
    for name, pool in zip(order, pools):
        assert torch.equal(pool, expected[name]), name
    counts = {r["level"]: r["train_counts"]["synthetic_abnormal"] for r in m["runs"] if r["arm"] == "synthetic"}
    assert counts == {name: len(expected[name]) for name in order} and counts["3"] != counts["all"]

    gens = m["generators"]
    assert gens["mode"] == "per_level"
    assert gens["levels"]["3"]["checkpoint_sha256"] == ["a" * 64]
    assert gens["levels"]["all"]["synthetic"] == str(two_generators["all"])
    assert m["quality"]["synthetic_set"] == {"folder": str(two_generators["all"]), "level": "all"}
    summary = (tmp_path / "summary.md").read_text()
    assert "generator `aaaaaaaaaaaa`" in summary and "generator `bbbbbbbbbbbb`" in summary
    assert "One generator per low-data level" in summary and "assess level all's synthetic set" in summary
    assert "**Warning:** low-data levels" not in summary
    assert json.loads((tmp_path / "metrics.json").read_text())["synthetic"] == {
        name: str(folder) for name, folder in two_generators.items()}


def test_a_level_without_a_folder_skips_arms_3_4_there(cohort, two_generators, tmp_path):
    cfg = quick_eval("arms=[real, synthetic]", "seeds=1", "real_abnormal=[3, all]")
    m = evaluate(cohort, {"all": two_generators["all"]}, tmp_path, cfg)
    assert {(r["level"], r["arm"]) for r in m["runs"]} == {("3", "real"), ("all", "real"), ("all", "synthetic")}
    assert set(m["results"]["3"]["arms"]) == {"real"} and "synthetic vs real" in m["results"]["all"]["comparisons"]
    assert any(n.startswith("level 3: no synthetic folder") for n in m["notes"])
    summary = (tmp_path / "summary.md").read_text()
    level_3 = summary.split("### Real abnormal training images: 3")[1].split("### Real abnormal training images: all")[0]
    assert "| (1) real only |" in level_3 and "(3) real + synthetic" not in level_3


def test_a_single_generator_keeps_the_caveat_as_a_warning(cohort, two_generators, tmp_path):
    m = evaluate(cohort, two_generators["all"], tmp_path, quick_eval("arms=[real, synthetic]", "seeds=1"))
    assert m["generators"]["mode"] == "single" and m["synthetic"] == str(two_generators["all"])
    summary = (tmp_path / "summary.md").read_text()
    assert "**Warning:** low-data levels" in summary and "trained on *all* train-split abnormal images" in summary
    assert summary.count("generator `bbbbbbbbbbbb`") == 2  # named under both levels


def test_cli_synthetic_forms():
    from xraymunit.cli.evaluate import parse_synthetic

    assert parse_synthetic(None) is None
    assert parse_synthetic(["synth/"]) == "synth/"
    assert parse_synthetic(["5=s5", "ALL=sall"]) == {"5": "s5", "all": "sall"}
    # several generators: a level named again (in the order given), or several plain folders for every level
    assert parse_synthetic(["5=a", "all=c", "05=b"]) == {"5": ["a", "b"], "all": "c"}
    assert parse_synthetic(["a", "b"]) == ["a", "b"]
    with pytest.raises(config.ConfigError, match="not both"):
        parse_synthetic(["a", "5=s5"])


# --------------------------------------------------------------------------- (c) the per-level pipeline


def test_per_level_pipeline_trains_each_generator_on_its_level_s_keys(tmp_path):
    sys.path.insert(0, str(REPO / "pipelines"))
    try:
        import normal_to_abnormal
    finally:
        sys.path.remove(str(REPO / "pipelines"))

    train_set = ", ".join(["train.steps=3", "train.checkpoint_every=3", "model.dim=8", "model.mlp_dim=16",
                           "model.n_res=1", "model.dis_dim=8", *QUIET_TRAIN])
    args = ["--set", "generators=per_level", "--set", "ingest.size=64", "--set", f"train.set=[{train_set}]",
            "--set", "evaluate.set=[seeds=2, 'real_abnormal=[5, all]', quality.enabled=false, classifier.steps=4, "
                     "classifier.eval_every=2, stats.bootstrap=50, 'arms=[real, synthetic]']",
            "--set", "synthesize.n_styles=1", "--set", "synthesize.checkpoint=best", "--out", str(tmp_path),
            "--no-progress"]
    assert normal_to_abnormal.main(args) == 0
    # best.pt is picked by a judge that saw every train abnormal: level 5 is forced to last.pt, with a note
    log = (tmp_path / "pipeline.log").read_text()
    assert "synthesize_5: using last.pt, not best.pt" in log and "synthesize_all: using last.pt, not" not in log

    state = json.loads((tmp_path / "pipeline_state.json").read_text())
    assert state["evaluate"]["levels"] == ["5", "all"]
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    summary = (tmp_path / "report" / "summary.md").read_text()
    co = Cohort.open(tmp_path / "cohort")
    assert metrics["config"]["real_abnormal_subset"] == "shared"
    for name in ("5", "all"):
        keys = low_data_keys(co, 5 if name == "5" else "all", metrics["config"]["seed_base"])
        run_dir = tmp_path / f"train_{name}"
        assert state[f"train_{name}"]["status"] == state[f"synthesize_{name}"]["status"] == "done"
        recorded = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["domain_b_keys"]
        assert recorded == (keys if name == "5" else None)
        ckpt = run_dir / "checkpoints" / "last.pt"
        extra = checkpoint.load(ckpt)["extra"]
        assert extra["images_b_keys_sha"] == digest(keys) and extra["images_b"] == len(keys)
        # the classifier arms of the level saw the same keys, for every seed
        assert {r["real_abnormal_keys_sha"] for r in metrics["runs"] if r["level"] == name} == {digest(keys)}
        gen = metrics["generators"]["levels"][name]
        assert gen["synthetic"] == str(tmp_path / f"synth_{name}")
        assert gen["checkpoint_sha256"] == [checkpoint.file_sha256(ckpt)]
        assert f"generator `{checkpoint.file_sha256(ckpt)[:12]}`" in summary
    assert len(low_data_keys(co, 5, 0)) == 5 and not (tmp_path / "train").exists()
    assert "**Warning:** low-data levels" not in summary and "One generator per low-data level" in summary

    assert normal_to_abnormal.main(args) == 0  # a rerun skips every per-level stage
    log = (tmp_path / "pipeline.log").read_text()
    for stage in ("train_5", "train_all", "synthesize_5", "synthesize_all", "evaluate"):
        assert f"{stage}: up to date" in log


def test_two_generators_per_level_differ_by_seed_and_share_the_level_s_keys(tmp_path, monkeypatch):
    """generators_per_level: 2 trains train_K_g1/ and train_K_g2/ (seeds 0, 1) on the same K keys and hands
    evaluate both synthetic sets of the level; ingest uses the given salt and contrast."""
    import xraymunit
    from xraymunit.ingestion.keys import create_salt

    sys.path.insert(0, str(REPO / "pipelines"))
    try:
        import normal_to_abnormal
    finally:
        sys.path.remove(str(REPO / "pipelines"))
    handed = {}

    def fake_evaluate(cohort, synthetic, out, cfg, **kwargs):  # the stage's output is all the pipeline checks
        handed.update(synthetic=synthetic, runs=kwargs["training_run"])
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "summary.md").write_text("stand-in\n")

    monkeypatch.setattr(xraymunit, "evaluate", fake_evaluate)
    salt = tmp_path / "study.salt"
    create_salt(salt)
    out = tmp_path / "run"
    train_set = ", ".join(["train.steps=2", "train.checkpoint_every=2", "model.dim=8", "model.mlp_dim=16",
                           "model.n_res=1", "model.dis_dim=8", *QUIET_TRAIN])
    args = ["--set", "generators=per_level", "--set", "generators_per_level=2", "--set", "ingest.size=64",
            "--set", "ingest.contrast=equalize", "--set", f"ingest.salt_file={salt}",
            "--set", f"train.set=[{train_set}]", "--set", "evaluate.set=['real_abnormal=[5]']",
            "--set", "synthesize.n_styles=1", "--out", str(out), "--no-progress"]
    assert normal_to_abnormal.main(args) == 0

    report = json.loads((out / "cohort" / "ingest_report.json").read_text())
    assert report["salt"] == "salt-file" and report["settings"]["contrast"] == "equalize"
    keys = low_data_keys(Cohort.open(out / "cohort"), 5, 0)
    runs = [out / "train_5_g1", out / "train_5_g2"]
    assert handed["synthetic"] == {"5": [out / "synth_5_g1", out / "synth_5_g2"]} and handed["runs"] == {"5": runs}
    seeds, weights = [], []
    for run_dir in runs:
        recorded = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert recorded["data"]["domain_b_keys"] == keys
        seeds.append(recorded["train"]["seed"])
        models = checkpoint.load(run_dir / "checkpoints" / "last.pt")["models"]
        weights.append(torch.cat([t.flatten().float() for t in next(iter(models.values())).values()]))
    assert seeds == [0, 1] and not torch.equal(weights[0], weights[1])

    # the side-training script resolves the very same generators (train one beside the pipeline)
    sys.path.insert(0, str(REPO / "pipelines" / "cxr_equalized"))
    try:
        import train_generator
    finally:
        sys.path.remove(str(REPO / "pipelines" / "cxr_equalized"))
    overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set"] + [f"out={out}"]
    configs = train_generator.generator_configs(config.load(PipelineConfig, "pipeline_default", overrides))
    assert list(configs) == ["5_g1", "5_g2"]
    for name, run_dir in zip(configs, runs):
        assert config.to_dict(configs[name]) == yaml.safe_load((run_dir / "config.yaml").read_text())
    assert not (out / "train_5").exists()

    with pytest.raises(config.ConfigError, match="generators_per_level.*per_level"):
        config.load(PipelineConfig, None, ["generators_per_level=2"])
