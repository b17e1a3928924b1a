"""--stochastic-depth, --sync-bn and the torchrun world-size check (issue 16's last recipe pieces)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from archstat.cli import main
from archstat.errors import ArchstatError
from archstat.train import dist as D
from archstat.train.setup import build_model
from archstat.train.stochastic_depth import apply_stochastic_depth, stochastic_depth

TINY = "archstat.train.tiny:tiny_cnn"


@pytest.fixture(autouse=True)
def _keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_stochastic_depth_row_mode():
    x = torch.ones(2000, 3, 2, 2)
    y = stochastic_depth(x, 0.25, training=True)
    per_sample = y.flatten(1)
    assert ((per_sample == 0).all(1) | (per_sample == 1 / 0.75).all(1)).all()  # whole rows, rescaled
    assert abs(float((per_sample[:, 0] == 0).float().mean()) - 0.25) < 0.05
    assert torch.equal(stochastic_depth(x, 0.25, training=False), x)


def test_resnet_stochastic_depth_random_in_training_deterministic_in_eval():
    torch.manual_seed(0)
    model = build_model("resnet18", 10, 1, model_kw={"zero_init_residual": False})
    keys = list(model.state_dict())
    probs = apply_stochastic_depth(model, 0.5, "resnet18")
    assert probs == pytest.approx([0.5 * i / 7 for i in range(8)])  # 0 -> P over 8 basic blocks
    assert list(model.state_dict()) == keys  # checkpoints unchanged
    x = torch.randn(8, 1, 32, 32)
    model.train()
    for m in model.modules():  # keep BN's running statistics out of the comparison
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.0
    with torch.no_grad():
        a, b = model(x), model(x)
    assert not torch.allclose(a, b)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    assert apply_stochastic_depth(model, 0.0) == []  # removed again
    model.train()
    with torch.no_grad():
        assert torch.allclose(model(x), model(x))


def test_stochastic_depth_bad_input(tmp_path, capsys):
    with pytest.raises(ArchstatError, match="no zoo ResNet residual blocks"):
        apply_stochastic_depth(build_model(TINY, 10, 1), 0.1, TINY)
    assert main(["train", "resnet18", "--stochastic-depth", "1.5", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "[0, 1)" in err


def test_table_unchanged_by_stochastic_depth_at_zero(capsys):
    assert main(["table", "resnet18"]) == 0
    before = capsys.readouterr().out
    model = build_model("resnet18", 1000, 3)
    assert apply_stochastic_depth(model, 0.0) == []
    assert main(["table", "resnet18"]) == 0
    assert capsys.readouterr().out == before
    # and the zoo builder itself is untouched: no hooks left on a fresh model
    assert not any(m._forward_hooks for m in build_model("resnet18", 10, 1).modules())


def test_train_with_stochastic_depth_and_sync_bn_notice(tmp_path, capsys):
    assert main(["train", "resnet18", "--input", "1x32x32", "--batch", "32", "--epochs", "1", "--max-steps", "2",
                 "--stochastic-depth", "0.2", "--sync-bn", "--quiet", "--threads", "1", "--device", "cpu",
                 "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err.count(D.SYNC_BN_NOTICE) == 1


def test_sync_batchnorm_conversion_on_cpu():
    model = build_model("resnet18", 10, 1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    single, n = D.sync_batchnorm(model, D.DistEnv())
    assert single is model and n == 0
    # the conversion itself needs no process group; a fake two-rank env with a CUDA device
    converted, n = D.sync_batchnorm(model, D.DistEnv(rank=0, world=2, device=torch.device("cuda", 0)))
    bns = [m for m in converted.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert n == len(bns) == 20 and all(isinstance(m, nn.SyncBatchNorm) for m in bns)
    new = converted.state_dict()
    assert list(new) == list(state) and all(torch.equal(new[k], state[k]) for k in state)
    with pytest.raises(ArchstatError, match="GPU ranks"):
        D.sync_batchnorm(build_model("resnet18", 10, 1), D.DistEnv(rank=0, world=2))


def test_world_larger_than_training_split_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    # as torchrun with 5 ranks would see it (no process group needed: the check comes before DDP); two
    # classes of 2 images (one class is refused as no classification)
    monkeypatch.setattr(D, "setup", lambda device="auto": D.DistEnv(rank=0, world=5))
    assert main(["train", TINY, "--input", "1x8x8", "--classes", "0,1", "--train-per-class", "2", "--quiet",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "5 processes needs at least 5 training samples" in err and "has 4" in err
