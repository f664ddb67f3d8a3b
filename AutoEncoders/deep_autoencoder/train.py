"""Pretrain a stack of RBMs on MNIST, unroll it into a deep autoencoder and fine-tune it
(Hinton & Salakhutdinov 2006, Fig. 1 and the SOM); compare with PCA (Fig. 2).

    python AutoEncoders/deep_autoencoder/train.py                 # the paper's recipe -> results/
    python AutoEncoders/deep_autoencoder/train.py --no-pretrain   # same net from random weights -> results/no-pretrain/
    python AutoEncoders/deep_autoencoder/train.py --quick         # seconds, tiny subset -> runs/
    python AutoEncoders/deep_autoencoder/train.py --evaluate AutoEncoders/deep_autoencoder/results/model.pt

Target (Fig. 2 caption): average squared reconstruction error per MNIST test image 3.00
(band <= 3.30); PCA with 30 components 13.87 (our PCA must land within +-0.3: a check of the metric).

Output folder: pretrain/ (the RBMs: checkpoint.pt after every pass, history.json, curves.png), then
the fine-tuning's checkpoint.pt, history.json, curves.png, model.pt and metrics.json. --resume reads
back a finished pretraining and continues the interrupted part from its checkpoint.pt.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from common.cli import Run, base_parser, positive_int, run
from common.data import TensorLoader, load_mnist, to_unit_float
from common.plots import plot_history
from common.results import metric, print_metrics
from common.summary import format_layer_table, layer_table
from common.training import (NonFiniteLossError, atomic_save, describe_device, evaluate, fit, load_weights,
                             restore_checkpoint, resume_checkpoint, save_checkpoint, write_json)
from AutoEncoders.deep_autoencoder.model import (MNIST_LAYERS, PCA, DeepAutoencoder, rbm_stack,
                                                 squared_error_per_image, unrolled_layers)

PAPER_DIR = Path(__file__).resolve().parent
PAPER = "Hinton & Salakhutdinov 2006, Reducing the Dimensionality of Data with Neural Networks"

# SOM, "Details of the pretraining": mini-batches of 100, 50 passes per layer, learning rate 0.1
# (0.001 for the RBM with linear hidden units, as in the authors' code), momentum 0.5 for the
# first 5 passes then 0.9, weight cost 0.0002.
RBM_LR = {"logistic": 0.1, "linear": 0.001}
MOMENTUM = (0.5, 0.9)
MOMENTUM_SWITCH = 5
WEIGHT_COST = 2e-4


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=50, batch_size=100, lr=1e-3, paper_dir=PAPER_DIR,
                    lr_help="initial Adam learning rate of fine-tuning (replaces the paper's conjugate gradient); "
                            "it decays to 0 along a cosine over the epochs")
    p.add_argument("--pretrain-epochs", type=positive_int, default=50, help="passes over the data per RBM (SOM: 50)")
    p.add_argument("--rbm-batch-size", type=positive_int, default=100, help="RBM mini-batch size (SOM: 100)")
    p.add_argument("--no-pretrain", action="store_true",
                   help="fine-tune the same net from random N(0, 0.1^2) weights (the paper's comparison)")
    p.add_argument("--layers", type=positive_int, nargs="+", default=list(MNIST_LAYERS),
                   help="layer sizes from the pixels to the code (Fig. 3 uses 784 1000 500 250 2)")
    p.add_argument("--n-val", type=positive_int, default=5000,
                   help="validation images carved from the END of the training set")
    p.add_argument("--pca-components", type=positive_int, default=None,
                   help="components of the PCA baseline (default: the code size)")
    p.add_argument("--evaluate", type=Path, default=None, metavar="MODEL_PT",
                   help="only evaluate a saved state_dict (of the net given by --layers) on the test set")
    args = p.parse_args(argv)
    if args.layers[0] != 784:
        p.error(f"--layers must start with 784 (the MNIST pixels), got {args.layers[0]}")
    if len(args.layers) < 2:
        p.error("--layers needs at least two sizes")
    if args.no_pretrain and args.out is None and not args.quick:
        args.out = PAPER_DIR / "results" / "no-pretrain"
    return args


def flat_pixels(images: torch.Tensor) -> torch.Tensor:
    return to_unit_float(images).flatten(1)


def reconstruction_step(model, batch):
    """Fine-tuning objective: the cross-entropy error of the logistic output units (paper, p. 505),
    summed over pixels and averaged over the batch; also the squared error of Fig. 2."""
    x = batch[0]
    logits = model(x)
    loss = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
    with torch.no_grad():
        sq = squared_error_per_image(x, torch.sigmoid(logits)).sum().item()
    return loss, {"n": len(x), "loss": loss.item() * len(x), "sq_err": sq}


def layer_summary(model: DeepAutoencoder) -> str:
    """Output size and parameters of each layer of the unrolled net (the paper gives no counts)."""
    return format_layer_table(layer_table(unrolled_layers(model), torch.zeros(1, model.layers[0])))


# --------------------------------------------------------------------------- greedy pretraining


def pretrain(rbms, data: torch.Tensor, args, out: Path, device, resume: bool = False) -> list[dict]:
    """Train the RBMs one after another (Fig. 1, left); each one's data are the hidden
    probabilities of the one below. After every pass: a line, ``out/checkpoint.pt`` (the common
    format, plus the RBM being trained and its momentum buffers) and ``out/history.json``.
    ``resume`` continues from the checkpoint, which gives the weights of an uninterrupted run."""
    ckpt_path = out / "checkpoint.pt"
    start_layer, start_epoch, history, incs = 0, 0, [], None
    if resume:
        ckpt = resume_checkpoint(ckpt_path, map_location=device)
        history = restore_checkpoint(ckpt, rbms)
        start_layer, start_epoch, incs = int(ckpt["layer"]), int(ckpt["epoch"]), ckpt["incs"]
        print(f"pretraining: resumed from {ckpt_path} after {len(history)} passes")
    v = data
    for k, rbm in enumerate(rbms):
        if k < start_layer:  # trained before the interruption: only its output is needed
            v = rbm.hidden_mean(v).detach() if start_layer < len(rbms) else v
            continue
        lr = RBM_LR[rbm.hidden]
        params = {"w": rbm.w, "b_vis": rbm.b_vis, "b_hid": rbm.b_hid}
        if incs is None or k != start_layer:
            incs = {name: torch.zeros_like(p) for name, p in params.items()}
        loader = TensorLoader(v, batch_size=args.rbm_batch_size, shuffle=True, seed=args.seed * 101 + k,
                              device=device, transform=None)
        name = f"RBM {k + 1}/{len(rbms)} {rbm.w.shape[0]}-{rbm.w.shape[1]}"
        for epoch in range(start_epoch if k == start_layer else 0, args.pretrain_epochs):
            loader.set_epoch(epoch)
            momentum = MOMENTUM[0] if epoch < MOMENTUM_SWITCH else MOMENTUM[1]
            t0, err, n = time.perf_counter(), 0.0, 0
            for (vb,) in tqdm(loader, desc=f"{name} pass {epoch + 1}/{args.pretrain_epochs}",
                              disable=args.no_progress, leave=False):
                grads, e = rbm.cd1(vb)
                with torch.no_grad():  # SOM: momentum, and weight cost on the weights only
                    for key, p in params.items():
                        g = grads[key] - WEIGHT_COST * p if key == "w" else grads[key]
                        incs[key].mul_(momentum).add_(g, alpha=lr)
                        p.add_(incs[key])
                err += e * len(vb)
                n += len(vb)
            if not torch.isfinite(rbm.w).all():
                kept = f"the last good checkpoint ({ckpt_path}) is kept" if ckpt_path.exists() else "nothing was saved"
                raise NonFiniteLossError(f"{name} diverged in pass {epoch + 1}; {kept}. Try a lower learning rate")
            rec = {"rbm": k + 1, "pass": epoch + 1, "recon_sq_err": err / n,
                   "time_s": round(time.perf_counter() - t0, 3)}
            history.append(rec)
            tqdm.write(f"{name} pass {epoch + 1}/{args.pretrain_epochs}  recon_sq_err {rec['recon_sq_err']:.4g}  "
                       f"({rec['time_s']:.1f} s)")
            last = epoch + 1 == args.pretrain_epochs
            save_checkpoint(ckpt_path, rbms, epoch=0 if last else epoch + 1, history=history,
                            layer=k + int(last), incs=incs)
            write_json(history, out / "history.json")
        v = rbm.hidden_mean(v).detach()
    return history


# --------------------------------------------------------------------------- results


def comparison(results: Path) -> dict | None:
    """Pretrained vs random start (the paper's point), from the two runs' metrics files."""
    rows = []
    for label, path in (("RBM pretraining (the paper)", results / "metrics.json"),
                        ("random start (--no-pretrain)", results / "no-pretrain" / "metrics.json")):
        if path.exists():
            rec = json.loads(path.read_text())
            minutes = rec.get("training_time_s", rec["wall_time_s"]) / 60
            rows.append([label, rec["hyperparameters"]["epochs"], rec["test_sq_err"], rec["train_sq_err"],
                         f"{minutes:.1f}", rec["commit"]])
    if not rows:
        return None
    return {"columns": ["start", "fine-tuning epochs", "test sq. error", "train sq. error", "minutes", "commit"],
            "rows": rows}


def refresh_comparison(results: Path) -> None:
    """Write the pretrained-vs-random table into the main record, whichever run finished last."""
    main_path = results / "metrics.json"
    if main_path.exists():
        rec = json.loads(main_path.read_text())
        rec["details"] = comparison(results)
        write_json(rec, main_path)


def evaluate_fix(model: DeepAutoencoder) -> str:
    layers = " ".join(map(str, model.layers))
    return f"pass a state_dict of DeepAutoencoder saved by train.py, with --layers {layers} as it was trained"


def train(r: Run) -> int:
    args, device, out = r.args, r.device, r.out
    layers = tuple(args.layers)
    if args.evaluate is not None:  # the file first: a bad one fails before the data are read
        model = DeepAutoencoder(layers).to(device)
        load_weights(model, args.evaluate, device, fix=evaluate_fix(model))
    data = load_mnist(args.data_dir, n_val=args.n_val)
    epochs = args.epochs
    if args.quick:
        data, epochs = data.subset(2000, 500, 500), min(args.epochs, 2)
        args.pretrain_epochs = min(args.pretrain_epochs, 2)
    test_loader = TensorLoader(data.test_x, batch_size=1000, device=device, transform=flat_pixels)

    if args.evaluate is not None:
        test = evaluate(model, test_loader, reconstruction_step, device)
        print(f"test squared error per image {test['sq_err']:.4f} on {len(data.test_x)} images ({args.evaluate})")
        return 0

    train_x = flat_pixels(data.train_x).to(device)
    pretrain_history = []
    if args.no_pretrain:
        model = DeepAutoencoder(layers).to(device)
    else:
        rbms = rbm_stack(layers).to(device)
        pretrain_history = pretrain(rbms, train_x, args, out / "pretrain", device, resume=r.resumes(out / "pretrain"))
        passes = [{"epoch": i + 1, "train_recon_sq_err": h["recon_sq_err"]} for i, h in enumerate(pretrain_history)]
        plot_history(passes, out / "pretrain" / "curves.png", keys=("recon_sq_err",))
        model = DeepAutoencoder.from_rbms(rbms).to(device)
    print(layer_summary(model))
    print(f"fine-tuning on {len(data.train_x)} images, validating on {len(data.val_x)}, "
          f"device {describe_device(device)}")
    train_loader = TensorLoader(data.train_x, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                                device=device, transform=flat_pixels)
    val_loader = TensorLoader(data.val_x, batch_size=1000, device=device, transform=flat_pixels)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    history = fit(model, optimizer, reconstruction_step, train_loader, epochs=epochs, val_loader=val_loader,
                  scheduler=scheduler, device=device, amp=args.amp, out=out, resume=r.resumes(),
                  curve_keys=("loss", "sq_err"), select="val_sq_err", progress=not args.no_progress,
                  desc="fine-tune")

    test = evaluate(model, test_loader, reconstruction_step, device)
    train_eval = evaluate(model, TensorLoader(data.train_x, batch_size=1000, device=device, transform=flat_pixels),
                          reconstruction_step, device)
    atomic_save(model.state_dict(), out / "model.pt")
    k = args.pca_components or layers[-1]
    pca = PCA(train_x.cpu(), k)
    test_x = flat_pixels(data.test_x)
    pca_err = squared_error_per_image(test_x, pca.reconstruct(test_x)).mean().item()
    pretrain_time = sum(h["time_s"] for h in pretrain_history)  # every pass, also those before a --resume
    fine_tune_time = sum(h["epoch_time_s"] for h in history)
    best = min(history, key=lambda h: h["val_sq_err"])
    net = "-".join(map(str, layers))
    claim = f"MNIST test squared reconstruction error per image, {net} autoencoder (Fig. 2)"
    metrics = [metric("test_sq_err", test["sq_err"], paper=3.00, band=(0.0, 3.30), split="test",
                      claim=claim + (", from random weights" if args.no_pretrain else ""),
                      **({"note": "random start: the paper's comparison, not its target"} if args.no_pretrain else {}))]
    metrics.append(metric(f"pca{k}_test_sq_err", pca_err, paper=13.87, band=(13.57, 14.17), split="test",
                          claim=f"MNIST test squared reconstruction error per image of PCA with {k} components "
                                "(Fig. 2; checks our metric)",
                          note="checks the metric code") if layers == MNIST_LAYERS
                   else {"name": f"pca{k}_test_sq_err", "split": "test", "ours": round(pca_err, 4)})
    record = r.write_metrics(
        paper=PAPER, metrics=metrics, model=model, model_kwargs={"layers": list(layers)}, epochs=len(history),
        weights="model.pt", training_time_s=pretrain_time + fine_tune_time, pretrained=not args.no_pretrain,
        test_sq_err=round(test["sq_err"], 4), train_sq_err=round(train_eval["sq_err"], 4),
        validation={"sq_err": round(best["val_sq_err"], 4), "best_epoch": best["epoch"],
                    "images": f"last {len(data.val_x)} of the training set"},
        time_s={"pretraining": round(pretrain_time, 1), "fine_tuning": round(fine_tune_time, 1)},
        hyperparameters={"layers": list(layers), "pretrain_epochs": 0 if args.no_pretrain else args.pretrain_epochs,
                         "rbm_batch_size": args.rbm_batch_size, "rbm_lr": RBM_LR, "momentum": list(MOMENTUM),
                         "weight_cost": WEIGHT_COST, "optimizer": "Adam", "lr": args.lr, "schedule": "cosine to 0",
                         "epochs": epochs,
                         "batch_size": args.batch_size, "n_train": len(data.train_x), "n_val": len(data.val_x)},
    )
    results = PAPER_DIR / "results"
    if not args.quick and out.resolve() in (results.resolve(), (results / "no-pretrain").resolve()):
        refresh_comparison(results)
    if layers == MNIST_LAYERS:
        print_metrics(record["metrics"], out)
    else:  # not the paper's net: no paper numbers to compare with
        print(f"test squared error per image {test['sq_err']:.3f}; PCA-{k} {pca_err:.3f}; results in {out}")
    return 0


def verify(results: Path, record: dict, *, fast: bool) -> list:
    """``python -m common.verify``: the shipped autoencoder's test reconstruction error, and PCA's refitted on the
    same training images (both deterministic up to float rounding)."""
    from common.verify import Check, claimed, rebuild

    model = rebuild(record, results)
    data = load_mnist(n_val=record["hyperparameters"]["n_val"])
    test_x = flat_pixels(data.test_x)
    test = evaluate(model, TensorLoader(data.test_x, batch_size=1000, transform=flat_pixels), reconstruction_step,
                    torch.device("cpu"))
    k = model.layers[-1]
    pca = PCA(flat_pixels(data.train_x), k)
    pca_err = squared_error_per_image(test_x, pca.reconstruct(test_x)).mean().item()
    return [Check("test_sq_err", claimed(record, "test_sq_err"), test["sq_err"], 1e-3,
                  "the 10,000 MNIST test images, fp32"),
            Check(f"pca{k}_test_sq_err", claimed(record, f"pca{k}_test_sq_err"), pca_err, 1e-3,
                  f"PCA refitted on the {len(data.train_x):,} training images")]


def main(argv=None) -> int:
    return run(train, parse_args(argv), PAPER_DIR)


if __name__ == "__main__":
    sys.exit(main())
