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
import pickle
import platform
import random
import time
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from common.data import TensorLoader
from common.distributed import all_reduce_sums, check_batch, is_main, wrap
from common.fileio import UserError, atomic_target

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
        raise UserError("--device cuda: torch sees no CUDA device on this machine; use --device auto or cpu")
    return device


def cpu_model() -> str:
    """The CPU's marketing name ("AMD EPYC", "Intel(R) Xeon(R) Platinum 8488C"), or the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _cpu_has(feature: str) -> bool:
    """torch's own CPU feature check (``torch.cpu._is_<feature>_supported``), False where torch lacks it."""
    check = getattr(torch.cpu, f"_is_{feature}_supported", None)
    try:
        return bool(check()) if check else False
    except RuntimeError:
        return False


def cpu_isa() -> str:
    """The vector instruction set torch dispatches to, with the bf16 units: "AVX2", "AVX512 + AVX512-BF16",
    "AVX512 + AVX512-BF16 + AMX" (the widths that decide how fast fp32 and bf16 run)."""
    parts = [torch.backends.cpu.get_cpu_capability()]
    parts += [name for name, feature in (("AVX512-BF16", "avx512_bf16"), ("AMX", "amx_tile")) if _cpu_has(feature)]
    return " + ".join(parts)


def describe_device(device: torch.device) -> str:
    """The hardware a figure was measured on: the GPU's name, or the CPU's model, vector ISA and threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({cpu_isa()}, {torch.get_num_threads()} threads)"


# --------------------------------------------------------------------------- precision: fp32 or bf16 autocast

AMP_MODES = ("auto", "on", "off")


def native_bf16(device: torch.device) -> bool:
    """Does ``device`` compute bf16 in hardware? CUDA with bf16 support; a CPU with AVX512-BF16 or AMX. Elsewhere
    (AVX2, plain AVX-512) bf16 autocast is emulated: up to 9x slower than fp32 for a ResNet, and oneDNN has no
    bf16 LSTM kernel at all."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (_cpu_has("avx512_bf16") or _cpu_has("amx_tile"))


def choose_amp(mode: str, device: torch.device, *, needs_native: bool = False) -> bool:
    """``--amp auto|on|off`` -> bf16 autocast or not. ``auto``: where the device runs bf16 natively
    (:func:`native_bf16`), fp32 elsewhere. ``on`` where bf16 is not native: a :class:`UserError` when the model
    has kernels with no bf16 implementation there (``needs_native``: oneDNN's LSTM), else a warning that it
    will be slow. ``off``: fp32."""
    if mode not in AMP_MODES:
        raise UserError(f"--amp must be one of {', '.join(AMP_MODES)}, got {mode!r}")
    native = native_bf16(device)
    if mode == "off" or (mode == "auto" and not native):
        return False
    if mode == "on" and not native:
        where = f"this CPU ({cpu_isa()})" if device.type == "cpu" else describe_device(device)
        if needs_native:
            raise UserError(f"--amp on: {where} has no native bf16, and this model's kernels (oneDNN's LSTM) have "
                            "no bf16 implementation there; use --amp off (or auto, which picks fp32 here)")
        warnings.warn(f"--amp on: {where} has no native bf16: autocast emulates it and may run several times "
                      "slower than fp32 (--amp auto picks fp32 here)", stacklevel=2)
    return True


def precision_name(bf16: bool) -> str:
    """What a step trains in: "bf16 autocast" or "fp32"."""
    return "bf16 autocast" if bf16 else "fp32"


def describe_precision(amp: bool, mode: str = "auto", device: torch.device | None = None) -> str:
    """One line for logs and metrics: "bf16 autocast (--amp auto: AVX512 + AVX512-BF16)" or "fp32 (--amp off)"."""
    why = f"--amp {mode}"
    if mode == "auto" and device is not None:
        why += ": " + (describe_device(device) if device.type == "cuda" else cpu_isa())
    return f"{precision_name(amp)} ({why})"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on devices that support it; a no-op context otherwise. ``enabled`` is a bool: an unresolved
    ``--amp`` mode ("auto", "off") is refused, since any such string would switch bf16 on (:func:`choose_amp`)."""
    if not isinstance(enabled, bool):
        raise TypeError(f"autocast takes enabled=True/False, got {enabled!r}: resolve an --amp mode with choose_amp")
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


class CheckpointError(UserError):
    """A checkpoint or weights file that cannot be used: missing, damaged, or not a plain weights file."""


def atomic_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``. Under torchrun only
    process 0 writes (:func:`common.distributed.is_main`); the others do nothing."""
    if not is_main():
        return
    with atomic_target(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | os.PathLike, map_location="cpu", *,
                    fix: str = "check the path, or pass another file") -> dict:
    """Load a checkpoint or a state_dict with ``weights_only=True`` (tensors and plain containers only).

    Every way this can fail becomes a :class:`CheckpointError` that names the file, says what is
    wrong and ends with ``fix`` (what the user can do). The file itself is never touched."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; {fix}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise CheckpointError(
                f"{path} is not a plain weights file: it holds Python objects that would run code when loaded, "
                f"which weights_only=True refuses; {fix} (a state_dict saved with torch.save)") from None
        raise CheckpointError(f"{path} is damaged or not a PyTorch file ({_first_line(e)}); {fix}") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path} is damaged or not a PyTorch file ({_first_line(e)}); {fix}") from None


def _first_line(e: Exception) -> str:
    """The first sentence of an exception's message (torch's zip reader adds paragraphs of internals;
    ``load_state_dict`` opens with a header line, "Error(s) in loading state_dict for ...", skipped here)."""
    text = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if len(text) > 1 and text[0].startswith("Error(s) in loading"):
        text = text[1:]
    return text[0].split(". ")[0].rstrip(".")[:160] if text else type(e).__name__


def _is_training_checkpoint(obj) -> bool:
    """What :func:`save_checkpoint` writes (a dict with the model and the epochs done), not a bare state_dict."""
    return isinstance(obj, dict) and {"model", "epoch"} <= set(obj)


def load_weights(model: torch.nn.Module, path: str | os.PathLike, map_location="cpu", *, fix: str) -> None:
    """Weights for ``--evaluate``: a state_dict of ``model`` (or the model of a training checkpoint) loaded
    into it. A file that cannot be read, carries code, or holds another network's weights is a
    :class:`CheckpointError` that names it and ends with ``fix``."""
    state = load_checkpoint(path, map_location, fix=fix)
    if _is_training_checkpoint(state):
        state = state["model"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, KeyError) as e:
        raise CheckpointError(f"{path} does not hold the weights of this {type(model).__name__} "
                              f"({_first_line(e)}); {fix}") from None


RESUME_FIX = "start again without --resume (the run restarts from epoch 1), or restore the file from a copy"


def resume_checkpoint(path: str | os.PathLike | None, map_location="cpu") -> dict:
    """The checkpoint a ``--resume`` continues from; a :class:`CheckpointError` when there is none
    or it cannot be read."""
    if path is None or not Path(path).exists():
        raise CheckpointError(f"--resume: no checkpoint at {path}; start without --resume")
    ckpt = load_checkpoint(path, map_location, fix=RESUME_FIX)
    if not _is_training_checkpoint(ckpt):
        raise CheckpointError(f"{path} is not a training checkpoint (no model and epoch in it); {RESUME_FIX}")
    return ckpt


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, optimizer=None, *, epoch: int,
                    history: list[dict], scheduler=None, **extra) -> None:
    """The one checkpoint format (fit and the online loops): model, optimiser, scheduler, RNG states,
    epochs done and the history so far, plus ``extra`` (tensors and plain containers)."""
    atomic_save({"model": model.state_dict(),
                 "optimizer": optimizer.state_dict() if optimizer is not None else None,
                 "scheduler": scheduler.state_dict() if scheduler is not None else None,
                 "rng": rng_state(), "epoch": int(epoch), "history": json.dumps(history), **extra}, path)


def restore_checkpoint(ckpt: dict, model: torch.nn.Module, optimizer=None, scheduler=None) -> list[dict]:
    """Load what :func:`save_checkpoint` wrote back into the objects; returns the history."""
    model.load_state_dict(ckpt["model"])
    if optimizer is not None and ckpt.get("optimizer") is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None and ckpt.get("scheduler") is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    set_rng_state(ckpt["rng"])
    return json.loads(ckpt["history"])


def write_json(obj, path: str | os.PathLike) -> None:
    """``obj`` as indented JSON, written atomically; by process 0 only under torchrun."""
    if not is_main():
        return
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
    """Run ``step`` over ``loader`` in eval mode and return :func:`summarize` of the sums (added across
    processes under torchrun, where each process evaluates its part of every batch)."""
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
    return summarize(all_reduce_sums(sums))


# --------------------------------------------------------------------------- fit


def sgd_update(forward: Callable[[], torch.Tensor], model: torch.nn.Module, optimizer) -> None:
    """The default optimisation step: the forward pass, the gradient, one optimiser step."""
    loss = forward()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def clipped_update(max_norm: float) -> Callable:
    """An ``update`` for :func:`fit`: :func:`sgd_update` with the gradient rescaled to norm ``max_norm`` (over
    all parameters together) when it is larger."""

    def update(forward: Callable[[], torch.Tensor], model: torch.nn.Module, optimizer) -> None:
        loss = forward()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()

    return update


def patience_stop(patience: int, key: str = "val_loss"):
    """Early stopping read off the history: stop once ``patience`` epochs have passed without a lower
    ``key`` than the best so far (fit's ``select`` then loads the best epoch's model back)."""

    def on_epoch_end(history: list[dict]) -> str | None:
        best = min(history, key=lambda h: h[key])          # the first epoch of the lowest value
        if len(history) - best["epoch"] >= patience:
            return f"no better {key} for {patience} epochs (best {best[key]:.4f} at epoch {best['epoch']})"
        return None

    return on_epoch_end


class TestCurve:
    """An ``on_epoch_end`` hook: the test loss and error after every epoch (``test_loss``, ``test_error_pct`` in the
    history), for curves, and for a paper whose own protocol reports the best epoch's test figure. Nothing is
    chosen on them here: a run reports the model after its last epoch."""

    def __init__(self, model: torch.nn.Module, loader, step: Step, device: torch.device, amp: bool = False):
        self.model, self.loader, self.step, self.device, self.amp = model, loader, step, device, amp

    def __call__(self, history: list[dict]) -> None:
        test = evaluate(self.model, self.loader, self.step, self.device, self.amp)
        history[-1].update({f"test_{k}": v for k, v in test.items()})


def epoch_line(record: dict) -> str:
    """One line per epoch for logs: ``epoch 3/20  train_loss 0.1234  val_error_pct 1.21  (12.3 s)``."""
    shown = "  ".join(f"{k} {v:.4g}" for k, v in record.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)
                      and k not in ("epoch", "epoch_time_s", "train_time_s"))
    return f"{shown}  ({record.get('epoch_time_s', 0):.1f} s)"


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
    out: str | os.PathLike | None = None,
    resume: bool = False,
    curve_keys: tuple[str, ...] = ("loss", "error_pct"),
    select: str | None = None,
    update: Callable = sgd_update,
    on_epoch_end: Callable[[list[dict]], str | None] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> list[dict]:
    """Train ``model`` for ``epochs`` epochs; return the per-epoch history (a list of dicts).

    Each epoch: the loader's ``set_epoch(epoch)`` (shuffling depends on the epoch alone), one
    ``update`` per batch, the validation pass, ``scheduler.step()``, then ``on_epoch_end``, then
    (with ``out``) ``out/checkpoint.pt``, ``out/history.json`` and ``out/curves.png``. A line per
    epoch is printed, with or without the tqdm bar (``progress``).

    ``out`` + ``resume=True`` continues from ``out/checkpoint.pt``: the resumed run ends with the
    same weights as an uninterrupted one (CPU, fixed seed). Each epoch's record says whether it trained
    under bf16 autocast (``bf16``); a resumed part that trains in the other precision (``--amp auto`` on
    another kind of CPU) is announced with a warning. ``select`` names a history key to
    minimise (e.g. ``"val_loss"``): the model of the best epoch is loaded back at the end (epochs that
    did not record the key, e.g. a hook that measures every few epochs, are not candidates).

    Two hooks, for what one paper needs:

    * ``update(forward, model, optimizer)`` does one optimisation step; ``forward()`` runs the step
      under autocast, checks the loss is finite and returns it (default :func:`sgd_update`).
    * ``on_epoch_end(history)`` may add keys to ``history[-1]`` and returns a reason to stop (or
      None). If it has ``state_dict``/``load_state_dict``, its state goes into the checkpoint.

    A NaN or infinite loss raises :class:`NonFiniteLossError`; the last good checkpoint is kept.

    Under torchrun (``common.distributed``) the model trains wrapped in ``DistributedDataParallel`` (its
    parameters are shared with ``model``, which hooks, checkpoints and evaluation keep using); each process
    takes its part of every global batch, the epoch's sums are added across processes, and only process 0
    prints, checkpoints and writes the history. Every process reads the checkpoint on ``resume``.
    """
    from common.plots import plot_history

    device = device or next(model.parameters()).device
    if isinstance(train_loader, TensorLoader) and train_loader.shard:
        check_batch(train_loader.batch_size)
    main = is_main()
    progress = progress and main
    ckpt_path = Path(out) / "checkpoint.pt" if out is not None else None
    history: list[dict] = []
    best = {"value": math.inf, "epoch": 0, "model": None}
    if resume:
        ckpt = resume_checkpoint(ckpt_path, map_location=device)
        history = restore_checkpoint(ckpt, model, optimizer, scheduler)
        if ckpt.get("best_model") is not None:
            best = {"value": float(ckpt["best_value"]), "epoch": int(ckpt["best_epoch"]), "model": ckpt["best_model"]}
        if ckpt.get("hook") is not None and hasattr(on_epoch_end, "load_state_dict"):
            on_epoch_end.load_state_dict(ckpt["hook"])
        if main:
            print(f"{desc}: resumed from {ckpt_path} after epoch {len(history)}")
            before = {h["bf16"] for h in history if "bf16" in h}
            if before and before != {bool(amp)}:      # e.g. a run continued on a CPU without native bf16
                so_far = " and ".join(precision_name(b) for b in before)
                print(f"{desc}: warning: the epochs so far trained in {so_far}, this part trains in "
                      f"{precision_name(amp)} (pass --amp on or off to keep one precision)")

    trained = wrap(model)   # DistributedDataParallel under torchrun, else the model itself
    for epoch in range(len(history), epochs):
        for epoch_aware in (train_loader, getattr(train_loader, "sampler", None)):   # e.g. a DistributedSampler
            if hasattr(epoch_aware, "set_epoch"):
                epoch_aware.set_epoch(epoch)
        model.train()
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        bar = tqdm(train_loader, desc=f"{desc} {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for i, batch in enumerate(bar):
            def forward(batch=batch, i=i):
                with autocast(device, amp):
                    loss, s = step(trained, batch)
                if not math.isfinite(loss.item()):
                    kept = (f"the last good checkpoint ({ckpt_path}, after epoch {epoch}) is kept"
                            if ckpt_path is not None and ckpt_path.exists() else "no checkpoint was written")
                    raise NonFiniteLossError(f"loss became {loss.item()} at epoch {epoch + 1}, batch {i + 1}; "
                                             f"{kept}. Try a lower --lr (or --resume from the checkpoint with one).")
                for k, v in s.items():
                    sums[k] = sums.get(k, 0) + v
                return loss

            update(forward, model, optimizer)
            if progress and i % 20 == 0:
                bar.set_postfix({k: f"{v:.4g}" for k, v in summarize(sums).items()})
        record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                  "train_time_s": round(time.perf_counter() - t0, 3), "bf16": bool(amp)}
        record.update({f"train_{k}": v for k, v in summarize(all_reduce_sums(sums)).items()})
        if val_loader is not None:
            record.update({f"val_{k}": v for k, v in evaluate(model, val_loader, step, device, amp).items()})
        if scheduler is not None:
            scheduler.step()
        record["epoch_time_s"] = round(time.perf_counter() - t0, 3)
        history.append(record)
        reason = on_epoch_end(history) if on_epoch_end is not None else None
        if select is not None and record.get(select, math.inf) < best["value"]:   # epochs without it: skipped
            best = {"value": record[select], "epoch": epoch + 1,
                    "model": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        if main:
            tqdm.write(f"{desc} epoch {epoch + 1}/{epochs}  {epoch_line(record)}")
        if out is not None and main:
            hook_state = on_epoch_end.state_dict() if hasattr(on_epoch_end, "state_dict") else None
            save_checkpoint(ckpt_path, model, optimizer, epoch=epoch + 1, history=history, scheduler=scheduler,
                            best_model=best["model"], best_value=best["value"], best_epoch=best["epoch"],
                            hook=hook_state)
            write_json(history, Path(out) / "history.json")
            if curve_keys:
                plot_history(history, Path(out) / "curves.png", keys=curve_keys)
        if reason:
            if main:
                print(f"{desc}: stopped after epoch {epoch + 1}: {reason}")
            break
    if best["model"] is not None:
        model.load_state_dict(best["model"])
        if main:
            print(f"{desc}: kept the model of epoch {best['epoch']} (best {select} {best['value']:.4f})")
    return history
