"""Issue-12 study, last step: gather what the study's runs measured into results/<name>/ —
metrics.json (every number), summary.md (rendered from metrics.json only, so the two cannot
drift apart; tests/test_results.py checks it) and small PNGs.

    python pipelines/cxr_study/publish.py [--work runs/cxr_study] [--results results/cxr_nih_lowdata]

Reads: RESULTS/shortcut/*.json (prepare.py), the NIH cohort's judge, RESULTS/pilots/*/quality.csv
(pilots.sh), and — once the study ran — WORK/nih_per_level/report/metrics.json and the
per-level training runs. Missing parts are reported as not run yet. The hand-written reading of
the numbers lives in RESULTS/interpretation.md, a template whose every measured number is a
placeholder naming its metrics.json path (quotes.py), filled in here.

    python pipelines/cxr_study/publish.py --rederive   (the work folder is gone: re-derive the
        Holm-adjusted p-values and point differences, and re-render, from RESULTS/metrics.json)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import subprocess
from pathlib import Path

from quotes import fill, holm, reflow
from results_files import copy_run_pictures, write_results
from xraymunit.runtime import cpu_description

REPO = Path(__file__).resolve().parents[2]
PILOT_COLUMNS = ["step", "seconds", "images_seen", "a2b_success", "a2b_success_real_abnormal",
                 "a2b_success_real_normal", "a2b_fd", "a2b_fd_inputs", "a2b_diversity_lpips", "real_b_pairs_lpips",
                 "a2b_diversity_ms_ssim", "real_b_pairs_ms_ssim", "a2b_content_ssim", "content_ssim_unrelated",
                 "score", "monitor_seconds"]


# --------------------------------------------------------------------------- gather


def _read_csv(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as fh:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in csv.DictReader(fh)]


def _machine() -> dict:
    return {**cpu_description(), "python": platform.python_version()}


def gather(work: Path, results: Path) -> dict:
    out: dict = {"format": "xraymunit.results", "format_version": 1, "name": results.name, "machine": _machine()}
    try:
        out["code_revision"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                              text=True, cwd=REPO).stdout.strip()
    except OSError:
        out["code_revision"] = None
    out["shortcut"] = {}
    for path in sorted((results / "shortcut").glob("*.json")):
        r = json.loads(path.read_text())
        if "by_view" in r:  # view_check.py
            out["nih_by_view"] = r
            continue
        out["shortcut"][path.stem] = {
            "n_val": r.get("n_val"), "n_val_patients": r.get("n_val_patients"), "note": r.get("note"),
            "judge_val_auroc": (r.get("judge") or {}).get("val_auroc"),
            "tests": {name: {k: t.get(k) for k in ("auroc", "ci_low", "ci_high", "warn", "factor")}
                      for name, t in r.get("tests", {}).items()}}
    study_tests = sorted((work / "nih_per_level").glob("train_*/shortcut_test.json"))
    if study_tests:  # the same test on the study cohort (its own salt, hence its own patient split)
        r = json.loads(study_tests[0].read_text())
        out["shortcut"]["nih_study_split"] = {
            "n_val": r.get("n_val"), "n_val_patients": r.get("n_val_patients"), "note": r.get("note"),
            "tests": {name: {k: t.get(k) for k in ("auroc", "ci_low", "ci_high", "warn", "factor")}
                      for name, t in r.get("tests", {}).items()}}
    judges = sorted((work / "cohort_nih" / "judge").glob("*/judge.json"))
    if judges:
        j = json.loads(judges[-1].read_text())
        out["judge"] = {k: j[k] for k in ("val_auroc", "test_auroc", "threshold", "n_train", "n_val", "n_test",
                                          "best_step", "seconds", "weak")}
        out["judge"]["classifier"] = j["config"]["classifier"]
    out["pilots"] = {}
    for folder in sorted((results / "pilots").glob("*/")):
        rows = _read_csv(folder / "quality.csv") if (folder / "quality.csv").is_file() else []
        if not rows:
            continue
        best = max(rows, key=lambda r: r["score"] if r["score"] is not None else -1)
        out["pilots"][folder.name] = {
            "overrides": (folder / "overrides.txt").read_text().strip() if (folder / "overrides.txt").is_file() else "",
            "last": {k: rows[-1].get(k) for k in PILOT_COLUMNS}, "best": {k: best.get(k) for k in PILOT_COLUMNS},
            "n_measurements": len(rows),
            "monitor_share": sum(r["monitor_seconds"] or 0 for r in rows) / max(rows[-1]["seconds"] or 1, 1e-9)}
    study = work / "nih_per_level"
    out["study"] = _study(study / "report" / "metrics.json",
                          lambda name: study / f"train_{name}" / "quality.csv")
    # the same generators after their first sitting (10 minutes), kept before they were resumed
    out["study_first_sitting"] = _study(work / "report_10min" / "metrics.json",
                                        lambda name: work / f"quality_10min_{name}.csv")
    # the intensity-only control arm: histogram-matched normals in place of the translations
    out["histogram_arm"] = _study(work / "histogram_arm" / "report" / "metrics.json",
                                  lambda name: work / "histogram_arm" / "no_generator")
    ablation = work / "ablation_perceptual_25"
    out["ablation_perceptual"] = _study(ablation / "report" / "metrics.json",
                                        lambda name: ablation / "train" / "quality.csv")
    out["intensity_control"] = {path.stem: json.loads(path.read_text())
                                for path in sorted((results / "intensity_control").glob("*.json"))}
    interp = results / "interpretation.md"
    out["interpretation"] = interp.read_text().strip() if interp.is_file() else ""
    return derive(out)


STUDIES = ("study", "study_first_sitting", "histogram_arm", "ablation_perceptual")
POINT_DIFFERENCES = {"classical - real": ("classical", "real"),  # arm 2 vs arm 1: does classical help or hurt?
                     "classical+synthetic - real": ("classical+synthetic", "real")}  # arm 4 vs arm 1


def derive(m: dict) -> dict:
    """Numbers computed from the gathered ones, stored so that text can quote them by path.

    p_holm: each comparison's bootstrap p Holm-adjusted over the levels of its study (one family per
    comparison: "synthetic vs real" at K = 5, 10, 25 are three tests of one question).
    point_difference: AUROC differences between arms with no paired interval kept (point values only).
    """
    for key in STUDIES:
        s = m.get(key)
        if not s:
            continue
        comparisons = {c for lv in s["levels"].values() for c in lv["delta"]}
        for c in comparisons:
            family = {name: lv["delta"][c]["p_bootstrap"] for name, lv in s["levels"].items() if c in lv["delta"]}
            for name, p_holm in holm(family).items():
                s["levels"][name]["delta"][c]["p_holm"] = p_holm
        for lv in s["levels"].values():
            a = lv["auroc"]
            lv["point_difference"] = {k: a[x]["value"] - a[y]["value"]
                                      for k, (x, y) in POINT_DIFFERENCES.items() if x in a and y in a}
    return m


def _study(path: Path, quality_csv) -> dict | None:
    """One evaluate report's headline numbers, each level with its generator's last quality row
    (`quality_csv(level name)` → that generator's quality.csv); None when it has not run."""
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    levels = {}
    for name, lv in m["results"].items():
        comp = lv["comparisons"]
        levels[name] = {
            "n_real_abnormal": lv["n_real_abnormal"],
            "auroc": {arm: {k: a["auroc"][k] for k in ("value", "ci_low", "ci_high")} for arm, a in lv["arms"].items()},
            "delta": {key: _difference(comp[key]["auroc"], lv["arms"], key)
                      for key in ("synthetic vs real", "classical+synthetic vs classical") if key in comp},
            "vs_controls": {arm: {"answer": fam.get("answer"),
                                  "comparisons": {key: _difference(c["auroc"], lv["arms"], key)
                                                  for key, c in fam["comparisons"].items()}}
                            for arm, fam in (lv.get("synthetic_vs_controls") or {}).items()},
            "n_generators": lv.get("n_generators", 1), "n_seeds": lv.get("n_seeds", len(m["seeds"])),
            "bootstrap": lv.get("bootstrap"),
        }
        run = quality_csv(name)
        if run.is_file():
            rows = _read_csv(run)
            levels[name]["generator"] = {"minutes": rows[-1]["seconds"] / 60, "steps": rows[-1]["step"],
                                         "last": {k: rows[-1].get(k) for k in PILOT_COLUMNS}}
    q = m.get("quality") or {}
    return {"levels": levels, "seeds": m["seeds"], "data": m["data"], "elapsed_s": m.get("elapsed_s"),
            "judged_abnormal": q.get("judged_abnormal"),
            "diversity": (q.get("diversity") or {}).get("synthetic_styles_of_same_input"),
            "diversity_real": (q.get("diversity") or {}).get("yardstick_real_abnormal_pairs"),
            "content": q.get("content_preservation"), "memorisation_flagged": (q.get("memorisation") or {}).get("n_flagged"),
            "n_synthetic_assessed": q.get("n_synthetic"), "classifier": m["config"]["classifier"],
            "judge": {k: (q.get("judge") or {}).get(k) for k in ("val_auroc", "test_auroc")}}


def _difference(d: dict, arms: dict, key: str) -> dict:
    """One paired AUROC difference as published: estimate, CI, p, Holm-adjusted p, and every per-seed (and
    per-generator) difference. Reports written before evaluate kept per-seed differences get them from the
    two arms' per-seed AUROCs (the same runs, so the same numbers)."""
    out = {k: d.get(k) for k in ("delta", "ci_low", "ci_high", "p_bootstrap", "p_holm")}
    arm, _, other = key.partition(" vs ")
    per_seed = d.get("per_seed")
    if per_seed is None and arm in arms and other in arms:
        a, b = arms[arm]["auroc"].get("per_seed") or [], arms[other]["auroc"].get("per_seed") or []
        per_seed = [None if x is None or y is None else x - y for x, y in zip(a, b)] if len(a) == len(b) else None
    out["per_seed"] = per_seed
    out["per_generator"] = d.get("per_generator")
    return out


# --------------------------------------------------------------------------- render


def f(v, digits: int = 2) -> str:
    """One number as summary.md prints it (tests/test_results.py formats metrics.json the same way)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def _ci(d: dict, key: str = "auroc") -> str:
    return f"{f(d[key])} [{f(d['ci_low'])}, {f(d['ci_high'])}]"


def render(m: dict) -> str:
    L = [f"# {m['name']}: does xraymunit help a classifier with few abnormal chest X-rays?", ""]
    mc = m["machine"]
    L += [f"Machine: {mc['cpu']} ({mc['cores']} cores; flags: {', '.join(mc['cpu_flags']) or 'n/a'}), no GPU. "
          f"Code: `{m['code_revision']}`. Commands: `commands.sh`.", ""]
    if m.get("interpretation"):
        L += ["## What it means (and what it does not)", "", reflow(fill(m["interpretation"], m)), ""]
    L += ["## Shortcut test (before any training)", "",
          "AUROC on val (95% CI) of a trivial model telling abnormal from normal without the finding; "
          "it warns when the CI's lower bound exceeds 0.70.", "",
          "The last column is the cohort's judge (the small DenseNet, real images) where it was trained: "
          "how much signal a classifier finds with the shortcut and beyond it.", "",
          "| cohort | header metadata | 8×8 thumbnail | 16-bin histogram | strongest image factor | judge val AUROC |",
          "|---|---|---|---|---|---|"]
    for name, s in m["shortcut"].items():
        t = s["tests"]
        cell = lambda k: (_ci(t[k]) + (" **warn**" if t[k]["warn"] else "")) if k in t and t[k]["auroc"] is not None else "n/a"
        factor = (t.get("histogram") or {}).get("factor") or "n/a"
        jv = s.get("judge_val_auroc")
        L.append(f"| {name} | {cell('metadata')} | {cell('thumbnail')} | {cell('histogram')} | {factor} | "
                 f"{_ci(jv, 'value') if jv else 'n/a'} |")
    L.append("")
    bv = m.get("nih_by_view")
    if bv:
        mix = bv["view_mix"]
        L += [f"NIH view mix: normal {mix['normal'].get('AP', 0)} AP / {mix['normal'].get('PA', 0)} PA, abnormal "
              f"{mix['abnormal'].get('AP', 0)} AP / {mix['abnormal'].get('PA', 0)} PA. Within one view (`view_check.py`):", "",
              "| NIH images | val normal / abnormal | histogram-only AUROC | median intensity, val normal / abnormal |",
              "|---|---|---|---|"]
        for view, r in bv["by_view"].items():
            med = r["median_intensity"]
            L.append(f"| {view} | {r['n_val']['normal']} / {r['n_val']['abnormal']} | {_ci(r['histogram'])} | "
                     f"{f(med['normal'])} / {f(med['abnormal'])} |")
        L.append("")
    if m.get("judge"):
        j = m["judge"]
        L += ["## The judge (NIH cohort)", "",
              f"Small DenseNet at {j['classifier']['image_size']} px, {j['classifier']['steps']} steps on the real "
              f"train split ({j['n_train']['abnormal']} abnormal / {j['n_train']['normal']} normal): val AUROC "
              f"{_ci(j['val_auroc'], 'value')}, test AUROC {_ci(j['test_auroc'], 'value')}. Every quality number "
              "below is measured by it.", ""]
    if m["pilots"]:
        L += ["## Pilots: quality vs wall-clock time", "",
              "Each pilot trained on all NIH train images for the same wall-clock budget; numbers are the last "
              "measurement on fixed val images (yardsticks in brackets).", "",
              "| pilot | changes | minutes | steps | judged abnormal a2b (real abn. / real normal) | FD to real B "
              "(inputs) | diversity LPIPS-style (real pairs) | 1 − MS-SSIM (real pairs) | content SSIM (two patients) "
              "| score | best score (step) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, p in m["pilots"].items():
            r = p["last"]
            L.append(f"| {name} | {p['overrides'] or 'the recipe'} | {f(r['seconds'] / 60, 1)} | {int(r['step'])} | "
                     f"{f(r['a2b_success'])} ({f(r['a2b_success_real_abnormal'])} / {f(r['a2b_success_real_normal'])}) | "
                     f"{f(r['a2b_fd'])} ({f(r['a2b_fd_inputs'])}) | {f(r['a2b_diversity_lpips'])} "
                     f"({f(r['real_b_pairs_lpips'])}) | {f(r['a2b_diversity_ms_ssim'], 3)} "
                     f"({f(r['real_b_pairs_ms_ssim'], 3)}) | {f(r['a2b_content_ssim'])} "
                     f"({f(r['content_ssim_unrelated'])}) | {f(r['score'])} | {f(p['best']['score'])} "
                     f"({int(p['best']['step'])}) |")
        L += ["", "Curves: `pilots/<name>/quality.png`; translations: `pilots/<name>/a2b.png`.", ""]
    L += ["## The low-data study (per-level generators)", ""]
    L += _render_study(m.get("study"))
    L += _study_section(m, "study_first_sitting", "### The same generators after their first sitting (10 minutes)")
    L += _study_section(
        m, "histogram_arm", "### Control arm: histogram-matched normals instead of translations",
        "The same arms and seeds, with each level's synthetic folder replaced row for row by its source "
        "normal histogram-matched to one of the level's K real abnormals (`histogram_arm.py`): no generator, "
        "only the abnormal images' intensities. Arms 1 and 2 are the study's own.")
    if m.get("intensity_control"):
        L += ["## Intensity control: is a translation judged abnormal for more than its intensities?", "",
              "The same source normals given only the intensities of real abnormals — scikit-image histogram "
              "matching to one of the generator's K training abnormals, picked at random per style "
              "(`intensity_control.py`) — scored by the same judge as the generator's translations.", ""]
        for name, r in m["intensity_control"].items():
            L += [f"`{name}`: generator step {r['checkpoint_step']}, {r['n_sources']} source normals × "
                  f"{r['styles_per_source']} styles, {r['n_references']} abnormal references.", "",
                  "| images | n | judged abnormal | mean P(abnormal) | FD to real val abnormals | median intensity "
                  "| content SSIM to source |", "|---|---|---|---|---|---|---|"]
            for set_name, v in r["sets"].items():
                L.append(f"| {set_name.replace('_', ' ')} | {v['n']} | {f(v['judged_abnormal'])} | "
                         f"{f(v['mean_abnormal_probability'])} | {f(v['fd_to_val_abnormal'])} | "
                         f"{f(v['median_intensity'], 3)} | {f(v.get('content_ssim_to_source'))} |")
            L += ["", f"Grid: `intensity_control/{name}.png` (rows: sources; columns: source, translation, "
                  "histogram-matched).", ""]
    L += _study_section(
        m, "ablation_perceptual", "## Perceptual-loss ablation at equal budget (K = 25, 10 minutes)",
        "The K = 25 generator trained again from the same seed on the same 25 real abnormals for the same "
        "10 minutes with `loss.perceptual=1` (seeded random VGG16, relu2_2), against the perceptual-0 generator "
        "of the first sitting. Same classifier arms and seeds.",
        "Files: `ablation_perceptual/quality_K25.png`, `ablation_perceptual/a2b_K25.png`.")
    return "\n".join(L).rstrip() + "\n"


def _study_section(m: dict, key: str, heading: str, intro: str = "", files_line: str = "") -> list[str]:
    """A further evaluate report under its own heading (nothing when it has not run)."""
    if not m.get(key):
        return []
    L = [heading, ""] + ([intro, ""] if intro else []) + _render_study(m[key], files=False)
    return L + ([files_line, ""] if files_line else [])


def _render_study(s: dict | None, files: bool = True) -> list[str]:
    """The headline table of one evaluate report (ΔAUROC with paired-bootstrap CIs per level), the
    generators' last quality rows and the synthetic images' quality next to their yardsticks."""
    if not s:
        return ["Not run yet.", ""]
    L = [f"Classifier: {s['classifier']['arch']} at {s['classifier']['image_size']} px, "
         f"{s['classifier']['steps']} steps, seeds {s['seeds']}; test split "
         f"{s['data']['test']['n_normal']} normal / {s['data']['test']['n_abnormal']} abnormal.", "",
         "| K real abnormals | generator (min, steps) | real only | + synthetic | Δ (3 vs 1) [95% CI], p Holm | "
         "+ classical | + classical + synthetic | Δ (4 vs 2) [95% CI], p Holm |", "|---|---|---|---|---|---|---|---|"]
    for name, lv in s["levels"].items():
        a, d, g = lv["auroc"], lv["delta"], lv.get("generator")
        gen = f"{f(g['minutes'], 1)}, {int(g['steps'])}" if g else "n/a"
        dd = lambda k: (f"{f(d[k]['delta'])} [{f(d[k]['ci_low'])}, {f(d[k]['ci_high'])}], "
                        f"{f(d[k].get('p_holm'))}") if k in d else "n/a"
        av = lambda k: _ci(a[k], "value") if k in a else "n/a"
        L.append(f"| {name} | {gen} | {av('real')} | {av('synthetic')} | {dd('synthetic vs real')} | "
                 f"{av('classical')} | {av('classical+synthetic')} | {dd('classical+synthetic vs classical')} |")
    L += ["", "Δ: paired patient bootstrap of the test split (classifier seeds averaged; one generator per level, "
          "so the generator's own variance is not in the interval); p Holm: the bootstrap p adjusted over the "
          "levels of the same comparison.", ""]
    L += ["Each generator's last quality measurement (fixed val inputs; yardsticks in brackets):", "",
          "| K | judged abnormal a2b (real abn. / real normal) | FD to real B (inputs) | diversity LPIPS-style "
          "(real pairs) | 1 − MS-SSIM (real pairs) | content SSIM (two patients) | score |",
          "|---|---|---|---|---|---|---|"]
    for name, lv in s["levels"].items():
        r = (lv.get("generator") or {}).get("last")
        if r:
            L.append(f"| {name} | {f(r['a2b_success'])} ({f(r['a2b_success_real_abnormal'])} / "
                     f"{f(r['a2b_success_real_normal'])}) | {f(r['a2b_fd'])} ({f(r['a2b_fd_inputs'])}) | "
                     f"{f(r['a2b_diversity_lpips'])} ({f(r['real_b_pairs_lpips'])}) | "
                     f"{f(r['a2b_diversity_ms_ssim'], 3)} ({f(r['real_b_pairs_ms_ssim'], 3)}) | "
                     f"{f(r['a2b_content_ssim'])} ({f(r['content_ssim_unrelated'])}) | {f(r['score'])} |")
    ja, dv, dr, c = s.get("judged_abnormal") or {}, s.get("diversity") or {}, s.get("diversity_real") or {}, s.get("content") or {}
    jv, jt = (s.get("judge") or {}).get("val_auroc"), (s.get("judge") or {}).get("test_auroc")
    L += ["", f"Quality of the synthetic images evaluate assessed ({s.get('n_synthetic_assessed')}; the "
          f"study cohort's judge: val AUROC {_ci(jv, 'value') if jv else 'n/a'}, test "
          f"{_ci(jt, 'value') if jt else 'n/a'}): "
          f"judged abnormal {f(ja.get('synthetic'))} (real abnormal {f(ja.get('yardstick_real_abnormal'))}, "
          f"real normal {f(ja.get('yardstick_real_normal'))}); diversity LPIPS-style "
          f"{f((dv.get('lpips_style') or {}).get('mean'))} (real pairs {f((dr.get('lpips_style') or {}).get('mean'))}); "
          f"content kept {f((c.get('ssim_input_vs_translation') or {}).get('mean'))} (two patients "
          f"{f((c.get('yardstick_ssim_unrelated_inputs') or {}).get('mean'))}); memorisation flags "
          f"{s.get('memorisation_flagged')}.", ""]
    if files:
        L += ["Files: `study/a2b_K<K>.png` (each generator's last sample grid: input, reconstruction, four styles), "
              "`study/quality_K<K>.png`, `study/styles_grid.png`, `study/roc.png`, `study/evaluate_summary.md` "
              "(the full evaluate report).", ""]
    return L




def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=str(REPO / "runs" / "cxr_study"))
    p.add_argument("--results", default=str(REPO / "results" / "cxr_nih_lowdata"))
    p.add_argument("--rederive", action="store_true",
                   help="re-derive and re-render from RESULTS/metrics.json and interpretation.md (no work folder)")
    args = p.parse_args(argv)
    work, results = Path(args.work), Path(args.results)
    if args.rederive:
        m = json.loads((results / "metrics.json").read_text())
        m["interpretation"] = (results / "interpretation.md").read_text().strip()
        derive(m)
        write_results(results, m, render)
        return 0
    m = gather(work, results)
    for name in m["pilots"]:  # curves and translations of each pilot, small PNGs
        run = work / "pilots" / name
        copy_run_pictures(run, results / "pilots" / name / "a2b.png", results / "pilots" / name / "quality.png")
    study = work / "nih_per_level"
    if m["study"]:  # per level: the generator's last sample grid and quality curves; the report's plots
        (results / "study").mkdir(exist_ok=True)
        for name in m["study"]["levels"]:
            copy_run_pictures(study / f"train_{name}", results / "study" / f"a2b_K{name}.png",
                              results / "study" / f"quality_K{name}.png")
        for plot in ("styles_grid.png", "roc.png", "metric_vs_real_abnormal.png"):
            if (study / "report" / plot).is_file():
                shutil.copy2(study / "report" / plot, results / "study" / plot)
        shutil.copy2(study / "report" / "summary.md", results / "study" / "evaluate_summary.md")
    ablation = work / "ablation_perceptual_25"
    if m["ablation_perceptual"]:
        (results / "ablation_perceptual").mkdir(exist_ok=True)
        copy_run_pictures(ablation / "train", results / "ablation_perceptual" / "a2b_K25.png",
                          results / "ablation_perceptual" / "quality_K25.png")
    write_results(results, m, render)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
