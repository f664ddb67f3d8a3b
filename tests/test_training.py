import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.fileio import UserError
from common.training import (CheckpointError, NonFiniteLossError, autocast, choose_amp, classification_step, evaluate,
                             fit, load_checkpoint, resolve_device, resume_checkpoint, seed_everything, summarize)
from common.data import TensorLoader


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (256, 1, 4, 4), generator=g, dtype=torch.uint8)
    y = (x.float().mean((1, 2, 3)) > 127).long()
    return x, y


def _model():
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.Tanh(), nn.Dropout(0.2), nn.Linear(32, 2))


def _run(tmp_path, epochs, resume=False, seed=0, amp=False):
    seed_everything(seed)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    x, y = _problem()
    loader = TensorLoader(x, y, batch_size=32, shuffle=True, seed=seed)
    history = fit(model, opt, classification_step(F.cross_entropy), loader, epochs=epochs,
                  val_loader=TensorLoader(x, y, batch_size=128), scheduler=sched, out=tmp_path, resume=resume,
                  progress=False, amp=amp)
    return model, history


def test_loss_falls_and_outputs_are_written(tmp_path):
    _, history = _run(tmp_path, epochs=4)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_error_pct"] < 20
    assert json.loads((tmp_path / "history.json").read_text()) == history
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")  # weights_only=True
    assert ckpt["epoch"] == 4 and set(ckpt) >= {"model", "optimizer", "scheduler", "rng"}


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    straight, h1 = _run(tmp_path / "a", epochs=4)
    _run(tmp_path / "b", epochs=2)  # "interrupted" after epoch 2
    seed_everything(123)  # a different RNG state in the new process must not matter
    resumed, h2 = _run(tmp_path / "b", epochs=4, resume=True, seed=0)
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name
    strip = lambda h: [{k: v for k, v in r.items() if "time" not in k} for r in h]  # noqa: E731
    assert strip(h1) == strip(h2)


def test_autocast_refuses_an_unresolved_amp_mode():
    """--amp's "auto" or "off" is a truthy string: passed on unresolved it would turn bf16 on everywhere."""
    cpu = torch.device("cpu")
    for mode in ("auto", "off", "on", None, 1):
        with pytest.raises(TypeError, match="choose_amp"):
            autocast(cpu, mode)
    with autocast(cpu, choose_amp("off", cpu)):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(cpu, True):
        assert torch.is_autocast_enabled("cpu")


def test_each_epoch_records_its_precision_and_a_change_on_resume_is_announced(tmp_path, capsys):
    _, history = _run(tmp_path, epochs=2)
    assert [h["bf16"] for h in history] == [False, False]
    assert "bf16" not in capsys.readouterr().out                         # the epoch lines show no flag
    _, history = _run(tmp_path, epochs=3, resume=True, amp=True)         # continued on a CPU with native bf16
    assert [h["bf16"] for h in history] == [False, False, True]
    assert "warning: the epochs so far trained in fp32, this part trains in bf16 autocast" in capsys.readouterr().out
    _run(tmp_path, epochs=4, resume=True, amp=True)
    assert "warning" in capsys.readouterr().out                          # epochs 1-2 still differ from this part


def test_resume_without_checkpoint_fails(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        _run(tmp_path, epochs=1, resume=True)


def test_damaged_or_code_carrying_files_are_refused_with_a_clear_error(tmp_path):
    _run(tmp_path, epochs=1)
    ckpt = tmp_path / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])                       # a truncated copy
    with pytest.raises(CheckpointError, match=r"checkpoint.pt is damaged.*without --resume"):
        resume_checkpoint(ckpt)
    assert ckpt.read_bytes() == data[: len(data) // 2]            # nothing deleted or rewritten
    pickled = tmp_path / "code.pt"
    torch.save({"model": _model()}, pickled)                      # a pickled module: code, not weights
    with pytest.raises(CheckpointError, match="code.pt is not a plain weights file"):
        load_checkpoint(pickled)
    assert pickled.exists()
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save(_model().state_dict(), tmp_path / "weights.pt")   # weights, but no training checkpoint
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        resume_checkpoint(tmp_path / "weights.pt")
    assert issubclass(CheckpointError, UserError)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = _problem()
    calls = {"n": 0}

    def step(m, batch):
        calls["n"] += 1
        loss = F.cross_entropy(m(batch[0]), batch[1])
        if calls["n"] > 10:  # epoch 2 of 8 batches
            loss = loss * float("nan")
        return loss, {"n": len(batch[1]), "loss": loss.item() * len(batch[1])}

    with pytest.raises(NonFiniteLossError, match="epoch 2.*last good checkpoint"):
        fit(model, opt, step, TensorLoader(x, y, batch_size=32), epochs=3, out=tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_evaluate_and_summarize():
    assert summarize({"n": 4, "loss": 2.0, "errors": 1}) == {"loss": 0.5, "error_pct": 25.0}
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    x, y = _problem()
    out = evaluate(model, TensorLoader(x, y, batch_size=100), classification_step(F.cross_entropy))
    assert set(out) == {"loss", "error_pct"} and 0 <= out["error_pct"] <= 100
    assert model.training  # evaluate restores the mode


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA"):
            resolve_device("cuda")


def test_select_keeps_the_best_model_and_on_epoch_end_can_stop(tmp_path):
    seed_everything(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # nothing changes: no epoch improves on the first

    def patience(history, n=2):   # a paper's early stopping, from the history alone
        best = min(range(len(history)), key=lambda e: history[e]["val_loss"])
        return f"no better val_loss for {n} epochs" if len(history) - 1 - best >= n else None

    x, y = _problem()
    history = fit(model, opt, classification_step(F.cross_entropy), TensorLoader(x, y, batch_size=32), epochs=10,
                  val_loader=TensorLoader(x, y, batch_size=128), select="val_loss", on_epoch_end=patience,
                  progress=False)
    assert len(history) == 3

    seed_everything(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=3.0, momentum=0.9)  # too large: the validation loss wanders
    val = TensorLoader(x, y, batch_size=128)
    step = classification_step(F.cross_entropy)
    history = fit(model, opt, step, TensorLoader(x, y, batch_size=32), epochs=6, val_loader=val,
                  select="val_loss", out=tmp_path, progress=False)
    best = min(h["val_loss"] for h in history)
    model.eval()
    assert evaluate(model, val, step)["loss"] == pytest.approx(best, rel=1e-5)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["best_value"] == pytest.approx(best)


def test_update_hook_replaces_the_optimisation_step():
    seed_everything(0)
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = _problem()
    calls = []

    def frozen(forward, m, optimizer):   # computes the loss, never steps
        calls.append(forward().item())

    history = fit(model, opt, classification_step(F.cross_entropy), TensorLoader(x, y, batch_size=32), epochs=1,
                  update=frozen, progress=False)
    assert len(calls) == 8 and history[0]["train_loss"] == pytest.approx(sum(calls) / 8, rel=1e-6)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


class _StopAfter:
    """An on_epoch_end hook with state: it records per-epoch extras and its state survives --resume."""

    def __init__(self, n):
        self.n, self.seen = n, 0

    def __call__(self, history):
        self.seen += 1
        history[-1]["seen"] = self.seen
        return "enough" if self.seen == self.n else None

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


def test_on_epoch_end_adds_to_the_record_stops_and_is_checkpointed(tmp_path, capsys):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = _problem()
    loader = TensorLoader(x, y, batch_size=100)
    step = classification_step(F.cross_entropy)
    history = fit(model, opt, step, loader, epochs=10, on_epoch_end=_StopAfter(2), out=tmp_path, progress=False)
    assert [h["seen"] for h in history] == [1, 2]
    assert "stopped after epoch 2: enough" in capsys.readouterr().out
    hook = _StopAfter(4)
    history = fit(model, opt, step, loader, epochs=10, on_epoch_end=hook, out=tmp_path, resume=True, progress=False)
    assert [h["seen"] for h in history] == [1, 2, 3, 4]                 # the hook's count came back from the checkpoint


def test_a_line_per_epoch_without_progress_bars(capsys):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = _problem()
    fit(model, opt, classification_step(F.cross_entropy), TensorLoader(x, y, batch_size=100), epochs=3,
        val_loader=TensorLoader(x, y, batch_size=128), progress=False, desc="toy")
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("toy epoch")]
    assert len(lines) == 3 and "train_loss" in lines[0] and "val_error_pct" in lines[-1]
