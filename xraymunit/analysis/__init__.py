"""What the notebooks need, so they import xraymunit and define nothing themselves.

Every function reads the stage outputs through `xraymunit.io.cohort` (the public readers),
returns a pandas table or a matplotlib Figure (made without pyplot, so it works under any
backend, Agg included), and never imports torch.

    from xraymunit import analysis as xa
    run = xa.open_run("runs/default")          # cohort/ (+ synth/, report/ when present)
    xa.balance(run.cohort, by="split")          # images per label, patients, abnormal share
    xa.real_montage(run.cohort)                 # a Figure
    xa.export_review_sheet(run.cohort, run.synth, "review/", n_real=20, n_synthetic=20)
"""

from xraymunit.analysis.cohort_tables import (age_by_label, balance, ingest_problems, metadata_by_label,
                                              problem_list)
from xraymunit.analysis.figures import (intensity_histograms, metadata_figure, real_montage, source_and_styles,
                                        synthetic_grid)
from xraymunit.analysis.intensity import image_intensity, intensity_by_label, sample_per_label
from xraymunit.analysis.report import classifier_table, load_metrics, quality_table
from xraymunit.analysis.review import ReviewExport, export_review_sheet, review_results
from xraymunit.analysis.run import Run, open_run, run_folder
from xraymunit.analysis.training import judges, training_quality, training_quality_figure, training_runs
from xraymunit.analysis.synthetic import filter_synthetic, pick_sources, synthetic_summary, with_sources
from xraymunit.confounds import domain_profile, shortcut_table, shortcut_test
from xraymunit.confounds import warnings as shortcut_warnings

__all__ = [
    "Run", "open_run", "run_folder",
    "balance", "metadata_by_label", "age_by_label", "ingest_problems", "problem_list",
    "sample_per_label", "image_intensity", "intensity_by_label",
    "real_montage", "metadata_figure", "intensity_histograms", "synthetic_grid", "source_and_styles",
    "synthetic_summary", "filter_synthetic", "pick_sources", "with_sources",
    "load_metrics", "quality_table", "classifier_table",
    "ReviewExport", "export_review_sheet", "review_results",
    "domain_profile", "shortcut_test", "shortcut_table", "shortcut_warnings",
    "judges", "training_runs", "training_quality", "training_quality_figure",
]
