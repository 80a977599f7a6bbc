"""summary.md: the study's answer for a person — the headline (does synthetic help, with its CI),
the table of arms, the quality numbers next to their yardsticks, and the caveats a reviewer
would raise. Pure text from the metrics dict (report.write writes it)."""

from __future__ import annotations

from xraymunit.evaluation import answer_table
from xraymunit.evaluation.answer import FAMILIES

ARM_LABEL = {"real": "(1) real only", "classical": "(2) real + classical aug.",
             "synthetic": "(3) real + synthetic", "classical+synthetic": "(4) real + classical + synthetic",
             "intensity_control": "(5) real + intensity control", "duplicate_real": "(6) real + duplicated real",
             "classical+intensity_control": "(7) real + classical + intensity control",
             "classical+duplicate_real": "(8) real + classical + duplicated real"}
METRIC_LABEL = {"auroc": "AUROC", "sensitivity_at_specificity": "Sens@Spec",
                "balanced_accuracy": "Bal. acc."}


def _num(v, nd=3) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def _ci(m: dict, nd=3) -> str:
    if m is None or m.get("value") is None:
        return "n/a"
    return f"{m['value']:.{nd}f} [{_num(m['ci_low'], nd)}, {_num(m['ci_high'], nd)}]"


def _delta(d: dict) -> str:
    if d is None or d.get("delta") is None:
        return "n/a"
    p = "" if d.get("p_bootstrap") is None else f", p={d['p_bootstrap']:.3f}"
    return f"{d['delta']:+.3f} [{_num(d['ci_low'])}, {_num(d['ci_high'])}]{p}"


def _families(metrics: dict, arm: str | None = None) -> list[tuple[dict, dict]]:
    """(level, family) for every synthetic arm's family of comparisons with its controls (answer.py)."""
    return [(lv, fam) for lv in metrics["levels"]
            for a, fam in metrics["results"][lv["name"]].get("synthetic_vs_controls", {}).items()
            if arm is None or a == arm]


def _level(lv: dict) -> str:
    return f"K = {lv['n_real_abnormal']}{' (all)' if lv['name'] == 'all' else ''}"


def headline(metrics: dict) -> list[str]:
    """One line per level and synthetic arm: helps / no / not shown, with the comparisons behind it."""
    lines = []
    for lv, fam in _families(metrics):
        word, _, rest = fam["answer"]["text"].partition(":")
        lines.append(f"- {_level(lv)}, {ARM_LABEL[fam['arm']]}: **{word}**:{rest}.")
    return lines


def overall(metrics: dict) -> str:
    """The one-line answer: does the synthetic arm beat real-only *and* every control (Holm-adjusted)?"""
    main = "synthetic" if _families(metrics, "synthetic") else "classical+synthetic"
    found = _families(metrics, main)
    helps = [_level(lv) for lv, fam in found if fam["answer"]["helps"]]
    alpha = 1.0 - metrics["config"]["stats"]["ci"]
    word = ("**Yes**" if len(helps) == len(found) else "**No**" if not helps
            else f"**Yes at {', '.join(helps)} only**")
    per_level = "; ".join(f"{_level(lv)}: {fam['answer']['text']}" for lv, fam in found)
    several = any((metrics["results"][lv["name"]].get("bootstrap") or {}).get("hierarchical") for lv, _ in found)
    how = "paired bootstrap over generators, seeds and patients" if several else "paired patient bootstrap"
    return (f"{word} — {ARM_LABEL[main]} against {FAMILIES[main][0]} and every control ({how}, "
            f"Holm-adjusted p < {alpha:.2g}): {per_level}.")


def answer_lines(metrics: dict) -> list[str]:
    """The section summary.md opens with: the one-line answer, its table, a line per level, how to read Δ."""
    cfg = metrics["config"]
    L = ["## Does synthetic help?", ""]
    head = headline(metrics)
    if not head:
        return L + ["Not measured: no synthetic arm was run (" + "; ".join(metrics["notes"]) + ")."]
    L += [overall(metrics), "", *answer_table.section(metrics), *head, ""]
    L.append(f"Δ = arm − other arm on the *same* resamples (paired; {cfg['stats']['bootstrap']} replicates, "
             f"{int(round(cfg['stats']['ci'] * 100))}% CI, drawn as stated above); p_holm is Holm-adjusted within "
             "each line's family (the synthetic arm vs its reference and its controls). **helps** only when every "
             "one is beaten at p_holm < " + f"{1 - cfg['stats']['ci']:.2g}; the controls replace the synthetic "
             "images by their source normals histogram-matched to the real abnormals (intensity control) or by "
             "the real abnormals repeated to the same count (duplicated real).")
    return L


def summary(metrics: dict) -> str:
    cfg = metrics["config"]
    ci = int(round(cfg["stats"]["ci"] * 100))
    spec = cfg["stats"]["specificity"]
    L = ["# Evaluation summary", ""]
    L += answer_lines(metrics)
    L.append("")
    d = metrics["data"]
    L.append(f"Test split (the only images scored, all real): {d['test']['n_normal']} normal + "
             f"{d['test']['n_abnormal']} abnormal images from {d['test']['n_patients']} patients. "
             f"Seeds: {len(metrics['seeds'])}; every arm: {cfg['classifier']['steps']} steps × batch "
             f"{cfg['classifier']['batch_size']} of {cfg['classifier']['arch']} at {cfg['classifier']['image_size']} px, "
             f"model selected on val AUROC.")
    L.append("")
    L.append("## Arms")
    for lv in metrics["levels"]:
        res = metrics["results"][lv["name"]]
        L.append("")
        L.append(f"### Real abnormal training images: {lv['name']} (n = {lv['n_real_abnormal']})")
        L.append("")
        gen = (metrics.get("generators") or {}).get("levels", {}).get(lv["name"])
        if gen:
            L.append(f"Synthetic images (arms 3/4): {_generator(gen)}.")
            L.append("")
        L.append(f"| arm | train normal / abnormal / added | AUROC [{ci}% CI] | sens @ spec {spec:.2f} | "
                 f"balanced acc. | ΔAUROC vs (1) | ΔAUROC vs (2) |")
        L.append("|---|---|---|---|---|---|---|")
        for arm in metrics["arms"]:
            if arm not in res["arms"]:
                continue  # no synthetic folder for this level (see the notes)
            a = res["arms"][arm]
            tc = a["train_counts"]
            c1 = res["comparisons"].get(f"{arm} vs real", {}).get("auroc")
            c2 = res["comparisons"].get(f"{arm} vs classical", {}).get("auroc")
            L.append(f"| {ARM_LABEL[arm]} | {tc['real_normal']} / {tc['real_abnormal']} / {tc['synthetic_abnormal']} | "
                     f"{_ci(a['auroc'])} | {_ci(a['sensitivity_at_specificity'])} | {_ci(a['balanced_accuracy'])} | "
                     f"{_delta(c1) if c1 else '—'} | {_delta(c2) if c2 else '—'} |")
        src = {arm: res["arms"][arm].get("per_source") for arm in metrics["arms"]
               if arm in res["arms"] and res["arms"][arm].get("per_source")}
        if src:
            L.append("")
            L.append("Per source dataset (AUROC):")
            L.append("")
            names = sorted(next(iter(src.values())))
            L.append("| arm | " + " | ".join(names) + " |")
            L.append("|---|" + "---|" * len(names))
            for arm, per in src.items():
                cells = [(_ci(per[n]["auroc"]) if per[n]["auroc"] else "undefined (one class)") for n in names]
                L.append(f"| {ARM_LABEL[arm]} | " + " | ".join(cells) + " |")
    L.append("")
    L += external_lines(metrics) + _quality_section(metrics)
    L += _training_quality_section(metrics)
    if metrics.get("shortcut_test"):
        from xraymunit.confounds import summary_lines

        L += summary_lines(metrics["shortcut_test"])
    L.append("## Caveats")
    L.append("")
    L += [f"- {c}" for c in caveats(metrics)]
    L.append("")
    L.append("Files: metrics.json (every number with its CI), predictions.csv (every score), roc.png, "
             "metric_vs_real_abnormal.png" + (", styles_grid.png" if "grid" in metrics["files"]["plots"] else "")
             + ", evaluate_config.yaml.")
    L.append("")
    return "\n".join(L)


def external_lines(metrics: dict) -> list[str]:
    from xraymunit.evaluation.external import summary_lines  # --test-cohort: internal vs external side by side

    return summary_lines(metrics)


def _generator(gen: dict) -> str:
    """'generator <sha> (step N), folder F' — the checkpoint behind a level's synthetic images."""
    shas = ", ".join(f"`{h[:12]}`" for h in gen.get("checkpoint_sha256") or []) or "unknown checkpoint"
    steps = gen.get("checkpoint_step") or []
    step = f" (step {', '.join(map(str, steps))})" if steps else ""
    folders = gen["synthetic"] if isinstance(gen["synthetic"], list) else [gen["synthetic"]]
    if len(folders) > 1:
        return (f"{len(folders)} generators, checkpoints {shas}{step}, folders "
                + ", ".join(f"`{f}`" for f in folders))
    return f"generator {shas}{step}, folder `{folders[0]}`"


def _fd(d: dict) -> str:
    if d.get("frechet_ci_low") is None:
        return _num(d.get("frechet"))
    return f"{_num(d['frechet'])} [{_num(d['frechet_ci_low'])}, {_num(d['frechet_ci_high'])}]"


def _mci(d: dict) -> str:
    if d.get("mean") is None:
        return "n/a"
    if d.get("ci_low") is None:
        return _num(d["mean"])
    return f"{_num(d['mean'])} [{_num(d['ci_low'])}, {_num(d['ci_high'])}]"


def _training_quality_section(metrics: dict) -> list[str]:
    tq = metrics.get("training_quality")
    if not tq:
        return []
    L = ["## Quality during training", "",
         "Measured by the cohort's judge on fixed val images while the generator trained "
         "(`quality.csv` in the run folder; best.pt criterion: xraymunit/quality/quality_csv.py).", "",
         "| run | measurement | step | minutes | judged abnormal a2b (real abn. / real normal) | FD to real B "
         "(inputs) | diversity LPIPS-style (real B pairs) | content SSIM (two patients) | score |",
         "|---|---|---|---|---|---|---|---|---|"]
    for level, t in tq.items():
        for which in ("first", "best", "last"):
            r = t.get(which)
            if not r:
                continue
            L.append(f"| {level} | {which} | {int(r['step'])} | {r['seconds'] / 60:.1f} | {_num(r['a2b_success'])} "
                     f"({_num(r['a2b_success_real_abnormal'])} / {_num(r['a2b_success_real_normal'])}) | "
                     f"{_num(r['a2b_fd'])} ({_num(r['a2b_fd_inputs'])}) | {_num(r['a2b_diversity_lpips'])} "
                     f"({_num(r['real_b_pairs_lpips'])}) | {_num(r['a2b_content_ssim'])} "
                     f"({_num(r['content_ssim_unrelated'])}) | {_num(r['score'])} |")
    files = [f"`{n}`" for k, n in (metrics.get("files", {}).get("plots") or {}).items() if k.startswith("training_quality")]
    L += ["", f"Curves: {', '.join(files)} (each measure vs step and vs wall-clock time, yardsticks dashed)."
          if files else "", ""]
    return L


def _quality_section(metrics: dict) -> list[str]:
    q = metrics.get("quality")
    L = ["## Synthetic image quality", ""]
    if not q:
        return L + ["Not computed (" + ("no synthetic folder" if metrics["synthetic"] is None else "disabled or no images") + ").", ""]
    r, dv, c, m = q["realism"], q["diversity"], q["content_preservation"], q["memorisation"]
    L.append(f"On {q['n_synthetic']} synthetic images of {q['n_inputs']} inputs; reference real images from "
             f"{', '.join(q['reference_splits'])} ({q['reference']['n_real_normal']} normal, "
             f"{q['reference']['n_real_abnormal']} abnormal). Feature network: {q['feature_network']}.")
    if (q.get("synthetic_set") or {}).get("level") is not None:
        L.append("")
        several = bool(q["synthetic_set"].get("generator"))
        L.append(f"One generator per level: these numbers assess {'generator 1 of ' if several else ''}level "
                 f"{q['synthetic_set']['level']}'s synthetic set (the largest level with one), "
                 f"`{q['synthetic_set']['folder']}`" + ("; every generator is measured alike in the table after "
                                                       "this one." if several else "."))
    if q.get("judge"):
        L.append("")
        L.append(f"Judge: {q['judge']['describe']}. It was trained on every real train-split image, abnormal ones "
                 "included: in a low-data study it has seen more abnormal images than the classifier arms of a "
                 "level. It only measures; it never trains an arm.")
    L.append("")
    L.append("| measure | synthetic | yardstick |")
    L.append("|---|---|---|")
    ja = q.get("judged_abnormal")
    if ja and ja.get("synthetic") is not None:
        L.append(f"| translation success: share judged abnormal (↑) | {_num(ja['synthetic'])} of {ja['n_synthetic']} | "
                 f"real abnormal {_num(ja['yardstick_real_abnormal'])}; real normal {_num(ja['yardstick_real_normal'])} |")
    s, y = r["synthetic_vs_real_abnormal"], r["yardstick_real_normal_vs_real_abnormal"]
    i = r["inputs_vs_real_abnormal"]
    L.append(f"| Fréchet distance to real abnormal (↓) | {_fd(s)} | real normal ↔ abnormal {_fd(y)}; "
             f"inputs before translation {_fd(i)} |")
    L.append(f"| KID to real abnormal (↓) | {_num(s['kid'], 4)} ± {_num(s['kid_sd'], 4)} | real normal ↔ abnormal "
             f"{_num(y['kid'], 4)}; inputs {_num(i['kid'], 4)} |")
    ds, dr = dv["synthetic_styles_of_same_input"], dv["yardstick_real_abnormal_pairs"]
    L.append(f"| diversity, LPIPS-style (↑) | {_mci(ds['lpips_style'])} | real abnormal pairs "
             f"{_mci(dr['lpips_style'])} |")
    L.append(f"| diversity, 1 − MS-SSIM (↑) | {_mci(ds['one_minus_ms_ssim'])} | real abnormal pairs "
             f"{_mci(dr['one_minus_ms_ssim'])} |")
    L.append(f"| content kept, low-pass SSIM input ↔ output (↑) | {_mci(c['ssim_input_vs_translation'])} | "
             f"two different patients {_mci(c['yardstick_ssim_unrelated_inputs'])} |")
    L.append(f"| memorisation: images closer to a training image than any two real ones | {m['n_flagged']} of "
             f"{m['n_synthetic']} | threshold {_num(m['threshold_closest_real_pair'])} |")
    L.append("")
    return L + _per_generator_lines(q.get("per_generator")) + _backbone_lines(q.get("backbone"))


def _per_generator_lines(entries: list[dict] | None) -> list[str]:
    """One row per generator: the spread of quality between generators trained alike."""
    if not entries:
        return []
    L = ["### Every generator, measured alike", "",
         "The table above assesses one synthetic set; here every generator's set is measured the same way "
         "(the judge's features, the same reference images): the spread is the generators' own variance.", "",
         "| level | generator | images | judged abnormal (↑) | Fréchet distance to real abnormal (↓) | "
         "KID (↓) | diversity, LPIPS-style (↑) |", "|---|---|---|---|---|---|---|"]
    for e in entries:
        if not e.get("n_synthetic"):
            L.append(f"| {e['level']} | {e['generator']} | 0 | n/a | n/a | n/a | n/a |")
            continue
        s = e["realism"]["synthetic_vs_real_abnormal"]
        L.append(f"| {e['level']} | {e['generator']} | {e['n_synthetic']} | {_num(e['judged_abnormal']['synthetic'])} | "
                 f"{_fd(s)} | {_num(s['kid'], 4)} | {_mci(e['diversity']['synthetic_styles_of_same_input']['lpips_style'])} |")
    first = next((e for e in entries if e.get("n_synthetic")), None)
    if first:
        y = first["realism"]["yardstick_real_normal_vs_real_abnormal"]
        L.append(f"| yardstick | real | | abnormal {_num(first['judged_abnormal']['yardstick_real_abnormal'])}, "
                 f"normal {_num(first['judged_abnormal']['yardstick_real_normal'])} | real normal ↔ abnormal {_fd(y)} | "
                 f"{_num(y['kid'], 4)} | real abnormal pairs "
                 f"{_mci(first['diversity']['yardstick_real_abnormal_pairs']['lpips_style'])} |")
    return L + [""]


def _backbone_lines(b: dict | None) -> list[str]:
    """The same images measured by the pretrained backbone: numbers another study can be compared with."""
    if not b:
        return []
    r, dv = b["realism"], b["diversity"]
    s, y, i = (r[k] for k in ("synthetic_vs_real_abnormal", "yardstick_real_normal_vs_real_abnormal",
                              "inputs_vs_real_abnormal"))
    ds, dr = dv["synthetic_styles_of_same_input"], dv["yardstick_real_abnormal_pairs"]
    return [
        "### The same images in a pretrained feature space", "",
        f"Feature network: {b['network']}, the same for every study that names the same weights file (SHA-256 "
        f"in metrics.json → quality.backbone.sha256), so these numbers compare across studies; the judge's "
        f"above compare arms within this one.", "",
        "| measure | synthetic | yardstick |", "|---|---|---|",
        f"| Fréchet distance to real abnormal (↓) | {_fd(s)} | real normal ↔ abnormal {_fd(y)}; inputs before "
        f"translation {_fd(i)} |",
        f"| KID to real abnormal (↓) | {_num(s['kid'], 4)} ± {_num(s['kid_sd'], 4)} | real normal ↔ abnormal "
        f"{_num(y['kid'], 4)}; inputs {_num(i['kid'], 4)} |",
        f"| diversity, LPIPS-style (↑) | {_mci(ds['lpips_style'])} | real abnormal pairs {_mci(dr['lpips_style'])} |",
        "",
    ]


def provenance_line(metrics: dict) -> str:
    """Whether each generator's real abnormal keys were checked equal to its level's arms' (metrics['provenance'])."""
    gens = [(name, g) for name, lv in (metrics.get("provenance") or {}).items() for g in lv.get("generators", [])]
    unchecked = sorted({name for name, g in gens if g.get("matches") is None})
    if gens and not unchecked:
        return ("Checked: every generator's training run trained on exactly the K real abnormal image keys its "
                "level's classifier arms use (SHA-256 of the sorted keys in metrics.json → provenance).")
    return (f"Not checked at level(s) {', '.join(unchecked) or 'any'} (no training run given): that a level's generator "
            "saw only the level's K real abnormal images is how the pipeline's `generators: per_level` trains it "
            "(`data.domain_b_keys`); pass the runs as training_run / --training-run to have evaluate check it.")


def caveats(metrics: dict) -> list[str]:
    cfg = metrics["config"]
    out = []
    sel = metrics.get("synthetic_selection")
    if sel:
        ex = "; ".join(f"{k}: {v}" for k, v in sel["excluded_by_reason"].items()) or "none"
        out.append(f"Synthetic images: {sel['used_for_training']} of {sel['total']} used for training; "
                   f"excluded — {ex}. Images derived from val/test patients are never trained on.")
    gens = metrics.get("generators") or {}
    low = any(lv["name"] != "all" for lv in metrics["levels"])
    if gens.get("mode") == "per_level":
        for name, g in gens["levels"].items():
            each = [(None, (g or {}).get("selection"))] if (g or {}).get("selection") else \
                [(e["generator"], e.get("selection")) for e in (g or {}).get("generators") or []]
            for number, s in each:
                if not s:
                    continue
                ex = "; ".join(f"{k}: {v}" for k, v in s["excluded_by_reason"].items()) or "none"
                which = "" if number is None else f" (generator {number})"
                out.append(f"Level {name} synthetic images{which}: {s['used_for_training']} of {s['total']} used "
                           f"for training; excluded — {ex}.")
        out.append("One generator per low-data level (or several): arms 3/4 and their controls at level K train "
                   "only on the synthetic images of that level's folders (its generators are named under each "
                   "level). " + provenance_line(metrics))
    elif gens.get("mode") == "single" and low:
        out.append("**Warning:** low-data levels keep K real abnormal training images, but the MUNIT generator "
                   "itself was trained on *all* train-split abnormal images (and reference styles may come from "
                   "them): arms 3/4 at small K indirectly see more abnormal data than arms 1/2. Strict low-data "
                   "claims need a generator trained on the same K images (pipeline `generators: per_level`).")
    if low:
        if cfg.get("real_abnormal_subset") == "shared":
            out.append(f"Low-data subsets are shared: every seed keeps the same K real abnormal images (those of "
                       f"seed {cfg['seed_base']}), so seeds vary only initial weights and batch sampling; the "
                       "CIs do not include the variation between different K-image subsets.")
        out.append("The val split is used in full at every level.")
    t = metrics["data"]["test"]
    if min(t["n_normal"], t["n_abnormal"]) < 50:
        out.append(f"The test split is small ({t['n_normal']} normal, {t['n_abnormal']} abnormal): CIs are wide "
                   "and a null result is weak evidence of no effect.")
    several = [lv["name"] for lv in metrics["levels"] if metrics["results"][lv["name"]].get("n_generators", 1) > 1]
    out.append((f"At level(s) {', '.join(several)} the CIs resample generators, classifier seeds and test "
                f"{cfg['stats']['bootstrap_unit']}s (hierarchical bootstrap; per-generator and per-seed values are "
                "in metrics.json); elsewhere they " if several else "CIs ") +
               f"resample test {cfg['stats']['bootstrap_unit']}s (training variation enters only through the "
               f"{len(metrics['seeds'])} seed(s) and no generator variance is included; per-seed values and their "
               "SD are in metrics.json). "
               "p-values in the tables are per comparison; Holm-adjusted ones (AUROC) are in metrics.json as "
               "p_holm: within each level under comparisons, within each synthetic arm's family (its reference "
               "and its controls, the answer above) under synthetic_vs_controls.")
    if cfg["classifier"]["steps"] < 200:
        out.append(f"The training budget is tiny ({cfg['classifier']['steps']} steps): treat these numbers as a "
                   "smoke test of the pipeline, not as a study result.")
    q = metrics.get("quality")
    if q:
        mem = q["memorisation"]
        if mem["n_flagged"]:
            out.append(f"**Memorisation:** {mem['n_flagged']} of {mem['n_synthetic']} synthetic images are closer to a "
                       "real training image of another patient than any two real training images are to each other "
                       "(near-copies; listed in metrics.json → quality.memorisation.flagged). Gains from such images "
                       "are not gains from synthesis.")
        div = q["diversity"]
        syn_d = div["synthetic_styles_of_same_input"]["lpips_style"]["mean"]
        real_d = div["yardstick_real_abnormal_pairs"]["lpips_style"]["mean"]
        if syn_d is not None and real_d and syn_d < 0.1 * real_d:
            out.append(f"**Low diversity:** styles of one input differ by {syn_d:.3f} (LPIPS-style) against {real_d:.3f} "
                       "between real abnormal images: the generator may ignore its style code (mode collapse).")
    if metrics.get("quality"):
        out.append("FID/KID/LPIPS-style use a network trained on this cohort, not ImageNet Inception/AlexNet: "
                   "compare them within this study (against the yardsticks), never with published values. "
                   "FID is biased upwards for small sets; KID is unbiased.")
    out += metrics["notes"]
    return out
