"""Ingest throughput and memory: `xraymunit ingest` vs the bare decode-and-resize loop.

    python benchmarks/ingest.py [--n 200] [--repeats 3] [--rss-files 2000] [--work DIR]

1. Writes 1024×1024 12-bit DX files (uncompressed and JPEG 2000 lossless) made from the
   real radiographs of the bundled sample (upsampled, with detector-like noise) into an
   ignored work folder (default benchmarks/results/work).
2. For each syntax, in one run and interleaved (the machine may be shared, so every ratio
   compares numbers taken minutes apart at most), `repeats` times:
   - bare loop: `pydicom.dcmread(path).pixel_array` + the same area resize, one process,
     no MONAI, no writes; and the same loop split over 2 processes (what 2 cores give the
     pixel work itself: the ceiling for ingest's 2-worker scaling);
   - `ingest(workers=1)` and `ingest(workers=2)` into a fresh cohort (walk, header pass,
     MONAI chain, cache entries, journal, manifest, cache pack — everything).
   Medians are reported as images/s and as ratios to the bare loop.
3. Peak RSS of the whole process tree (main + workers) while ingesting `rss-files` files
   (hard links to the uncompressed set), sampled every 0.1 s against the number of files
   done, for 1/4 of them and for all of them: flat means memory does not grow with count.

Results are printed and written to benchmarks/results/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

HERE = Path(__file__).resolve().parent
SIZE = 1024
OUT_SIZE = 256


# ------------------------------------------------------------------ data

def source_images() -> list[np.ndarray]:
    """Display images in [0, 1] of the bundled sample (real NIH radiographs)."""
    from xraymunit import sample_data
    from xraymunit.data.transforms import ingest_transforms

    chain = ingest_transforms(size=256, header_key=None)
    files = sorted(p for p in sample_data.path().rglob("*") if p.is_file())[:20]
    return [chain({"image": str(p)})["image"][0] for p in files]


def make_dicom(display: np.ndarray, index: int, syntax: str, rng: np.random.Generator) -> Dataset:
    big = np.asarray(Image.fromarray(display.astype(np.float32), mode="F").resize((SIZE, SIZE), Image.Resampling.BICUBIC))
    stored = np.clip(200 + big * 3600 + rng.normal(0, 6, big.shape), 0, 4095).astype(np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = str(generate_uid(entropy_srcs=[syntax, str(index)]))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Modality, ds.Manufacturer, ds.BodyPartExamined, ds.ViewPosition = "DX", "Bench", "CHEST", "PA"
    ds.PatientID = f"BENCH{index % 50:03d}"
    ds.PatientSex, ds.PatientAge = "F", "050Y"
    ds.StudyInstanceUID = str(generate_uid(entropy_srcs=["study", ds.PatientID]))
    ds.SeriesInstanceUID = str(generate_uid(entropy_srcs=["series", ds.PatientID]))
    ds.ImagerPixelSpacing = [0.143, 0.143]
    ds.Rows = ds.Columns = SIZE
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = "2048", "4096"
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OW"
    if syntax == "j2k":
        ds.compress(JPEG2000Lossless, stored, generate_instance_uid=False)
    return ds


def write_set(folder: Path, n: int, syntax: str) -> list[Path]:
    """n files (cached between runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"P{i % 50:03d}" / f"IM{i:05d}" for i in range(n)]
    if all(p.exists() for p in paths):
        return paths
    sources = source_images()
    rng = np.random.default_rng(0)
    for i, p in enumerate(paths):
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            make_dicom(sources[i % len(sources)], i, syntax, rng).save_as(p, enforce_file_format=True)
    return paths


# ------------------------------------------------------------------ measurements

def cpu_seconds() -> float:
    """CPU time of this process plus its finished (joined) children: robust to a shared machine."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


CPU_MS: dict[str, list[float]] = {}


def bare_loop(paths: list[Path]) -> float:
    """images/s of pydicom decode + the same area resize, nothing else."""
    from xraymunit.data.transforms import area_resize

    c, t = cpu_seconds(), time.perf_counter()
    for p in paths:
        arr = pydicom.dcmread(p).pixel_array
        area_resize(arr.astype(np.float32), OUT_SIZE)
    CPU_MS.setdefault("bare", []).append((cpu_seconds() - c) / len(paths) * 1e3)
    return len(paths) / (time.perf_counter() - t)


def _bare_chunk(chunk: list[Path]) -> int:
    from xraymunit.data.transforms import area_resize

    for p in chunk:
        area_resize(pydicom.dcmread(p).pixel_array.astype(np.float32), OUT_SIZE)
    return len(chunk)


def bare_loop_2proc(paths: list[Path], pool) -> float:
    """images/s of the bare loop split over 2 processes: what this machine's 2 cores give the
    pixel work itself (the ceiling for ingest's 2-worker scaling)."""
    t = time.perf_counter()
    step = max(1, len(paths) // 16)  # small chunks: both processes stay busy to the end
    done = sum(pool.map(_bare_chunk, [paths[i:i + step] for i in range(0, len(paths), step)]))
    assert done == len(paths)
    return len(paths) / (time.perf_counter() - t)


def ingest_rate(src: Path, n: int, workers: int) -> float:
    from xraymunit.ingestion import ingest

    with tempfile.TemporaryDirectory(dir=HERE / "results") as tmp:
        c, t = cpu_seconds(), time.perf_counter()
        result = ingest(src, Path(tmp) / "cohort", size=OUT_SIZE, workers=workers, progress=False)
        elapsed = time.perf_counter() - t
        CPU_MS.setdefault(f"w{workers}", []).append((cpu_seconds() - c) / n * 1e3)
    assert result.images == n, result.by_reason
    return n / elapsed


def throughput(src: Path, paths: list[Path], repeats: int) -> dict:
    CPU_MS.clear()
    runs = {"bare": [], "bare_2proc": [], "w1": [], "w2": []}
    import multiprocessing as mp

    from xraymunit.ingestion import tune_allocator

    with mp.get_context("fork").Pool(2, initializer=tune_allocator) as pool:
        for _ in range(repeats):  # interleaved: a busy spell hits all of them alike
            runs["bare"].append(bare_loop(paths))
            runs["bare_2proc"].append(bare_loop_2proc(paths, pool))
            runs["w1"].append(ingest_rate(src, len(paths), 1))
            runs["w2"].append(ingest_rate(src, len(paths), 2))
    med = {k: statistics.median(v) for k, v in runs.items()}
    ratio_w1 = [a / b for a, b in zip(runs["w1"], runs["bare"])]
    ratio_w2 = [a / b for a, b in zip(runs["w2"], runs["bare"])]
    return {
        "files": len(paths), "images_per_s": {k: round(v, 1) for k, v in med.items()},
        "ratio_ingest_w1_to_bare": round(statistics.median(ratio_w1), 3),
        "ratio_ingest_w2_to_bare": round(statistics.median(ratio_w2), 3),
        "scaling_w2_over_w1": round(med["w2"] / med["w1"], 3),
        "scaling_bare_2proc_over_bare": round(med["bare_2proc"] / med["bare"], 3),
        "runs": {k: [round(x, 1) for x in v] for k, v in runs.items()},
        # CPU ms per image (all processes): the pixel work ingest adds, and whether a second
        # worker adds overhead — independent of how busy the shared cores were
        "cpu_ms_per_image": {k: round(statistics.median(v), 2) for k, v in CPU_MS.items()},
    }


RSS_CHILD = """
import sys
from xraymunit.ingestion import ingest
ingest(sys.argv[1], sys.argv[2], workers=int(sys.argv[3]), progress=False)
"""


def rss_profile(src: Path, n: int, workers: int) -> dict:
    """Run ingest in a child process; sample the tree's RSS against files journalled."""
    with tempfile.TemporaryDirectory(dir=HERE / "results") as tmp:
        out = Path(tmp) / "cohort"
        proc = subprocess.Popen([sys.executable, "-c", RSS_CHILD, str(src), str(out), str(workers)])
        journal = out / "private" / "journal.jsonl"
        samples = []
        ps = psutil.Process(proc.pid)
        t0 = time.perf_counter()
        while proc.poll() is None:
            try:
                main = ps.memory_info().rss
                kids = sum(c.memory_info().rss for c in ps.children(recursive=True))
            except psutil.Error:
                break
            done = 0
            if journal.exists():
                with open(journal, "rb") as fp:
                    done = sum(1 for line in fp if b'"type":"image"' in line)
            samples.append((round(time.perf_counter() - t0, 1), done, main >> 20, kids >> 20))
            time.sleep(0.1)
        assert proc.wait() == 0
    peak_main = max(s[2] for s in samples)
    peak_total = max(s[2] + s[3] for s in samples)
    quarter = [s for s in samples if 0 < s[1] <= n // 4]
    late = [s for s in samples if s[1] >= 3 * n // 4]
    points = [s for s in samples if s[1] > 0]
    picks = [points[int(i * (len(points) - 1) / 8)] for i in range(9)] if points else []
    return {
        "files": n, "workers": workers,
        "peak_rss_mb_main": peak_main, "peak_rss_mb_total": peak_total,
        "peak_rss_mb_total_first_quarter": max((s[2] + s[3] for s in quarter), default=None),
        "peak_rss_mb_total_last_quarter": max((s[2] + s[3] for s in late), default=None),
        "samples_seconds_done_mainMB_workersMB": picks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="files per throughput set")
    parser.add_argument("--n-j2k", type=int, default=40, help="files in the JPEG 2000 set (decode is ~50x slower)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rss-files", type=int, default=2000)
    parser.add_argument("--work", type=Path, default=HERE / "results" / "work")
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()
    (HERE / "results").mkdir(exist_ok=True)
    import torch

    from xraymunit.ingestion import tune_allocator

    torch.set_num_threads(1)
    # ingest raises glibc's mmap/trim thresholds in its processes (see tune_allocator); do it
    # up front so the bare loop runs with the same allocator and the ratio compares pixel work.
    allocator_tuned = tune_allocator()
    results = {
        "machine": machine(),
        "image": f"{SIZE}x{SIZE} 12-bit DX → {OUT_SIZE}x{OUT_SIZE}",
        "allocator_tuned_for_both": allocator_tuned,
    }
    for syntax, n in (("uncompressed", args.n), ("j2k", args.n_j2k)):
        folder = args.work / f"{syntax}_{n}"
        paths = write_set(folder, n, "j2k" if syntax == "j2k" else "native")
        print(f"[{syntax}] {n} files; measuring ({args.repeats} interleaved repeats)…", flush=True)
        results[syntax] = throughput(folder, paths, args.repeats)
        print(json.dumps(results[syntax], indent=1), flush=True)
    if not args.skip_rss:
        big = args.work / f"rss_{args.rss_files}"
        if not big.exists():
            base = write_set(args.work / f"uncompressed_{args.n}", args.n, "native")
            for i in range(args.rss_files):
                target = big / f"P{i % 97:03d}" / f"IM{i:05d}"
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(base[i % len(base)], target)
        quarter = args.work / f"rss_{args.rss_files // 4}"
        if not quarter.exists():
            shutil.copytree(big, quarter, copy_function=os.link,
                            ignore=lambda d, names: [n for n in names if n.startswith("IM") and int(n[2:]) >= args.rss_files // 4])
        print(f"[rss] {args.rss_files // 4} and {args.rss_files} files, 2 workers…", flush=True)
        results["rss"] = {"quarter": rss_profile(quarter, args.rss_files // 4, 2), "full": rss_profile(big, args.rss_files, 2)}
        print(json.dumps(results["rss"], indent=1), flush=True)
    results["load_avg_at_end"] = os.getloadavg()
    path = HERE / "results" / "ingest.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
