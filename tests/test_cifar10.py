import hashlib
import io
import tarfile

import numpy as np
import pytest
import torch

from common import data
from common.data import (DATASETS, DataError, channel_stats, ensure_dataset, load_cifar10, random_crop_flip,
                         read_cifar10_bin)
from tests.conftest import require_mirror


def _records(n, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return labels, pixels, np.concatenate([labels[:, None], pixels], 1).tobytes()


def test_binary_reader_on_a_synthetic_file(tmp_path):
    labels, pixels, raw = _records(5)
    path = tmp_path / "batch.bin"
    path.write_bytes(raw)
    x, y = read_cifar10_bin(path)
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.uint8 and y.tolist() == labels.tolist()
    # channel-major: the first 1,024 bytes after the label are the red plane, row by row
    assert x[2, 0, 0, :].tolist() == pixels[2, :32].tolist()
    assert x[2, 1, 0, 0] == pixels[2, 1024] and x[2, 2, 31, 31] == pixels[2, 3071]
    path.write_bytes(raw[:-1])
    with pytest.raises(DataError, match="multiple of 3073"):
        read_cifar10_bin(path)


def test_cifar10_from_the_mirror(tmp_path):
    require_mirror(*(f.path for f in DATASETS["cifar10"]))
    d = load_cifar10(tmp_path / "data")
    assert d.train_x.shape == (45000, 3, 32, 32) and d.val_x.shape == (5000, 3, 32, 32)
    assert torch.bincount(d.test_y).tolist() == [1000] * 10
    assert torch.bincount(torch.cat([d.train_y, d.val_y])).tolist() == [5000] * 10
    mean, std = channel_stats(torch.cat([d.train_x, d.val_x]))
    assert torch.allclose(mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=1e-4)
    assert torch.allclose(std, torch.tensor([0.2470, 0.2435, 0.2616]), atol=1e-4)


def test_crop_and_flip_keep_shapes_and_content():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, pad=2, generator=g)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(random_crop_flip(x, pad=0, flip=False), x)
    flipped = [random_crop_flip(x, pad=0, generator=torch.Generator().manual_seed(s)) for s in range(20)]
    assert any(torch.equal(f[0], x[0].flip(-1)) for f in flipped) and any(torch.equal(f[0], x[0]) for f in flipped)
    # a smaller crop without padding (AlexNet's 224 of 256): a window of the image itself
    small = random_crop_flip(x, pad=0, size=5, flip=False, generator=g)
    assert small.shape == (2, 3, 5, 5)
    assert any(torch.equal(small[0], x[0, :, i:i + 5, j:j + 5]) for i in range(4) for j in range(4))
    with pytest.raises(ValueError, match="does not fit"):
        random_crop_flip(x, pad=0, size=9)
    # every crop is a window of the zero-padded image: its non-zero pixels are the image's own
    for img, src in zip(out, x):
        kept = img[img > 0]
        assert set(kept.tolist()) <= set(src.flatten().tolist())


def test_archive_download_extracts_and_verifies(monkeypatch, tmp_path):
    """The online path for CIFAR-10 (one .tar.gz), served from a file:// address: no network."""
    _, _, raw = _records(3)
    tar_path = tmp_path / "server" / "toy-binary.tar.gz"
    tar_path.parent.mkdir()
    with tarfile.open(tar_path, "w:gz") as tar:
        info = tarfile.TarInfo("toy-batches-bin/data_batch_1.bin")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    md5 = hashlib.md5(tar_path.read_bytes()).hexdigest()
    spec = data.DataFile("toy-batches-bin/data_batch_1.bin", hashlib.sha256(raw).hexdigest(), ())
    monkeypatch.delenv("PAPER_DATA_OFFLINE")
    monkeypatch.delenv("PAPER_DATA_MIRROR", raising=False)
    monkeypatch.setitem(data.DATASETS, "toy", (spec,))
    monkeypatch.setitem(data.ARCHIVES, "toy", data.Archive(tar_path.as_uri(), md5, "toy-batches-bin"))
    root = ensure_dataset("toy", tmp_path / "root")
    assert (root / spec.path).read_bytes() == raw

    monkeypatch.setitem(data.ARCHIVES, "toy", data.Archive(tar_path.as_uri(), "0" * 32, "toy-batches-bin"))
    with pytest.raises(DataError, match="md5"):
        ensure_dataset("toy", tmp_path / "root2")
