"""The study's answer to "does the generator help?": a synthetic arm against its reference and its
controls, as one family of paired comparisons with Holm-adjusted p-values.

"helps" needs the synthetic arm to beat real-only (or real + classical for arm 4) *and* every control
(intensity_control, duplicate_real) with Holm-adjusted significance: beating real-only alone can be an
intensity shortcut or just more abnormal samples, and careful CXR studies find that non-generative
controls often match generative augmentation. Anything short of that says what the arm matched or
lost to, with the numbers.
"""

from __future__ import annotations

from xraymunit.evaluation import metrics as M

FAMILIES = {
    "synthetic": ("real", ("intensity_control", "duplicate_real")),
    "classical+synthetic": ("classical", ("classical+intensity_control", "classical+duplicate_real")),
}
"""synthetic arm → (its reference, its controls): the arms it must all beat to 'help'."""


def families(dists: dict, arms_here: list[str], ci: float, difference=None) -> dict:
    """Per synthetic arm run at a level: paired differences vs its reference and controls, Holm within.

    dists: {arm: {metric: ...}}; difference(arm, other, metric) → the paired difference (default: dists
    hold metric distributions on one test-resample matrix, compared by `metrics.paired_difference`).
    """
    if difference is None:
        def difference(a, b, name):
            return M.paired_difference(dists[a][name], dists[b][name], ci)
    out = {}
    for arm, (reference, controls) in FAMILIES.items():
        if arm not in arms_here:
            continue
        others = [a for a in (reference, *controls) if a in arms_here]
        comps = {f"{arm} vs {o}": {name: difference(arm, o, name) for name in _metrics(dists[arm])}
                 for o in others}
        adjusted = M.holm([c["auroc"]["p_bootstrap"] for c in comps.values()])
        for c, p in zip(comps.values(), adjusted):
            c["auroc"]["p_holm"] = p  # Holm within this family only
        family = {"arm": arm, "reference": reference, "controls": list(controls),
                  "not_run": [a for a in (reference, *controls) if a not in arms_here], "comparisons": comps}
        family["answer"] = answer(family, 1.0 - ci)
        out[arm] = family
    return out


def _metrics(entry) -> list:
    """The metric names of an arm's entry (a dict of distributions, or a resampling.Grid)."""
    return list(entry.point) if hasattr(entry, "point") else list(entry)


def outcome(d: dict, alpha: float) -> str:
    """'beats', 'loses to' (Holm-adjusted p < alpha, by the sign of Δ) or 'does not beat'."""
    p = d.get("p_holm")
    if p is None or d.get("delta") is None or p >= alpha or d["delta"] == 0:
        return "does not beat"
    return "beats" if d["delta"] > 0 else "loses to"


def describe(d: dict) -> str:
    """'Δ AUROC −0.010 [−0.050, 0.030], p_holm 0.8' (minus signs as in the text)."""
    def num(v):
        return "n/a" if v is None else f"{v:.3f}".replace("-", "−")

    delta = "n/a" if d.get("delta") is None else f"{d['delta']:+.3f}".replace("-", "−")
    p = "n/a" if d.get("p_holm") is None else f"{d['p_holm']:.2g}"
    return f"Δ AUROC {delta} [{num(d.get('ci_low'))}, {num(d.get('ci_high'))}], p_holm {p}"


def answer(family: dict, alpha: float) -> dict:
    """{'helps': bool, 'text': one line}: helps only if every comparison of the family is 'beats'."""
    arm = family["arm"]
    results = [(key.split(" vs ", 1)[1], outcome(c["auroc"], alpha), describe(c["auroc"]))
               for key, c in family["comparisons"].items()]
    short = [r for r in results if r[1] != "beats"]
    if not short and not family["not_run"]:
        beaten = ", ".join(f"{o} ({text})" for o, _, text in results)
        return {"helps": True, "text": f"helps: {arm} beats {beaten}"}
    if short:
        parts = [f"{how} {o} ({text})" for o, how, text in short]
        missing = f"; {', '.join(family['not_run'])} not run" if family["not_run"] else ""
        return {"helps": False, "text": f"no: {arm} " + "; ".join(parts) + missing}
    beaten = ", ".join(f"{o} ({text})" for o, _, text in results) or "nothing it was compared with"
    return {"helps": False, "text": f"not shown: {arm} beats {beaten}, but {', '.join(family['not_run'])} "
                                    f"{'was' if len(family['not_run']) == 1 else 'were'} not run"}
