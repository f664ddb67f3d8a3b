"""Shared fixtures. No test touches the network: downloads are switched off and any socket
connection to a non-loopback address fails. Data comes from the offline mirror named by
$PAPER_DATA_MIRROR (CI points it at ../shared/data); without it, data tests are skipped
locally and fail under CI."""

import ipaddress
import os
import socket
from pathlib import Path

import pytest

os.environ["PAPER_DATA_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
_connect = socket.socket.connect


def _guarded_connect(self, address):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = host == "localhost"
        if not local:
            raise RuntimeError(f"tests must not touch the network (tried {address})")
    return _connect(self, address)


socket.socket.connect = _guarded_connect


def require_mirror(*relative: str) -> Path:
    mirror = os.environ.get("PAPER_DATA_MIRROR")
    if mirror and all((Path(mirror) / r).exists() for r in relative):
        return Path(mirror)
    message = ("dataset not available offline: set PAPER_DATA_MIRROR to a folder laid out like "
               f"shared/data holding {', '.join(relative)}")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def fresh_root(tmp_path_factory, dataset: str) -> Path:
    """A fresh writable data root holding the verified files of ``dataset`` (copied from the mirror)."""
    from common.data import DATASETS, ensure_dataset

    require_mirror(*(f.path for f in DATASETS[dataset]))
    root = tmp_path_factory.mktemp("data")
    ensure_dataset(dataset, root)
    return root


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory) -> Path:
    return fresh_root(tmp_path_factory, "mnist")


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> Path:
    return fresh_root(tmp_path_factory, "cifar10")


@pytest.fixture(scope="session")
def ptb_root(tmp_path_factory) -> Path:
    return fresh_root(tmp_path_factory, "ptb")


@pytest.fixture(scope="session")
def mnist(mnist_root):
    from common.data import load_mnist

    return load_mnist(mnist_root)


# --------------------------------------------------------------------------- bad-input tests


class Payload:
    """Any class: pickled by reference, so loading it would import and run code (weights_only refuses)."""


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture(params=["native", "emulated"])
def cpu_bf16(request, monkeypatch):
    """A CPU with native bf16 (AVX512-BF16 / AMX) or without (AVX2), whatever this machine is."""
    import torch

    import common.training as training

    native = request.param == "native"
    monkeypatch.setattr(training, "_cpu_has", lambda feature: native and feature in ("avx512_bf16", "amx_tile"))
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512" if native else "AVX2")
    return native


@pytest.fixture(scope="session")
def multi30k_root(tmp_path_factory) -> Path:
    return fresh_root(tmp_path_factory, "multi30k_bpe")
