"""Several processes under torchrun (gloo on the CPU, tiny data): the same weights as one process, disjoint
shards covering each batch, only process 0 writing, exact resume across world sizes, no hang on failure."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from common import distributed
from common.data import TensorLoader, random_crop_flip, to_unit_float
from common.fileio import UserError
from common.plots import save_figure
from common.training import atomic_save, classification_step, fit, load_checkpoint, write_json

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "distributed_worker.py"


def _torchrun(n: int, script: Path, *args: str, env: dict | None = None, timeout: float = 300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", str(script), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


# --------------------------------------------------------------------------- in-process: two spawned ranks


def _in_group(rank: int, world: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        out = Path(out)
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (21, 3, 8, 8), dtype=torch.uint8, generator=g)
        y = torch.arange(21)
        torch.manual_seed(5)                        # the same augmentation numbers in every process
        augment = lambda b: to_unit_float(random_crop_flip(b, pad=2))   # noqa: E731
        loader = TensorLoader(x, y, batch_size=6, shuffle=True, seed=3, transform=augment)
        loader.set_epoch(1)
        torch.save([b for b in loader], out / f"batches{rank}.pt")
        # every process writes the same results: only process 0's land
        write_json({"rank": rank}, out / "shared.json")
        write_json({"rank": rank}, out / f"rank{rank}.json")
        atomic_save({"rank": torch.tensor(rank)}, out / f"rank{rank}.pt")
        import matplotlib.pyplot as plt

        save_figure(plt.figure(), out / f"rank{rank}.png")
        total = distributed.all_reduce_sums({"n": 1.0, "errors": float(rank)})
        write_json(total, out / "sums.json")
        try:                                        # fit refuses a batch that does not split evenly
            odd = TensorLoader(x.float().flatten(1), y, batch_size=7, shuffle=False, transform=None)
            model = torch.nn.Linear(3 * 8 * 8, 21)
            fit(model, torch.optim.SGD(model.parameters(), lr=0.1), classification_step(F.cross_entropy), odd,
                epochs=1, progress=False)
        except UserError as e:
            write_json({"error": str(e)}, out / "batch_error.json")
    finally:
        dist.destroy_process_group()


def test_shards_are_disjoint_cover_each_batch_and_only_rank_0_writes(tmp_path):
    mp.spawn(_in_group, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    parts = [torch.load(tmp_path / f"batches{r}.pt") for r in range(2)]
    torch.manual_seed(5)
    x = torch.randint(0, 256, (21, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    whole = TensorLoader(x, torch.arange(21), batch_size=6, shuffle=True, seed=3,
                         transform=lambda b: to_unit_float(random_crop_flip(b, pad=2)))
    whole.set_epoch(1)
    expected = list(whole)                                      # one process, the same seed
    assert len(parts[0]) == len(parts[1]) == len(expected) == 4  # 21 images, batches of 6: 6, 6, 6, 3
    for (x0, y0), (x1, y1), (xe, ye) in zip(*parts, expected):
        assert set(y0.tolist()).isdisjoint(y1.tolist())
        assert torch.equal(torch.cat([y0, y1]), ye)            # the two parts are the batch, in order
        assert torch.equal(torch.cat([x0, x1]), xe)            # augmented exactly as in one process
    assert [len(y0) for _, y0 in parts[0]] == [3, 3, 3, 1]
    assert json.loads((tmp_path / "shared.json").read_text()) == {"rank": 0}
    assert (tmp_path / "rank0.json").exists() and not (tmp_path / "rank1.json").exists()
    assert (tmp_path / "rank0.pt").exists() and not (tmp_path / "rank1.pt").exists()
    assert (tmp_path / "rank0.png").exists() and not (tmp_path / "rank1.png").exists()
    assert json.loads((tmp_path / "sums.json").read_text()) == {"n": 2.0, "errors": 1.0}
    assert "does not divide among 2 processes" in json.loads((tmp_path / "batch_error.json").read_text())["error"]


def test_without_torchrun_nothing_changes():
    assert not distributed.active() and distributed.world_size() == 1 and distributed.is_main()
    assert distributed.part(10) == slice(0, 10)
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(model) is model
    assert distributed.all_reduce_sums({"n": 3.0}) == {"n": 3.0}


# --------------------------------------------------------------------------- torchrun end to end


def _weights(folder: Path) -> dict:
    return load_checkpoint(folder / "model.pt")


def test_lenet5_two_processes_equal_one_and_resume_across_world_sizes(mnist_root, tmp_path):
    """LeNet-5 (no batch norm, no dropout): the update of a global batch is the same in 1 and 2 processes."""
    script = REPO / "CNN" / "lenet5" / "train.py"
    common = ["--quick", "--data-dir", str(mnist_root), "--no-progress", "--amp", "off"]   # fp32: 1e-6 agreement
    one = subprocess.run([sys.executable, str(script), *common, "--out", str(tmp_path / "one")], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = _torchrun(2, script, *common, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-5) for k in a)
    ha, hb = (json.loads((tmp_path / d / "history.json").read_text()) for d in ("one", "two"))
    assert [h["train_error_pct"] for h in ha] == [h["train_error_pct"] for h in hb]   # sums added over ranks
    assert [h["val_error_pct"] for h in ha] == [h["val_error_pct"] for h in hb]
    record = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert record["device"].endswith("x 2 processes")
    assert two.stdout.count("LeNet-5 epoch 2/2") == 1                                 # process 0 prints
    # killed after epoch 1 under torchrun (2 processes), resumed with 2 and with 1 process
    first = _torchrun(2, script, *common, "--epochs", "1", "--out", str(tmp_path / "resumed2"))
    assert first.returncode == 0, first.stderr
    shutil.copytree(tmp_path / "resumed2", tmp_path / "resumed1")
    for resumed, n in (("resumed2", 2), ("resumed1", 1)):
        again = _torchrun(n, script, *common, "--resume", "--out", str(tmp_path / resumed))
        assert again.returncode == 0, again.stderr
        c = _weights(tmp_path / resumed)
        assert all(torch.allclose(c[k], b[k], atol=1e-6, rtol=1e-5) for k in b)
    c = _weights(tmp_path / "resumed2")
    assert all(torch.equal(c[k], b[k]) for k in b)                                 # same world size: exact


@pytest.mark.parametrize("how", ["raise", "hang"])
def test_a_failing_rank_stops_the_run_with_a_message(tmp_path, how):
    t0 = time.perf_counter()
    res = _torchrun(2, WORKER, "--out", str(tmp_path), "--epochs", "4", "--fail-rank", "1", "--fail-how", how,
                    env={distributed.TIMEOUT_ENV: "10"}, timeout=240)
    assert res.returncode != 0
    assert time.perf_counter() - t0 < 200
    if how == "raise":
        assert "rank 1 fails on purpose after epoch 2" in res.stderr
    else:                                   # process 0 waits for the hung one, then gives up with one error line
        assert "error: process 0 of 2: another process stopped or hung" in res.stderr, res.stderr[-2000:]
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["epoch"] in (1, 2)          # the last good checkpoint is kept


def test_imagenet_image_folder_path_under_torchrun(tmp_path):
    """AlexNet's ImageFolder path: a DistributedSampler for training, every N-th image for validation."""
    from tests.test_alexnet import _fake_image_folder

    root = _fake_image_folder(tmp_path / "tiny")
    res = _torchrun(2, REPO / "CNN" / "alexnet" / "imagenet.py", "--data-dir", str(root), "--batch-size", "4",
                    "--workers", "0", "--out", str(tmp_path / "out"), "--no-progress", "--pca-images", "4",
                    "--epochs", "1")
    assert res.returncode == 0, res.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert record["epochs"] == 1 and record["device"].endswith("x 2 processes")


def test_resnet_and_fig1_quick_under_torchrun(cifar_root, tmp_path):
    common = ["--quick", "--data-dir", str(cifar_root), "--no-progress", "--epochs", "1"]
    res = _torchrun(2, REPO / "CNN" / "resnet" / "train.py", *common, "--depth", "8", "--out", str(tmp_path / "r"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(json.loads((tmp_path / "r" / "history.json").read_text())) == 1
    res = _torchrun(2, REPO / "CNN" / "alexnet" / "train.py", *common, "--activation", "relu",
                    "--out", str(tmp_path / "a"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "a" / "relu-seed0" / "run.json").exists()
