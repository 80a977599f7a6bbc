"""The run cache (OUT/runs/): a finished run is reused only under the same fingerprint; damage is recomputed."""

import numpy as np

from xraymunit.evaluation.runcache import RunCache, digest, fingerprint


def _run(seed=0, arm="classical+synthetic"):
    return {"level": "5", "arm": arm, "seed": seed, "best_step": np.int64(7), "val_auroc": np.float32(0.75),
            "threshold": 0.4, "history": [{"step": 7, "val_auroc": 0.75}],
            "_val_scores": np.linspace(0, 1, 6, dtype=np.float32), "_test_scores": np.arange(4, dtype=np.float32)}


def test_fingerprint_is_stable_and_keyed_by_every_part():
    parts = {"classifier": {"steps": 10}, "seed": 0, "real_abnormal": digest(["b", "a"])}
    assert fingerprint(parts) == fingerprint(dict(reversed(list(parts.items()))))  # key order does not matter
    assert digest(["a", "b"]) == digest(["b", "a"]) != digest(["a", "c"])  # a set of image keys
    assert fingerprint({**parts, "seed": 1}) != fingerprint(parts)
    assert fingerprint({**parts, "classifier": {"steps": 11}}) != fingerprint(parts)


def test_hit_returns_the_saved_scores_and_record(tmp_path):
    cache, fp = RunCache(tmp_path / "runs"), fingerprint({"x": 1})
    cache.save(_run(), fp)
    assert (tmp_path / "runs" / "5__classical_plus_synthetic__seed0.npz").is_file()
    hit = cache.load("5", "classical+synthetic", 0, fp)
    assert hit["best_step"] == 7 and hit["val_auroc"] == 0.75 and hit["fingerprint"] == fp
    assert np.array_equal(hit["_val_scores"], _run()["_val_scores"])
    assert np.array_equal(hit["_test_scores"], _run()["_test_scores"])
    assert cache.load("5", "classical+synthetic", 1, fp) is None  # another seed: another entry


def test_changed_config_misses_and_the_new_run_replaces_the_old(tmp_path):
    cache = RunCache(tmp_path / "runs")
    old, new = fingerprint({"classifier": {"steps": 10}}), fingerprint({"classifier": {"steps": 20}})
    cache.save(_run(), old)
    assert cache.load("5", "classical+synthetic", 0, new) is None
    changed = {**_run(), "best_step": 20}
    cache.save(changed, new)
    assert cache.load("5", "classical+synthetic", 0, new)["best_step"] == 20
    assert cache.load("5", "classical+synthetic", 0, old) is None


def test_corrupt_entry_is_ignored_then_recomputed(tmp_path):
    cache, fp = RunCache(tmp_path / "runs"), fingerprint({"x": 1})
    cache.save(_run(), fp)
    path = tmp_path / "runs" / "5__classical_plus_synthetic__seed0.npz"
    path.write_bytes(path.read_bytes()[:40])  # truncated by a crash or a full disk
    assert cache.load("5", "classical+synthetic", 0, fp) is None
    path.write_bytes(b"not an npz at all")
    assert cache.load("5", "classical+synthetic", 0, fp) is None
    cache.save(_run(), fp)  # the recomputed run is stored again and found
    assert cache.load("5", "classical+synthetic", 0, fp)["best_step"] == 7


def test_disabled_cache_never_hits_but_still_saves(tmp_path):
    fp = fingerprint({"x": 1})
    RunCache(tmp_path / "runs", enabled=False).save(_run(), fp)
    assert RunCache(tmp_path / "runs", enabled=False).load("5", "classical+synthetic", 0, fp) is None
    assert RunCache(tmp_path / "runs").load("5", "classical+synthetic", 0, fp) is not None
