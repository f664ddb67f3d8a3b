"""Fig. 1's learning rates, chosen on the validation split: "the learning rates for each network were chosen
independently to make training as fast as possible" (Sec. 3.1); the paper does not say how.

    python CNN/alexnet/experiments/lr_sweep.py --amp                      # both activations, the default grid
    python CNN/alexnet/experiments/lr_sweep.py --activation tanh --lr-grid 0.03 0.1 --out DIR   # extend a grid
    python CNN/alexnet/experiments/lr_sweep.py --quick                    # seconds: a tiny subset, one epoch

One run of the four-layer net per (activation, learning rate), seed --seed, --sweep-epochs epochs on the 45,000
training images; the rate with the lowest error on the 5,000 validation images after that budget wins (a rate
whose loss becomes NaN counts as diverged). The chosen rates are ``DEFAULT_LR`` in ``train.py``.

Writes ``<out>/experiments/lr_sweep/lr_sweep.json``: the criterion, the grid, a summary line per run, the
chosen rates, and under ``records`` each run's run.json and per-epoch history (10 chunk errors per epoch).
Each run works in ``<out>/experiments/lr_sweep/runs/<activation>-lr<lr>/`` (--resume reads finished ones back).
"""

from __future__ import annotations

import json
import math
import sys

from common.cli import Run, positive_float, positive_int, run
from common.results import command_line
from common.training import describe_device, write_json
from CNN.alexnet.train import ACTIVATIONS, PAPER_DIR, fig1_parser, load_data, train_run

LR_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
SWEEP_EPOCHS = 4


def parse_args(argv=None):
    p = fig1_parser(__doc__.split("\n")[0])
    p.add_argument("--lr-grid", type=positive_float, nargs="+", default=list(LR_GRID), help="learning rates to sweep")
    p.add_argument("--sweep-epochs", type=positive_int, default=SWEEP_EPOCHS, help="epochs per run")
    p.epilog = "--epochs and --lr do not apply here (--sweep-epochs, --lr-grid)."
    return p.parse_args(argv)


def choose(runs: list[dict]) -> dict[str, float]:
    """Per activation, the learning rate with the lowest validation error (diverged runs count as inf)."""
    def error(r):
        return math.inf if r["val_error_pct"] is None else r["val_error_pct"]

    best: dict[str, dict] = {}
    for r in runs:
        if r["activation"] not in best or error(r) < error(best[r["activation"]]):
            best[r["activation"]] = r
    return {act: r["lr"] for act, r in best.items()}


def finite(record: dict) -> dict:
    """JSON-safe: a diverged run's infinite validation error becomes None."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def train(r: Run) -> int:
    args = r.args
    data, stats = load_data(args)
    epochs, grid = (1, args.lr_grid[:2]) if args.quick else (args.sweep_epochs, args.lr_grid)
    activations = ACTIVATIONS if args.activation == "both" else (args.activation,)
    out = r.out / "experiments" / "lr_sweep"
    print(f"{len(data.train_y)} training images, {len(data.val_y)} validation, device {describe_device(r.device)}")
    runs, records = [], {}
    for act in activations:
        for lr in grid:
            name = f"{act}-lr{lr:g}"
            result = train_run(act, args.seed, lr, data, stats, args, out / "runs" / name, r.device, epochs=epochs,
                               stop_at_target=False, save_model=False)
            (out / "runs" / name / "checkpoint.pt").unlink(missing_ok=True)   # run.json holds the result
            history = out / "runs" / name / "history.json"
            records[name] = {"run": finite(result),
                             "history": json.loads(history.read_text()) if history.exists() else None}
            runs.append({k: result.get(k) for k in ("activation", "lr", "diverged", "val_error_pct",
                                                    "last_chunk_train_error_pct", "crossed_at_epoch")})
    chosen = choose(runs)
    write_json({"criterion": f"lowest validation error after {epochs} epochs", "grid": grid, "epochs": epochs,
                "seed": args.seed, "train_images": len(data.train_y), "val_images": len(data.val_y), "amp": args.amp,
                "pixel_scale": args.pixel_scale, "runs": [finite(x) for x in runs], "chosen": chosen,
                "command": command_line(), "commit": r.commit, "device": describe_device(r.device), "records": records},
               out / "lr_sweep.json")
    print(f"chosen learning rates {chosen} (DEFAULT_LR in CNN/alexnet/train.py); sweep in {out / 'lr_sweep.json'}")
    return 0


def main(argv=None) -> int:
    return run(train, parse_args(argv), PAPER_DIR)


if __name__ == "__main__":
    sys.exit(main())
