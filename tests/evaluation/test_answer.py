"""The answer of a study (issue 21): the synthetic arm vs its reference and its controls, paired, with
Holm within the family; "helps" only when every one of them is beaten with Holm-adjusted significance."""

import numpy as np
import pytest

from xraymunit.evaluation.answer import answer, families
from xraymunit.evaluation.summary import headline, overall

ALPHA = 0.05


def comparison(delta, p_holm, lo=None, hi=None) -> dict:
    lo = delta - 0.04 if lo is None else lo
    hi = delta + 0.04 if hi is None else hi
    return {"auroc": {"delta": delta, "ci_low": lo, "ci_high": hi, "p_bootstrap": p_holm, "p_holm": p_holm}}


def family(real, intensity, duplicate, not_run=()) -> dict:
    comps = {"synthetic vs real": real, "synthetic vs intensity_control": intensity,
             "synthetic vs duplicate_real": duplicate}
    comps = {k: v for k, v in comps.items() if k.split(" vs ")[1] not in not_run}
    return {"arm": "synthetic", "reference": "real", "controls": ["intensity_control", "duplicate_real"],
            "not_run": list(not_run), "comparisons": comps}


def test_helps_only_when_real_and_every_control_are_beaten():
    got = answer(family(comparison(0.08, 0.003), comparison(0.05, 0.01), comparison(0.04, 0.02)), ALPHA)
    assert got["helps"] and got["text"].startswith("helps: synthetic beats real (Δ AUROC +0.080 [0.040, 0.120]")
    assert "duplicate_real (Δ AUROC +0.040 [0.000, 0.080], p_holm 0.02)" in got["text"]


def test_matching_a_control_is_no_and_says_which():
    got = answer(family(comparison(0.08, 0.003), comparison(0.05, 0.01),
                        comparison(-0.01, 0.8, -0.05, 0.03)), ALPHA)
    assert not got["helps"]
    assert got["text"] == "no: synthetic does not beat duplicate_real (Δ AUROC −0.010 [−0.050, 0.030], p_holm 0.8)"


def test_losing_to_a_control_is_said_as_such():
    got = answer(family(comparison(0.02, 0.5), comparison(-0.06, 0.01), comparison(0.03, 0.01)), ALPHA)
    assert not got["helps"]
    assert got["text"].startswith("no: synthetic does not beat real (Δ AUROC +0.020")
    assert "; loses to intensity_control (Δ AUROC −0.060" in got["text"] and "duplicate_real" not in got["text"]


def test_significance_is_judged_on_the_holm_adjusted_p():
    # unadjusted p 0.02 each would pass; Holm over three comparisons makes one 0.06: not "helps"
    fam = family(comparison(0.05, 0.02), comparison(0.05, 0.02), comparison(0.05, 0.06))
    fam["comparisons"]["synthetic vs duplicate_real"]["auroc"]["p_bootstrap"] = 0.02
    assert not answer(fam, ALPHA)["helps"]


def test_without_the_controls_beating_real_is_not_shown_to_help():
    got = answer(family(comparison(0.08, 0.003), None, None, not_run=("intensity_control", "duplicate_real")), ALPHA)
    assert not got["helps"]
    assert got["text"].startswith("not shown: synthetic beats real (") and \
        got["text"].endswith("but intensity_control, duplicate_real were not run")


def test_paired_differences_and_holm_match_a_hand_computation():
    """B = 10 test resamples, one seed; d = synthetic − other per resample, p = 2·min(share d ≤ 0, share d ≥ 0)."""
    d = {"real": np.array([-0.01, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09]),  # 1 of 10 ≤ 0: p 0.2
         "intensity_control": np.linspace(0.01, 0.10, 10),                                  # none ≤ 0: p 0.0
         "duplicate_real": np.array([-0.03, -0.02, -0.01, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07])}  # p 0.6
    synthetic = np.full((10, 1), 0.8)
    dists = {"synthetic": {"auroc": (np.array([0.80]), synthetic)}}
    for arm, diff in d.items():
        dists[arm] = {"auroc": (np.array([0.75]), synthetic - diff[:, None])}
    got = families(dists, ["real", "synthetic", "intensity_control", "duplicate_real"], 0.95)["synthetic"]
    comps = {k.split(" vs ")[1]: c["auroc"] for k, c in got["comparisons"].items()}
    assert [comps[a]["p_bootstrap"] for a in d] == pytest.approx([0.2, 0.0, 0.6])
    # Holm: sorted 0.0, 0.2, 0.6 → 3·0.0 = 0.0, max(0.0, 2·0.2) = 0.4, max(0.4, 1·0.6) = 0.6
    assert [comps[a]["p_holm"] for a in d] == pytest.approx([0.4, 0.0, 0.6])
    assert comps["real"]["delta"] == pytest.approx(0.05)
    # 2.5 % quantile of 10 sorted values: position 0.025·9 = 0.225 between the first two
    assert comps["real"]["ci_low"] == pytest.approx(-0.01 + 0.225 * 0.02)
    assert comps["real"]["ci_high"] == pytest.approx(0.08 + 0.775 * 0.01)
    assert not got["answer"]["helps"] and "does not beat real" in got["answer"]["text"]
    assert families(dists, ["real", "intensity_control"], 0.95) == {}  # no synthetic arm: no family


def metrics_with(answers: dict) -> dict:
    levels = [{"name": name, "n_real_abnormal": n} for name, n in (("10", 10), ("all", 40))]
    results = {lv["name"]: {"synthetic_vs_controls": {"synthetic": {"arm": "synthetic", "answer": answers[lv["name"]]}}}
               for lv in levels}
    return {"levels": levels, "results": results, "config": {"stats": {"ci": 0.95}}}


def test_the_one_line_answer_needs_every_level_to_help_to_say_yes():
    helps = {"helps": True, "text": "helps: synthetic beats real (…)"}
    no = {"helps": False,
          "text": "no: synthetic does not beat duplicate_real (Δ AUROC −0.010 [−0.050, 0.030], p_holm 0.8)"}
    assert overall(metrics_with({"10": helps, "all": helps})).startswith("**Yes** — (3) real + synthetic")
    some = overall(metrics_with({"10": helps, "all": no}))
    assert some.startswith("**Yes at K = 10 only**")
    assert "K = 40 (all): no: synthetic does not beat duplicate_real" in some
    none = overall(metrics_with({"10": no, "all": no}))
    assert none.startswith("**No**") and "\n" not in none
    assert headline(metrics_with({"10": no, "all": helps}))[0] == (
        "- K = 10, (3) real + synthetic: **no**: synthetic does not beat duplicate_real (Δ AUROC −0.010 "
        "[−0.050, 0.030], p_holm 0.8).")
