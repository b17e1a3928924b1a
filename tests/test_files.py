"""archstat.files: atomic writes (nothing the user had is lost) and one-line errors for paths the machine
refuses; the command line's file and number arguments that used to end in a traceback."""
from __future__ import annotations

import os
import stat

import pytest

from archstat.cli import main
from archstat.errors import ArchstatError
from archstat.files import replacing, write_text


def test_write_text_replaces_with_plain_permissions_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "page.md"
    target.write_text("old\n")
    old_mask = os.umask(0o022)
    try:
        write_text(target, "new\n")
    finally:
        os.umask(old_mask)
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # as open() gives under umask 022 (mkstemp: 0600)
    assert [p.name for p in tmp_path.iterdir()] == ["page.md"]


def test_what_the_user_had_stays_a_link_its_permissions_and_a_read_only_mark(tmp_path):
    real, link = tmp_path / "real.csv", tmp_path / "link.csv"
    real.write_text("old\n")
    os.chmod(real, 0o600)
    link.symlink_to(real)
    write_text(link, "new\n")
    assert link.is_symlink() and real.read_text() == "new\n"  # written through the link, the link kept
    assert stat.S_IMODE(real.stat().st_mode) == 0o600  # a private file stays private
    os.chmod(real, 0o444)
    with pytest.raises(ArchstatError, match="read-only"):
        write_text(real, "again\n")
    assert real.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "real.csv"]


def test_an_interrupted_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "figure.png"
    target.write_bytes(b"the old figure")
    with pytest.raises(KeyboardInterrupt):
        with replacing(target) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".png"  # a writer that reads the extension
            tmp.write_bytes(b"half a fig")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"the old figure"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]


@pytest.mark.parametrize("where", ["folder", "missing", "proc"])
def test_paths_the_machine_refuses_are_one_line(tmp_path, where):
    path = {"folder": tmp_path, "missing": tmp_path / "no" / "such" / "x.csv", "proc": "/proc/archstat.csv"}[where]
    with pytest.raises(ArchstatError, match=r"^cannot write .*(folder|No such file|directory)"):
        write_text(path, "x")


def one_line_exit_2(capsys, argv: list[str]) -> str:
    """Run the CLI; the exit must be 2 with one line on stderr, which is returned."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_unwritable_outputs_are_one_line_exit_2(capsys, tmp_path):
    assert "/proc" in one_line_exit_2(capsys, ["html", "alexnet", "--out", "/proc/archstat.html"])
    a_file = tmp_path / "a_file"
    a_file.write_text("mine\n")
    one_line_exit_2(capsys, ["report", "--models", "alexnet", "--out", str(a_file)])
    assert a_file.read_text() == "mine\n"


@pytest.mark.parametrize("flag, value", [("--label-smoothing", "1.5"), ("--label-smoothing", "-0.5"),
                                         ("--momentum", "5"), ("--warmup", "-5"), ("--workers", "-1"),
                                         ("--lr", "nan"), ("--lr", "inf"), ("--classes", "3")])
def test_train_numbers_out_of_range_are_refused(capsys, flag, value):
    assert flag in one_line_exit_2(capsys, ["train", "tiny_cnn", flag, value])


def test_experiment_seed_must_be_a_numpy_seed(capsys):
    assert "--seed" in one_line_exit_2(capsys, ["experiment", "init", "--quick", "--seed", "-1"])


@pytest.mark.parametrize("spec", ["crop=-2", "mixup=-1", "pca=0.1", "rrc=5", "jitter=-1", "cutout=0", "randaug=0:9",
                                  "randaug=2:40", "flip=2", "crop=x", "scale=inf", "mixup=inf"])
def test_augment_values_out_of_range_are_one_line(capsys, tmp_path, spec):
    """Each was a torch or numpy traceback (crop=-2, mixup=-1, pca on one-channel digits) or silently odd."""
    err = one_line_exit_2(capsys, ["train", "archstat.train.tiny:tiny_cnn", "--input", "1x8x8", "--epochs", "1",
                                   "--quiet", "--threads", "1", "--augment", spec, "--out", str(tmp_path)])
    assert spec in err


def test_diagnose_on_a_binary_file_is_one_line(capsys, tmp_path):
    png = tmp_path / "curves.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    assert "not an archstat metrics CSV" in one_line_exit_2(capsys, ["train", "tiny_cnn", "--diagnose", str(png)])
