"""The answer of summary.md as a table, before any other table: per level and synthetic arm, the paired
Δ AUROC against its reference and against each control (intensity_control, duplicate_real) with the
interval and Holm-adjusted p, how many generators and classifier seeds stand behind it, and exactly
how the interval was drawn. Pure text from the metrics dict."""

from __future__ import annotations

from xraymunit.evaluation.answer import FAMILIES

def _cell(c: dict | None) -> str:
    """'+0.030 [−0.010, 0.070], p_holm 0.21' or '—' (not run)."""
    if c is None or c.get("delta") is None:
        return "—"
    def num(v):
        return "n/a" if v is None else f"{v:.3f}".replace("-", "−")

    p = "n/a" if c.get("p_holm") is None else f"{c['p_holm']:.2g}"
    return f"{c['delta']:+.3f}".replace("-", "−") + f" [{num(c.get('ci_low'))}, {num(c.get('ci_high'))}], p_holm {p}"


def table(metrics: dict) -> list[str]:
    """Markdown rows: K, arm, generators × seeds, Δ vs reference, vs each control, the answer's first word."""
    rows = []
    for lv in metrics["levels"]:
        res = metrics["results"][lv["name"]]
        for arm, fam in res.get("synthetic_vs_controls", {}).items():
            reference, controls = FAMILIES[arm]
            comps = fam["comparisons"]
            cells = [_cell((comps.get(f"{arm} vs {o}") or {}).get("auroc")) for o in (reference, *controls)]
            k = f"{lv['n_real_abnormal']}{' (all)' if lv['name'] == 'all' else ''}"
            runs = f"{res.get('n_generators', 1)} × {res.get('n_seeds', len(metrics['seeds']))}"
            word = fam["answer"]["text"].partition(":")[0]
            rows.append(f"| {k} | {arm} | {runs} | " + " | ".join(cells) + f" | **{word}** |")
    if not rows:
        return []
    return ["| K real abnormal | arm | generators × seeds | Δ AUROC vs its reference (real; classical for "
            "classical+synthetic) | vs intensity control (the same controls with classical aug. for "
            "classical+synthetic) | vs duplicated real | answer |", "|---|---|---|---|---|---|---|", *rows]


def interval_lines(metrics: dict) -> list[str]:
    """How each level's intervals were drawn (the resampling method, verbatim from metrics.json)."""
    by_method: dict[str, list[str]] = {}
    for lv in metrics["levels"]:
        boot = metrics["results"][lv["name"]].get("bootstrap") or {}
        if boot.get("method"):
            by_method.setdefault(boot["method"], []).append(lv["name"])
    ci = int(round(metrics["config"]["stats"]["ci"] * 100))
    n_boot = metrics["config"]["stats"]["bootstrap"]
    return [f"Intervals ({ci}%, {n_boot} replicates) at level{'s' if len(names) > 1 else ''} "
            f"{', '.join(names)}: {method}." for method, names in by_method.items()]


def section(metrics: dict) -> list[str]:
    """The table and the interval statement (empty when no synthetic arm ran)."""
    rows = table(metrics)
    if not rows:
        return []
    return [*rows, "", *interval_lines(metrics), ""]
