"""`xraymunit ingest`: DICOM/PNG/JPEG folder → cohort folder (manifest, cache, report)."""

from __future__ import annotations

import argparse
import sys

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
patient_id, split (train/val/test: fixes that patient's split; empty = seeded). 0/1 mean
normal/abnormal. Without --labels, first-level folders named normal/ and abnormal/ label
their files.

examples:
  xraymunit ingest studies/ --labels labels.csv --out cohort/ --workers 8
  xraymunit ingest studies/ --out part/ --shard 3/16        # one job-array task
  xraymunit ingest --merge part/ --labels labels.csv --out part/   # after all 16 finished
  xraymunit ingest studies/ --out cohort/ --spacing-mm 0.5  # same physical pixel size for every scanner
exit status: 0 ok, 1 nothing could be ingested, 2 bad arguments or input, 130 interrupted (Ctrl-C),
143 stopped by SIGTERM (what is journalled is kept: rerun to resume).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from xraymunit.ingestion.options import IngestOptions
    from xraymunit.options import add_options

    p = subparsers.add_parser("ingest", help="DICOM/PNG folder → cohort (manifest + image cache)",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(p, IngestOptions)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xraymunit.cli import precheck
    from xraymunit.ingestion.options import IngestOptions
    from xraymunit.options import from_args

    options = from_args(IngestOptions, args)
    if options.merge is None and options.input_dir is not None:  # typos answered before torch is imported
        precheck.input_folder(options.input_dir)
    if options.labels is not None:
        precheck.existing_file(options.labels, "labels file")

    from xraymunit.ingestion import IngestError, ingest, merge

    if options.merge is not None:
        if options.input_dir is not None:
            raise IngestError("give either DICOM_DIR or --merge SHARD_DIR..., not both")
        if options.shard is not None:
            raise IngestError("--shard and --merge exclude each other: run the shards first, then merge")
        result = merge(options=options)
    else:
        result = ingest(options=options)
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
