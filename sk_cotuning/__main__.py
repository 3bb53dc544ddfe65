"""Command line: ``python -m sk_cotuning`` (or ``sk-cotuning``) runs the main job.

Co-Tuning vs plain fine-tuning on the UCI digits with the bundled glyph
source model: offline, a few minutes on 2 CPU cores.  See ``--help``.
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


def main(argv: list[str] | None = None) -> int:
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
