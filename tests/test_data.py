import gzip
import hashlib

import numpy as np
import pytest
import torch

from common.data import (DATASETS, DataError, TensorLoader, data_root, ensure_dataset, read_idx,
                         sha256sum, to_unit_float)

TRAIN_IMAGES = "MNIST/raw/train-images-idx3-ubyte.gz"


def _snapshot(folder):
    return sorted((p.relative_to(folder).as_posix(), p.read_bytes()) for p in folder.rglob("*") if p.is_file())


def test_data_root_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("PAPER_DATA_DIR", str(tmp_path / "env"))
    assert data_root() == (tmp_path / "env").resolve()
    assert data_root(tmp_path / "flag") == (tmp_path / "flag").resolve()  # --data-dir wins
    monkeypatch.delenv("PAPER_DATA_DIR")
    assert data_root().name == "data"


def test_mirror_files_are_verified_and_copied(mnist_root):
    for spec in DATASETS["mnist"]:
        assert sha256sum(mnist_root / spec.path) == spec.sha256


def test_corrupted_mirror_file_fails_clearly_and_touches_nothing(monkeypatch, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "MNIST/raw").mkdir(parents=True)
    (mirror / TRAIN_IMAGES).write_bytes(b"not the real file")
    root = tmp_path / "root"
    root.mkdir()
    (root / "keep.txt").write_text("user file")
    before = _snapshot(root), _snapshot(mirror)
    monkeypatch.setenv("PAPER_DATA_MIRROR", str(mirror))
    with pytest.raises(DataError) as err:
        ensure_dataset("mnist", root)
    text = str(err.value)
    expected = next(s.sha256 for s in DATASETS["mnist"] if s.path == TRAIN_IMAGES)
    assert TRAIN_IMAGES in text and expected in text and "corrupted" in text
    assert hashlib.sha256(b"not the real file").hexdigest() in text
    assert "PAPER_DATA_MIRROR" in text and "online" in text and "Nothing was deleted" in text
    assert (_snapshot(root), _snapshot(mirror)) == before


def test_corrupted_copy_in_root_is_reported_not_deleted(monkeypatch, tmp_path):
    root = tmp_path / "root"
    (root / "MNIST/raw").mkdir(parents=True)
    (root / TRAIN_IMAGES).write_bytes(b"truncated")
    monkeypatch.delenv("PAPER_DATA_MIRROR", raising=False)
    with pytest.raises(DataError, match="copy in the data root is corrupted"):
        ensure_dataset("mnist", root)
    assert (root / TRAIN_IMAGES).read_bytes() == b"truncated"


def test_missing_file_offline_names_both_fixes(monkeypatch, tmp_path):
    monkeypatch.setenv("PAPER_DATA_MIRROR", str(tmp_path / "empty-mirror"))
    with pytest.raises(DataError) as err:
        ensure_dataset("mnist", tmp_path / "root")
    text = str(err.value)
    assert "missing" in text and "PAPER_DATA_MIRROR" in text and "https://" in text
    assert not (tmp_path / "root" / "MNIST").exists() or not any((tmp_path / "root").rglob("*.gz"))


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset"):
        ensure_dataset("imagenet-22k")


def test_read_idx_on_a_synthetic_file(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape)
    path = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(header + images.tobytes())
    np.testing.assert_array_equal(read_idx(path), images)
    bad = tmp_path / "bad"
    bad.write_bytes(bytes([0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0]))
    with pytest.raises(DataError, match="unsigned-byte"):
        read_idx(bad)


def test_mnist_splits(mnist):
    assert mnist.train_x.shape == (55000, 1, 28, 28) and mnist.train_x.dtype == torch.uint8
    assert mnist.val_x.shape == (5000, 1, 28, 28) and mnist.test_x.shape == (10000, 1, 28, 28)
    # the published test-set label histogram
    assert torch.bincount(mnist.test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    full = torch.cat([mnist.train_y, mnist.val_y])
    assert torch.bincount(full).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    mean = to_unit_float(torch.cat([mnist.train_x, mnist.val_x])).mean().item()
    assert abs(mean - 0.1307) < 1e-4


def test_tensor_loader_is_a_permutation_fixed_by_seed_and_epoch():
    x = torch.arange(10, dtype=torch.uint8).view(10, 1)
    y = torch.arange(10)
    loader = TensorLoader(x, y, batch_size=4, shuffle=True, seed=3)
    assert len(loader) == 3

    def order(epoch, seed=3):
        loader.seed = seed
        loader.set_epoch(epoch)
        return torch.cat([b[1] for b in loader]).tolist()

    assert sorted(order(0)) == list(range(10))
    assert order(0) == order(0) and order(0) != order(1) and order(0) != order(0, seed=4)
    xb, yb = next(iter(loader))
    assert xb.dtype == torch.float32 and torch.allclose(xb * 255, yb.float().view(-1, 1))
    assert len(TensorLoader(x, y, batch_size=4, drop_last=True)) == 2
    with pytest.raises(ValueError):
        TensorLoader(x, y[:5], batch_size=2)


def test_download_path_verifies_and_reports(monkeypatch, tmp_path):
    """The online path, exercised with file:// addresses (no network): a good file is fetched and
    verified; a bad one is rejected, named in the error, and leaves nothing behind."""
    from common import data

    good = tmp_path / "server" / "good.bin"
    good.parent.mkdir()
    good.write_bytes(b"payload")
    bad = tmp_path / "server" / "bad.bin"
    bad.write_bytes(b"tampered")
    digest = hashlib.sha256(b"payload").hexdigest()
    monkeypatch.delenv("PAPER_DATA_OFFLINE")
    monkeypatch.delenv("PAPER_DATA_MIRROR", raising=False)
    monkeypatch.setitem(data.DATASETS, "toy", (data.DataFile("toy/file.bin", digest, (bad.as_uri(), good.as_uri())),))
    root = ensure_dataset("toy", tmp_path / "root")
    assert (root / "toy/file.bin").read_bytes() == b"payload"

    monkeypatch.setitem(data.DATASETS, "toy2", (data.DataFile("toy/other.bin", digest, (bad.as_uri(),)),))
    with pytest.raises(DataError, match="download failed.*sha256"):
        ensure_dataset("toy2", tmp_path / "root")
    assert sorted(p.name for p in (tmp_path / "root" / "toy").iterdir()) == ["file.bin"]
