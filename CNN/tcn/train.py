"""Train the TCN of Bai, Kolter & Koltun (2018), or a recurrent baseline, on a task of Table 1 and measure it.

    python CNN/tcn/train.py                          # JSB Chorales, the paper's setting -> results/jsb/
    python CNN/tcn/train.py --dataset nottingham     # Nottingham -> results/nottingham/
    python CNN/tcn/train.py --task smnist            # sequential MNIST -> results/smnist/
    python CNN/tcn/train.py --task pmnist            # permuted MNIST -> results/pmnist/
    python CNN/tcn/train.py --task adding            # the adding problem, T = 600 -> results/adding/
    python CNN/tcn/train.py --task copy              # copy memory, T = 1000 -> results/copy/
    python CNN/tcn/train.py --task adding --model gru            # a recurrent baseline -> results/baselines/adding-gru/
    python CNN/tcn/train.py --task smnist --model lstm --time-limit-h 6    # within a time box
    python CNN/tcn/train.py --resume                 # continue the interrupted run (same flags)
    python CNN/tcn/train.py --quick                  # seconds: a few sequences, two epochs, writes runs/
    python CNN/tcn/train.py --evaluate CNN/tcn/results/jsb/model.pt

Polyphonic music (``--task music``, the default): the setting of the paper (supplementary Table 2: k, levels, hidden
units, dropout, gradient clipping at 0.4; Sec. 5: Adam, learning rate 0.002) and the authors' poly_music/music_test.py
loop: one piece per step, input frames x_1 .. x_{T-1}, target x_2 .. x_T, the loss summed over a piece's frames and
notes; after epoch 10 the learning rate is divided by 10 whenever the validation NLL is worse than in each of the 3
epochs before; the model of the best validation epoch is kept and measured once on the test pieces. Metric: the test
NLL per time step (nats) = the summed Bernoulli NLL of all predicted test frames / their number
(common.data.frame_nll, the same definition as RNN/gru). Targets (Table 1): JSB Chorales 8.10 (band 7.9-8.4),
Nottingham 3.07 (band 2.9-3.25).

The stress tests and pixel MNIST (Sec. 4; Table 2's TCNs, the authors' scripts' training: TCN/mnist_pixel,
TCN/adding_problem, TCN/copy_memory): the model after the last epoch is measured once on the test set, in fp32.
Validation sets (the last 5,000 MNIST training images; a third draw of the synthetic tasks) are watched, never used
to pick a model. Targets: sequential MNIST test accuracy >= 98.5% (Table 1: 99.0), P-MNIST >= 96.5% (97.2), adding
T = 600 test MSE <= 1e-3 (5.8e-5), copy memory T = 1000 test loss <= 1e-3 (3.5e-5). The recurrent baselines
(``--model lstm|gru|rnn``: torch's nn.LSTM / nn.GRU / tanh nn.RNN of Table 1's size, supplementary Table 3's
training) are reported as measured, in results/baselines/, beside Table 1's numbers.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common.cli import Run, base_parser, positive_float, positive_int, run
from common.data import Sequences, TensorLoader, frame_nll, load_mnist, load_polyphonic
from common.results import metric, print_metrics
from common.summary import count_parameters
from common.training import (atomic_save, classification_step, clipped_update, describe_device, evaluate, fit,
                             load_weights, sgd_update)
from CNN.tcn.model import PAPER_SETTINGS, RECURRENT_HIDDEN, TASK_SETTINGS, TCN, TaskModel
from CNN.tcn.tasks import (MEMORY, SIZES, TEST_SEED, TRAIN_SEED, VALID_SEED, copy_memory_zero_guess_loss,
                           task_splits)

PAPER_DIR = Path(__file__).resolve().parent
PAPER = ("Bai, Kolter & Koltun 2018, An Empirical Evaluation of Generic Convolutional and Recurrent Networks "
         "for Sequence Modeling")
DATASETS = {"jsb": "JSB Chorales", "nottingham": "Nottingham"}
# Table 1, test NLL per time step: TCN and the recurrent baselines the paper ran.
TABLE1 = {"jsb": {"TCN": 8.10, "LSTM": 8.45, "GRU": 8.43, "RNN": 8.91},
          "nottingham": {"TCN": 3.07, "LSTM": 3.29, "GRU": 3.46, "RNN": 4.05}}
BANDS = {"jsb": (7.9, 8.4), "nottingham": (2.9, 3.25)}
PLATEAU = (10, 3)        # music_test.py: after epoch 10, lr / 10 when val NLL > max of the last 3

TASKS = ("music", "smnist", "pmnist", "adding", "copy")
ARCHS = {"tcn": "TCN", "lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
TASK_NAMES = {"smnist": "sequential MNIST", "pmnist": "permuted MNIST", "adding": "the adding problem",
              "copy": "copy memory"}
SEQ_LEN = {"adding": 600, "copy": 1000}  # Table 1's T (the authors' scripts default to 400 for adding)
# Table 1 for the stress tests: the metric each task reports (the key it has in metrics.json), and the four models.
TABLE1_TASKS = {
    "smnist": {"key": "test_accuracy_pct", "TCN": 99.0, "LSTM": 87.2, "GRU": 96.2, "RNN": 21.5},
    "pmnist": {"key": "test_accuracy_pct", "TCN": 97.2, "LSTM": 85.7, "GRU": 87.3, "RNN": 25.3},
    "adding": {"key": "test_mse", "TCN": 5.8e-5, "LSTM": 0.164, "GRU": 5.3e-5, "RNN": 0.177},
    "copy": {"key": "test_loss", "TCN": 3.5e-5, "LSTM": 0.0204, "GRU": 0.0197, "RNN": 0.0202},
}
# Our bands for the TCN (the recurrent baselines have none: reported as measured).
TASK_BANDS = {"smnist": (98.5, None), "pmnist": (96.5, None), "adding": (0.0, 1e-3), "copy": (0.0, 1e-3)}
TASK_CLAIMS = {
    "smnist": "Table 1: sequential MNIST test accuracy, TCN (8 levels of 25, k = 7), %",
    "pmnist": "Table 1: permuted MNIST test accuracy, TCN (8 levels of 25, k = 7), %",
    "adding": "Table 1: adding problem T = 600 test MSE, TCN (8 levels of 24, k = 8; predicting 1 gives 0.167)",
    "copy": "Table 1: copy memory T = 1000 test cross-entropy per step, TCN (8 levels of 10, k = 8; remembering "
            "nothing gives 0.0204)",
}
# The training of the authors' TCN scripts (Adam at Sec. 5's 0.002 unless Table 2 notes otherwise): optimizer,
# learning rate, batch size, epochs; pixel MNIST divides the learning rate by 10 every 10 epochs (pmnist_test.py).
TRAINING = {
    "music": {"optimizer": "adam", "lr": 2e-3, "batch_size": 1, "epochs": 100},
    "smnist": {"optimizer": "adam", "lr": 2e-3, "batch_size": 64, "epochs": 20, "lr_step": 10},
    "pmnist": {"optimizer": "adam", "lr": 2e-3, "batch_size": 64, "epochs": 20, "lr_step": 10},
    "adding": {"optimizer": "adam", "lr": 2e-3, "batch_size": 32, "epochs": 10},
    "copy": {"optimizer": "rmsprop", "lr": 5e-4, "batch_size": 32, "epochs": 50},
}
# Supplementary Table 3 (the LSTM; the GRU and tanh RNN take the same, "chosen in a similar fashion"): optimizer,
# learning rate, gradient clip, initial forget-gate bias, dropout. Adding T = 600 names no optimizer ("-"): the T = 400
# row's Adam 2e-3. Copy memory: "RMSprop/Adam" with no rate: RMSprop at Table 2's 5e-4.
RECURRENT_TRAINING = {
    "smnist": {"optimizer": "rmsprop", "lr": 1e-3, "clip": 1.0, "forget_bias": 1.0, "dropout": 0.0},
    "pmnist": {"optimizer": "rmsprop", "lr": 1e-3, "clip": 1.0, "forget_bias": 10.0, "dropout": 0.0},
    "adding": {"optimizer": "adam", "lr": 2e-3, "clip": 5.0, "forget_bias": 1.0, "dropout": 0.0},
    "copy": {"optimizer": "rmsprop", "lr": 5e-4, "clip": 1.0, "forget_bias": None, "dropout": 0.05},
}
OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}
QUICK_SIZES = {"train": 64, "valid": 32, "test": 32}     # --quick: a few sequences (or images) per split
N_VAL_MNIST = 5000
EVAL_BATCH = 500                                         # validation and test batches of the tasks


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=None, batch_size=None, lr=None, paper_dir=PAPER_DIR,
                    lr_help="learning rate; None = the task's (music and the TCNs: Adam 0.002, copy memory RMSprop "
                            "5e-4; the recurrent nets: supplementary Table 3)")
    p.epilog = ("--epochs, --batch-size, --lr, --optimizer: None = the task's, from the authors' scripts: "
                + "; ".join(f"{task} {t['epochs']} epochs of batches of {t['batch_size']}, {t['optimizer']} "
                            f"{t['lr']:g}" for task, t in TRAINING.items())
                + " (pixel MNIST: lr / 10 every 10 epochs). Recurrent nets: supplementary Table 3's optimizer, "
                  "rate, clip and forget-gate bias.")
    p.add_argument("--task", choices=TASKS, default="music",
                   help="music (--dataset), smnist, pmnist (pixel MNIST), adding (the adding problem), copy (copy "
                        "memory): Table 1's rows")
    p.add_argument("--model", choices=sorted(ARCHS), default="tcn",
                   help="tcn, or a recurrent baseline of Table 1's size (nn.LSTM, nn.GRU, tanh nn.RNN); the music "
                        "baselines are RNN/gru's")
    p.add_argument("--dataset", choices=sorted(DATASETS), default=None, help="music set (Table 1); default jsb")
    p.add_argument("--seq-len", type=positive_int, default=None,
                   help="T of the adding problem (default 600) or copy memory's blank length (default 1000)")
    p.add_argument("--k", type=positive_int, default=None, help="kernel size; None = Table 2's for the task")
    p.add_argument("--levels", type=positive_int, default=None,
                   help="residual blocks of the TCN, or layers of a recurrent net; None = Table 2's / Table 3's")
    p.add_argument("--hidden", type=positive_int, default=None,
                   help="channels per block, or hidden units of a recurrent net; None = Table 2's / Table 1's size")
    p.add_argument("--dropout", type=float, default=None, help="None = Table 2's (Table 3's) for the task")
    p.add_argument("--clip", type=float, default=None,
                   help="rescale the gradient to this norm when larger; 0 = no clipping. None = Table 2's (music 0.4: "
                        "the authors' code clips before backward, i.e. not at all; validation prefers 0.4: "
                        "EXPERIMENTS.md), Table 3's for a recurrent net")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=None, help="None = the task's")
    p.add_argument("--forget-bias", type=float, default=None,
                   help="the LSTM's initial forget-gate bias; None = Table 3's for the task")
    p.add_argument("--permutation-seed", type=int, default=None,
                   help="pmnist: the seed of the fixed pixel order; None = 0")
    p.add_argument("--time-limit-h", type=positive_float, default=None,
                   help="a time box: stop before an epoch that would end past this many hours of training (at the "
                        "mean epoch time so far); the run is reported as measured, with its epochs")
    p.add_argument("--evaluate", type=Path, default=None, metavar="MODEL_PT",
                   help="only measure the test metric of a saved state_dict (of the same task and model flags)")
    args = p.parse_args(argv)
    music = args.task == "music"
    if music and args.model != "tcn":
        p.error(f"--model {args.model}: the recurrent baselines on polyphonic music are RNN/gru's "
                "(python RNN/gru/train.py); use --task smnist|pmnist|adding|copy")
    if not music and args.dataset is not None:
        p.error(f"--dataset is the music set; --task {args.task} has its own data")
    if args.seq_len is not None and args.task not in SEQ_LEN:
        p.error(f"--seq-len applies to --task adding or copy, not {args.task}")
    if args.model != "tcn" and args.k is not None:
        p.error(f"--k is the TCN's kernel size; --model {args.model} has none")
    if args.forget_bias is not None and args.model != "lstm":
        p.error("--forget-bias is an LSTM setting")
    if music and args.time_limit_h is not None:
        p.error("--time-limit-h applies to --task smnist|pmnist|adding|copy (a music run takes minutes)")
    if args.permutation_seed is not None and args.task != "pmnist":
        p.error(f"--permutation-seed is P-MNIST's pixel order; --task {args.task} has none")
    if args.k is not None and args.k < 2:
        p.error(f"--k must be at least 2 (a causal convolution over 1 step sees only the present), got {args.k}")
    if args.task == "adding" and args.seq_len is not None and args.seq_len < 2:
        p.error(f"--seq-len: the adding problem marks 2 of T steps, so T >= 2; got {args.seq_len}")
    args.dataset = args.dataset or ("jsb" if music else None)
    args.seq_len = args.seq_len or SEQ_LEN.get(args.task)
    recurrent = args.model != "tcn"
    setting = dict(PAPER_SETTINGS[args.dataset] if music else TASK_SETTINGS[args.task])
    training = dict(TRAINING[args.task])
    if recurrent:
        training.update(RECURRENT_TRAINING[args.task])
        setting.update(levels=1, hidden=RECURRENT_HIDDEN[args.task][args.model], k=None,
                       dropout=training["dropout"], clip=training["clip"])
    for name in ("k", "levels", "hidden", "dropout", "clip"):
        if getattr(args, name) is None:
            setattr(args, name, setting[name])
    for name in ("optimizer", "lr", "batch_size", "epochs"):
        if getattr(args, name) is None:
            setattr(args, name, training[name])
    if args.model == "lstm" and args.forget_bias is None:
        args.forget_bias = training["forget_bias"]
    args.lr_step = training.get("lr_step")
    if args.task == "pmnist" and args.permutation_seed is None:
        args.permutation_seed = 0
    if args.clip < 0:
        p.error(f"--clip must be 0 (no clipping) or positive, got {args.clip}")
    if not 0 <= args.dropout < 1:
        p.error(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.out is None and not (args.quick and music):
        args.out = output_folder(args)
    return args


def run_name(args) -> str:
    """The results folder of a run: ``jsb``, ``smnist``, ``adding``, ``adding-T200`` (another T) for a TCN;
    ``baselines/adding-lstm`` for a recurrent net (outside the runs that make rows of the results tables)."""
    if args.task == "music":
        return args.dataset
    name = args.task + (f"-T{args.seq_len}" if args.task in SEQ_LEN and args.seq_len != SEQ_LEN[args.task] else "")
    return name if args.model == "tcn" else f"baselines/{name}-{args.model}"


def output_folder(args) -> Path:
    if args.quick:
        return PAPER_DIR.parents[1] / "runs" / f"tcn-{run_name(args).replace('/', '-')}-quick"
    return PAPER_DIR / "results" / run_name(args)


# --------------------------------------------------------------------------- polyphonic music


def step(model: TCN, batch):
    """Frames x_1 .. x_{T-1} in, the predictions of x_2 .. x_T out, over a padded batch of pieces; the loss is
    the summed NLL of a piece's frames, averaged over the pieces (with one piece per step: the authors')."""
    roll, lengths = batch
    roll = roll[:, : int(lengths.max())]
    nll, frames = frame_nll(model(roll[:, :-1]), roll[:, 1:], lengths - 1)
    return nll / len(roll), {"n": frames, "loss": nll.item()}


def step_all_frames(model: TCN, batch):
    """RNN/gru's convention, for a like-for-like comparison: every frame x_1 .. x_T predicted, the first from
    one all-zero frame (silence before the piece), i.e. the input [0, x_1 .. x_{T-1}]."""
    roll, lengths = batch
    roll = roll[:, : int(lengths.max())]
    nll, frames = frame_nll(model(F.pad(roll[:, :-1], (0, 0, 1, 0))), roll, lengths)
    return nll / len(roll), {"n": frames, "loss": nll.item()}


def plateau_decay(optimizer, after: int = PLATEAU[0], window: int = PLATEAU[1]):
    """fit's on_epoch_end: the learning rate divided by 10 when, after epoch ``after``, the validation NLL is
    worse than in each of the ``window`` epochs before (music_test.py). It reads the history only, so a
    resumed run decays exactly as an uninterrupted one."""

    def on_epoch_end(history: list[dict]) -> None:
        losses = [h["val_loss"] for h in history]
        if len(history) > after and losses[-1] > max(losses[-1 - window:-1]):
            for group in optimizer.param_groups:
                group["lr"] /= 10
            history[-1]["lr_divided"] = True

    return on_epoch_end


def loaders(data: dict[str, Sequences], batch_size: int, seed: int, device) -> dict[str, TensorLoader]:
    return {split: TensorLoader(seqs.data, seqs.lengths, batch_size=batch_size if split == "train" else 64,
                                shuffle=split == "train", seed=seed, device=device, transform=torch.Tensor.float)
            for split, seqs in data.items()}


def train_music(r: Run) -> int:
    args, device = r.args, r.device
    model = TCN(88, 88, args.hidden, args.levels, args.k, args.dropout).to(device)
    if args.evaluate is not None:
        load_weights(model, args.evaluate, device, fix=f"pass a state_dict saved by train.py --dataset {args.dataset} "
                                                       f"with the same --k/--levels/--hidden")
    data = load_polyphonic(args.dataset, args.data_dir)
    if args.quick:
        data = {split: Sequences(s.data[:8], s.lengths[:8]) for split, s in data.items()}
        args.epochs = min(args.epochs, 2)
    batches = loaders(data, args.batch_size, args.seed, device)
    if args.evaluate is not None:
        test = evaluate(model, batches["test"], step, device)
        print(f"{DATASETS[args.dataset]} test NLL {test['loss']:.4f} per time step ({args.evaluate})")
        return 0

    print(f"TCN on {DATASETS[args.dataset]}: k={args.k}, {args.levels} levels of {args.hidden}, dropout "
          f"{args.dropout}; {count_parameters(model):,} parameters (Table 1: about "
          f"{PAPER_SETTINGS[args.dataset]['size']:,.0f}); receptive field {model.receptive_field} frames; "
          f"{len(data['train'])} training pieces, batches of {args.batch_size}; device {describe_device(device)}")
    optimizer = OPTIMIZERS[args.optimizer](model.parameters(), lr=args.lr)
    history = fit(model, optimizer, step, batches["train"], epochs=args.epochs, val_loader=batches["valid"],
                  device=device, amp=args.amp, out=r.out, resume=r.resumes(), curve_keys=("loss",),
                  select="val_loss", update=clipped_update(args.clip) if args.clip > 0 else sgd_update,
                  on_epoch_end=plateau_decay(optimizer),
                  progress=not args.no_progress, desc=f"TCN {args.dataset}")
    best = min(history, key=lambda h: h["val_loss"])

    t_test = time.perf_counter()
    test = evaluate(model, batches["test"], step, device, args.amp)
    test_all = evaluate(model, batches["test"], step_all_frames, device, args.amp)
    atomic_save(model.state_dict(), r.out / "model.pt")
    paper = TABLE1[args.dataset]
    record = r.write_metrics(
        paper=PAPER, model=model, epochs=len(history), weights="model.pt",
        model_kwargs={"n_in": 88, "n_out": 88, "hidden": args.hidden, "levels": args.levels, "k": args.k,
                      "dropout": args.dropout},
        metrics=[metric("test_nll", test["loss"], paper=paper["TCN"], band=BANDS[args.dataset], split="test",
                        claim=f"Table 1: {DATASETS[args.dataset]} test NLL per time step, TCN")],
        training_time_s=sum(h["epoch_time_s"] for h in history) + time.perf_counter() - t_test,
        dataset=args.dataset, parameters=count_parameters(model), receptive_field=model.receptive_field,
        best_epoch=best["epoch"], valid_nll=round(best["val_loss"], 4), table1=paper,
        test_nll_all_frames=round(test_all["loss"], 4),   # RNN/gru's convention (the first frame from silence)
        lr_divided_at=[h["epoch"] for h in history if h.get("lr_divided")],
        hyperparameters={"k": args.k, "levels": args.levels, "hidden": args.hidden, "dropout": args.dropout,
                         "optimizer": "Adam" if args.optimizer == "adam" else args.optimizer, "lr": args.lr,
                         "batch_size": args.batch_size, "clip": args.clip, "epochs": args.epochs,
                         "plateau": list(PLATEAU), "amp": args.amp},
    )
    print_metrics(record["metrics"], r.out)
    print(f"test NLL {test['loss']:.4f} (validation {best['val_loss']:.4f} at epoch {best['epoch']}); "
          f"Table 1: TCN {paper['TCN']}, LSTM {paper['LSTM']}, GRU {paper['GRU']}, RNN {paper['RNN']}")
    return 0


# --------------------------------------------------------------------------- pixel MNIST and the stress tests


mnist_step = classification_step(F.cross_entropy)    # logits of the last step against the digit; errors counted


def adding_step(model: TaskModel, batch):
    """The adding problem: the mean squared error of the predicted sum (the authors' F.mse_loss)."""
    x, y = batch
    loss = F.mse_loss(model(x).float(), y)
    return loss, {"n": len(y), "loss": loss.item() * len(y)}


def copy_step(model: TaskModel, batch):
    """Copy memory: the cross-entropy over every step of every sequence (the authors' nn.CrossEntropyLoss on the
    whole output, the loss of Table 1 and Fig. 4); ``errors`` counts the wrongly recalled digits of the last
    ``MEMORY`` steps (as a fraction of a sequence's ``MEMORY``), so ``error_pct`` is the % of digits not recalled
    (Fig. 5 shows its complement)."""
    x, y = batch
    y = y.long()
    logits = model(x)
    loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
    with torch.no_grad():
        wrong = (logits[:, -MEMORY:].argmax(-1) != y[:, -MEMORY:]).sum().item() / MEMORY
    return loss, {"n": len(y), "loss": loss.item() * len(y), "errors": wrong}


STEPS = {"smnist": mnist_step, "pmnist": mnist_step, "adding": adding_step, "copy": copy_step}


def task_data(task: str, T: int | None, seed: int, data_dir=None, quick: bool = False
              ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, targets) of each split of ``task``: MNIST's uint8 images and labels (the last 5,000 training images
    held out for validation), or the synthetic sets of tasks.py (test and validation from fixed seeds, training
    from ``seed``). ``quick``: the first few of each split (:data:`QUICK_SIZES`)."""
    if task in ("smnist", "pmnist"):
        mnist = load_mnist(data_dir, n_val=N_VAL_MNIST)
        if quick:
            mnist = mnist.subset(QUICK_SIZES["train"], QUICK_SIZES["valid"], QUICK_SIZES["test"])
        return {"train": (mnist.train_x, mnist.train_y), "valid": (mnist.val_x, mnist.val_y),
                "test": (mnist.test_x, mnist.test_y)}
    return task_splits(task, T, seed, QUICK_SIZES if quick else None)


def task_loader(task: str, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = False,
                seed: int = 0, device="cpu") -> TensorLoader:
    """Batches of one split. MNIST's images go through TensorLoader's default transform (uint8 -> ToTensor's floats
    in [0, 1]); the synthetic sets are left as they are (the model reads the digits' values and the adding inputs
    itself, :class:`TaskModel`)."""
    transform = {} if task in ("smnist", "pmnist") else {"transform": None}
    return TensorLoader(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed, device=device, **transform)


def task_loaders(args, device) -> dict[str, TensorLoader]:
    """Train / valid / test loaders of ``args.task``: shuffled training batches of --batch-size (the order depends
    on the seed and the epoch only: an exact --resume), the other splits in batches of :data:`EVAL_BATCH`."""
    data = task_data(args.task, args.seq_len, args.seed, args.data_dir, args.quick)
    return {split: task_loader(args.task, x, y, args.batch_size if split == "train" else EVAL_BATCH,
                               shuffle=split == "train", seed=args.seed, device=device)
            for split, (x, y) in data.items()}


def model_kwargs(args) -> dict:
    kwargs = {"task": args.task, "arch": args.model, "hidden": args.hidden, "levels": args.levels,
              "k": args.k if args.model == "tcn" else 0, "dropout": args.dropout}
    if args.model == "lstm":
        kwargs["forget_bias"] = args.forget_bias
    if args.task == "pmnist":
        kwargs["permutation_seed"] = args.permutation_seed
    return kwargs


def time_limit(hours: float):
    """fit's on_epoch_end for a time box: stop when one more epoch, at the mean epoch time so far, would end past
    ``hours`` of training. It reads the history only (a resumed run counts the time before the interruption)."""

    def on_epoch_end(history: list[dict]) -> str | None:
        spent = sum(h["epoch_time_s"] for h in history)
        if spent + spent / len(history) > hours * 3600:
            return f"the time box of {hours:g} h: {spent / 3600:.2f} h spent, another epoch would pass it"
        return None

    return on_epoch_end


def sequence_length(task: str, T: int | None) -> int:
    """Steps the network reads: 784 pixels, T adding steps, or T + 20 copy-memory digits."""
    return {"smnist": 784, "pmnist": 784, "adding": T, "copy": (T or 0) + 2 * MEMORY}[task]


def describe(args, model: TaskModel) -> str:
    what = (f"TCN, k={args.k}, {args.levels} levels of {args.hidden}, receptive field {model.receptive_field}"
            if args.model == "tcn" else f"{ARCHS[args.model]}, {args.levels} layer(s) of {args.hidden}")
    size = TASK_SETTINGS[args.task]["size"]
    return (f"{what}, dropout {args.dropout}: {count_parameters(model):,} parameters (Table 1: about {size:,.0f}); "
            f"{TASK_NAMES[args.task]}, sequences of {sequence_length(args.task, args.seq_len)} steps")


def table1_claim(task: str, arch: str) -> str:
    """Words for Table 1's number of ``arch`` on ``task``."""
    what = {"smnist": "sequential MNIST test accuracy, %", "pmnist": "permuted MNIST test accuracy, %",
            "adding": "adding problem T = 600 test MSE", "copy": "copy memory T = 1000 test cross-entropy per step"}
    return f"Table 1: {what[task]}, {ARCHS[arch]}"


def train_task(r: Run) -> int:
    args, device = r.args, r.device
    model = TaskModel(**model_kwargs(args)).to(device)
    if args.evaluate is not None:
        load_weights(model, args.evaluate, device,
                     fix=f"pass a state_dict saved by train.py --task {args.task} --model {args.model} with the same "
                         "--k/--levels/--hidden (and --permutation-seed)")
    batches = task_loaders(args, device)
    step = STEPS[args.task]
    key = TABLE1_TASKS[args.task]["key"]
    if args.evaluate is not None:
        test = evaluate(model, batches["test"], step, device)
        print(f"{TASK_NAMES[args.task]}: {key} {task_value(args.task, test):.6g} ({args.evaluate})")
        return 0
    if args.quick:
        args.epochs = min(args.epochs, 2)

    print(f"{describe(args, model)}; {len(batches['train'].tensors[0]):,} training sequences, batches of "
          f"{args.batch_size}; {args.optimizer} lr {args.lr:g}, clip {args.clip or 'none'}; "
          f"device {describe_device(device)}")
    optimizer = OPTIMIZERS[args.optimizer](model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, args.lr_step, 0.1) if args.lr_step else None
    curves = ("loss", "error_pct") if args.task != "adding" else ("loss",)
    history = fit(model, optimizer, step, batches["train"], epochs=args.epochs, val_loader=batches["valid"],
                  scheduler=scheduler, device=device, amp=args.amp, out=r.out, resume=r.resumes(), curve_keys=curves,
                  update=clipped_update(args.clip) if args.clip > 0 else sgd_update,
                  on_epoch_end=time_limit(args.time_limit_h) if args.time_limit_h else None,
                  progress=not args.no_progress, desc=f"{ARCHS[args.model]} {run_name(args)}")

    t_test = time.perf_counter()
    test = evaluate(model, batches["test"], step, device, amp=False)     # fp32: the small losses in full precision
    atomic_save(model.state_dict(), r.out / "model.pt")
    value = task_value(args.task, test)
    paper = {m: v for m, v in TABLE1_TASKS[args.task].items() if m != "key"}
    arch = ARCHS[args.model]
    metrics, extra = [], {}
    if args.model == "tcn":
        metrics = [metric(key, value, paper=paper["TCN"], band=TASK_BANDS[args.task], split="test",
                          claim=TASK_CLAIMS[args.task])]
    else:   # a recurrent baseline: no band, reported as measured beside Table 1's number (not a checked claim)
        extra["measured"] = {"name": key, "split": "test", "paper": paper[arch], "band": None,
                             "ours": float(f"{value:.4g}"), "claim": table1_claim(args.task, args.model)
                             + " (reported as measured, no band)"}
    last = history[-1]
    if args.task == "copy":
        extra["recall_accuracy_pct"] = round(100 - test["error_pct"], 3)   # the last 10 steps (Fig. 5's measure)
        extra["zero_guess_loss"] = round(copy_memory_zero_guess_loss(args.seq_len), 6)
    if args.task == "pmnist":
        extra["permutation_seed"] = args.permutation_seed
    if args.task in SEQ_LEN:
        extra["seq_len"] = args.seq_len
    record = r.write_metrics(
        paper=PAPER, model=model, epochs=len(history), weights="model.pt", model_kwargs=model_kwargs(args),
        metrics=metrics, training_time_s=sum(h["epoch_time_s"] for h in history) + time.perf_counter() - t_test,
        task=args.task, arch=args.model, **{key: round(value, 8)}, parameters=count_parameters(model),
        receptive_field=model.receptive_field, table1=paper, table1_size=TASK_SETTINGS[args.task]["size"],
        test={k: round(v, 8) for k, v in test.items()},
        valid={k.removeprefix("val_"): round(v, 8) for k, v in last.items() if k.startswith("val_")},
        time_limit_h=args.time_limit_h, stopped_early=len(history) < args.epochs,
        mean_epoch_time_s=round(sum(h["epoch_time_s"] for h in history) / len(history), 1),
        data=data_description(args), **extra,
        hyperparameters={"k": args.k, "levels": args.levels, "hidden": args.hidden, "dropout": args.dropout,
                         "optimizer": args.optimizer, "lr": args.lr, "lr_step": args.lr_step,
                         "batch_size": args.batch_size, "clip": args.clip, "epochs": args.epochs,
                         "forget_bias": args.forget_bias, "amp": args.amp},
    )
    if metrics:
        print_metrics(record["metrics"], r.out)
    else:
        print(f"results in {r.out}")
    print(f"{arch} on {TASK_NAMES[args.task]}: {key} {value:.6g} after {len(history)} epochs; Table 1: "
          + ", ".join(f"{m} {v:g}" for m, v in paper.items()))
    return 0


def task_value(task: str, test: dict) -> float:
    """Table 1's number from the test sums: accuracy % (pixel MNIST), MSE (adding), cross-entropy per step (copy)."""
    return 100.0 - test["error_pct"] if task in ("smnist", "pmnist") else test["loss"]


def data_description(args) -> dict:
    if args.task in ("smnist", "pmnist"):
        if args.quick:
            return {**QUICK_SIZES, "what": "the first images of each MNIST split (--quick)"}
        return {"train": "the first 55,000 MNIST training images", "valid": "the last 5,000 training images",
                "test": "the 10,000 test images", "order": "row by row" + (
                    f", permuted (seed {args.permutation_seed})" if args.task == "pmnist" else "")}
    sizes = QUICK_SIZES if args.quick else SIZES[args.task]
    return {**sizes, "seeds": f"tasks.py: test {TEST_SEED} and validation {VALID_SEED} fixed, training "
                              f"{TRAIN_SEED} + --seed", "T": args.seq_len}


def train(r: Run) -> int:
    return train_music(r) if r.args.task == "music" else train_task(r)


# --------------------------------------------------------------------------- python -m common.verify


def verify(results: Path, record: dict, *, fast: bool) -> list:
    """``python -m common.verify``: the shipped model, rebuilt from its metrics file, measured again in fp32.

    Music (results/jsb, results/nottingham): the NLL of all the test pieces as train.py measured them, exact up to
    float rounding (and in RNN/gru's every-frame convention too, except with --fast). The stress tests
    (results/<task>): the 1,000 test sequences of adding and copy memory, drawn again from their fixed seed
    (exact); pixel MNIST on the 10,000 test images (with --fast a fixed random 1,000 of them, within 3 standard
    errors of the subset's accuracy). The task's recurrent baselines (results/baselines/<task>-<model>/, reported
    without a band) are measured the same way."""
    from common.verify import Check, claimed, rebuild

    cpu = torch.device("cpu")
    model = rebuild(record, results)
    if "task" not in record:                                   # a music run
        test = load_polyphonic(record["dataset"])["test"]
        order = test.lengths.argsort()         # pieces of like length together: little padding (the sums are exact)
        loader = TensorLoader(test.data[order], test.lengths[order], batch_size=16, transform=torch.Tensor.float)
        how = f"the {len(test)} {DATASETS[record['dataset']]} test pieces, fp32"
        checks = [Check("test_nll", claimed(record, "test_nll"), evaluate(model, loader, step, cpu)["loss"], 1e-3,
                        how + " (frames 2..T)")]
        if not fast:            # the second convention (the comparison tables' column): one more pass
            checks.append(Check("test_nll_all_frames", claimed(record, "test_nll_all_frames"),
                                evaluate(model, loader, step_all_frames, cpu)["loss"], 1e-3, how + " (every frame)"))
        return checks
    task = record["task"]
    data = task_data(task, record.get("seq_len"), record["seed"], quick=bool(record.get("quick")))["test"]
    n_all = len(data[1])
    if fast and task in ("smnist", "pmnist"):
        pick = torch.randperm(n_all, generator=torch.Generator().manual_seed(1))[:1000]
        data = (data[0][pick], data[1][pick])
    loader = task_loader(task, *data, EVAL_BATCH)
    key = TABLE1_TASKS[task]["key"]
    checks = []
    runs = [(record, model, "")] + [
        (rec, rebuild(rec, folder), f"{folder.relative_to(results.parent)}: ")
        for folder in sorted((results.parent / "baselines").glob(f"{task}-*"))
        if folder.name.removeprefix(f"{task}-") in ARCHS and (rec := _read_json(folder / "metrics.json")) is not None]
    for rec, net, prefix in runs:
        value = task_value(task, evaluate(net, loader, STEPS[task], cpu))
        n = len(data[1])
        if n < n_all:       # a random subset of MNIST's test images: 3 standard errors of its accuracy, in %
            p = claimed(rec, key) / 100
            tolerance = 300 * math.sqrt(p * (1 - p) / n * (1 - n / n_all)) + 0.01
            how = f"a fixed random {n:,} of the {n_all:,} test images, fp32; tolerance 3 standard errors"
        else:
            tolerance = 0.005 if task in ("smnist", "pmnist") else max(2e-3 * abs(claimed(rec, key)), 1e-9)
            how = (f"the {n:,} test images, fp32" if task in ("smnist", "pmnist") else
                   f"the {n:,} test sequences (T = {rec.get('seq_len')}, seed {TEST_SEED}), fp32")
        checks.append(Check(prefix + key, claimed(rec, key), value, tolerance, how))
    return checks


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv=None) -> int:
    args = parse_args(argv)
    return run(train, args, PAPER_DIR, needs_native_bf16=args.model != "tcn")


if __name__ == "__main__":
    sys.exit(main())
