"""The run wrapper every main() uses: one `error:` line and an exit status for each kind of failure."""

import argparse

import pytest
import torch

from common.cli import Run, base_parser, run
from common.data import DataError
from common.training import CheckpointError, NonFiniteLossError


def _args(tmp_path, *extra):
    p = base_parser("toy", epochs=1, batch_size=8, lr=0.1, paper_dir=tmp_path / "CNN" / "toy")
    return p.parse_args(["--out", str(tmp_path / "out"), *extra])


@pytest.mark.parametrize("error, status", [(DataError("MNIST/raw/x.gz: missing; set PAPER_DATA_MIRROR"), 2),
                                           (CheckpointError("c.pt is damaged; start again without --resume"), 2),
                                           (NonFiniteLossError("loss became nan at epoch 2"), 1)])
def test_each_failure_is_one_error_line_and_an_exit_status(tmp_path, capsys, error, status):
    def train(r):
        raise error

    assert run(train, _args(tmp_path), tmp_path) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {error}"]


def test_run_sets_up_device_seed_and_folder(tmp_path):
    seen = {}

    def train(r: Run):
        seen.update(out=r.out, device=r.device, draw=torch.rand(1).item(), resumes=r.resumes())
        return 0

    assert run(train, _args(tmp_path, "--seed", "3"), tmp_path) == 0
    torch.manual_seed(3)
    assert seen == {"out": tmp_path / "out", "device": torch.device("cuda" if torch.cuda.is_available() else "cpu"),
                    "draw": torch.rand(1).item(), "resumes": False}


def test_resume_with_nothing_to_resume_is_an_error(tmp_path, capsys):
    called = []
    assert run(called.append, _args(tmp_path, "--resume"), tmp_path) == 2
    assert not called and "nothing to resume" in capsys.readouterr().err
    (tmp_path / "out").mkdir()
    assert run(lambda r: 0, _args(tmp_path, "--resume"), tmp_path) == 2        # an empty folder: nothing either
    (tmp_path / "out" / "part").mkdir(parents=True)
    (tmp_path / "out" / "part" / "checkpoint.pt").write_bytes(b"")
    assert run(lambda r: 0 if not r.resumes() and r.resumes(r.out / "part") else 5,
               _args(tmp_path, "--resume"), tmp_path) == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_device_cuda_without_a_gpu(tmp_path, capsys):
    assert run(lambda r: 0, _args(tmp_path, "--device", "cuda"), tmp_path) == 2
    assert capsys.readouterr().err.startswith("error: --device cuda: torch sees no CUDA device")


def test_quick_runs_go_to_runs(tmp_path):
    args = argparse.Namespace(out=None, quick=True, device="cpu", seed=0, resume=False)
    got = []
    run(lambda r: got.append(r.out), args, tmp_path / "CNN" / "toy")
    assert got == [tmp_path / "runs" / "toy-quick"]


# --------------------------------------------------------------------------- --amp auto|on|off


def test_amp_auto_follows_the_hardware(cpu_bf16):
    from common.training import choose_amp, cpu_isa, describe_device
    cpu = torch.device("cpu")
    assert choose_amp("auto", cpu) is cpu_bf16
    assert choose_amp("off", cpu) is False
    assert cpu_isa() == ("AVX512 + AVX512-BF16 + AMX" if cpu_bf16 else "AVX2")
    assert cpu_isa() in describe_device(cpu) and "threads" in describe_device(cpu)


def test_amp_on_without_native_bf16_warns_or_refuses(cpu_bf16):
    from common.fileio import UserError
    from common.training import choose_amp
    cpu = torch.device("cpu")
    if cpu_bf16:
        assert choose_amp("on", cpu, needs_native=True) is True
        return
    with pytest.warns(UserWarning, match="no native bf16"):
        assert choose_amp("on", cpu) is True
    with pytest.raises(UserError, match="--amp off"):
        choose_amp("on", cpu, needs_native=True)


def test_run_resolves_amp_prints_and_records_it(tmp_path, capsys, cpu_bf16):
    seen = {}
    assert run(lambda r: seen.update(amp=r.args.amp, mode=r.args.amp_mode, precision=r.precision), _args(tmp_path),
               tmp_path) == 0
    assert seen["amp"] is cpu_bf16 and seen["mode"] == "auto"
    assert seen["precision"].startswith("bf16 autocast" if cpu_bf16 else "fp32")
    assert f"precision: {seen['precision']}" in capsys.readouterr().out
    args = _args(tmp_path, "--amp")                               # a bare --amp means on
    assert args.amp == "on"
    status = run(lambda r: 0, args, tmp_path, needs_native_bf16=True)      # an LSTM
    err = capsys.readouterr().err.strip().splitlines()
    if cpu_bf16:
        assert status == 0 and args.amp is True
    else:
        assert status == 2 and len(err) == 1 and err[0].startswith("error: --amp on:") and "--amp off" in err[0]


def test_amp_rejects_other_words(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _args(tmp_path, "--amp", "fast")
    assert "invalid choice" in capsys.readouterr().err
