"""`xraymunit ingest`: a folder of DICOM (or PNG/JPEG) radiographs → a private, analysable cohort.

Stages of one run, each resumable from the journal in `cohort/private/`:

1. walk   — every file under the input folder, sorted (plus files a DICOMDIR lists).
2. header — read headers only; classify (ok / skipped / failed + reason); journal it.
3. decode — the MONAI chain of `xraymunit.data.transforms` over `workers` processes; each
            process appends its images to its own segment in `private/entries/` (see
            `entries`); the main process journals the outcome (which makes an entry exist).
            Rerunning skips every file already journalled unchanged.
4. finalize — labels, pseudonymous keys, patient-level splits, then the cache
            (`cache/images.npy`, uint16 memmap), `manifest.parquet`, `ingest_report.json`.

Modules: `settings` (options, results, errors), `walk` (files, shards), `journal` (resume
state), `entries` (cache entries in append-only segments), `per_file` (one file's work,
worker processes), `stage` (the run), `finalize`, `merge`. `--shard I/N` runs steps 1-3 on a stable hash partition of the files; `merge()` runs
step 4 over several shard folders. Memory stays flat: pixel arrays live only inside a
worker for the time of one image.
"""

from __future__ import annotations

from xraymunit.ingestion.finalize import finalize
from xraymunit.ingestion.merge import merge
from xraymunit.ingestion.per_file import decode_file, scan_file, tune_allocator
from xraymunit.ingestion.settings import IngestError, IngestResult, IngestSettings
from xraymunit.ingestion.stage import ingest
from xraymunit.ingestion.walk import discover, in_shard, parse_shard

__all__ = ["IngestError", "IngestResult", "IngestSettings", "decode_file", "discover", "finalize", "in_shard",
           "ingest", "merge", "parse_shard", "scan_file", "tune_allocator"]
