import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.training import (NonFiniteLossError, classification_step, evaluate, fit, load_checkpoint,
                             resolve_device, seed_everything, summarize)
from common.data import TensorLoader


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (256, 1, 4, 4), generator=g, dtype=torch.uint8)
    y = (x.float().mean((1, 2, 3)) > 127).long()
    return x, y


def _model():
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.Tanh(), nn.Dropout(0.2), nn.Linear(32, 2))


def _run(tmp_path, epochs, resume=False, seed=0):
    seed_everything(seed)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    x, y = _problem()
    loader = TensorLoader(x, y, batch_size=32, shuffle=True, seed=seed)
    history = fit(model, opt, classification_step(F.cross_entropy), loader, epochs=epochs,
                  val_loader=TensorLoader(x, y, batch_size=128), scheduler=sched,
                  checkpoint_path=tmp_path / "ckpt.pt", resume=resume, history_path=tmp_path / "history.json",
                  curves_path=tmp_path / "curves.png", progress=False)
    return model, history


def test_loss_falls_and_outputs_are_written(tmp_path):
    _, history = _run(tmp_path, epochs=4)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_error_pct"] < 20
    assert json.loads((tmp_path / "history.json").read_text()) == history
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    ckpt = load_checkpoint(tmp_path / "ckpt.pt")  # weights_only=True
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


def test_resume_without_checkpoint_fails(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        _run(tmp_path, epochs=1, resume=True)


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
        fit(model, opt, step, TensorLoader(x, y, batch_size=32), epochs=3, checkpoint_path=tmp_path / "c.pt",
            progress=False)
    ckpt = load_checkpoint(tmp_path / "c.pt")
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
        with pytest.raises(RuntimeError, match="no CUDA"):
            resolve_device("cuda")


def test_early_stopping_keeps_the_best_model(tmp_path):
    seed_everything(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # nothing changes: no epoch improves on the first
    x, y = _problem()
    history = fit(model, opt, classification_step(F.cross_entropy), TensorLoader(x, y, batch_size=32), epochs=10,
                  val_loader=TensorLoader(x, y, batch_size=128), select="val_loss", patience=2, progress=False)
    assert len(history) == 3

    seed_everything(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=3.0, momentum=0.9)  # too large: the validation loss wanders
    val = TensorLoader(x, y, batch_size=128)
    step = classification_step(F.cross_entropy)
    history = fit(model, opt, step, TensorLoader(x, y, batch_size=32), epochs=6, val_loader=val,
                  select="val_loss", checkpoint_path=tmp_path / "c.pt", progress=False)
    best = min(h["val_loss"] for h in history)
    model.eval()
    assert evaluate(model, val, step)["loss"] == pytest.approx(best, rel=1e-5)
    assert load_checkpoint(tmp_path / "c.pt")["best_value"] == pytest.approx(best)


def test_weight_noise_perturbs_the_step_but_not_the_weights():
    seed_everything(0)
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    x, y = _problem()
    step = classification_step(F.cross_entropy)
    quiet = fit(model, opt, step, TensorLoader(x, y, batch_size=32), epochs=1, progress=False)
    noisy = fit(model, opt, step, TensorLoader(x, y, batch_size=32), epochs=1, weight_noise=0.5, progress=False)
    assert noisy[0]["train_loss"] != pytest.approx(quiet[0]["train_loss"], rel=1e-3)
    for k, v in model.state_dict().items():
        assert torch.allclose(v, before[k], atol=1e-6), k


def test_per_batch_records_stop_and_plateau_scheduler(tmp_path):
    seed_everything(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=0)
    x, y = _problem()
    history = fit(model, opt, classification_step(F.cross_entropy), TensorLoader(x, y, batch_size=100),
                  epochs=10, val_loader=TensorLoader(x, y, batch_size=128), scheduler=sched,
                  scheduler_metric="val_error_pct", per_batch=("n", "errors"),
                  stop=lambda h: "two epochs" if len(h) == 2 else None, progress=False)
    assert len(history) == 2                                         # stopped by the callback
    assert history[0]["batches"]["n"] == [100, 100, 56]               # one entry per batch, in order
    assert sum(history[0]["batches"]["errors"]) == round(history[0]["train_error_pct"] * 256 / 100)
    assert sched.best == min(h["val_error_pct"] for h in history)    # the scheduler saw the validation error
