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

Modules: `options` (every option, declared once), `settings` (the fingerprinted subset,
results, errors), `rules` (which files are ingested), `demographics` (manifest facts),
`keys` (salt, pseudonymous keys), `labels` (labels CSV), `splits` (patient splits),
`walk` (files, shards), `journal` (resume state), `entries` (cache entries in append-only
segments), `per_file` (one file's work, worker processes), `stage` (the run), `finish`
(finalize), `shards` (merge).
`--shard I/N` runs steps 1-3 on a stable hash partition of the files; `merge()` runs
step 4 over several shard folders. Memory stays flat: pixel arrays live only inside a
worker for the time of one image.
"""

from __future__ import annotations

from xraymunit.lazy import exports

# exported lazily: `ingestion.options` (read by the CLI for --help) must not import pandas or pydicom;
# the modules are named apart from these functions, so no submodule shadows one
_EXPORTS = {
    "IngestError": "settings", "IngestResult": "settings", "IngestSettings": "settings", "IngestOptions": "options",
    "decode_file": "per_file", "scan_file": "per_file", "tune_allocator": "per_file", "discover": "walk",
    "in_shard": "walk", "parse_shard": "walk", "finalize": "finish", "ingest": "stage", "merge": "shards",
}
__all__ = sorted(_EXPORTS)
__getattr__ = exports(__name__, _EXPORTS)
