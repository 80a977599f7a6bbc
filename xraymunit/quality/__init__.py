"""The quality instrument: how good are the synthetic images, during training and in a study?

One module per job (none imported here: `quality_csv` needs no torch, and `import
xraymunit.quality` stays as cheap as the CLI's argument checks need it to be):

- `judge`: the cohort's normal-vs-abnormal classifier, trained once on real train images; every
  judged number (translation success, FD/KID, LPIPS-style distances) is measured with it.
- `image_metrics`: the metrics themselves (Fréchet distance, KID, LPIPS-style, MS-SSIM,
  memorisation), each with its real-image yardstick.
- `training_monitor`: quality tracked while the generator trains (`QualityMonitor`, every
  `train.quality_every` steps, on fixed val images).
- `quality_csv`: what the monitor writes and what reads it back: quality.csv's columns, the
  best.pt score, the curves figure, a run's summary. No torch.
- `synthetic_set`: the metrics applied to one synthetic set (picks images, pairs them up).
- `study_section`: the quality part of `evaluate`'s study: judge, reference images,
  `synthetic_set.assess` and translation success.
"""
