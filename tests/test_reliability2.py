"""Issue 21: the second reliability probe. One test (or a few) per failure, numbered as in the issue. Each
asserts the one-line error (exit code 2, no traceback) or the right behaviour, and that nothing written before
is lost (checksums). Every tree and file is made by the test; full disks are a mocked write or a file-size
limit (`resource.setrlimit(RLIMIT_FSIZE)`) in a subprocess.
"""

import csv
import dataclasses
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reid.cli import main as cli
from reid.config import load_config
from reid.data.identity import dataset_fingerprint, describe_data
from reid.records.provenance import CSV_COLUMNS, write_result
from reid.train.engine import train
from reid.utils.checkpoint import load_checkpoint, save_checkpoint
from reid.utils.errors import UserError
from tests.conftest import TINY as TINY_RUN

TINY = [*TINY_RUN, "data.val_fraction=0"]  # no validation split: the tiny tree keeps every id for training

REPO = Path(__file__).resolve().parent.parent
LIGHT_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def digests(folder) -> dict:
    return {p.name: digest(p) for p in Path(folder).iterdir() if p.is_file() and p.name != ".results.lock"}


def one_line_error(capsys, *words) -> str:
    err = capsys.readouterr().err.rsplit("\r", 1)[-1].strip()  # a progress bar may precede it
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def tiny_config(root, *extra):
    return load_config("smoke", [*TINY, f"data.root={root}", *extra])


def train_args(root, out, *extra):
    return ["train", "--config", "smoke", "--data", str(root), "--output-dir", str(out),
            *[a for s in TINY for a in ("--set", s)], "--device", "cpu", *extra]


def micro_checkpoint(path, **fields):
    """A random-weight micro model as a checkpoint (no training): for evaluate / search / export / analyse."""
    from reid.models import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(preset="micro", img_size=(48, 48), drop_path_rate=0.0)
    model = build_model(cfg, num_classes=6, load_pretrained=False)
    return save_checkpoint({"model": model.state_dict(), "model_config": dataclasses.asdict(cfg), "num_classes": 6,
                            "config": {}, "epoch": 1, **fields}, path)


def a_result(root, **extra):
    return {"rank1": 1.0, "mAP": 2.0, "std": {"rank1": 0.5}, "data": describe_data(root, "sysu", synthetic=True),
            "protocol": {"setting": "all-search"}, **extra}


def read_rows(csv_path):
    with open(csv_path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def run_python(code: str, fsize: int | None = None) -> subprocess.CompletedProcess:
    """`code` in a fresh, one-thread Python; with `fsize`, under a file-size limit of that many bytes (writes
    past it fail with EFBIG, as on a full disk; Python ignores SIGXFSZ)."""
    prefix = f"import resource; resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize}, {fsize}))\n" if fsize else ""
    return subprocess.run([sys.executable, "-c", prefix + textwrap.dedent(code)], capture_output=True, text=True,
                          env=LIGHT_ENV, timeout=600, check=False)


@pytest.fixture
def finished(synthetic_root, tmp_path):
    """A finished one-epoch run with last-epoch selection (data.val_fraction 0)."""
    out = tmp_path / "run"
    train(tiny_config(synthetic_root / "SYSU-MM01"), out, device="cpu")
    return out


# ------------------------------------------------------------------------ 1, 2: best.pt is the reported model

def test_01_extended_resume_moves_best_pt_to_the_new_last_epoch(synthetic_root, finished, capsys):
    from reid.eval.evaluate import load_model

    assert digest(finished / "best.pt") == digest(finished / "last.pt")
    assert not os.path.samefile(finished / "best.pt", finished / "last.pt")  # a copy: writing one spares the other
    epoch1 = finished / "epoch1.pt"
    shutil.copy(finished / "last.pt", epoch1)
    train(tiny_config(synthetic_root / "SYSU-MM01", "train.epochs=2"), finished, resume=True, device="cpu")
    assert load_checkpoint(finished / "best.pt")["epoch"] == load_checkpoint(finished / "last.pt")["epoch"] == 2
    assert digest(finished / "best.pt") == digest(finished / "last.pt")
    from reid.records.card import model_fields

    fields = model_fields(load_model(finished / "best.pt"))
    assert fields["model_selection"] == "last epoch" and fields["epoch"] == "2 of 2"
    # A run left by the old rule: a separate, stale best.pt of epoch 1. Resuming the finished run repairs it.
    shutil.copy(epoch1, finished / "best.pt")
    capsys.readouterr()
    assert cli(train_args(synthetic_root / "SYSU-MM01", finished, "--set", "train.epochs=2", "--resume")) == 0
    assert "restored from last.pt (epoch 2)" in capsys.readouterr().out
    assert digest(finished / "best.pt") == digest(finished / "last.pt")


def test_02_kill_between_last_pt_and_best_pt_is_repaired_by_resume(synthetic_root, finished, capsys):
    last = digest(finished / "last.pt")
    (finished / "best.pt").unlink()  # what kill -9 while the final best.pt was written leaves ...
    (finished / ".best.pt.4242.copy.tmp").write_bytes(b"half a link")  # ... with its temporary file
    assert cli(train_args(synthetic_root / "SYSU-MM01", finished, "--resume")) == 0
    assert digest(finished / "best.pt") == digest(finished / "last.pt") == last
    assert not list(finished.glob(".*.tmp"))


def test_02_a_real_kill_9_right_after_the_last_last_pt(synthetic_root, tmp_path):
    """The process kills itself (SIGKILL) where the final best.pt would be copied: no handler runs."""
    out = tmp_path / "run"
    args = train_args(synthetic_root / "SYSU-MM01", out)
    code = f"""
        import os, signal, sys
        import reid.train.engine
        from reid.cli import main
        reid.train.engine.copy_checkpoint = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
        sys.exit(main({args!r}))
    """
    assert run_python(code).returncode == -9
    assert load_checkpoint(out / "last.pt")["epoch"] == 1 and not (out / "best.pt").exists()
    last = digest(out / "last.pt")
    done = run_python(f"import sys\nfrom reid.cli import main\nsys.exit(main({[*args, '--resume']!r}))\n")
    assert done.returncode == 0, done.stderr[-2000:]
    assert digest(out / "best.pt") == digest(out / "last.pt") == last


def test_02_the_runner_repairs_best_pt_before_reusing_a_finished_run(synthetic_root, tmp_path, capsys):
    from reid.eval.evaluate import load_model
    from reid.experiments import train_run

    cfg = tiny_config(synthetic_root / "SYSU-MM01")
    run = train_run(cfg, tmp_path / "runs", device="cpu")
    (run / "best.pt").unlink()
    capsys.readouterr()
    assert train_run(cfg, tmp_path / "runs", device="cpu") == run
    assert "trained already" in capsys.readouterr().out
    assert load_model(run / "best.pt").checkpoint_info["epoch"] == 1


def test_02_with_validation_best_pt_stays_the_best_epoch(synthetic_root, tmp_path):
    from reid.train.engine import repair_best_checkpoint

    out = tmp_path / "run"
    train(tiny_config(synthetic_root / "SYSU-MM01", "data.val_fraction=0.3", "train.epochs=2"), out, device="cpu")
    best_epoch = load_checkpoint(out / "last.pt")["best"]["epoch"]
    assert load_checkpoint(out / "best.pt")["epoch"] == best_epoch
    before = digest(out / "best.pt")
    assert repair_best_checkpoint(out) is False and digest(out / "best.pt") == before


# ------------------------------------------------------------------------- 3: synthetic data labelled real

def test_03a_settings_read_synthetic_from_the_manifest_through_links(synthetic_root, tmp_path):
    from reid.experiments import settings

    for name in ("SYSU-MM01", "RegDB"):
        (tmp_path / name).symlink_to(synthetic_root / name, target_is_directory=True)
    s = settings({"REID_SYSU_ROOT": str(tmp_path / "SYSU-MM01"), "REID_REGDB_ROOT": str(tmp_path / "RegDB")})
    assert s.synthetic and s.data_label.startswith("synthetic")
    assert s.sysu_root.parent == s.regdb_root.parent == synthetic_root.resolve()  # where the notebooks look


def test_03b_evaluate_synthetic_no_on_the_synthetic_set_is_refused_before_work(synthetic_root, tmp_path, capsys,
                                                                                 monkeypatch):
    import reid.eval.evaluate

    monkeypatch.setattr(reid.eval.evaluate, "evaluate_sysu", lambda *a, **k: pytest.fail("evaluated anyway"))
    ckpt = micro_checkpoint(tmp_path / "m.pt")
    assert cli(["evaluate", "--checkpoint", str(ckpt), "--dataset", "sysu", "--data", str(synthetic_root / "SYSU-MM01"),
                "--synthetic", "no", "--results-dir", str(tmp_path / "results")]) == 2
    one_line_error(capsys, "--synthetic no", "synthetic")
    assert not (tmp_path / "results").exists()
    with pytest.raises(UserError, match="--synthetic no"):
        describe_data(synthetic_root / "RegDB", "regdb", synthetic=False)


# ----------------------------------------------------------------------------------------- 4, 5: results.csv

def test_04_a_results_csv_without_its_final_newline_is_repaired(tmp_path):
    results = tmp_path / "results"
    write_result(a_result(tmp_path), results, "first")
    csv_path = results / "results.csv"
    csv_path.write_bytes(csv_path.read_bytes().rstrip(b"\r\n"))  # e.g. saved by an editor
    first = digest(results / "first.json")
    write_result(a_result(tmp_path), results, "second")
    rows = read_rows(csv_path)
    assert rows[0] == CSV_COLUMNS and [r[0] for r in rows[1:]] == ["first", "second"]
    assert all(len(r) == len(CSV_COLUMNS) for r in rows)
    assert digest(results / "first.json") == first and "second" in (results / "results.md").read_text()


def test_04_a_damaged_results_csv_is_refused_before_the_work(synthetic_root, tmp_path, capsys, monkeypatch):
    import reid.eval.evaluate

    results = tmp_path / "results"
    write_result(a_result(tmp_path), results, "first")
    csv_path = results / "results.csv"
    csv_path.write_text(csv_path.read_text().rstrip("\r\n") + "glued,row\r\n")  # a row glued onto the last one
    before = digests(results)
    monkeypatch.setattr(reid.eval.evaluate, "evaluate_sysu", lambda *a, **k: pytest.fail("evaluated anyway"))
    ckpt = micro_checkpoint(tmp_path / "m.pt")
    assert cli(["evaluate", "--checkpoint", str(ckpt), "--dataset", "sysu", "--data", str(synthetic_root / "SYSU-MM01"),
                "--results-dir", str(results), "--name", "second"]) == 2
    one_line_error(capsys, "results.csv line 2")
    assert digests(results) == before


def test_05_parallel_recordings_give_one_header_and_every_row(tmp_path):
    results = tmp_path / "results"
    code = f"""
        import sys
        from reid.data.identity import describe_data
        from reid.records.provenance import write_result
        worker = sys.argv[1]
        for i in range(4):
            result = {{"rank1": float(i), "mAP": 1.5, "std": {{}}, "protocol": {{"config": f"c{{worker}}", "seed": i}},
                      "data": describe_data({str(tmp_path)!r}, "sysu", synthetic=True)}}
            write_result(result, {str(results)!r}, f"w{{worker}}_{{i}}")
    """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(w)], env=LIGHT_ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(8)]
    outcomes = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    assert all(rc == 0 for _, _, rc in outcomes), [err for _, err, rc in outcomes if rc]
    rows = read_rows(results / "results.csv")
    assert rows[0] == CSV_COLUMNS and CSV_COLUMNS not in rows[1:]  # one header
    assert len(rows) == 1 + 32 and all(len(r) == len(CSV_COLUMNS) for r in rows)
    names = {f"w{w}_{i}" for w in range(8) for i in range(4)}
    assert {r[0] for r in rows[1:]} == names
    assert {p.stem for p in results.glob("*.json")} == names
    assert all(json.loads((results / f"{n}.json").read_text())["mAP"] == 1.5 for n in names)
    table = (results / "results.md").read_text()
    assert all(f"c{w}" in table for w in range(8)) and not list(results.glob(".*.tmp*"))


def test_results_on_a_full_disk_leave_results_csv_as_it_was(tmp_path):
    """A row cut short by the file-size limit is cut back: the table stays readable."""
    results = tmp_path / "results"
    write_result(a_result(tmp_path), results, "first")
    before = digests(results)
    limit = (results / "results.csv").stat().st_size + 300  # room for part of a row, not all of it
    code = f"""
        from reid.utils.errors import UserError
        from reid.data.identity import describe_data
        from reid.records.provenance import write_result
        result = {{"rank1": 1.0, "mAP": 1.0, "std": {{}}, "protocol": {{}}, "checkpoint": "x" * 2000,
                  "data": describe_data({str(tmp_path)!r}, "sysu", synthetic=True)}}
        try:
            write_result(result, {str(results)!r}, "second")
        except UserError as err:
            print("error:", err)
    """
    done = run_python(code, fsize=limit)
    assert done.returncode == 0 and "error: cannot record the result" in done.stdout, done.stderr
    assert "left as it was" in done.stdout
    assert digests(results) == before and not (results / "second.json").exists()


# ------------------------------------------------------------------------------------ 6: one walk of a tree

def test_06_check_data_and_the_card_walk_a_linked_camera_folder_alike(synthetic_root, tmp_path):
    from reid.data import SYSUMM01
    from reid.data.check import check_data

    plain = shutil.copytree(synthetic_root / "SYSU-MM01", tmp_path / "plain" / "SYSU-MM01")
    linked = shutil.copytree(synthetic_root / "SYSU-MM01", tmp_path / "linked" / "SYSU-MM01")
    shutil.move(linked / "cam3", tmp_path / "elsewhere_cam3")
    (linked / "cam3").symlink_to(tmp_path / "elsewhere_cam3", target_is_directory=True)
    report = check_data(linked, "sysu")
    assert report.fingerprint == dataset_fingerprint(linked, refresh=True) == check_data(plain, "sysu").fingerprint
    assert not any("without images" in p for p in report.problems), report.problems
    assert len(SYSUMM01(linked).query("all")) == len(SYSUMM01(plain).query("all"))


def test_06_a_folder_link_looping_back_is_reported_not_followed(synthetic_root, tmp_path):
    from reid.data.check import check_data

    root = shutil.copytree(synthetic_root / "SYSU-MM01", tmp_path / "SYSU-MM01")
    clean = dataset_fingerprint(root, refresh=True)
    folder = next(p for p in sorted((root / "cam6").iterdir()) if p.is_dir())
    (folder / "loop").symlink_to("../..", target_is_directory=True)
    report = check_data(root, "sysu")
    assert any("loop back" in p and "loop" in p for p in report.problems), report.problems
    assert report.fingerprint == dataset_fingerprint(root, refresh=True) == clean


# ------------------------------------------------------------------------ 7: every output whole or not at all

@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((40, 20, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_07_export_over_an_existing_file_fails_whole(tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnxscript")
    import reid.tools.export

    ckpt = micro_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "model.onnx"
    out.write_bytes(b"a good earlier export" * 1000)
    before = digest(out)

    class HalfWritten:  # what torch's exporter returns; its save stops part-way, as past `ulimit -f`
        def __init__(self):
            self.model = type("Graph", (), {"metadata_props": {}})()

        def save(self, path):
            Path(path).write_bytes(b"half")
            raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(reid.tools.export.torch.onnx, "export", lambda *a, **k: HalfWritten())
    assert cli(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert f"replacing the existing {out}" in captured.out  # said before the work (issue item 11)
    assert captured.err.startswith("error: --out") and "File too large" in captured.err
    assert captured.err.count("\n") == 1 and "left as it was" in captured.err
    assert digest(out) == before and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_07_search_and_embed_on_a_full_disk_keep_the_earlier_outputs(tmp_path, images, capsys, monkeypatch):
    import reid.tools.search

    ckpt = str(micro_checkpoint(tmp_path / "m.pt"))
    png, npy = tmp_path / "ranks.png", tmp_path / "feats.npy"
    assert cli(["search", "--checkpoint", ckpt, "--query", str(images), "--gallery", str(images), "--out", str(png),
                "--device", "cpu"]) == 0
    assert cli(["embed", "--checkpoint", ckpt, "--images", str(images), "--out", str(npy), "--device", "cpu"]) == 0
    before = digests(tmp_path)
    capsys.readouterr()
    monkeypatch.setattr(reid.tools.search, "plot_search", _disk_full)  # the CSV is written, then the figure fails
    assert cli(["search", "--checkpoint", ckpt, "--query", str(images), "--gallery", str(images), "--out", str(png),
                "--device", "cpu"]) == 2
    one_line_error(capsys, "--out", "No space left")
    monkeypatch.setattr(reid.tools.search.np, "save", _disk_full)
    assert cli(["embed", "--checkpoint", ckpt, "--images", str(images), "--out", str(npy), "--device", "cpu"]) == 2
    one_line_error(capsys, "--out", "No space left")
    assert digests(tmp_path) == before and not list(tmp_path.glob(".*"))


def test_07_embed_under_a_file_size_limit_leaves_no_empty_file(tmp_path, images):
    ckpt = micro_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "feats.npy"
    out.write_bytes(b"earlier features")
    code = f"""
        import sys
        from reid.cli import main
        sys.exit(main(["embed", "--checkpoint", {str(ckpt)!r}, "--images", {str(images)!r}, "--out", {str(out)!r},
                       "--device", "cpu"]))
    """
    done = run_python(code, fsize=100)  # enough for no array of features
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: --out")
    assert out.read_bytes() == b"earlier features" and not (tmp_path / "feats.txt").exists()
    assert not list(tmp_path.glob(".*"))


@pytest.fixture
def analysed(synthetic_root, tmp_path):
    ckpt = micro_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "analysis"
    args = ["analyse", "--checkpoint", str(ckpt), "--dataset", "regdb", "--data", str(synthetic_root / "RegDB"),
            "--out", str(out), "--batch-size", "16", "--device", "cpu"]
    assert cli(args) == 0
    return args, out


def test_07_analyse_on_a_full_disk_keeps_the_whole_earlier_analysis(analysed, capsys, monkeypatch):
    from matplotlib.figure import Figure

    args, out = analysed
    before = digests(out)
    real_savefig = Figure.savefig
    calls = []

    def second_fails(self, path, *a, **k):  # the first figure is written, the second hits the full disk
        calls.append(path)
        if len(calls) == 2:
            Path(path).write_bytes(b"trunc")
            _disk_full()
        return real_savefig(self, path, *a, **k)

    monkeypatch.setattr(Figure, "savefig", second_fails)
    capsys.readouterr()
    assert cli(args) == 2
    one_line_error(capsys, "--out", "No space left")
    assert digests(out) == before and not list(out.glob(".*"))


# ---------------------------------------------------------------------------------- 8: one line, no traceback

def test_08_compare_with_a_string_std_or_a_deeply_nested_json(tmp_path, capsys):
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({**a_result(tmp_path), "std": "n/a"}))
    assert cli(["compare", str(odd)]) == 0
    assert "1.00" in capsys.readouterr().out
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    assert cli(["compare", str(deep)]) == 2
    one_line_error(capsys, "deep.json")


def test_08_export_onto_a_read_only_file_is_refused_first(tmp_path, capsys, monkeypatch):
    import reid.tools.export

    out = tmp_path / "model.onnx"
    out.write_bytes(b"keep me")
    out.chmod(0o444)
    monkeypatch.setattr(reid.tools.export, "load_model", lambda *a: pytest.fail("loaded before checking --out"))
    assert cli(["export", "--checkpoint", str(tmp_path / "m.pt"), "--out", str(out)]) == 2
    one_line_error(capsys, "--out", "read-only")
    assert out.read_bytes() == b"keep me"


def test_08_analyse_into_a_read_only_folder_is_refused_first(synthetic_root, tmp_path, capsys, monkeypatch):
    import reid.eval.evaluate

    locked = tmp_path / "locked"
    locked.mkdir()
    ckpt = micro_checkpoint(tmp_path / "m.pt")
    monkeypatch.setattr(reid.eval.evaluate, "extract_features", lambda *a, **k: pytest.fail("embedded before checking"))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: real_access(path, mode) and Path(path) != locked)
    assert cli(["analyse", "--checkpoint", str(ckpt), "--dataset", "sysu", "--data", str(synthetic_root / "SYSU-MM01"),
                "--out", str(locked / "a"), "--device", "cpu"]) == 2
    one_line_error(capsys, "--out", "permission denied")


def test_08_train_on_a_full_disk_is_one_line_and_keeps_last_pt(synthetic_root, finished, capsys, monkeypatch):
    import reid.utils.checkpoint

    before = digests(finished)

    def half_then_full(state, f):
        f.write(b"half a checkpoint")
        _disk_full()

    monkeypatch.setattr(reid.utils.checkpoint.torch, "save", half_then_full)
    assert cli(train_args(synthetic_root / "SYSU-MM01", finished, "--set", "train.epochs=2", "--resume")) == 2
    one_line_error(capsys, "last.pt", "No space left", "epoch 1", "--resume")
    monkeypatch.undo()
    assert digests(finished)["last.pt"] == before["last.pt"] and load_checkpoint(finished / "last.pt")["epoch"] == 1
    assert not list(finished.glob(".*.tmp"))


def test_08_train_past_a_file_size_limit_is_one_line(synthetic_root, finished):
    before = digest(finished / "last.pt")
    args = train_args(synthetic_root / "SYSU-MM01", finished, "--set", "train.epochs=2", "--resume")
    code = f"import sys\nfrom reid.cli import main\nsys.exit(main({args!r}))\n"
    done = run_python(code, fsize=(finished / "last.pt").stat().st_size // 2)
    assert done.returncode == 2, done.stderr[-2000:]
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: cannot write") and "File too large" in last_line and "Traceback" not in done.stderr
    assert digest(finished / "last.pt") == before and load_checkpoint(finished / "last.pt")["epoch"] == 1


# ---------------------------------------------------------------------------------------- 9: validated early

@pytest.mark.parametrize("variable, value", [("REID_PROFILE", "nope"), ("REID_SEEDS", "-1"), ("REID_SEEDS", "0,x")])
def test_09_settings_name_a_bad_variable(synthetic_root, variable, value):
    from reid.experiments import settings

    environ = {"REID_SYSU_ROOT": str(synthetic_root / "SYSU-MM01"), "REID_REGDB_ROOT": str(synthetic_root / "RegDB"),
               variable: value}
    with pytest.raises(UserError, match=f"{variable}={value!r}|{variable}={value}"):
        settings(environ)


def test_09_reproduce_checks_the_profile_before_making_data(tmp_path, capsys, monkeypatch):
    import reid.data.synthetic

    monkeypatch.setattr(reid.data.synthetic, "ensure_synthetic", lambda *a, **k: pytest.fail("generated data first"))
    assert cli(["reproduce", "--profile", "nope", "--synthetic-root", str(tmp_path / "syn")]) == 2
    one_line_error(capsys, "--profile nope")
    assert cli(["reproduce", "--set", "optim.lr=-1", "--synthetic-root", str(tmp_path / "syn")]) == 2
    one_line_error(capsys, "optim.lr")
    assert cli(["reproduce", "--regdb-splits", "11", "--synthetic-root", str(tmp_path / "syn")]) == 2
    one_line_error(capsys, "--regdb-splits 11")
    assert not (tmp_path / "syn").exists()


# ---------------------------------------------------------------------- 10: "real" data far from the paper's

def test_10_real_labelled_data_off_the_published_counts_is_warned_about(synthetic_root, tmp_path, capsys):
    from reid.data.synthetic import MANIFEST

    copy = shutil.copytree(synthetic_root, tmp_path / "copy")
    for manifest in copy.rglob(MANIFEST):
        manifest.unlink()
    ckpt = micro_checkpoint(tmp_path / "m.pt")
    assert cli(["evaluate", "--checkpoint", str(ckpt), "--dataset", "sysu", "--data", str(copy / "SYSU-MM01"),
                "--trials", "1", "--results-dir", str(tmp_path / "results"), "--name", "r", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "3803" in err and "check-data" in err
    result = json.loads((tmp_path / "results" / "r.json").read_text())
    assert result["data"]["kind"] == "real" and result["warnings"]


# ------------------------------------------------------------------------ 11: passing, but wrong before

def test_11_a_base_naming_its_own_file_is_refused(tmp_path):
    path = tmp_path / "me.yaml"
    path.write_text("base: me.yaml\noptim: {lr: 0.01}\n")
    with pytest.raises(UserError, match="names this file itself"):
        load_config(str(path))


def test_11_a_data_error_leaves_no_run_folder(synthetic_root, tmp_path, capsys):
    root = shutil.copytree(synthetic_root / "SYSU-MM01", tmp_path / "SYSU-MM01")
    ids = root / "exp" / "train_id.txt"
    ids.write_text(ids.read_text().strip() + ",9999\n")  # an id without images
    out = tmp_path / "run"
    assert cli(train_args(root, out)) == 2
    one_line_error(capsys, "9999")
    assert not out.exists()


def test_11_embed_and_export_say_what_they_replace(tmp_path, images, capsys):
    ckpt = str(micro_checkpoint(tmp_path / "m.pt"))
    npy = tmp_path / "feats.npy"
    (tmp_path / "feats.txt").write_text("the user's own notes")
    assert cli(["embed", "--checkpoint", ckpt, "--images", str(images), "--out", str(npy), "--device", "cpu"]) == 0
    assert f"replacing the existing {tmp_path / 'feats.txt'}" in capsys.readouterr().out


def test_11_a_malicious_checkpoint_is_refused_in_our_words(synthetic_root, tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Evil(), "model_config": {}, "num_classes": 2}, path)
    assert cli(["evaluate", "--checkpoint", str(path), "--dataset", "sysu", "--data", str(synthetic_root / "SYSU-MM01"),
                "--results-dir", str(tmp_path / "results")]) == 2
    line = one_line_error(capsys, "evil.pt", "refused as unsafe")
    assert "weights_only" not in line and "\x1b" not in line and not (tmp_path / "pwned").exists()


def test_11_the_nan_advice_is_a_new_output_dir(synthetic_root, tmp_path):
    from reid.train.engine import DivergedError

    cfg = tiny_config(synthetic_root / "SYSU-MM01", "optim.lr=1e30", "optim.warmup_epochs=0",
                      "train.max_steps_per_epoch=3")
    with pytest.raises(DivergedError, match="new --output-dir with a lower optim.lr"):
        train(cfg, tmp_path / "run", device="cpu")


def test_atomic_outputs_leave_the_old_file_on_any_failure(tmp_path):
    from reid.utils.atomic import atomic_outputs, write_text_atomically

    a, b = tmp_path / "a.txt", tmp_path / "b.png"
    a.write_text("old a")
    b.write_text("old b")
    with pytest.raises(RuntimeError), atomic_outputs([a, b]) as (ta, tb):
        ta.write_text("new a")
        raise RuntimeError("a bug half-way")
    with pytest.raises(UserError, match="cannot write"), atomic_outputs([a, b], "--out") as (ta, tb):
        assert ta.suffix == ".txt" and tb.suffix == ".png"  # writers choose their format from the suffix
        ta.write_text("new a")
        _disk_full()
    assert a.read_text() == "old a" and b.read_text() == "old b" and sorted(os.listdir(tmp_path)) == ["a.txt", "b.png"]
    write_text_atomically(a, "new a")
    assert a.read_text() == "new a"
