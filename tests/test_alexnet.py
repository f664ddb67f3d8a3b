import json

import pytest
import torch
from torch import nn

from CNN.alexnet import imagenet, lrn_cifar, train
from CNN.alexnet.experiments import lr_sweep
from CNN.alexnet.model import (AlexNet, ConvLocalNet, FourLayerNet, LocallyConnected2d, LocalResponseNorm,
                                mean_patch)
from common.data import random_crop_flip
from common.summary import count_parameters as _parameters
from common.training import load_checkpoint


@pytest.mark.parametrize("size", [224, 227])
def test_alexnet_shapes_and_parameter_count(size):
    model = AlexNet(input_size=size).eval()
    h = model.features(torch.rand(2, 3, size, size))
    shapes = {k: tuple(v.shape[1:]) for k, v in h.items()}
    assert shapes["conv1"] == (96, 55, 55) and shapes["pool1"] == (96, 27, 27)
    assert shapes["conv2"] == (256, 27, 27) and shapes["pool2"] == (256, 13, 13)
    assert shapes["conv5"] == (256, 13, 13) and shapes["pool5"] == (256, 6, 6) and shapes["fc8"] == (1000,)
    # the single-device reading of Fig. 2 (groups=2 in conv2, conv4, conv5); the paper says "60 million"
    assert _parameters(model) == 60_965_224
    assert {"normalize.mean", "normalize.std"} <= set(model.state_dict())


def test_alexnet_initialisation_follows_section_5():
    model = AlexNet()
    for name in ("conv2", "conv4", "conv5", "fc6", "fc7"):
        assert torch.all(getattr(model, name).bias == 1), name
    for name in ("conv1", "conv3", "fc8"):
        assert torch.all(getattr(model, name).bias == 0), name
    assert model.fc6.weight.std().item() == pytest.approx(0.01, rel=0.01)
    assert abs(model.fc6.weight.mean().item()) < 1e-4


def test_grouped_convolutions_keep_the_two_columns_apart():
    model = AlexNet()
    for conv, c_in in ((model.conv2, 96), (model.conv4, 384), (model.conv5, 384)):
        assert conv.groups == 2
        x = torch.randn(1, c_in, 13, 13)
        x2 = x.clone()
        x2[:, c_in // 2:] = 0                               # silence the second column's input maps
        y, y2 = conv(x), conv(x2)
        half = conv.out_channels // 2
        assert torch.equal(y[:, :half], y2[:, :half])      # the first column does not see them
        assert not torch.allclose(y[:, half:], y2[:, half:])
    assert model.conv3.groups == 1                          # conv3 reads both columns


def _lrn_by_the_formula(a, n=5, k=2.0, alpha=1e-4, beta=0.75):
    """Sec. 3.3 written as loops over maps i and the window j."""
    N = a.shape[1]
    b = torch.empty_like(a)
    for i in range(N):
        s = torch.zeros_like(a[:, 0])
        for j in range(max(0, i - n // 2), min(N - 1, i + n // 2) + 1):
            s += a[:, j] ** 2
        b[:, i] = a[:, i] / (k + alpha * s) ** beta
    return b


def test_local_response_norm_is_the_papers_formula():
    a = torch.randn(2, 12, 4, 5, dtype=torch.float64) * 30  # large enough that the sum matters
    ours = LocalResponseNorm().double()(a)
    assert torch.allclose(ours, _lrn_by_the_formula(a), rtol=1e-6)
    # torch divides alpha by n: the same function with alpha * n
    torch_lrn = nn.LocalResponseNorm(5, alpha=1e-4 * 5, beta=0.75, k=2.0)
    assert torch.allclose(ours, torch_lrn(a), rtol=1e-6)
    # groups=2: each half of the maps normalised on its own (one GPU each)
    grouped = LocalResponseNorm(groups=2).double()(a)
    expected = torch.cat([_lrn_by_the_formula(a[:, :6]), _lrn_by_the_formula(a[:, 6:])], 1)
    assert torch.allclose(grouped, expected, rtol=1e-6)
    # channels_last input gives the same numbers
    assert torch.allclose(LocalResponseNorm()(a.float().contiguous(memory_format=torch.channels_last)),
                          ours.float(), rtol=1e-5)


def test_four_layer_net_of_fig_1():
    relu, tanh = FourLayerNet("relu"), FourLayerNet("tanh")
    assert _parameters(relu) == 2_432 + 25_632 + 51_264 + 10_250 == 89_578
    tanh.load_state_dict(relu.state_dict())
    x = torch.rand(3, 3, 32, 32)
    assert relu(x).shape == (3, 10) and not torch.allclose(relu(x), tanh(x))
    with pytest.raises(ValueError):
        FourLayerNet("sigmoid")
    assert all(torch.all(m.bias == 0) for m in (relu.conv1, relu.conv2, relu.conv3, relu.fc))


def _old_history(batch_errors_per_epoch, n=100):
    """A history in the format written before issue 22: per-batch counts under ``batches``."""
    return [{"epoch": e + 1, "train_error_pct": 0.0, "batches": {"n": [n] * len(b), "errors": list(b)}}
            for e, b in enumerate(batch_errors_per_epoch)]


def test_chunks_pool_consecutive_batches():
    assert train.pool_chunks([100] * 20, [30, 10] + [50] * 18) == [20.0] + [50.0] * 9    # two batches per chunk
    # unequal batches pool their examples, not their rates: (10 + 0) / (100 + 10)
    assert train.pool_chunks([100, 10], [10, 0], chunks=1) == [pytest.approx(100 * 10 / 110)]
    # fewer batches than chunks: empty chunks are None and leave no point on the curve
    chunks = train.pool_chunks([100] * 8, [90] * 8)
    assert chunks == [90.0] * 8 + [None, None]
    points = train.chunk_points([{"train_chunk_error_pct": chunks}])
    assert len(points) == 8 and points[-1][0] == pytest.approx(0.8)


def test_crossing_point_on_a_hand_made_sequence():
    h = [{"train_chunk_error_pct": [60.0] * 10},
         {"train_chunk_error_pct": [40.0, 35, 30, 27, 26, 25, 24, 20, 20, 20]}]
    points = train.chunk_points(h)
    assert len(points) == 20 and points[0] == (pytest.approx(0.1), 60.0)
    # 25% is not below 25%; the first chunk below is the 7th of epoch 2 -> 1.7 epochs
    assert train.crossing_epoch(h) == pytest.approx(1.7)
    assert train.crossing_epoch(h, target=10.0) is None
    assert train.crossing_epoch(h[:1], target=60.5) == pytest.approx(0.1)


def test_the_hook_records_training_batches_only_and_stops_after_the_crossing_epoch():
    base = train.classification_step(nn.functional.cross_entropy)
    hook = train.ChunkedTrainingError(base, chunks=2, stop_at=50.0)
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
        model.bias.zero_()
    right = (torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]))       # no errors
    wrong = (right[0], torch.tensor([1, 0]))                                      # two errors
    for batch in (wrong, wrong, wrong):
        hook.step(model, batch)
    model.eval()
    hook.step(model, right)                                    # validation: not a training batch
    history = [{"epoch": 1}]
    assert hook(history) is None                               # chunks of batches (1, 2) and (3): 100%, 100%
    assert history[0]["train_chunk_error_pct"] == [100.0, 100.0] and hook.n == []
    model.train()
    for batch in (wrong, right, right):
        hook.step(model, batch)
    history.append({"epoch": 2})
    reason = hook(history)                                     # (wrong, right) = 50% is not below 50; (right) is
    assert history[1]["train_chunk_error_pct"] == [50.0, 0.0]
    assert reason == "training error below 50% at epoch 2.0"
    assert train.ChunkedTrainingError(base, chunks=2)(history) is None   # without stop_at it never stops


def test_old_histories_convert_to_chunk_errors():
    old = _old_history([[60] * 10, [40, 35, 30, 27, 26, 25, 24, 20, 20, 20]])
    new = train.convert_history(old)
    assert "batches" not in new[0] and "batches" in old[0]                 # the input is left as it was
    assert new[1]["train_chunk_error_pct"] == [40.0, 35.0, 30.0, 27.0, 26.0, 25.0, 24.0, 20.0, 20.0, 20.0]
    assert new[0]["epoch"] == 1 and train.crossing_epoch(new) == pytest.approx(1.7)
    assert train.convert_history(new) == new                               # already converted: unchanged
    # an old run resumed with today's code: old epochs, then new ones; the crossing reads both
    assert train.crossing_epoch([old[0], new[1]]) == pytest.approx(1.7)
    # 352 batches per epoch as in the real runs (the last one smaller): chunks pool whole batches
    n = [128] * 351 + [72]
    errors = [40] * 200 + [20] * 152
    chunks = train.convert_history([{"batches": {"n": n, "errors": errors}}])[0]["train_chunk_error_pct"]
    assert len(chunks) == 10 and chunks[0] == pytest.approx(100 * 40 / 128)
    assert chunks[-1] == pytest.approx(100 * (20 * 35) / (128 * 34 + 72))


def test_convert_run_folder_checks_the_recorded_crossing(tmp_path):
    old = _old_history([[60] * 10, [40, 35, 30, 27, 26, 25, 24, 20, 20, 20]])
    (tmp_path / "history.json").write_text(json.dumps(old))
    (tmp_path / "run.json").write_text(json.dumps({"crossed_at_epoch": 1.5}))
    with pytest.raises(ValueError, match="not converted"):
        train.convert_run_folder(tmp_path)
    assert json.loads((tmp_path / "history.json").read_text()) == old        # untouched
    (tmp_path / "run.json").write_text(json.dumps({"crossed_at_epoch": 1.7}))
    train.convert_run_folder(tmp_path)
    converted = json.loads((tmp_path / "history.json").read_text())
    assert all("batches" not in e for e in converted) and train.crossing_epoch(converted) == pytest.approx(1.7)


def test_ratio_is_a_lower_bound_when_tanh_hits_the_cap():
    runs = [{"activation": "relu", "seed": s, "epochs_to_target": e, "capped": False} for s, e in ((0, 5.0), (1, 6.0))]
    runs += [{"activation": "tanh", "seed": 0, "epochs_to_target": 30.0, "capped": False},
             {"activation": "tanh", "seed": 1, "epochs_to_target": 60.0, "capped": True}]
    s = train.summarize_runs(runs)
    assert s["ratio_of_means"] == pytest.approx(45.0 / 5.5)
    assert s["per_seed_ratios"] == pytest.approx([6.0, 10.0]) and s["mean_of_ratios"] == pytest.approx(8.0)
    assert s["ratio_is_lower_bound"] and not s["relu_capped"]
    runs[-1]["capped"] = False                                   # every tanh run crossed: a measured ratio
    assert not train.summarize_runs(runs)["ratio_is_lower_bound"]


def test_imagenet_augmentation_keeps_shapes_and_labels():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 3, 7, 9])
    x = (labels * 20 + 30).to(torch.uint8)[:, None, None, None].expand(4, 3, 256, 256).contiguous()
    crops = random_crop_flip(x, pad=0, size=224, generator=g)
    assert crops.shape == (4, 3, 224, 224) and torch.equal(crops[:, :, 0, 0], x[:, :, 0, 0])
    eigvec, _ = torch.linalg.qr(torch.randn(3, 3, generator=g))
    eigval = torch.tensor([0.2, 0.02, 0.005])
    lit = imagenet.pca_lighting(crops.float() / 255, eigval, eigvec, generator=g)
    shift = lit - crops.float() / 255
    assert lit.shape == crops.shape and torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift))  # one per image
    assert shift.abs().max() < 0.2
    crops10 = imagenet.ten_crops(x, 224)
    assert all(c.shape == (4, 3, 224, 224) for c in crops10) and len(crops10) == 10

    class ReadsTheLabel(nn.Module):  # predicts the class written into the pixels: no error iff labels stay aligned
        def forward(self, images):
            k = ((images.mean((1, 2, 3)) * 255 - 30) / 20).round().long()
            return nn.functional.one_hot(k.clamp(0, 9), 10).float()

    step = imagenet.imagenet_step(eigval * 0.01, eigvec, 224, "cpu", channels_last=False)
    model = ReadsTheLabel()
    for mode in (True, False):
        model.train(mode)
        _, sums = step(model, (x, labels))
        assert sums["n"] == 4 and sums["errors"] == 0 and sums["top5_errors"] == 0


def _fake_image_folder(root, classes=("cat", "dog"), per_class=4):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class if split == "train" else 2):
                pixels = torch.randint(0, 256, (40, 52, 3), generator=g, dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(root / split / c / f"{i}.jpg")
    return root


def test_plateau_hook_divides_the_lr_by_ten_and_carries_its_state():
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.01)
    plateau = imagenet.PlateauOnValidationError(opt, patience=2)
    history = []
    for err in (50.0, 40.0, 41.0, 40.0):                        # two epochs without improvement: patience 2 holds
        history.append({"val_error_pct": err})
        assert plateau(history) is None
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
    state = plateau.state_dict()
    history.append({"val_error_pct": 45.0})                     # the third: lr / 10
    plateau(history)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.001)
    # a resumed run (state from the checkpoint) takes the same decision
    opt2 = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.01)
    again = imagenet.PlateauOnValidationError(opt2, patience=2)
    again.load_state_dict(state)
    again(history)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.001)


def test_imagenet_path_end_to_end_on_a_tiny_image_folder(tmp_path):
    root = _fake_image_folder(tmp_path / "tiny")
    out = tmp_path / "out"
    common = ["--data-dir", str(root), "--batch-size", "4", "--workers", "0", "--out", str(out), "--no-progress",
              "--pca-images", "4"]
    assert imagenet.main(common + ["--epochs", "1"]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["model"]["class"] == "AlexNet" and record["classes"] == 2 and record["epochs"] == 1
    assert record["model"]["kwargs"] == {"num_classes": 2, "input_size": 224}
    assert {m["name"] for m in record["metrics"]} == {"top1_error_pct", "top5_error_pct"}
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["epoch"] == 1 and ckpt["model"]["fc8.weight"].shape == (2, 4096)
    assert ckpt["hook"]["patience"] == 2 and ckpt["hook"]["num_bad_epochs"] == 0   # the plateau's state
    assert imagenet.main(common + ["--epochs", "2", "--resume", "--ten-crop"]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["epochs"] == 2 and record["metrics"][0]["split"] == "val (10 crops)"
    model = AlexNet(num_classes=2)
    model.load_state_dict(load_checkpoint(out / "model.pt"))
    assert model(torch.rand(1, 3, 224, 224)).shape == (1, 2)


def test_imagenet_without_an_image_folder_is_one_error_line(tmp_path, capsys):
    assert imagenet.main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --data-dir {tmp_path}: needs PATH/train/<class>/*.jpg and PATH/val/<class>/*.jpg"]


@pytest.fixture
def tiny(monkeypatch):
    """--quick on fewer images (two batches of 128 per epoch), to keep the tests short."""
    monkeypatch.setattr(train, "QUICK_SUBSET", (256, 128, 128))


def test_image_loaders_shared_by_the_cifar_programs():
    from common.data import ImageSplits, image_loaders

    x = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    y = torch.arange(10)
    loaders = image_loaders(ImageSplits(x, y, x[:0], y[:0], x[:3], y[:3]), batch_size=4, seed=1, device="cpu",
                            channels_last=True, drop_last=True)
    assert loaders.val is None and len(loaders.train) == 2                 # no validation split; 10 // 4 batches
    batches = list(loaders.train)
    xb, yb = batches[0]
    assert xb.dtype == torch.float32 and xb.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(xb, x[yb].float() / 255)                           # images stay with their labels
    loaders.train.set_epoch(0)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches, loaders.train))   # the order depends on the epoch
    (xt, yt), = loaders.test
    assert torch.equal(yt, y[:3]) and torch.equal(xt, x[:3].float() / 255)


def _fig1(cifar_root, out, *extra):
    return train.main(["--quick", "--data-dir", str(cifar_root), "--out", str(out), "--no-progress", *extra])


def test_fig1_quick_end_to_end(cifar_root, tmp_path, tiny):
    out = tmp_path / "quick"
    # a target of 95% is crossed in the first epoch: each run stops there (the cap is 2)
    assert _fig1(cifar_root, out, "--target", "95") == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["quick"] and record["seeds"] == [0] and (out / "fig1.png").exists()
    runs = {r["activation"]: r for r in record["runs"]}
    assert set(runs) == {"relu", "tanh"} and all(r["epochs_run"] == 1 and not r["capped"] for r in runs.values())
    (m,) = record["metrics"]
    assert m["name"] == "relu_speedup_x" and m["claim"] == train.CLAIM and not m["lower_bound"]
    assert m["ours"] == pytest.approx(runs["tanh"]["epochs_to_target"] / runs["relu"]["epochs_to_target"], abs=1e-4)
    assert [row[0] for row in record["details"]["rows"]] == ["relu", "tanh"] and "training_error" in record
    assert record["model"] == {"module": "CNN/alexnet/model.py", "class": "FourLayerNet",
                               "kwargs": {"activation": "relu"}, "weights": "relu-seed0/model.pt"}
    history = json.loads((out / "relu-seed0" / "history.json").read_text())
    chunks = history[0]["train_chunk_error_pct"]                # two batches: two chunks of one, eight empty
    assert len(chunks) == 10 and chunks.count(None) == 8 and "batches" not in history[0]
    assert train.crossing_epoch(history, 95.0) == runs["relu"]["crossed_at_epoch"]
    model = FourLayerNet()
    model.load_state_dict(load_checkpoint(out / "relu-seed0" / "model.pt"))
    assert model.normalize.mean.flatten().tolist() != [0.5, 0.5, 0.5]   # the training set's statistics travel along
    # --resume reads finished runs back (nothing is trained again) and writes the same numbers
    assert _fig1(cifar_root, out, "--target", "95", "--resume") == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["runs"] == record["runs"] and again["metrics"] == record["metrics"]


def test_fig1_resumed_run_equals_uninterrupted_run(cifar_root, tmp_path, tiny):
    argv = ["--activation", "relu", "--epochs", "2"]
    assert _fig1(cifar_root, tmp_path / "once", *argv) == 0
    # the same run interrupted after epoch 1: its checkpoint.pt is there, its run.json not yet
    assert _fig1(cifar_root, tmp_path / "twice", "--activation", "relu", "--epochs", "1") == 0
    (tmp_path / "twice" / "relu-seed0" / "run.json").unlink()
    assert _fig1(cifar_root, tmp_path / "twice", *argv, "--resume") == 0
    a = load_checkpoint(tmp_path / "once" / "relu-seed0" / "model.pt")
    b = load_checkpoint(tmp_path / "twice" / "relu-seed0" / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha, hb = (json.loads((tmp_path / d / "relu-seed0" / "history.json").read_text()) for d in ("once", "twice"))
    assert [h["train_chunk_error_pct"] for h in ha] == [h["train_chunk_error_pct"] for h in hb]
    ra, rb = (json.loads((tmp_path / d / "relu-seed0" / "run.json").read_text()) for d in ("once", "twice"))
    assert ra["curve"] == rb["curve"] and ra["test_error_pct"] == rb["test_error_pct"] and rb["epochs_run"] == 2


def test_a_damaged_checkpoint_given_to_resume_is_one_error_line(cifar_root, tmp_path, tiny, capsys):
    folder = tmp_path / "out" / "relu-seed0"
    folder.mkdir(parents=True)
    damaged = folder / "checkpoint.pt"
    damaged.write_bytes(b"PK\x03\x04 truncated")
    assert _fig1(cifar_root, tmp_path / "out", "--activation", "relu", "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(damaged) in err[0] and "without --resume" in err[0]
    assert damaged.read_bytes() == b"PK\x03\x04 truncated"           # nothing deleted or overwritten
    assert not (folder / "run.json").exists()


def test_lr_sweep_quick(cifar_root, tmp_path, tiny):
    out = tmp_path / "sweep"
    argv = ["--quick", "--activation", "relu", "--lr-grid", "0.01", "0.03", "--data-dir", str(cifar_root),
            "--out", str(out), "--no-progress"]
    assert lr_sweep.main(argv) == 0
    sweep = json.loads((out / "experiments" / "lr_sweep" / "lr_sweep.json").read_text())
    assert sweep["grid"] == [0.01, 0.03] and sweep["epochs"] == 1 and len(sweep["runs"]) == 2
    best = min(sweep["runs"], key=lambda r: r["val_error_pct"])
    assert sweep["chosen"] == {"relu": best["lr"]}
    record = sweep["records"]["relu-lr0.01"]
    assert record["run"]["lr"] == 0.01 and len(record["history"]) == 1
    assert len(record["history"][0]["train_chunk_error_pct"]) == 10
    assert not (out / "experiments" / "lr_sweep" / "runs" / "relu-lr0.01" / "model.pt").exists()
    # a Fig. 1 run in the same folder records the sweep (without its per-run records)
    assert _fig1(cifar_root, out, "--target", "95") == 0
    selection = json.loads((out / "metrics.json").read_text())["lr_selection"]
    assert selection["chosen"] == sweep["chosen"] and "records" not in selection


def test_the_committed_lr_sweep_chose_default_lr():
    """DEFAULT_LR is what the committed sweep chose (tanh's 0.01 over its extension to 0.03 and 0.1)."""
    path = train.PAPER_DIR / "results" / train.LR_SWEEP
    sweep = json.loads(path.read_text())
    assert sweep["chosen"] == train.DEFAULT_LR == lr_sweep.choose(sweep["runs"])
    for name, record in sweep["records"].items():                 # every run's curve and crossing, from its chunks
        points = [[round(p, 3), round(e, 3)] for p, e in train.chunk_points(record["history"])]
        assert points == record["run"]["curve"], name


# --------------------------------------------------------------------------- Sec. 3.3: LRN on CIFAR-10


def test_locally_connected_layer_is_a_convolution_per_position():
    layer = LocallyConnected2d(3, 4, in_size=5, kernel_size=3, padding=1).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    out = layer(x)
    assert out.shape == (2, 4, 5, 5)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(5):
        for j in range(5):
            w = layer.weight[i * 5 + j].view(4, 3, 3, 3)            # this position's own filters
            expected = torch.einsum("nchw,ochw->no", padded[:, :, i:i + 3, j:j + 3], w) + layer.bias[:, i, j]
            assert torch.allclose(out[:, :, i, j], expected)
    assert not torch.allclose(layer.weight[0], layer.weight[1])     # not shared
    with pytest.raises(ValueError, match="expected"):
        layer(torch.randn(2, 3, 6, 6, dtype=torch.float64))


def test_conv_local_net_follows_the_cuda_convnet_files():
    plain, lrn = ConvLocalNet(lrn=False), ConvLocalNet(lrn=True)
    # conv1 64 5x5x3, conv2 64 5x5x64, local3/local4 32 3x3 filters at each of 6x6 positions with a bias each, fc
    expected = (64 * 75 + 64) + (64 * 1600 + 64) + 36 * (32 * 576 + 32) + 36 * (32 * 288 + 32) + (32 * 36 * 10 + 10)
    assert _parameters(plain) == _parameters(lrn) == expected == 1_116_490
    assert isinstance(plain.norm1, nn.Identity) and isinstance(lrn.norm1, LocalResponseNorm)
    x = torch.rand(3, 3, 24, 24)
    assert plain(x).shape == lrn(x).shape == (3, 10)
    # the initial weight scales of the .cfg files (initW), biases zero
    assert 0.5e-4 < plain.conv1.weight.std() < 2e-4 and 0.03 < plain.local3.weight.std() < 0.05
    assert all(torch.all(getattr(plain, n).bias == 0) for n in ConvLocalNet.INIT_W)
    # cuda-convnet's rnorm: a / (1 + (scale / size) * sum of squares)^pow, scale 0.001, size 5, pow 0.75
    a = torch.randn(2, 64, 3, 3) * 40
    cuda_convnet = nn.LocalResponseNorm(5, alpha=0.001, beta=0.75, k=1.0)      # torch divides alpha by size too
    assert torch.allclose(lrn.norm1(a), cuda_convnet(a), rtol=1e-5)
    with pytest.raises(ValueError, match="mean_image"):
        ConvLocalNet(lrn=True, mean_image=torch.zeros(3, 32, 32))


def test_mean_patch_and_the_nine_test_views():
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    patch = mean_patch(images)
    assert patch.shape == (3, 24, 24) and torch.allclose(patch, images.double().mean(0)[:, 4:28, 4:28].float())
    net = ConvLocalNet(lrn=False, mean_image=patch)
    assert torch.allclose(net.mean_image[0], patch)
    x = torch.arange(32 * 32.0).view(1, 1, 32, 32)
    v = lrn_cifar.views(x)
    assert len(v) == 9 and all(p.shape == (1, 1, 24, 24) for p in v)
    assert v[0][0, 0, 0, 0] == 0 and v[4][0, 0, 0, 0] == x[0, 0, 4, 4] and v[8][0, 0, 0, 0] == x[0, 0, 8, 8]


def test_lrn_cifar_optimiser_and_schedule():
    model = ConvLocalNet(lrn=True)
    opt = lrn_cifar.optimizer_for(model, 0.001)
    by_param = {id(p): g for g in opt.param_groups for p in g["params"]}
    assert by_param[id(model.local3.weight)]["weight_decay"] == 0.004 and by_param[id(model.conv1.weight)][
        "weight_decay"] == 0.0
    assert by_param[id(model.fc.bias)]["lr"] == 0.002 and by_param[id(model.fc.bias)]["weight_decay"] == 0.0
    assert len(by_param) == len(list(model.parameters()))             # every parameter in exactly one group
    f = lrn_cifar.lr_factor((3, 2, 1))
    assert [f(e) for e in range(6)] == [1.0, 1.0, 1.0, 0.1, 0.1, 0.01]
    with pytest.raises(SystemExit):
        lrn_cifar.parse_args(["--schedule", "10,5"])


def test_lrn_cifar_quick_end_to_end(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setattr(lrn_cifar, "QUICK_SUBSET", (256, 0, 128))
    out = tmp_path / "lrn"
    argv = ["--quick", "--data-dir", str(cifar_root), "--out", str(out), "--no-progress"]
    assert lrn_cifar.main(argv) == 0
    record = json.loads((out / "lrn-cifar10" / "metrics.json").read_text())
    assert [m["name"] for m in record["metrics"]] == ["test_error_plain_pct", "test_error_lrn_pct", "lrn_gain_points"]
    runs = {r["net"]: r for r in record["runs"]}
    assert runs["plain"]["epochs"] == 2 and not runs["plain"]["lrn"] and runs["lrn"]["lrn"]
    gain = runs["plain"]["test_error_pct"] - runs["lrn"]["test_error_pct"]
    assert record["metrics"][2]["ours"] == pytest.approx(gain, abs=1e-4)
    model = ConvLocalNet(lrn=True)
    model.load_state_dict(load_checkpoint(out / "lrn-cifar10" / "lrn" / "model.pt"))
    # --resume reads finished runs back and writes the same numbers
    assert lrn_cifar.main(argv + ["--resume"]) == 0
    again = json.loads((out / "lrn-cifar10" / "metrics.json").read_text())
    assert again["metrics"] == record["metrics"]
