"""Every registered model through the calculator: numeric, symbolic and training-mode tables.

Parametrized over list_models(), so a newly registered model is tested for free."""
import pytest

import archstat
from archstat.engine.analyze import SYMBOLS
from archstat.models import get_model, list_models, model_info


@pytest.mark.parametrize("name", list_models())
def test_table_is_complete_and_symbolic_agrees(name):
    info = model_info(name)
    model = get_model(name, device="meta")
    num = archstat.analyze(model, info.default_input)
    assert num.attrs["engine"] == "fx" and not num.attrs["partial"], num.attrs["unsupported"]
    assert num.set_index(["name", "op", "call"]).index.is_unique
    sym = archstat.analyze(model, info.default_input, symbolic=True)
    c, h, w = info.default_input
    at = {SYMBOLS["N"]: 2, SYMBOLS["H"]: h, SYMBOLS["W"]: w}
    num2 = archstat.analyze(model, info.default_input, batch=2)
    for key in ("macs", "flops", "act_bytes"):
        assert int(sym.attrs["total"][key].subs(at)) == num2.attrs["total"][key], key
    assert num.attrs["total"]["params"] == sym.attrs["total"]["params"]


@pytest.mark.parametrize("name", list_models())
def test_train_mode_counts_every_parameter_that_runs(name):
    info = model_info(name)
    model = get_model(name, device="meta")
    train = archstat.analyze(model, info.default_input, mode="train", batch=2)
    assert not train.attrs["partial"], train.attrs["unsupported"]
    # in training mode every module runs (auxiliary heads included), so all parameters count
    assert train.attrs["total"]["params"] == train.attrs["params_all"]
