"""One run in several processes, under ``torchrun`` (``torch.distributed``): the process group, the shards,
the sums reduced across processes, and who writes.

A process started by ``torchrun`` finds ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment.
:func:`init` (called by ``common.cli.run``) then joins the process group: gloo on the CPU, NCCL on GPUs,
one GPU per process (``cuda:LOCAL_RANK``). Everything else asks :func:`world_size` and :func:`rank`:

* ``common.data.TensorLoader`` gives each process its contiguous part of every batch of the epoch's
  permutation (the global batch stays the paper's; see :func:`part`);
* ``common.training.fit`` wraps the model in ``DistributedDataParallel`` (gradients averaged across
  processes) and ``evaluate``/``fit`` add the epoch's sums across processes (:func:`all_reduce_sums`)
  before they become means;
* only process 0 writes results (:func:`is_main`: ``atomic_save``, ``write_json``, ``save_figure``) and
  prints (``common.cli.run`` silences the others' standard output).

Without torchrun's environment (or with ``WORLD_SIZE=1``) nothing here does anything: a single process
behaves exactly as before.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

# How long a process waits in a collective for the others (a rank that hangs) before it fails with an error.
# A rank that *dies* ends the run sooner: torchrun then stops the other processes.
TIMEOUT_ENV = "PAPER_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600


def launched() -> bool:
    """Started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """The process that writes results and prints: rank 0 (the only one without torchrun)."""
    return rank() == 0


def init(device: torch.device) -> torch.device:
    """Join torchrun's process group; return this process's device (``cuda:LOCAL_RANK`` on GPUs)."""
    if not launched() or active():
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    return device


def shutdown() -> None:
    if active():
        dist.destroy_process_group()


def peer_failure(e: BaseException) -> bool:
    """``e`` says that a collective failed: another process died or hung past the timeout."""
    if not active():
        return False
    if isinstance(e, getattr(dist, "DistError", ())):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(s in text for s in ("Timed out", "Connection closed by peer",
                                                                    "Connection reset by peer"))


def part(n: int) -> slice:
    """This process's contiguous part of ``n`` items (a batch): parts differ by at most one item."""
    w, r = world_size(), rank()
    return slice(n * r // w, n * (r + 1) // w)


def check_batch(batch_size: int) -> None:
    """The global batch must divide evenly among the processes (each then averages over batch / N items)."""
    if batch_size % world_size():
        from common.fileio import UserError

        raise UserError(f"--batch-size {batch_size} does not divide among {world_size()} processes; "
                        f"use a multiple of {world_size()} or another --nproc_per_node")


def all_reduce_sums(sums: dict[str, float]) -> dict[str, float]:
    """The sums of every process, added (the same keys in every process); unchanged with one process."""
    if world_size() == 1:
        return sums
    keys = sorted(sums)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    total = dict(zip(keys, t.tolist()))
    return {k: total[k] for k in sums}


def all_reduce_(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the processes, in place (unchanged with one process)."""
    if world_size() > 1:
        dist.all_reduce(t)
    return t


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` with several processes, else ``model`` itself. The wrapper shares
    the model's parameters: checkpoints keep saving ``model.state_dict()`` (no ``module.`` prefix)."""
    if world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def data_loader(dataset, *, batch_size: int, train: bool, **kwargs) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` over this process's share of ``dataset`` (e.g. an ``ImageFolder``), for a global
    ``batch_size``. Under torchrun: training batches of batch_size / N from a ``DistributedSampler`` (shuffled
    by epoch through ``set_epoch``, which ``fit`` calls; every process gets the same number of batches, the
    sampler repeating a few images to even the shares), evaluation on every N-th image (no repeats: the
    sums are added across processes). Without torchrun: ``DataLoader(dataset, batch_size, **kwargs)``."""
    from torch.utils.data import DataLoader, DistributedSampler, Subset

    if world_size() == 1:
        return DataLoader(dataset, batch_size=batch_size, **kwargs)
    check_batch(batch_size)
    kwargs.pop("generator", None)
    shuffle = kwargs.pop("shuffle", False)
    if train:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=torch.initial_seed() % 2**31)
        return DataLoader(dataset, batch_size=batch_size // world_size(), sampler=sampler, **kwargs)
    return DataLoader(Subset(dataset, range(rank(), len(dataset), world_size())), batch_size=batch_size, **kwargs)
