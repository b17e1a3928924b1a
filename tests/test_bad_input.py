"""Bad input that used to escape as a traceback or exit 0 (issue 14): one line, exit 2."""
import sys
import types

import pytest
import torch

from archstat.cli import main
from archstat.engine.analyze import analyze_rows
from archstat.errors import ArchstatError
from archstat.validation import fits
from archstat.validation.fits import needed_bytes


def _raising_builder():
    raise ValueError("width must be positive\nsecond line of the message")


@pytest.fixture
def user_module(monkeypatch):
    mod = types.ModuleType("archstat_test_builders")
    mod.boom = _raising_builder
    monkeypatch.setitem(sys.modules, "archstat_test_builders", mod)
    return mod


@pytest.mark.parametrize("argv, message", [
    (["table", "torch.nn:Conv2d"], "building 'torch.nn:Conv2d' failed: TypeError"),
    (["table", "archstat_test_builders:boom"], "ValueError: width must be positive"),
    (["validate", "archstat_test_builders:boom"], "ValueError: width must be positive"),
    *[(["table", "alexnet", "--dtype", d], "is not a type archstat analyses")
      for d in ("int8", "bool", "uint8", "complex64", "float8_e4m3fn")],
    (["table", "alexnet", "--upto", ""], "--upto needs a layer name"),
    (["validate", "alexnet", "--batch", "100000"], "use a smaller --batch"),
])
def test_bad_input_is_one_line_exit_2(capsys, user_module, argv, message):
    code = main(argv)
    out = capsys.readouterr()
    assert code == 2 and out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archstat: error:") and message in lines[0], out.err


def test_the_fit_estimate_is_state_plus_the_live_peak(monkeypatch):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    rows = analyze_rows(model, (3, 10, 10), batch=4)
    state = (8 * 3 * 9 + 8) * 4
    peak = 4 * 300 * 4 + 2 * 4 * 512 * 4  # the caller's input, the conv's output and ReLU's (not in place)
    assert needed_bytes(rows) == state + peak
    monkeypatch.setattr(fits, "available_bytes", lambda device: state + peak)
    fits.check_fits(rows, torch.device("cpu"))  # fits exactly
    monkeypatch.setattr(fits, "available_bytes", lambda device: state + peak - 1)
    with pytest.raises(ArchstatError, match="smaller --batch"):
        fits.check_fits(rows, torch.device("cpu"))


def test_subclasses_of_norm_and_pool_layers_are_costed_as_their_base():
    """A subclass keeps its base's formula whatever its name (the dimension once came from the name)."""
    import torch
    from torch import nn

    from archstat.validation.validate import validate

    class FrozenBN(nn.BatchNorm2d):
        pass

    class Pool(nn.MaxPool2d):
        pass

    class Head(nn.AdaptiveAvgPool2d):
        pass

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), FrozenBN(8), Pool(2), Head(1))
    df = validate(net, (3, 16, 16), batch=2)
    assert df.attrs["agree"] and df["supported"].all()
