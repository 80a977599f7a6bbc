"""End-to-end `evaluate` on a tiny phantom cohort on CPU: report files, honesty rules, determinism."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.config_keys import dotted_keys
from helpers.evaluate_data import write_cohort, write_synthetic
from xraymunit import config
from xraymunit.config.evaluate import EvaluateConfig
from xraymunit.evaluation.stage import EvaluateError, evaluate
from xraymunit.io.cohort import Cohort

TINY = Path(__file__).resolve().parents[1] / "configs" / "evaluate_tiny.yaml"


def tiny(*overrides):
    return config.load(EvaluateConfig, TINY, ["progress=false", *overrides])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    cohort = write_cohort(root / "cohort", n_patients=52, size=64, seed=3)
    synth = write_synthetic(root / "synth", cohort, n_styles=3, copies_of_training=2)
    out = root / "report"
    metrics = evaluate(cohort, synth, out, tiny())
    return {"cohort": cohort, "synth": synth, "out": out, "metrics": metrics}


def test_report_files_and_json(study):
    out = study["out"]
    for name in ("metrics.json", "summary.md", "predictions.csv", "roc.png", "metric_vs_real_abnormal.png",
                 "styles_grid.png", "evaluate_config.yaml"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    m = json.loads((out / "metrics.json").read_text())
    assert m["arms"] == ["real", "classical", "synthetic", "classical+synthetic", "intensity_control", "duplicate_real"]
    assert [lv["name"] for lv in m["levels"]] == ["5", "all"]
    for level in m["results"].values():
        for arm in level["arms"].values():
            for name in ("auroc", "sensitivity_at_specificity", "balanced_accuracy"):
                v = arm[name]
                assert 0 <= v["ci_low"] <= v["ci_high"] <= 1 and len(v["per_seed"]) == 2
            assert arm["auroc"]["ci_low"] <= arm["auroc"]["value"] <= arm["auroc"]["ci_high"]
        assert set(level["comparisons"]) == {f"{a} vs {r}" for r in ("real", "classical") for a in m["arms"]
                                             if a not in (r, "real")}
        family = level["synthetic_vs_controls"]["synthetic"]  # the answer's comparisons, Holm within
        assert set(family["comparisons"]) == {"synthetic vs real", "synthetic vs intensity_control",
                                              "synthetic vs duplicate_real"} and family["not_run"] == []
        assert all(c["auroc"]["p_holm"] >= c["auroc"]["p_bootstrap"] for c in family["comparisons"].values())
        assert level["synthetic_vs_controls"]["classical+synthetic"]["not_run"] == [
            "classical+intensity_control", "classical+duplicate_real"]
        assert "per_source" in level["arms"]["real"]  # the cohort has two source datasets
    assert config.load(EvaluateConfig, out / "evaluate_config.yaml") == tiny()


def test_the_classifier_learns_something(study):
    res = study["metrics"]["results"]["all"]["arms"]["real"]["auroc"]
    assert res["value"] > 0.6


def test_only_real_test_and_val_images_are_scored(study):
    pred = pd.read_csv(study["out"] / "predictions.csv")
    ok = Cohort.open(study["cohort"]).ok()
    split_of = dict(zip(ok["image_key"], ok["split"]))
    assert set(pred["split"]) == {"val", "test"}
    assert all(split_of[k] == s for k, s in zip(pred["image_key"], pred["split"]))
    synth_keys = set(pd.read_parquet(study["synth"] / "manifest.parquet")["synth_key"])
    assert not synth_keys & set(pred["image_key"])
    test_keys = set(ok[(ok["split"] == "test") & ok["label"].isin(["normal", "abnormal"])]["image_key"])
    for _, g in pred[pred["split"] == "test"].groupby(["level", "arm", "seed"]):
        assert set(g["image_key"]) == test_keys


def test_held_out_synthetic_images_are_excluded_and_counted(study):
    sel = study["metrics"]["synthetic_selection"]
    synth = pd.read_parquet(study["synth"] / "manifest.parquet")
    ok = Cohort.open(study["cohort"]).ok()
    patient_split = ok.groupby("patient_key")["split"].first()
    held = synth["source_patient_key"].map(patient_split).isin(["val", "test"]).sum()
    unknown = (~synth["source_patient_key"].isin(patient_split.index)).sum()
    assert sel["excluded_by_reason"]["source patient is in val/test"] == held > 0
    assert sel["excluded_by_reason"]["source not found in the cohort"] == unknown > 0
    assert sel["used_for_training"] == len(synth) - held - unknown
    counts = study["metrics"]["results"]["all"]["arms"]["synthetic"]["train_counts"]
    assert counts["synthetic_abnormal"] == sel["used_for_training"]
    for level in study["metrics"]["results"].values():  # the controls add as many images as arm 3, row for row
        for control in ("intensity_control", "duplicate_real"):
            assert level["arms"][control]["train_counts"] == level["arms"]["synthetic"]["train_counts"]
    summary = (study["out"] / "summary.md").read_text()
    assert "excluded — " in summary and "source patient is in val/test: " + str(held) in summary


def test_arms_share_seeds_budget_and_real_subset(study):
    runs = study["metrics"]["runs"]
    steps = tiny().classifier.steps
    for (level, seed), group in pd.DataFrame(runs).groupby(["level", "seed"]):
        assert len(group) == 6
        assert group["real_abnormal_keys_sha"].nunique() == 1
        real = [(c["real_normal"], c["real_abnormal"]) for c in group["train_counts"]]
        assert len(set(real)) == 1
        assert all(h[-1]["step"] == steps for h in group["history"])
    low = [r for r in runs if r["level"] == "5"]
    assert all(r["train_counts"]["real_abnormal"] == 5 for r in low)
    seeds = {r["seed"] for r in runs}
    assert seeds == {0, 1}


def test_quality_metrics_and_memorisation(study):
    q = study["metrics"]["quality"]
    assert "the cohort's judge" in q["feature_network"] and q["judge"]["val_auroc"]["value"] is not None
    ja = q["judged_abnormal"]  # translation success next to its real-image yardsticks
    assert 0 <= ja["synthetic"] <= 1 and ja["n_synthetic"] > 0 and ja["yardstick_real_abnormal"] is not None
    assert "translation success: share judged abnormal" in (study["out"] / "summary.md").read_text()
    assert "per_generator" not in q  # one synthetic set: the section above is the whole story
    r = q["realism"]
    assert r["synthetic_vs_real_abnormal"]["frechet"] >= 0
    assert r["yardstick_real_normal_vs_real_abnormal"]["frechet"] >= 0
    d = q["diversity"]["synthetic_styles_of_same_input"]
    assert d["lpips_style"]["mean"] > 0 and 0 < d["one_minus_ms_ssim"]["mean"] < 1
    c = q["content_preservation"]
    assert c["ssim_input_vs_translation"]["mean"] > c["yardstick_ssim_unrelated_inputs"]["mean"]
    mem = q["memorisation"]
    assert mem["n_flagged"] >= 1  # the verbatim copies of training images planted by the helper
    copies = set(pd.read_parquet(study["synth"] / "manifest.parquet").query("style_index >= 100")["synth_key"])
    assert {f["synth_key"] for f in mem["flagged"]} & copies


def test_summary_answers_the_question_with_caveats(study):
    s = (study["out"] / "summary.md").read_text()
    assert s.startswith("# Evaluation summary")
    assert "## Does synthetic help?" in s and "ΔAUROC" in s and "95% CI" in s
    answer = s.split("## Does synthetic help?\n\n")[1].splitlines()[0]  # the one-line answer, controls included
    assert answer.startswith(("**Yes", "**No**")) and "intensity_control" in answer and "duplicate_real" in answer
    assert "| (5) real + intensity control |" in s and "| (6) real + duplicated real |" in s
    assert "trained on *all* train-split abnormal images" in s
    assert "| (3) real + synthetic |" in s and "Fréchet" in s
    assert "**Memorisation:**" in s  # the planted copies of training images are called out


def test_without_synthetic_arms_3_4_are_skipped_and_run_is_deterministic(study, tmp_path):
    cfg = tiny("real_abnormal=[all]", "seeds=1", "classifier.steps=20")
    m1 = evaluate(study["cohort"], None, tmp_path / "a", cfg)
    evaluate(study["cohort"], None, tmp_path / "b", cfg)
    assert m1["arms"] == ["real", "classical"] and m1["quality"] is None
    assert any("arms ['synthetic', 'classical+synthetic', 'intensity_control', 'duplicate_real'] skipped" in n
               for n in m1["notes"])
    assert "Not measured" in (tmp_path / "a" / "summary.md").read_text()
    p1, p2 = pd.read_csv(tmp_path / "a" / "predictions.csv"), pd.read_csv(tmp_path / "b" / "predictions.csv")
    assert np.array_equal(p1["score"].to_numpy(), p2["score"].to_numpy())


def test_level_above_available_collapses_onto_all(study, tmp_path):
    cfg = tiny("real_abnormal=[1000, all]", "seeds=1", "classifier.steps=10", "arms=[real]", "quality.enabled=false")
    m = evaluate(study["cohort"], study["synth"], tmp_path, cfg)
    assert [lv["name"] for lv in m["levels"]] == ["all"]
    assert any("same as 'all'" in n for n in m["notes"])


def test_single_class_split_is_a_user_error(tmp_path):
    cohort = write_cohort(tmp_path / "c", n_patients=20, size=32)
    m = pd.read_parquet(cohort / "manifest.parquet")
    m.loc[m["split"] == "test", "label"] = "normal"
    m.to_parquet(cohort / "manifest.parquet")
    with pytest.raises(EvaluateError, match="test split needs both"):
        evaluate(cohort, None, tmp_path / "r", tiny())


def test_cuda_request_without_cuda_is_a_user_error(study, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    from xraymunit.runtime import DeviceError

    with pytest.raises(DeviceError, match="CUDA is not available"):
        evaluate(study["cohort"], None, tmp_path, tiny(), device="cuda")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        evaluate(study["cohort"], None, tmp_path, tiny("device=cuda:0"))


@pytest.mark.parametrize("name", ["evaluate.yaml", "evaluate_tiny.yaml", "evaluate_cpu.yaml"])
def test_shipped_configs_load_set_every_key_and_comment_it(name):
    import yaml

    path = TINY.parent / name
    cfg = config.load(EvaluateConfig, path)
    data = yaml.safe_load(path.read_text())

    assert dotted_keys(config.to_dict(cfg)) == dotted_keys(data)  # every key is written out
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            assert "#" in line, f"{name}: no comment on {line!r}"


def test_rerun_reuses_finished_runs_and_gives_the_same_report(study, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(study["out"], out)
    again = evaluate(study["cohort"], study["synth"], out, tiny())
    # every classifier run was reused, none retrained (not "the rerun was faster": a clock under load says little)
    assert again["resumed_runs"] == len(study["metrics"]["runs"])
    assert again["results"] == study["metrics"]["results"]
    assert again["quality"]["realism"] == study["metrics"]["quality"]["realism"]
    # a changed budget changes the fingerprint: nothing is reused
    changed = evaluate(study["cohort"], None, out, tiny("classifier.steps=5", "seeds=1", "real_abnormal=[all]"))
    assert changed["resumed_runs"] == 0


def test_single_class_val_falls_back_to_the_last_step(tmp_path):
    cohort = write_cohort(tmp_path / "c", n_patients=24, size=32, seed=9)
    m = pd.read_parquet(cohort / "manifest.parquet")
    m.loc[m["split"] == "val", "label"] = "normal"
    m.to_parquet(cohort / "manifest.parquet")
    out = evaluate(cohort, None, tmp_path / "r", tiny("seeds=1", "real_abnormal=[all]", "classifier.steps=10",
                                                      "arms=[real]"))
    assert any("no model selection" in n for n in out["notes"])
    assert all(r["best_step"] == 10 for r in out["runs"])
    assert out["results"]["all"]["arms"]["real"]["auroc"]["value"] is not None


def test_a_read_only_cohort_keeps_the_judge_in_the_report_folder(study, tmp_path, caplog):
    """Issue 23 item 7: evaluate trained the judge, then crashed writing COHORT/judge/ of a read-only cohort.
    Simulated so that it holds as root (root ignores permission bits): the copy's `judge` is a regular file.
    The finished classifier runs are reused from a copy of the report; only the judge is trained here."""
    import shutil

    ro = shutil.copytree(study["cohort"], tmp_path / "cohort", ignore=shutil.ignore_patterns("judge"))
    (ro / "judge").write_text("not a folder")
    out = shutil.copytree(study["out"], tmp_path / "report")
    with caplog.at_level("WARNING", logger="xraymunit.quality.judge"):
        again = evaluate(ro, study["synth"], out, tiny())
    assert "cannot write the cohort's judge folder" in caplog.text
    kept = list((out / "judge").glob("*/judge.pt"))
    assert len(kept) == 1 and again["quality"]["judge"]["fingerprint"] == kept[0].parent.name
    assert (ro / "judge").read_text() == "not a folder"


def test_a_pretrained_backbone_measures_the_same_images_again(study, tmp_path):
    """quality.backbone.weights: realism and diversity a second time, in the weight file's feature space;
    classifier runs are reused (the backbone only measures); a broken file fails before any run trains."""
    import shutil

    import torch

    from xraymunit.quality.backbone import BackboneError, file_sha256
    from helpers.densenet_weights import densenet121_state

    weights = tmp_path / "xrv-densenet121.pt"
    torch.save(densenet121_state(), weights)
    out = shutil.copytree(study["out"], tmp_path / "report")
    again = evaluate(study["cohort"], study["synth"], out,
                     tiny(f"quality.backbone.weights={weights}", "quality.backbone.image_size=64"))
    assert again["resumed_runs"] == len(study["metrics"]["runs"])
    judge_q, b = again["quality"], again["quality"]["backbone"]
    assert b["sha256"] == file_sha256(weights) and b["input_convention"] == "torchxrayvision"
    assert b["n_synthetic"] == judge_q["n_synthetic"] and b["n_inputs"] == judge_q["n_inputs"]  # the same picks
    assert b["realism"]["feature_dim"] == 1024 and b["image_size"] == 64
    assert b["realism"]["yardstick_real_normal_vs_real_abnormal"]["frechet"] > 0
    assert b["diversity"]["synthetic_styles_of_same_input"]["lpips_style"]["mean"] > 0
    assert judge_q["realism"] == study["metrics"]["quality"]["realism"]  # the judge's numbers are untouched
    assert "pretrained feature space" in (out / "summary.md").read_text()

    (tmp_path / "broken.pt").write_bytes(b"not a state dict")
    with pytest.raises(BackboneError, match="cannot read"):
        evaluate(study["cohort"], study["synth"], tmp_path / "fresh", tiny(f"quality.backbone.weights={tmp_path / 'broken.pt'}"))
    assert not (tmp_path / "fresh" / "runs").exists()
