"""reports/published.md's verdicts: the known typos come out as typos, the lecture's short VGG-16 and
ResNet v1 reproduce the slides, and nothing is left unexplained."""
import pytest

from archstat.errors import ArchstatError
from archstat.reporting import published
from archstat.reporting.pubcheck import DIFFERS, MATCH, OTHER_MODEL, TYPO, WEIGHTS_ONLY, check_rounding


@pytest.fixture(scope="module")
def rows(published_sections):
    return {(s.key, r.item): r for s in published_sections for r in s.rows}


def test_loader():
    assert published.section("eecs498_lecture8", "alexnet_table", "rows")[5]["flop_M"] == 145
    assert published.old_docs_errors()["ResNet-50"] == (23.85, 7.13)
    with pytest.raises(ArchstatError):
        published.section("eecs498_lecture8", "no_such_table")


def test_rounding_helper():
    assert check_rounding(149.52, 150) and not check_rounding(149.52, 145)
    assert check_rounding(3.664, 3.6, 1, truncate_ok=True) and not check_rounding(3.664, 3.6, 1)


def test_lecture_typos_are_typos(rows):
    assert rows[("lecture_alexnet", "conv4 flop (M)")].verdict == TYPO
    assert rows[("lecture_alexnet", "conv3 flop (M)")].verdict == MATCH
    assert rows[("lecture_alexnet", "fc6 params (k)")].verdict == WEIGHTS_ONLY
    assert rows[("lecture_worked", "fc6 params")].archstat == "37,752,832"
    assert rows[("lecture_stem", "stem MFLOP")].verdict == TYPO
    assert rows[("lecture_inception", "bottleneck module ops")].archstat == "271,351,808"


def test_short_vgg_reproduces_the_slide(rows):
    assert rows[("lecture_totals", "VGG-16 GFLOP [vgg16]")].verdict == OTHER_MODEL
    assert rows[("lecture_totals", "VGG-16 GFLOP [vgg16_lecture]")].verdict == MATCH
    assert rows[("lecture_totals", "VGG-16 memory [vgg16_lecture]")].verdict == MATCH
    assert rows[("lecture_stem", "VGG-16 224->28 MFLOP [vgg16_lecture]")].verdict == MATCH


def test_formulas_and_resnet(rows):
    assert rows[("lecture_residual", "basic block flops")].archstat == "18HWC^2"
    assert rows[("lecture_residual", "bottleneck block flops")].archstat == "17HWC^2"
    r50 = rows[("resnet", "ResNet-50 FLOPs (Table 1 = slide GFLOP)")]
    assert r50.archstat == "3.858 G (v1)" and "4.089" in r50.explanation
    assert rows[("googlenet_table1", "total depth")].archstat == "22"


def test_every_disagreement_is_explained(rows):
    for (section, item), r in rows.items():
        if r.verdict in (DIFFERS, TYPO, OTHER_MODEL):
            assert r.explanation, f"{section} / {item}: {r.verdict} without an explanation"
