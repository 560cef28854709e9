"""`python -m reid search / embed / export` on a folder of unlabelled images the tests write, with a
random-weight micro model: shapes, row order, self-retrieval, the CSV and figure, one-line errors, and
the ONNX file against torch (onnxruntime on the CPU)."""

import csv
import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from reid.cli import main as cli
from reid.eval.evaluate import extract_features
from reid.tools.search import embed_images, list_images, search
from reid.utils.checkpoint import save_checkpoint

IMG = (48, 48)  # the smallest size both patch sizes (12, 16) divide: keeps the tests fast
# (file, mode, (width, height)): IR-like greyscale, 16-bit thermal, RGBA, odd sizes, a subfolder
IMAGES = [("a.jpg", "RGB", (37, 80)), ("b.png", "L", (20, 45)), ("c.png", "RGBA", (64, 64)),
          ("d.bmp", "RGB", (150, 60)), ("sub/e.png", "I;16", (30, 70))]


def _random_bn_statistics(model: torch.nn.Module, seed: int) -> None:
    """Running statistics of a trained-looking BN: a fresh one is the identity, which would hide a BN
    neck that the export dropped or computed wrongly."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)


def _tiny(test_feature="after_bn", img_size=IMG, conv_stem=False):
    from reid.models import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(preset="micro", img_size=img_size, conv_stem=conv_stem, test_feature=test_feature,
                      drop_path_rate=0.0)
    model = build_model(cfg, num_classes=6, load_pretrained=False).eval()
    _random_bn_statistics(model, seed=1)
    state = {"model": model.state_dict(), "model_config": dataclasses.asdict(cfg), "num_classes": 6,
             "config": {"note": "test"}, "epoch": 1}
    return model, state


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model, state = _tiny()
    return model, save_checkpoint(state, tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Five images of different sizes and modes (one in a subfolder), a text file and a hidden file."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i, (name, mode, (w, h)) in enumerate(IMAGES):
        ramp = np.linspace(0, 1, w)[None, :] * np.linspace(1, i / 4, h)[:, None]  # each image its own layout
        noise = rng.random((h, w))
        if mode == "I;16":
            img = Image.fromarray(((0.6 * ramp + 0.4 * noise) * 65535).astype(np.uint16))
        else:
            channels = len(mode)
            pixels = np.stack([(ramp * (c + 1) / channels + 0.3 * rng.random((h, w))) % 1 for c in range(channels)], -1)
            pixels = (pixels * 255).astype(np.uint8)
            img = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
        (root / name).parent.mkdir(exist_ok=True)
        img.save(root / name)
    (root / "notes.txt").write_text("not an image\n")
    (root / ".hidden.png").write_bytes(b"")  # e.g. an editor's or a file manager's file
    return root


def _one_line_error(capsys, *needles):
    # A failure while embedding comes after the progress bar, which erases itself (carriage returns).
    err = capsys.readouterr().err.rsplit("\r", 1)[-1]
    assert err.startswith("error: ") and err.strip().count("\n") == 0 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_list_images_sorted_with_subfolders_skipping_other_files(folder, capsys):
    paths = list_images(folder, "--gallery")
    assert paths == [str(folder / name) for name, _, _ in sorted(IMAGES)]
    printed = capsys.readouterr().out
    assert "skipped 1 file(s)" in printed and "notes.txt" in printed
    assert list_images(folder / "b.png", "--query") == [str(folder / "b.png")]


def test_embeddings_are_the_evaluations(tiny, folder):
    """Same decoding, resize and normalisation as evaluation: the features match `extract_features`."""
    model = tiny[0]
    paths = list_images(folder, "--gallery")
    features = embed_images(model, paths, batch_size=2, device="cpu")
    assert features.shape == (len(IMAGES), model.feature_dim) and features.dtype == torch.float32
    torch.testing.assert_close(features.norm(dim=1), torch.ones(len(IMAGES)))
    reference, _, _ = extract_features(model, [(p, 0, 0) for p in paths], batch_size=2, device="cpu")
    torch.testing.assert_close(features, reference, rtol=0, atol=0)
    assert embed_images(model, []).shape == (0, model.feature_dim)


def test_an_image_finds_itself_first(tiny, folder):
    paths = list_images(folder, "--gallery")
    order, dist = search(tiny[0], [paths[2]], paths, top=3, batch_size=4, device="cpu")
    assert order.shape == dist.shape == (1, 3)
    assert order[0, 0] == 2 and abs(dist[0, 0]) < 1e-5 and dist[0, 1] > 1e-4
    assert np.all(np.diff(dist[0]) >= 0)
    order, _ = search(tiny[0], paths, paths, top=99, device="cpu")  # top is cut to the gallery size
    assert order.shape == (len(paths), len(paths)) and list(order[:, 0]) == list(range(len(paths)))


def test_cli_search_writes_the_figure_and_the_ranking(tiny, folder, tmp_path, capsys):
    out = tmp_path / "figs" / "ranks.png"
    rc = cli(["search", "--checkpoint", str(tiny[1]), "--query", str(folder), "--gallery", str(folder),
              "--top", "3", "--figure-queries", "2", "--out", str(out), "--device", "cpu", "--batch-size", "2"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert out.is_file() and out.stat().st_size > 0 and "the first 2 of the queries" in printed
    with open(out.with_suffix(".csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(IMAGES) * 3 and list(rows[0]) == ["query", "rank", "gallery", "distance"]
    for row in rows:
        if row["rank"] == "1":
            assert row["gallery"] == row["query"] and abs(float(row["distance"])) < 1e-5
    assert [r["rank"] for r in rows[:3]] == ["1", "2", "3"]


def test_cli_embed_keeps_rows_and_paths_in_order(tiny, folder, tmp_path, capsys):
    out = tmp_path / "feats.npy"
    assert cli(["embed", "--checkpoint", str(tiny[1]), "--images", str(folder), "--out", str(out),
                "--batch-size", "3", "--device", "cpu"]) == 0
    features = np.load(out)
    paths = (tmp_path / "feats.txt").read_text().splitlines()
    assert features.shape == (len(IMAGES), tiny[0].feature_dim) and features.dtype == np.float32
    assert paths == list_images(folder, "--images")
    for row, path in enumerate(paths):  # each row is its own image's embedding, embedded alone
        np.testing.assert_allclose(features[row], embed_images(tiny[0], [path], device="cpu")[0].numpy(),
                                   atol=1e-5)


def test_cli_errors_are_one_line_naming_the_file(tiny, folder, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    text_only = tmp_path / "text_only"
    text_only.mkdir()
    (text_only / "readme.md").write_text("hello\n")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "fake.jpg").write_text("not a jpeg\n")
    ckpt = str(tiny[1])
    embed = ["embed", "--checkpoint", ckpt, "--out", str(tmp_path / "f.npy"), "--device", "cpu", "--images"]
    assert cli([*embed, str(tmp_path / "nowhere")]) == 2
    _one_line_error(capsys, "--images", "nowhere", "no such file or folder")
    assert cli([*embed, str(empty)]) == 2
    _one_line_error(capsys, str(empty), "no image files")
    assert cli([*embed, str(text_only)]) == 2
    _one_line_error(capsys, str(text_only), "no image files")
    assert cli([*embed, str(broken)]) == 2
    _one_line_error(capsys, "cannot read image", "fake.jpg")
    assert not (tmp_path / "f.npy").exists()

    search_args = ["search", "--query", str(folder / "a.jpg"), "--gallery", str(folder)]
    assert cli([*search_args, "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "r.png")]) == 2
    _one_line_error(capsys, "none.pt")
    assert cli([*search_args, "--checkpoint", ckpt, "--out", str(tmp_path / "r.txt")]) == 2
    _one_line_error(capsys, "r.txt", ".png")
    assert cli([*search_args, "--checkpoint", ckpt, "--out", str(tmp_path / "r.png"), "--top", "0"]) == 2
    _one_line_error(capsys, "--top")
    assert cli(["search", "--checkpoint", ckpt, "--query", str(broken), "--gallery", str(folder),
                "--out", str(tmp_path / "r.png"), "--device", "cpu"]) == 2
    _one_line_error(capsys, "fake.jpg")
    assert not (tmp_path / "r.png").exists() and not (tmp_path / "r.csv").exists()
    assert cli(["export", "--checkpoint", ckpt, "--out", str(tmp_path / "model.pt")]) == 2
    _one_line_error(capsys, "model.pt", ".onnx")


def test_a_real_process_stops_at_an_unreadable_image_with_one_line(tiny, tmp_path):
    (tmp_path / "ok.png").write_bytes(b"")  # empty: PIL cannot identify it
    proc = subprocess.run([sys.executable, "-m", "reid", "embed", "--checkpoint", str(tiny[1]), "--images",
                           str(tmp_path), "--out", str(tmp_path / "f.npy"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=120, check=False)
    # text=True reads the progress bar's carriage returns as line ends: the error is the last line, alone
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert lines[-1].startswith(f"error: cannot read image {tmp_path / 'ok.png'}")
    assert not any("error" in line for line in lines[:-1])
    assert not (tmp_path / "f.npy").exists()


@pytest.mark.parametrize("test_feature,img_size,conv_stem", [("after_bn", IMG, False), ("before_bn", (96, 48), True)])
def test_onnx_export_matches_torch(test_feature, img_size, conv_stem, tmp_path, capsys):
    """The exported graph gives torch's embeddings (max abs difference <= 1e-4) for batches of 2 and 3."""
    pytest.importorskip("onnxscript", reason="pip install -e '.[export]'")
    ort = pytest.importorskip("onnxruntime", reason="pip install -e '.[export]'")
    import onnx

    model, state = _tiny(test_feature, img_size, conv_stem)
    ckpt = save_checkpoint(state, tmp_path / "tiny.pt")
    out = tmp_path / "model.onnx"
    assert cli(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    height, width = img_size
    assert f"float32 (N, 3, {height}, {width})" in printed and "mean (0.485, 0.456, 0.406)" in printed
    assert "max |torch - onnx|" in printed

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert inp.name == "images" and isinstance(inp.shape[0], str) and inp.shape[1:] == [3, height, width]
    assert outp.shape[1] == model.feature_dim
    generator = torch.Generator().manual_seed(3)
    for n in (2, 3):  # the batch axis is dynamic
        x = torch.randn(n, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"images": x.numpy()})[0]
        assert got.shape == (n, model.feature_dim)
        assert np.abs(got - expected).max() <= 1e-4
    proto = onnx.load(str(out))
    assert not any("classifier" in t.name for t in proto.graph.initializer)  # the training head is not in it
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["img_size"] == f"{height}x{width}" and meta["test_feature"] == test_feature
