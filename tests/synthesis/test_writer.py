"""writer.py: atomic PNG/DICOM writes at the planned paths, manifest rows, links refused, bounded queue."""

import collections
import subprocess
import sys
from concurrent.futures import Future
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image

from xraymunit.io import outdir
from xraymunit.synthesis.plan import Output, RunIdentity
from xraymunit.synthesis.writer import Writer, output_spacing, wait_bounded, write_manifest

RUN = RunIdentity("ab" * 32, 7, "a2b", "normal", "abnormal", "random", 3, 16, ("png", "dicom"))
SRC = SimpleNamespace(image_key="k1", patient_key="p1", split="train", source_dataset="site_a", cache_index=0,
                      spacing_row_mm=0.2, spacing_col_mm=0.2, rows=800, columns=1000)


def _outputs(n):
    return [Output(j, np.full(8, j, np.float32), {}, f"key{j}",
                   {"png": f"images/k1/key{j}.png", "dicom": f"images/k1/key{j}.dcm"}) for j in range(n)]


def test_writes_both_formats_and_the_rows_name_them(tmp_path):
    outputs = _outputs(2)
    images = np.stack([np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)] * 2)
    with Writer(tmp_path, RUN) as writer:
        futures = writer.write(SRC, outputs, images)
        rows = writer.rows(SRC, outputs)
    assert len(futures) == 4 and all(f.done() for f in futures)
    with Image.open(tmp_path / "images/k1/key1.png") as im:
        png = np.asarray(im)
    assert png.dtype == np.uint16 and png[0, 0] == 0 and png[-1, -1] == 65535
    ds = pydicom.dcmread(tmp_path / "images/k1/key0.dcm")
    assert ds.Rows == 16 and ds.ConversionType == "SYN"
    assert [r["synth_key"] for r in rows] == ["key0", "key1"] and rows[1]["style"] == [1.0] * 8
    assert rows[0]["png_path"] == "images/k1/key0.png" and rows[0]["dicom_path"] == "images/k1/key0.dcm"
    assert (rows[0]["intended_label"], rows[0]["seed"], rows[0]["checkpoint_step"]) == ("abnormal", 3, 7)
    manifest = write_manifest(tmp_path, rows)
    assert pd.read_parquet(tmp_path / "manifest.parquet")["synth_key"].tolist() == manifest["synth_key"].tolist()
    assert not list(tmp_path.rglob(".*tmp*"))


def test_written_lists_only_outputs_with_every_file(tmp_path):
    outputs = _outputs(3)
    with Writer(tmp_path, RUN) as writer:
        writer.write(SRC, outputs[:2], np.zeros((2, 16, 16), np.float32))
    (tmp_path / outputs[1].rel["dicom"]).unlink()
    assert [o.j for o in writer.written(outputs)] == [0]


def test_a_process_without_the_claim_checks_links_itself(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out" / "images").mkdir(parents=True)
    (tmp_path / "out" / "images" / "k1").symlink_to(outside)
    with Writer(tmp_path / "out", RUN, check_links=True) as writer:
        with pytest.raises(outdir.UnsafeLinkError, match="symbolic link"):
            writer.write(SRC, _outputs(1), np.zeros((1, 16, 16), np.float32))
    assert list(outside.iterdir()) == []


def test_wait_bounded_waits_for_the_oldest():
    queue = collections.deque(Future() for _ in range(5))
    for f in list(queue)[:3]:
        f.set_result(None)
    wait_bounded(queue, limit=2)
    assert len(queue) == 2


def test_output_spacing_scales_the_padded_side():
    assert output_spacing(SRC, 16) == pytest.approx(1000 * 0.2 / 16)
    assert output_spacing(SimpleNamespace(spacing_row_mm=float("nan"), spacing_col_mm=0.2, rows=1, columns=1), 16) is None


_CONCURRENT_FIRST_IMPORTS = """
import sys, threading
from pathlib import Path
import numpy as np
assert "pydicom" not in sys.modules
from xraymunit.io import export
from xraymunit.synthesis.writer import Writer
out = Path(sys.argv[1])
start = threading.Barrier(3)
prov = export.Provenance("k", "ab" * 32, 1, "a2b", "random", 0, 0, "abnormal")
def write(i):
    start.wait()
    export.write_dicom(out / f"{i}.dcm", np.zeros((8, 8), np.float32), prov, study_entropy="s", series_entropy="e")
with Writer(out, None) as writer:
    futures = [writer._pool.submit(write, i) for i in range(2)]
    start.wait()
    import pydicom.uid  # the main thread's own first import, racing the writers'
    for f in futures:
        f.result()
print("wrote", len(list(out.glob("*.dcm"))))
"""


def test_writer_threads_survive_a_concurrent_first_import_of_pydicom(tmp_path):
    """Regression (CI, torchrun synthesis): a writer thread's first import of pydicom raced another
    thread's, and the write failed with "partially initialized module 'pydicom'". Without the
    Writer's up-front import this script failed 20 times in 20."""
    done = subprocess.run([sys.executable, "-c", _CONCURRENT_FIRST_IMPORTS, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "wrote 2"
