"""`xraymunit ingest`: DICOM/PNG/JPEG folder → cohort folder (manifest, cache, report)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Build a private, analysable cohort from a folder of chest X-rays.

Walks DICOM_DIR recursively (files with or without .dcm; a DICOMDIR is honoured; PNG/JPEG
are accepted too), reads headers first, keeps CR/DX images, decodes them through the MONAI
pixel chain (Modality LUT → VOI LUT/window or percentile window → MONOCHROME1 inversion →
square → resize), and writes OUT/manifest.parquet (no identifiers in clear),
OUT/cache/images.npy (uint16, memory-mappable), OUT/ingest_report.json, and OUT/private/
(salt, resume journal, per-image cache: never share it). Rerunning resumes.
"""

EPILOG = """\
labels CSV: a 'label' column plus one key column: SOPInstanceUID, path (relative to
DICOM_DIR), StudyInstanceUID or PatientID; optional sex, age, view, source_dataset,
patient_id. 0/1 mean normal/abnormal. Without --labels, first-level folders named
normal/ and abnormal/ label their files.

examples:
  xraymunit ingest studies/ --labels labels.csv --out cohort/ --workers 8
  xraymunit ingest studies/ --out part/ --shard 3/16        # one job-array task
  xraymunit ingest --merge part/ --labels labels.csv --out part/   # after all 16 finished
exit status: 0 ok, 1 nothing could be ingested, 2 bad arguments or input, 130 interrupted.
"""


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _floats(n: int):
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(t) for t in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {text!r}") from None
        if len(values) != n:
            raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {text!r}")
        return values
    return parse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ingest", help="DICOM/PNG folder → cohort (manifest + image cache)",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input_dir", metavar="DICOM_DIR", nargs="?", type=Path,
                   help="folder of DICOM studies (any nesting) or of PNG/JPEG radiographs; omit with --merge")
    p.add_argument("--labels", metavar="CSV", type=Path, default=None,
                   help="labels CSV (columns below); unmatched images are kept as unlabelled. Labels are "
                        "applied when the cohort is finalized: with --shard, give them to --merge")
    p.add_argument("--out", metavar="DIR", type=Path, default=Path("cohort"),
                   help="cohort folder to write (default: cohort/); an existing one is resumed")
    p.add_argument("--size", type=int, default=256, help="side of the cached square images in pixels (default 256)")
    p.add_argument("--workers", type=int, default=1,
                   help="decode processes; 1 decodes in this process (default 1)")
    p.add_argument("--shard", metavar="I/N", default=None,
                   help="process only part I of N (stable hash of the path) and stop before finalizing; "
                        "combine the parts with --merge")
    p.add_argument("--merge", metavar="SHARD_DIR", nargs="*", type=Path, default=None,
                   help="finalize a cohort from finished --shard runs (their --out folders; none = --out itself)")
    p.add_argument("--salt-file", metavar="F", type=Path, default=None,
                   help="secret salt for the pseudonymous keys (created mode 0600 if missing); default "
                        "OUT/private/salt.key. Share one salt file between cohorts whose keys must match")
    p.add_argument("--modalities", type=_csv_list, default=["CR", "DX"], metavar="LIST",
                   help="DICOM modalities to keep, comma-separated (default CR,DX); others are skipped")
    p.add_argument("--fit", choices=("pad", "crop"), default="pad",
                   help="make images square by padding with black, centred (default: keeps the whole "
                        "field of view) or by centre-cropping (keeps resolution, may cut lung edges)")
    p.add_argument("--window", choices=("auto", "percentile"), default="auto",
                   help="intensity mapping: auto = VOI LUT, else header window, else percentile window; "
                        "percentile = always the robust percentile window (harmonises vendors)")
    p.add_argument("--percentiles", type=_floats(2), default=(0.5, 99.5), metavar="LOW,HIGH",
                   help="percentiles of the robust window (default 0.5,99.5)")
    p.add_argument("--contrast", choices=("none", "equalize", "clahe"), default="none",
                   help="per-image contrast standardisation after windowing (scikit-image): equalize = global "
                        "histogram equalisation (every image gets the same intensity histogram: removes "
                        "exposure/scanner intensity shortcuts), clahe = adaptive; default none")
    p.add_argument("--split", type=_floats(3), default=(0.7, 0.15, 0.15), metavar="TRAIN,VAL,TEST",
                   help="patient fractions of the train/val/test split (default 0.7,0.15,0.15)")
    p.add_argument("--min-side", type=int, default=64,
                   help="smallest plausible image side; smaller images fail as absurd_dimensions (default 64)")
    p.add_argument("--max-side", type=int, default=12000,
                   help="largest plausible image side (default 12000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. in batch logs)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xraymunit.ingestion import IngestError, ingest, merge

    progress = not args.no_progress
    if args.merge is not None:
        if args.input_dir is not None:
            raise IngestError("give either DICOM_DIR or --merge SHARD_DIR..., not both")
        if args.shard is not None:
            raise IngestError("--shard and --merge exclude each other: run the shards first, then merge")
        result = merge(args.merge, out_dir=args.out, labels=args.labels, salt_file=args.salt_file,
                       split=args.split, progress=progress)
    else:
        if args.input_dir is None:
            raise IngestError("DICOM_DIR is required (or use --merge SHARD_DIR ...)")
        result = ingest(args.input_dir, out_dir=args.out, labels=args.labels, size=args.size,
                        workers=args.workers, shard=args.shard, modalities=args.modalities, fit=args.fit,
                        window=args.window, percentiles=args.percentiles, contrast=args.contrast, salt_file=args.salt_file,
                        split=args.split, min_side=args.min_side, max_side=args.max_side, progress=progress)
    print(summary(result))
    if result.finalized and result.images == 0:
        top = ", ".join(f"{k} {v}" for k, v in sorted(result.by_reason.items(), key=lambda kv: -kv[1])[:3])
        print(f"xraymunit ingest: error: no image could be ingested from {result.files} files"
              f"{' (' + top + ')' if top else ''}; see {result.out_dir / 'ingest_report.json'}", file=sys.stderr)
        return 1
    return 0


def summary(result) -> str:
    """A few lines: counts, reasons, labels, splits, this run's work, where the outputs are."""
    out = result.out_dir
    status = ", ".join(f"{v} {k}" for k, v in sorted(result.by_status.items()))
    lines = [f"ingest: {result.files} files → {status or 'nothing'}"]
    if result.by_reason:
        lines.append("  not ingested: " + ", ".join(f"{k} {v}" for k, v in sorted(result.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))))
    lines.append(f"  this run: decoded {result.decoded}, reused from cache {result.reused}")
    if not result.finalized:
        lines.append(f"  shard done: journal and entries in {out / 'private'}; finalize with "
                     f"`xraymunit ingest --merge SHARD_DIRS... --out COHORT`")
        return "\n".join(lines)
    rep = result.report
    labels = ", ".join(f"{k} {v}" for k, v in rep.get("by_label", {}).items())
    if labels:
        lines.append(f"  labels: {labels}")
    splits = " / ".join(f"{k} {v['images']} images ({v['patients']} patients)" for k, v in rep.get("splits", {}).items())
    lines.append(f"  splits: {splits}")
    for w in rep.get("warnings", []):
        lines.append(f"  warning: {w}")
    lines.append(f"  cohort: {out / 'manifest.parquet'}, {out / 'cache' / 'images.npy'} "
                 f"({rep.get('images', 0)}×{rep['settings']['size']}²), {out / 'ingest_report.json'}")
    lines.append(f"  private: {out / 'private'} (salt, journal, key map) — never share it")
    return "\n".join(lines)
