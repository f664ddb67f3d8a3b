"""The fit / evaluate loop every paper reuses, with checkpoints that resume exactly.

A paper supplies a ``step(model, batch) -> (loss, sums)`` function: ``loss`` is the scalar to
minimise for this batch, ``sums`` a dict of numbers that add up over batches (``n`` = examples,
``loss`` = summed loss, ``errors`` = misclassified, ...). :func:`summarize` turns the sums of an
epoch into means (``loss``) and percentages (``error_pct``).

:func:`fit` trains for a number of epochs with a tqdm bar, evaluates on a validation loader,
writes the per-epoch history (JSON) and learning curves (PNG), and saves a checkpoint after
every epoch (atomically: temp file + rename) holding model, optimiser, scheduler, RNG states
and history. ``resume=True`` continues from it; on the CPU with a fixed seed the resumed run
ends with the same weights as an uninterrupted one. A non-finite loss stops the run with
:class:`NonFiniteLossError` and leaves the last good checkpoint in place.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from common.fileio import atomic_target

Step = Callable[[torch.nn.Module, tuple], tuple[torch.Tensor, dict[str, float]]]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


# --------------------------------------------------------------------------- devices, seeds


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on devices that support it; a no-op context otherwise."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def rng_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]) + [random.getstate()[0]],
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "numpy_pos": int(np.random.get_state()[2]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    *internal, version = state["python"]
    random.setstate((version, tuple(internal), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- checkpoints


def atomic_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    with atomic_target(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain containers only)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def resume_checkpoint(path: str | os.PathLike | None, map_location="cpu") -> dict:
    """The checkpoint a ``--resume`` continues from; a clear FileNotFoundError when there is none."""
    if path is None or not Path(path).exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}")
    return load_checkpoint(path, map_location)


def write_json(obj, path: str | os.PathLike) -> None:
    with atomic_target(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


# --------------------------------------------------------------------------- steps, evaluation


def summarize(sums: dict[str, float]) -> dict[str, float]:
    """Epoch sums -> means: ``loss`` per example, ``errors`` as ``error_pct``; others per example."""
    n = max(sums.get("n", 0), 1)
    out = {}
    for key, value in sums.items():
        if key == "n":
            continue
        if key == "errors":
            out["error_pct"] = 100.0 * value / n
        else:
            out[key] = value / n
    return out


def classification_step(loss_fn: Callable, predict: Callable = lambda out: out.argmax(1)) -> Step:
    """A step for classifiers: ``loss_fn(outputs, targets)`` (mean over the batch) and errors."""

    def step(model, batch):
        x, y = batch
        out = model(x)
        loss = loss_fn(out, y)
        with torch.no_grad():
            errors = (predict(out) != y).sum().item()
        return loss, {"n": len(y), "loss": loss.item() * len(y), "errors": errors}

    return step


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Iterable, step: Step, device: torch.device | None = None,
             amp: bool = False) -> dict[str, float]:
    """Run ``step`` over ``loader`` in eval mode and return :func:`summarize` of the sums."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    try:
        for batch in loader:
            with autocast(device, amp):
                _, s = step(model, batch)
            for k, v in s.items():
                sums[k] = sums.get(k, 0) + v
    finally:
        model.train(was_training)
    return summarize(sums)


# --------------------------------------------------------------------------- fit


@torch.no_grad()
def _shift(params: list[torch.Tensor], noise: list[torch.Tensor], sign: int) -> None:
    for p, e in zip(params, noise):
        p.add_(e, alpha=sign)


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: Step,
    train_loader,
    *,
    epochs: int,
    val_loader=None,
    scheduler=None,
    device: torch.device | None = None,
    amp: bool = False,
    checkpoint_path: str | os.PathLike | None = None,
    resume: bool = False,
    history_path: str | os.PathLike | None = None,
    curves_path: str | os.PathLike | None = None,
    curve_keys: tuple[str, ...] = ("loss", "error_pct"),
    max_grad_norm: float | None = None,
    weight_noise: float = 0.0,
    select: str | None = None,
    patience: int | None = None,
    scheduler_metric: str | None = None,
    per_batch: tuple[str, ...] = (),
    stop: Callable[[list[dict]], str | None] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> list[dict]:
    """Train ``model`` for ``epochs`` epochs; return the per-epoch history (a list of dicts).

    ``scheduler`` is stepped once per epoch. The loader's ``set_epoch`` (if it has one) is called
    before each epoch so that shuffling depends on the epoch number alone.

    ``max_grad_norm`` rescales the gradient when its norm exceeds it. ``weight_noise`` > 0 adds
    Gaussian noise of that standard deviation to every weight for the forward and backward pass of
    each update (Graves 2011), and removes it before the optimiser step.
    ``select`` names a history key to minimise (e.g. ``"val_loss"``): the model of the best epoch is
    kept and loaded back at the end (early stopping); with ``patience``, training stops after that
    many epochs without improvement.
    ``scheduler_metric`` names a history key passed to ``scheduler.step`` (for ``ReduceLROnPlateau``,
    e.g. ``"val_error_pct"``). ``per_batch`` names keys of the step's sums to keep for every training
    batch, in the epoch's record as ``record["batches"][key]`` (a list, in batch order). ``stop`` is
    called with the history after each epoch (once its checkpoint is written); a non-empty string
    ends training, and is printed as the reason.
    """
    from common.plots import plot_history

    device = device or next(model.parameters()).device
    history: list[dict] = []
    start_epoch = 0
    best = {"value": math.inf, "epoch": 0, "model": None}
    if resume:
        ckpt = resume_checkpoint(checkpoint_path, map_location=device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        history = json.loads(ckpt["history"])
        start_epoch = int(ckpt["epoch"])
        if ckpt.get("best_model") is not None:
            best = {"value": float(ckpt["best_value"]), "epoch": int(ckpt["best_epoch"]), "model": ckpt["best_model"]}
        if progress:
            print(f"resumed from {checkpoint_path} after epoch {start_epoch}")

    params = [p for p in model.parameters() if p.requires_grad]
    for epoch in range(start_epoch, epochs):
        if select is not None and patience is not None and epoch - best["epoch"] >= patience and best["epoch"]:
            if progress:
                print(f"early stop: no better {select} for {patience} epochs (best {best['value']:.4f} "
                      f"at epoch {best['epoch']})")
            break
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        model.train()
        sums: dict[str, float] = {}
        batches: dict[str, list] = {k: [] for k in per_batch}
        t0 = time.perf_counter()
        bar = tqdm(train_loader, desc=f"{desc} {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for i, batch in enumerate(bar):
            noise = [torch.randn_like(p) * weight_noise for p in params] if weight_noise > 0 else []
            _shift(params, noise, +1)
            with autocast(device, amp):
                loss, s = step(model, batch)
            if not math.isfinite(loss.item()):
                _shift(params, noise, -1)
                where = f"epoch {epoch + 1}, batch {i + 1}"
                kept = (f"the last good checkpoint ({checkpoint_path}, after epoch {epoch}) is kept"
                        if checkpoint_path and Path(checkpoint_path).exists() else "no checkpoint was written")
                raise NonFiniteLossError(f"loss became {loss.item()} at {where}; {kept}. "
                                         "Try a lower --lr (or --resume from the checkpoint with one).")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            _shift(params, noise, -1)  # the gradient was taken at the noisy weights; the update is not
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            for k, v in s.items():
                sums[k] = sums.get(k, 0) + v
            for k in per_batch:
                batches[k].append(s[k])
            if progress and i % 20 == 0:
                bar.set_postfix({k: f"{v:.4g}" for k, v in summarize(sums).items()})
        train_time = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_time_s": round(train_time, 3)}
        record.update({f"train_{k}": v for k, v in summarize(sums).items()})
        if val_loader is not None:
            record.update({f"val_{k}": v for k, v in evaluate(model, val_loader, step, device, amp).items()})
        if scheduler is not None:
            scheduler.step(record[scheduler_metric]) if scheduler_metric else scheduler.step()
        if per_batch:
            record["batches"] = batches
        record["epoch_time_s"] = round(time.perf_counter() - t0, 3)
        history.append(record)
        if select is not None and record[select] < best["value"]:
            best = {"value": record[select], "epoch": epoch + 1,
                    "model": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        if progress:
            shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items() if k != "batches"}
            tqdm.write(str(shown))
        if checkpoint_path is not None:
            atomic_save({
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": rng_state(),
                "epoch": epoch + 1,
                "history": json.dumps(history),
                "best_model": best["model"], "best_value": best["value"], "best_epoch": best["epoch"],
            }, checkpoint_path)
        if history_path is not None:
            write_json(history, history_path)
        if curves_path is not None:
            plot_history(history, curves_path, keys=curve_keys)
        reason = stop(history) if stop is not None else None
        if reason:
            if progress:
                print(f"stopped after epoch {epoch + 1}: {reason}")
            break
    if best["model"] is not None:
        model.load_state_dict(best["model"])
        if progress:
            print(f"kept the model of epoch {best['epoch']} (best {select} {best['value']:.4f})")
    return history
