"""Numbers quoted in hand-written text, each resolved from its own metrics.json path.

A results folder's `interpretation.md` is a template: every measured number is written as a
placeholder naming where it lives in metrics.json, and publish.py fills it in. So a quoted number
cannot drift from the metrics or be invented (tests/test_results.py: every placeholder resolves and
no measured-looking number is written by hand).

    {{study/levels/10/auroc/real/value}}      0.79          (2 decimals)
    {{study/levels/5/generator/steps|0}}       1700          (N decimals after |)
    {{ci study/levels/10/delta/synthetic vs real}}  0.05 [0.00, 0.10]  (delta, value or auroc; then ci_low, ci_high)
    {{int study/levels/10/generator/steps}}    3,880         (thousands separated)
    {{pct ablation/time_ratio}}                45 %          (×100, no decimals)
    {{p study/levels/10/delta/x/p_holm}}       0.15, 0.004, < 0.001  (a p-value: < 0.001 below that)

Path parts are separated by `/` (keys may contain spaces); list items by their index.
"""

from __future__ import annotations

import math
import re

PLACEHOLDER = re.compile(r"\{\{\s*(?:(ci|int|pct|p)\s+)?([^{}|]+?)\s*(?:\|(\d))?\s*\}\}")
# what a hand-written measured number looks like: a decimal, a thousands-grouped integer, a percentage
MEASURED = re.compile(r"(?<![\w.])[−-]?(?:\d+\.\d+|\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?\s?%)")


class QuoteError(KeyError):
    """A placeholder names a path metrics.json does not hold (or a value that is not a number)."""


def resolve(metrics: dict, path: str):
    node = metrics
    for part in path.strip("/").split("/"):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise QuoteError(f"metrics.json has no {path!r} (stopped at {part!r})") from None
    return node


def _number(metrics: dict, path: str) -> float:
    value = resolve(metrics, path)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise QuoteError(f"metrics.json {path!r} is {value!r}, not a finite number")
    return float(value)


def _dec(v: float, digits: int) -> str:
    return f"{v:.{digits}f}".replace("-", "−")


def fill(template: str, metrics: dict) -> str:
    """The template with every placeholder replaced by its formatted number."""

    def one(match: re.Match) -> str:
        kind, path, digits = match.group(1), match.group(2), match.group(3)
        d = 2 if digits is None else int(digits)
        if kind == "ci":
            node = resolve(metrics, path)
            centre = next((k for k in ("delta", "value", "auroc") if isinstance(node, dict) and k in node), "value")
            lo, hi, mid = (_number(metrics, f"{path}/{k}") for k in ("ci_low", "ci_high", centre))
            return f"{_dec(mid, d)} [{_dec(lo, d)}, {_dec(hi, d)}]"
        v = _number(metrics, path)
        if kind == "int":
            return f"{round(v):,}"
        if kind == "pct":
            return f"{round(v * 100)} %"
        if kind == "p":  # a bootstrap p of 0 means "none of the resamples": below the resolution, not zero
            return "< 0.001" if v < 0.001 else _dec(v, 3 if v < 0.01 else d)
        return _dec(v, d)

    return PLACEHOLDER.sub(one, template)


def reflow(text: str, width: int = 100) -> str:
    """Paragraphs re-wrapped after filling (numbers change line lengths); blank lines kept."""
    import textwrap

    paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
    return "\n\n".join(textwrap.fill(p, width, break_long_words=False, break_on_hyphens=False)
                       for p in paragraphs)


def hand_written_numbers(template: str) -> list[str]:
    """Measured-looking numbers outside placeholders and code spans (settings such as 'K = 10', '3 seeds'
    or `loss.diversity=0.1` are allowed)."""
    return MEASURED.findall(re.sub(r"`[^`]*`", " ", PLACEHOLDER.sub(" ", template)))


def holm(p_values: dict) -> dict:
    """Holm-adjusted p-values of one family {name: p} (monotone, capped at 1)."""
    order = sorted(p_values, key=lambda k: p_values[k])
    adjusted, running = {}, 0.0
    for i, name in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * p_values[name]))
        adjusted[name] = running
    return adjusted
