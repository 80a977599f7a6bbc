"""Images as data: the ingest pixel chain (`transforms`), the training loader (`datasets`), and
cohort/synthetic images as MONAI-style dicts for your own loop (`CohortDataset`,
`SyntheticDataset`, `mix`, imported on first use: `import xraymunit.data` loads no torch)."""

from __future__ import annotations

from xraymunit.lazy import exports

_EXPORTS = {"CohortDataset": "dict_datasets", "SyntheticDataset": "dict_datasets", "MixedDataset": "dict_datasets",
            "mix": "dict_datasets"}
__all__ = sorted(_EXPORTS)
__getattr__ = exports(__name__, _EXPORTS)
