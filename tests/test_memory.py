"""Training memory without autograd equals what autograd saves (saved_tensors_hooks, CPU, exact)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from _random_nets import random_cnn
from archstat.engine.analyze import analyze_rows
from archstat.analyses.memory import training_memory
from archstat.models import get_model
from archstat.validation.memory_check import measured_saved


def assert_exact(model, shape, batch=2, mode="train"):
    rows = analyze_rows(model, shape, batch=batch, mode=mode)
    est = training_memory(rows)
    real = measured_saved(rows)
    rows = est.to_dict("records")
    bad = [(r["name"], r["op"], r["call"], r["saved"], r["saved_bytes"], m)
           for r, m in zip(rows, real["per_row"]) if r["saved_bytes"] != m]
    assert not bad, bad[:5]
    assert est.attrs["total"]["saved"] == real["saved"] and not est.attrs["memory_partial"]
    return est, real


@given(random_cnn(), st.sampled_from(["eval", "train"]))
@settings(max_examples=max(1, settings.default.max_examples // 2))  # half the profile: 20 in CI, 1000 thorough
def test_random_cnn_saved_bytes_per_row(case, mode):
    net, shape = case
    assert_exact(net, shape, mode=mode)


def test_what_each_op_keeps():
    """Storage dedup and dtypes: the ReLU's output is the next conv's input (counted once), max pool
    keeps int64 indices, dropout (CPU) a float mask, BN its C means and inverse stds."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1),
                        nn.MaxPool2d(2), nn.Dropout(0.5), nn.Flatten(), nn.Linear(64, 3))
    est, real = assert_exact(net, (3, 8, 8), batch=2)
    by_op = {r["op"]: r for r in reversed(est.to_dict("records"))}  # the first row of each op
    act = 2 * 4 * 8 * 8 * 4
    assert by_op["Conv2d"]["saved_bytes"] == 2 * 3 * 8 * 8 * 4  # the model input, saved by the first conv
    assert by_op["BatchNorm2d"]["saved_bytes"] == act + 2 * 4 * 4  # conv output + mean + invstd
    assert by_op["ReLU"]["saved_bytes"] == act  # its output ...
    second = est[(est.op == "Conv2d") & (est.name == "3")].iloc[0]
    assert second.saved == ["input0"] and second.saved_bytes == 0  # ... is the next conv's input: once
    assert by_op["MaxPool2d"]["saved"] == ["input0", "128xint64"] and by_op["MaxPool2d"]["saved_bytes"] == act + 128 * 8
    assert by_op["Dropout"]["saved"] == ["128xfloat32"]
    assert by_op["Linear"]["saved_bytes"] == 128 * 4  # dropout's output, flattened (a view)
    cuda = training_memory(analyze_rows(net, (3, 8, 8), batch=2, mode="train"), device="cuda")  # the fused CUDA kernel keeps a bool mask
    assert cuda[cuda.op == "Dropout"].iloc[0].saved == ["128xbool"]


def test_state_params_grads_and_optimizers():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 36, 2))
    params = sum(p.numel() for p in net.parameters()) * 4
    buffers = (4 + 4) * 4 + 8  # running mean/var (float32), num_batches_tracked (int64)
    sgd = training_memory(analyze_rows(net, (3, 8, 8), mode="train"), optimizer="sgd").attrs["total"]
    adam = training_memory(analyze_rows(net, (3, 8, 8), mode="train"), optimizer="adam").attrs["total"]
    assert sgd["params"] == params and sgd["grads"] == params and sgd["buffers"] == buffers
    assert sgd["optimizer"] == params and adam["optimizer"] == 2 * params
    assert adam["optimizer_host"] == 4 * len(list(net.parameters()))
    assert sgd["total"] == sgd["saved"] + 2 * params + buffers + params


def test_first_layer_on_the_data_saves_nothing_without_parameters():
    """Autograd records nothing until a tensor needs a gradient: a pool on the raw input saves nothing."""
    net = nn.Sequential(nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(3, 4, 1))
    est, _ = assert_exact(net, (3, 8, 8))
    assert list(est.saved_bytes) == [0, 0, 2 * 3 * 4 * 4 * 4]


@pytest.mark.parametrize("name,shape,mode", [("resnet18", (3, 64, 64), "train"), ("alexnet_2012", (3, 227, 227), "train"),
                                             ("googlenet", (3, 96, 96), "train"), ("vgg11_bn", (3, 32, 32), "eval")])
def test_zoo_saved_bytes_exact(name, shape, mode):
    torch.manual_seed(0)
    assert_exact(get_model(name, device=None), shape, mode=mode)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["inception_v3", "inception_v4", "resnet152", "preact_resnet50", "zfnet", "vgg16"])
def test_zoo_saved_bytes_exact_slow(name):
    from archstat.models import model_info

    torch.manual_seed(0)
    assert_exact(get_model(name, device=None), model_info(name).default_input, batch=2)  # BN in training needs 2 samples at 1x1


@pytest.mark.parametrize("act", [nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.ReLU, nn.ELU])
def test_inplace_activation_keeps_a_copy_or_its_result(act):
    """MobileNet's ReLU6(inplace) and EfficientNet's SiLU(inplace) overwrite their input, which their
    backward needs: autograd keeps a copy (a new storage), and the next conv saves the overwritten
    one.  ReLU and ELU in place keep their result, the storage the next conv saves too."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), act(inplace=True), nn.Conv2d(4, 4, 3))
    est, _ = assert_exact(net, (3, 8, 8))
    act_row = est[est.op == act.__name__].iloc[0]
    copies = act not in (nn.ReLU, nn.ELU)
    assert act_row.saved_bytes == 2 * 4 * 6 * 6 * 4  # the copy, or the result (first saved here)
    assert est[est.name == "3"].iloc[0].saved_bytes == (2 * 4 * 6 * 6 * 4 if copies else 0)


class ParamViewProduct(nn.Module):
    """``torch.mm(h, w.t())`` behind a Python branch (so the meta-device engine runs it, which records
    no input for ``w.t()``): the saved operand is a view of a parameter (or a buffer), i.e. the
    model's state, counted with the parameters, not as an activation."""

    def __init__(self, source: str, trainable: bool) -> None:
        super().__init__()
        self.source = source
        self.lin = nn.Linear(10, 10)
        self.w = nn.Parameter(torch.rand(8, 10), requires_grad=trainable)
        self.register_buffer("b", torch.rand(8, 10))

    def forward(self, x):
        if x.dim() == 2:  # not traceable by fx
            h = self.lin(x) if self.source.startswith("h") else x
            return torch.mm(h, (self.b if self.source.endswith("buf") else self.w).t())
        return x


@pytest.mark.parametrize("source", ["h_param", "x_param", "h_buf"])
@pytest.mark.parametrize("trainable", [True, False])
def test_saved_view_of_a_parameter_is_state(source, trainable):
    from archstat.validation.validate import validate
    est, real = assert_exact(ParamViewProduct(source, trainable), (10,))
    assert est.attrs["engine"] == "meta"
    v = validate(ParamViewProduct(source, trainable), (10,), batch=2, mode="train")
    assert v.attrs["checks"]["saved_ok"]["failed"] == v.attrs["checks"]["bwd_ok"]["failed"] == 0
    assert v.attrs["totals"]["training_saved"][0] == v.attrs["totals"]["training_saved"][1]
