"""The measurements of benchmarks/gpu_check.py, each run in a process of its own.

    python benchmarks/gpu_check_worker.py train SPECS_JSON   # train_step.run_one per spec: one JSON line each
    python benchmarks/gpu_check_worker.py synth ARG...       # benchmarks/synthesize.py ARG...: its payload, one line

A process per item means a crash, a hang or a compiler that never finishes costs one item, and
peak memory is the item's own. The code measured is the existing benchmarks' (train_step.py,
synthesize.py): this file only calls them and turns what they find into JSON lines on stdout
(their own prints go to stderr). The specs of one `train` call must share one `impl`: "ref"
swaps the decoder's layers for the reference's for the rest of the process.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def train(specs: list[dict]) -> None:
    """One JSON line per training-step configuration, printed as soon as it is measured."""
    import train_step

    if len({s["impl"] for s in specs}) > 1:
        raise SystemExit("one impl per process: 'ref' replaces the decoder's layers process-wide")
    for spec in specs:
        with contextlib.redirect_stdout(sys.stderr):
            row = train_step.run_one(**spec)
        print(json.dumps(row), flush=True)


def synth(argv: list[str]) -> None:
    """benchmarks/synthesize.py with `argv`; its payload as one JSON line, not written to benchmarks/results/."""
    import synthesize

    payload: dict = {}

    def keep(name: str, data: dict) -> Path:
        payload.update(data)
        return Path("(kept by gpu_check, not written)")

    synthesize.write_results = keep
    sys.argv = ["synthesize.py", *argv]
    with contextlib.redirect_stdout(sys.stderr):
        synthesize.main()
    import torch

    if torch.cuda.is_available() and "cuda" in " ".join(argv):
        payload["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(payload), flush=True)


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] not in ("train", "synth"):
        raise SystemExit(__doc__)
    if argv[0] == "train":
        train(json.loads(argv[1]))
    else:
        synth(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
