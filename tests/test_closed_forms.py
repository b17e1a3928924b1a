"""The report's closed-form evaluator is exact: it equals analyze() at sizes off the stride grid."""
import pytest

import archstat
from archstat.engine.analyze import analyze_rows
from archstat.analyses import closed_forms as cf
from archstat.models import get_model


@pytest.mark.parametrize("name", ["zfnet", "googlenet"])  # ceil-mode pools and adaptive pools
def test_evaluator_equals_numeric_analysis(name):
    model = get_model(name, device="meta")
    _, totals = cf.symbolic_table(analyze_rows(model, (3, 224, 224), symbolic=True))
    for side in (224, 231):
        numeric = archstat.analyze(model, (3, side, side)).attrs["total"]
        for key in ("macs", "flops", "act_bytes"):
            assert cf.evaluator(totals[key])(side, side) == numeric[key], (key, side)
