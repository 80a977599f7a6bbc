"""`xraymunit synthesize`: checkpoint + cohort → many target-domain images per source image."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Translate each source-domain image of a cohort split into many target-domain images "
    "(one per style code) and write them with a provenance manifest (synth/manifest.parquet). "
    "The networks are rebuilt from the checkpoint alone. Rerunning with the same arguments "
    "resumes: images already written are skipped."
)


def register(subparsers) -> None:
    p = subparsers.add_parser("synthesize", help="generate many synthetic images per source image",
                              description=DESCRIPTION)
    p.add_argument("--checkpoint", required=True, help="a checkpoint from `xraymunit train`: a file (e.g. runs/x/checkpoints/last.pt), "
                        "RUN/best (the best by quality tracking), RUN/last, or a run folder (best if saved, else last)")
    p.add_argument("--cohort", required=True, help="the cohort folder the source images come from")
    p.add_argument("--out", required=True, help="output folder (images/, manifest.parquet, synthesis.json)")
    p.add_argument("--n-styles", type=int, default=20,
                   help="random style codes per source image, drawn from the N(0, I) prior (default 20, "
                        "at most 1000)")
    p.add_argument("--split", default="train", choices=["train", "val", "test", "all"],
                   help="cohort split of the source images (default train: the images a classifier may train on)")
    p.add_argument("--direction", default="a2b", choices=["a2b", "b2a"],
                   help="a2b: domain_a → domain_b of the training config, e.g. normal → abnormal (default)")
    p.add_argument("--seed", type=int, default=0, help="fixes every style code (default 0)")
    p.add_argument("--reference", nargs="+", default=[], metavar="IMAGE_OR_DICOM",
                   help="take the style from these real target-domain images instead of random codes "
                        "(one output per reference per source)")
    p.add_argument("--interpolate", type=int, default=0, metavar="K",
                   help="write K images along a spherical (slerp) path between two random styles per source, "
                        "for review")
    p.add_argument("--format", default="png", choices=["png", "dicom", "both"],
                   help="png: 16-bit grayscale PNG; dicom: Secondary Capture with new UIDs and no source "
                        "patient data; both (default png)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="styles decoded per network call (default: 20 on a GPU; on a CPU 2 at 256², more for "
                        "smaller images, which keeps the activations in cache)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                   help="auto: bf16 on CUDA and on CPUs with native bf16 (~2x faster), else fp32")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the rendering first: ~1 min of compiling, then 1.0-1.1x faster on a "
                        "2-core CPU (renders one image at a time; for thousands of images)")
    p.add_argument("--render-threads", type=int, default=None, metavar="T",
                   help="source images rendered at once, one thread each (default: on a CPU as many as torch "
                        "has threads, up to 8, each op on one core; 1 on a GPU or with --compile); images do not "
                        "depend on it")
    p.add_argument("--limit", type=int, default=None, metavar="M",
                   help="only the first M source images (M >= 1; default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xraymunit.synthesis.stage import synthesize

    formats = ("png", "dicom") if args.format == "both" else (args.format,)
    result = synthesize(args.checkpoint, args.cohort, args.out, n_styles=args.n_styles, split=args.split,
                        direction=args.direction, seed=args.seed, references=args.reference,
                        interpolate=args.interpolate, formats=formats, batch_size=args.batch_size,
                        device=args.device, precision=args.precision, compile=args.compile, limit=args.limit,
                        render_threads=args.render_threads, show_progress=not args.no_progress)
    print(f"{len(result.manifest)} synthetic images in {result.out} ({result.generated} new, "
          f"{result.skipped} already there) in {result.seconds:.1f}s; manifest: {result.out / 'manifest.parquet'}")
    return 0
