"""One trace per command and mode: every analysis and check reads the engine's one product.

Counted at torch.fx's tracer entry (``fx.Tracer.trace``: archstat's ``trace_graph`` and any
``symbolic_trace`` go through it).  fvcore's oracle uses TorchScript's tracer, not fx.
"""
import torch
import torch.fx as fx

from archstat.cli import main
from archstat.models import get_model
from archstat.profiling.profile import profile
from archstat.validation.validate import validate


def count_traces(monkeypatch) -> list:
    calls: list = []
    original = fx.Tracer.trace

    def counted(self, root, *args, **kwargs):
        calls.append(type(root).__name__)
        return original(self, root, *args, **kwargs)

    monkeypatch.setattr(fx.Tracer, "trace", counted)
    return calls


def test_validate_train_traces_resnet50_once(monkeypatch):
    torch.manual_seed(0)
    model = get_model("resnet50")
    calls = count_traces(monkeypatch)
    df = validate(model, (3, 64, 64), mode="train")  # real run, oracles, saved tensors, backward FLOPs
    assert df.attrs["agree"], df.attrs["mismatches"][:5]
    assert calls == ["ResNet"]


def test_table_with_training_and_receptive_field_traces_once(monkeypatch, capsys):
    calls = count_traces(monkeypatch)
    assert main(["table", "resnet50", "--input", "3x64x64", "--training", "--receptive-field",
                 "--upto", "layer2", "--format", "json"]) == 0
    assert '"rf"' in capsys.readouterr().out
    assert calls == ["ResNet"]


def test_profile_traces_once(monkeypatch):
    torch.manual_seed(0)
    model = get_model("resnet50")
    calls = count_traces(monkeypatch)
    result = profile(model, (3, 32, 32), warmup=0, repeat=1, layer_repeat=1, ceilings=False)
    assert len(result.layers) > 100 and "time_s" in result.layers
    assert calls == ["ResNet"]
