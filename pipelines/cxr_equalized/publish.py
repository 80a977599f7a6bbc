"""Issue-21 study, last step: gather the equalised-cohort study into results/cxr_nih_equalized/ —
metrics.json (every number), summary.md (rendered from metrics.json only; tests/test_results.py
checks it) and small PNGs. The answer comes first: does the generator add anything beyond the
intensity control and beyond duplicating the K real images, at which K, with which interval.

    python pipelines/cxr_equalized/publish.py [--work runs/cxr_equalized] [--results results/cxr_nih_equalized]

Reads WORK/study/ (the pipeline of study.yaml: cohort/, train_K_gI/, synth_K_gI/, report/),
RESULTS/shortcut/*.json and RESULTS/intensity_control/*.json (intensity_control.py per generator).
Parts that have not run yet are recorded as such. RESULTS/interpretation.md is a template whose
every measured number is a metrics.json path (pipelines/cxr_study/quotes.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "pipelines" / "cxr_study"))
from quotes import fill, reflow  # noqa: E402
from results_files import compact_png, copy_run_pictures, write_results  # noqa: E402

from xraymunit.quality.quality_csv import CHANGE_THRESHOLD  # noqa: E402
from xraymunit.runtime import cpu_description  # noqa: E402

QUALITY_COLUMNS = ["step", "seconds", "a2b_success", "a2b_success_real_abnormal", "a2b_success_real_normal",
                   "a2b_fd", "a2b_diversity_lpips", "real_b_pairs_lpips", "a2b_diversity_ms_ssim",
                   "real_b_pairs_ms_ssim", "a2b_content_ssim", "content_ssim_unrelated", "a2b_change_mean",
                   # how local the change is: share of pixels changed, mean change inside / outside that area
                   "a2b_mask_area", "a2b_change_inside", "a2b_change_outside"]
FAMILIES = ("synthetic", "classical+synthetic")
# the bar: what the study must show for "the generator adds something"
BAR_JUDGED = 0.80  # the judge calls at least this share of translations abnormal
BAR_GAP = 0.10  # ... and histogram-matched normals at least this much less
BAR_DIVERSITY = 0.50  # styles of one input differ at least half as much as two real abnormals


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in csv.DictReader(fh)]


def _json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def gather(work: Path, results: Path) -> dict:
    study = work / "study"
    out: dict = {"format": "xraymunit.results", "format_version": 2, "name": results.name,
                 "publisher": "pipelines/cxr_equalized/publish.py", "machine": cpu_description()}
    out["code_revision"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                          cwd=REPO).stdout.strip() or None
    report = _json(study / "cohort" / "ingest_report.json")
    out["cohort"] = None if report is None else {"settings": report["settings"], "splits": report["splits"],
                                                 "salt": report["salt"]}
    out["shortcut"] = _shortcut(results, study)
    out["change_threshold"] = CHANGE_THRESHOLD  # what counts as a changed pixel in the changed-area columns
    judges = sorted((study / "cohort" / "judge").glob("*/judge.json"))
    j = _json(judges[-1]) if judges else None
    out["judge"] = None if j is None else {k: j.get(k) for k in ("val_auroc", "test_auroc", "n_train", "weak")}
    out["generators"] = _generators(study)
    out["study"] = _study(_json(study / "report" / "metrics.json"))
    out["intensity_control"] = {p.stem: _json(p) for p in sorted((results / "intensity_control").glob("*.json"))}
    out["change_maps"] = _json(results / "change_maps.json")  # change_maps.py: where the generators change images
    interp = results / "interpretation.md"
    out["interpretation"] = interp.read_text().strip() if interp.is_file() else ""
    return derive(out)


def _shortcut(results: Path, study: Path) -> dict:
    """The shortcut test of the cohort (prepare.py, val) and of the study's generators (cross-validated over
    train + val, test split scored apart), and the view check."""
    out = {}
    for path in sorted((results / "shortcut").glob("*.json")):
        r = json.loads(path.read_text())
        if "by_view" in r:
            out["by_view"] = {v: {k: x[k] for k in ("histogram", "intensity_mean", "median_intensity")}
                              for v, x in r["by_view"].items()}
            out["view_mix"] = r["view_mix"]
        else:
            out[path.stem] = {name: {k: t.get(k) for k in ("auroc", "ci_low", "ci_high", "warn")}
                              for name, t in r.get("tests", {}).items()}
    for path in sorted(study.glob("train_*_g1/shortcut_test.json")):
        r = json.loads(path.read_text())
        out[f"study_{path.parent.name}"] = {"verdict": r.get("verdict"), **{
            name: {k: t.get(k) for k in ("auroc", "ci_low", "ci_high", "test_auroc", "test_ci_low", "test_ci_high")}
            for name, t in r.get("tests", {}).items()}}
    return out


def _generators(study: Path) -> dict:
    """Each generator's seed, K, steps, minutes and last quality measurement."""
    import yaml

    out = {}
    for run in sorted(study.glob("train_*_g*")):
        if ".previous" in run.name or not (run / "quality.csv").is_file():
            continue
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        rows = _rows(run / "quality.csv")
        out[run.name.removeprefix("train_")] = {
            "seed": cfg["train"]["seed"], "n_real_abnormal": len(cfg["data"]["domain_b_keys"] or []),
            "steps_planned": cfg["train"]["steps"], "minutes": rows[-1]["seconds"] / 60,
            "last": {k: rows[-1].get(k) for k in QUALITY_COLUMNS}, "n_measurements": len(rows)}
    return out


def _study(m: dict | None) -> dict | None:
    """The evaluate report's answer, arms, comparisons and interval method per level."""
    if m is None:
        return None
    levels = {}
    for name, lv in m["results"].items():
        fams = {}
        for fam in FAMILIES:
            f = (lv.get("synthetic_vs_controls") or {}).get(fam)
            if f:
                fams[fam] = {"reference": f["reference"], "controls": f["controls"], "answer": f["answer"],
                             "comparisons": {k: {x: c["auroc"].get(x) for x in
                                                 ("delta", "ci_low", "ci_high", "p_bootstrap", "p_holm")}
                                             for k, c in f["comparisons"].items()}}
        levels[name] = {
            "n_generators": lv.get("n_generators", 1), "n_seeds": lv.get("n_seeds"),
            "interval": (lv.get("bootstrap") or {}).get("method"),
            "auroc": {a: {k: x["auroc"][k] for k in ("value", "ci_low", "ci_high")} for a, x in lv["arms"].items()},
            "families": fams}
    q = m.get("quality") or {}
    return {"levels": levels, "data": m["data"], "classifier": m["config"]["classifier"],
            "judged_abnormal": q.get("judged_abnormal"),
            "diversity": (q.get("diversity") or {}).get("synthetic_styles_of_same_input"),
            "diversity_real": (q.get("diversity") or {}).get("yardstick_real_abnormal_pairs")}


def derive(m: dict) -> dict:
    """The issue's bar, criterion by criterion, from the gathered numbers (None: not measured yet)."""
    bar = {}
    s = m.get("study")
    if s:
        for name, lv in s["levels"].items():
            fam = lv["families"].get("synthetic") or {}
            comps = fam.get("comparisons") or {}
            for control in ("intensity_control", "duplicate_real"):
                c = comps.get(f"synthetic vs {control}")
                bar[f"K{name}_beats_{control}"] = None if c is None else bool(
                    c["delta"] > 0 and c["ci_low"] > 0 and (c["p_holm"] or 1) < 0.05)
    ic = m.get("intensity_control") or {}
    for name, r in ic.items():
        sets = r["sets"]
        bar[f"{name}_judged"] = sets["translations"]["judged_abnormal"] >= BAR_JUDGED
        bar[f"{name}_gap"] = (sets["translations"]["judged_abnormal"]
                              - sets["histogram_matched_sources"]["judged_abnormal"]) >= BAR_GAP
    for name, g in (m.get("generators") or {}).items():
        last = g["last"]
        if last.get("a2b_diversity_lpips") is not None and last.get("real_b_pairs_lpips"):
            bar[f"K{name}_diversity"] = bool(
                last["a2b_diversity_lpips"] >= BAR_DIVERSITY * last["real_b_pairs_lpips"]
                and last["a2b_diversity_ms_ssim"] >= BAR_DIVERSITY * last["real_b_pairs_ms_ssim"])
    m["bar"] = bar
    return m


def f(v, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}".replace("-", "−")


def _ci(d: dict | None, centre: str = "value") -> str:
    return "n/a" if not d else f"{f(d[centre])} [{f(d['ci_low'])}, {f(d['ci_high'])}]"


def render(m: dict) -> str:
    mc = m["machine"]
    L = [f"# {m['name']}: does a generator add anything beyond intensity and beyond the K real images?", "",
         f"Machine: {mc['cpu']} ({mc['cores']} cores; flags: {', '.join(mc['cpu_flags']) or 'n/a'}), no GPU. "
         f"Code: `{m['code_revision']}`. Commands: `commands.sh`.", ""]
    L += ["## The answer", ""] + _answer(m)
    if m.get("interpretation"):
        L += ["## What it means (and what it does not)", "", reflow(fill(m["interpretation"], m)), ""]
    L += _bar(m) + _generator_table(m) + _change_table(m) + _arms_table(m) + _shortcut_section(m)
    return "\n".join(L).rstrip() + "\n"


def _answer(m: dict) -> list[str]:
    s = m.get("study")
    if not s:
        n = len(m.get("generators") or {})
        return [f"Not answered yet: the classifier study has not run ({n} generator(s) with quality measurements "
                "so far; the table below shows where they stand).", ""]
    L = []
    for name, lv in s["levels"].items():
        for fam, x in lv["families"].items():
            L.append(f"- K = {name}, {fam} ({lv['n_generators']} generators × {lv['n_seeds']} seeds): "
                     f"{x['answer']['text']}")
        L.append(f"  Intervals: {lv['interval']}")
    return L + [""]


def _bar(m: dict) -> list[str]:
    if not m["bar"]:
        return []
    L = ["## The issue's bar", "", "| criterion | met |", "|---|---|"]
    L += [f"| {k} | {'n/a' if v is None else 'yes' if v else 'no'} |" for k, v in m["bar"].items()]
    return L + [""]


def _generator_table(m: dict) -> list[str]:
    gens = m.get("generators") or {}
    if not gens:
        return []
    L = ["## The generators (last quality measurement; yardsticks in brackets)", "",
         "| generator | seed | K | steps (planned) | minutes | judged abnormal (real abn. / normal) | "
         "diversity LPIPS-style (real pairs) | 1 − MS-SSIM (real pairs) | content SSIM (two patients) | "
         "changed area (change inside / outside) |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for name, g in gens.items():
        r = g["last"]
        L.append(f"| {name} | {g['seed']} | {g['n_real_abnormal']} | {int(r['step'])} ({g['steps_planned']}) | "
                 f"{f(g['minutes'], 1)} | {f(r['a2b_success'])} ({f(r['a2b_success_real_abnormal'])} / "
                 f"{f(r['a2b_success_real_normal'])}) | {f(r['a2b_diversity_lpips'])} ({f(r['real_b_pairs_lpips'])}) | "
                 f"{f(r['a2b_diversity_ms_ssim'], 3)} ({f(r['real_b_pairs_ms_ssim'], 3)}) | "
                 f"{f(r['a2b_content_ssim'])} ({f(r['content_ssim_unrelated'])}) | "
                 f"{f(r.get('a2b_mask_area'))} ({f(r.get('a2b_change_inside'), 3)} / {f(r.get('a2b_change_outside'), 3)}) |")
    L += ["", f"Changed area: share of pixels whose intensity the translation moved by more than "
          f"{m['change_threshold']:.0%} of the range; change inside / outside: mean |translation − input| "
          "there. A drawn-in finding changes a small area a lot; a global restyling changes most of the image.", ""]
    return L


def _change_table(m: dict) -> list[str]:
    c = m.get("change_maps")
    if not c:
        return []
    L = [f"## Where the generators change an image (the change maps of the synthetic training sets; "
         f"{c['n_sources']} train normals × their styles; [{c['interval']}])", "",
         "| generator | changed area | change inside / outside | concentration (uniform "
         f"{f(c['top_share'])}) | style overlap |", "|---|---|---|---|---|"]
    for name, g in c["generators"].items():
        L.append(f"| {name} | {_ci(g['changed_area'])} | {f(g['change_inside']['value'], 3)} / "
                 f"{f(g['change_outside']['value'], 3)} | {_ci(g['concentration'])} | {_ci(g['style_overlap'])} |")
    L += ["", f"Concentration: the share of an image's total change held by its {c['top_share']:.0%} most-changed "
          "pixels (a finding confined to that much of the image: near 1). Style overlap: correlation between the "
          "change maps of two styles of one input. Picture: `study/change_maps.png` (per row a source, two styles, "
          f"their change maps; white = a change of {c['grid_white']:.0%} of the range or more).", ""]
    return L


def _arms_table(m: dict) -> list[str]:
    s = m.get("study")
    if not s:
        return []
    arms = list(next(iter(s["levels"].values()))["auroc"])
    L = ["## Test AUROC per arm [95% CI]", "", "| K | " + " | ".join(arms) + " |", "|---" * (len(arms) + 1) + "|"]
    for name, lv in s["levels"].items():
        L.append(f"| {name} | " + " | ".join(_ci(lv["auroc"].get(a)) for a in arms) + " |")
    L += ["", "Paired comparisons (Δ AUROC [95% CI], Holm p within each family):", ""]
    for name, lv in s["levels"].items():
        for fam, x in lv["families"].items():
            for key, c in x["comparisons"].items():
                L.append(f"- K = {name}: {key}: {_ci(c, 'delta')}, p Holm {f(c['p_holm'], 3)}")
    return L + [""]


def _shortcut_section(m: dict) -> list[str]:
    sc = m.get("shortcut") or {}
    L = ["## Shortcut test of the equalised cohort", ""]
    for name, tests in sc.items():
        if name in ("by_view", "view_mix"):
            continue
        cells = [f"{t}: {_ci(v, 'auroc')}" for t, v in tests.items() if isinstance(v, dict) and v.get("auroc") is not None]
        L.append(f"- {name}: " + "; ".join(cells) + (f" — {tests['verdict']}" if tests.get("verdict") else ""))
    if sc.get("view_mix"):
        mix = sc["view_mix"]
        L.append(f"- View mix: normal {mix['normal'].get('AP', 0)} AP / {mix['normal'].get('PA', 0)} PA, abnormal "
                 f"{mix['abnormal'].get('AP', 0)} AP / {mix['abnormal'].get('PA', 0)} PA (histogram-only AUROC by "
                 "view: " + "; ".join(f"{v} {_ci(x['histogram'], 'auroc')}" for v, x in sc["by_view"].items()) + ")")
    return L + [""]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=str(REPO / "runs" / "cxr_equalized"))
    p.add_argument("--results", default=str(REPO / "results" / "cxr_nih_equalized"))
    args = p.parse_args(argv)
    work, results = Path(args.work), Path(args.results)
    m = gather(work, results)
    study = work / "study"
    (results / "study").mkdir(exist_ok=True)
    # each generator's quality curves; the last sample grid of each level's first generator only (the
    # folder must stay under 5 MB: study/change_maps.png and intensity_control/*.png show every generator)
    for name in m["generators"]:
        grid = results / "study" / f"a2b_{name}.png"
        copy_run_pictures(study / f"train_{name}", grid if name.endswith("_g1") else None,
                          results / "study" / f"quality_{name}.png")
        if not name.endswith("_g1"):
            grid.unlink(missing_ok=True)
    # evaluate's styles_grid.png (0.9 MB of radiographs) stays in the run's report folder
    (results / "study" / "styles_grid.png").unlink(missing_ok=True)
    for plot, palette in (("roc.png", True),):  # line plots only: a palette is lossless enough there
        if (study / "report" / plot).is_file():
            compact_png(study / "report" / plot, results / "study" / plot, palette=palette)
    if (study / "report" / "summary.md").is_file():
        shutil.copy2(study / "report" / "summary.md", results / "study" / "evaluate_summary.md")
    write_results(results, m, render)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
