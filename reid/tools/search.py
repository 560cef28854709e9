"""Retrieval among one's own images, and their embeddings: `python -m reid search` and `python -m reid embed`.

    model = load_model("runs/sysu/best.pt")
    gallery = list_images("my_gallery/", "--gallery")      # sorted image paths (subfolders too)
    features = embed_images(model, gallery)                  # (N, D) float32, L2-normalised
    rows, dist = search(model, ["query.jpg"], gallery)       # (Q, k) gallery indices, nearest first

The images need no labels and no dataset layout: any file PIL reads, of any size and mode (IR or visible;
greyscale, 16-bit and RGBA are made RGB as the dataset readers make them), resized to the model's img_size
and normalised exactly as in evaluation, because `reid.eval.evaluate.extract_features` does the work. The
distance is the evaluation's too (`reid.eval.evaluate.distances`: cosine distance of the L2-normalised
embeddings, 0 for the same image, at most 2).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from reid.data.dataset import UncachedImages, read_resized
from reid.eval.evaluate import distances, extract_features, load_model
from reid.records.provenance import check_output_file, replacing_note
from reid.utils.atomic import atomic_outputs
from reid.utils.device import check_device
from reid.utils.errors import UserError

# Files with other suffixes in a folder (notes, Thumbs.db, label files) are skipped, and the skip is printed.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
FIGURE_SUFFIXES = (".png", ".jpg", ".pdf", ".svg")


def list_images(path: str | Path, flag: str) -> list[str]:
    """A file -> [it] (read whatever its name); a folder -> its image files, subfolders included, sorted.
    Hidden files and folders are skipped; a missing path or a folder without images is a `UserError`."""
    path = Path(path)
    if path.is_file():
        return [str(path)]
    if not path.is_dir():
        raise UserError(f"{flag} {path}: no such file or folder")
    files = sorted(p for p in path.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise UserError(f"{flag} {path}: no image files in this folder or below it "
                        f"(expected names ending in {', '.join(IMAGE_SUFFIXES)})")
    others = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        print(f"{flag} {path}: skipped {len(others)} file(s) that are not images by their name, e.g. {others[0]}")
    return [str(p) for p in images]


def embed_images(model: torch.nn.Module, paths: list[str], batch_size: int = 64,
                 device: str | torch.device | None = None, flip: bool = False, desc: str = "images") -> torch.Tensor:
    """(N, D) float32 embeddings on CPU, row i for paths[i]: the model's eval-mode output (L2-normalised,
    before/after the BN neck per its `cfg.test_feature`). Images are decoded as they are needed, not kept:
    a folder of any size fits in memory. An unreadable image is a `UserError` naming it."""
    if not paths:
        return torch.empty(0, model.feature_dim)
    images = UncachedImages(*model.cfg.img_size)
    features, _, _ = extract_features(model, [(str(p), -1, -1) for p in paths], images, batch_size=batch_size,
                                      device=device, flip=flip, desc=desc)
    return features


def rank(query: torch.Tensor, gallery: torch.Tensor, top: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """-> ((Q, k) gallery rows nearest first, (Q, k) their distances), k = min(top, gallery size).
    Ties keep the gallery order (a stable sort), so a ranking is reproducible."""
    dist = distances(query, gallery)
    order = np.argsort(dist, axis=1, kind="stable")[:, :top]
    # Rounding makes an image's distance to itself about -1e-7 at times: report it as the 0 it is.
    return order, np.clip(np.take_along_axis(dist, order, axis=1), 0.0, 2.0)


def search(model: torch.nn.Module, query_paths: list[str], gallery_paths: list[str], top: int = 10,
           batch_size: int = 64, device: str | torch.device | None = None,
           flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Embed both sets and rank the gallery for each query: see `rank`."""
    query = embed_images(model, query_paths, batch_size, device, flip, desc="query")
    gallery = embed_images(model, gallery_paths, batch_size, device, flip, desc="gallery")
    return rank(query, gallery, top)


# ----------------------------------------------------------------------------- outputs
def write_ranks_csv(path: str | Path, query_paths: list[str], gallery_paths: list[str], order: np.ndarray,
                    dist: np.ndarray) -> int:
    """One row per (query, rank): query, rank (1 = nearest), gallery, distance. Returns the row count."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["query", "rank", "gallery", "distance"])
        for q, (rows, ds) in enumerate(zip(order, dist)):
            for r, (g, d) in enumerate(zip(rows, ds), start=1):
                writer.writerow([query_paths[q], r, gallery_paths[g], f"{float(d):.6f}"])
    return int(order.size)


def plot_search(query_paths: list[str], gallery_paths: list[str], order: np.ndarray, dist: np.ndarray,
                img_size: tuple[int, int], out: str | Path, max_queries: int = 8):
    """Each of the first `max_queries` queries and its top-k, the distance under each image; no frames,
    since nothing says which match is right. Images are shown as the model sees them (resized)."""
    import matplotlib.pyplot as plt

    from reid.viz import plot_retrieval

    shown = min(max_queries, len(query_paths))
    height, width = img_size

    def load(path: str) -> np.ndarray:
        return read_resized(path, height, width)

    def short(path: str, most: int = 22) -> str:
        name = Path(path).name
        return name if len(name) <= most else name[:most - 1] + "…"

    title = f"top {order.shape[1]} of {len(gallery_paths)} gallery images by cosine distance"
    if shown < len(query_paths):
        title += f" (the first {shown} of {len(query_paths)} queries; the CSV lists all)"
    fig = plot_retrieval([load(q) for q in query_paths[:shown]],
                         [[load(gallery_paths[g]) for g in rows] for rows in order[:shown]], None,
                         [short(q) for q in query_paths[:shown]], out_png=out, title=title,
                         captions=[[f"{d:.3f}" for d in ds] for ds in dist[:shown]])
    plt.close(fig)


def _check_settings(batch_size: int, device: str | None) -> None:
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    check_device(device)


# ----------------------------------------------------------------------------- the commands
def search_command(checkpoint: str | Path, query: str | Path, gallery: str | Path, out: str | Path, *,
                   top: int = 10, figure_queries: int = 8, batch_size: int = 64, device: str | None = None,
                   flip: bool = False) -> dict:
    """`python -m reid search`: rank a folder of images for each query image; write the figure `out` and
    the full ranking as a CSV beside it (`out` with .csv). Paths and settings are checked before any image
    is embedded; an unreadable image stops the command, naming it, before anything is written. Returns {"order", "distances", "query", "gallery", "csv", "figure"}."""
    out = Path(out)
    csv_path = out.with_suffix(".csv")
    if top < 1:
        raise UserError(f"--top must be >= 1, got {top}")
    if figure_queries < 1:
        raise UserError(f"--figure-queries must be >= 1, got {figure_queries}")
    _check_settings(batch_size, device)
    check_output_file(out, "--out", FIGURE_SUFFIXES)
    check_output_file(csv_path, f"the CSV beside --out {out}:")
    model = load_model(checkpoint)
    query_paths = list_images(query, "--query")
    gallery_paths = list_images(gallery, "--gallery")
    note = replacing_note([csv_path, out])
    if note:
        print(note)
    order, dist = search(model, query_paths, gallery_paths, top, batch_size, device, flip)
    # Both written beside their names, then renamed: never a new CSV with an old figure, or half a file.
    with atomic_outputs([csv_path, out], "--out") as (csv_tmp, figure_tmp):
        rows = write_ranks_csv(csv_tmp, query_paths, gallery_paths, order, dist)
        plot_search(query_paths, gallery_paths, order, dist, model.cfg.img_size, figure_tmp, figure_queries)
    shown = min(figure_queries, len(query_paths))
    print(f"{len(query_paths)} quer{'y' if len(query_paths) == 1 else 'ies'} against {len(gallery_paths)} "
          f"gallery images, top {order.shape[1]} each by cosine distance ({model.cfg.test_feature} embedding"
          f"{', flip' if flip else ''})")
    print(f"wrote {csv_path} ({rows} rows: query, rank, gallery, distance) and {out} "
          f"({'all' if shown == len(query_paths) else f'the first {shown}'} of the queries)")
    return {"order": order, "distances": dist, "query": query_paths, "gallery": gallery_paths,
            "csv": csv_path, "figure": out}


def embed_command(checkpoint: str | Path, images: str | Path, out: str | Path, *, batch_size: int = 64,
                  device: str | None = None, flip: bool = False) -> tuple[np.ndarray, list[str]]:
    """`python -m reid embed`: an (N, D) float32 array `out` (.npy) and `out` with .txt beside it, the
    image path of each row, one a line, in row order."""
    out = Path(out)
    paths_file = out.with_suffix(".txt")
    _check_settings(batch_size, device)
    check_output_file(out, "--out", (".npy",))
    check_output_file(paths_file, f"the path list beside --out {out}:")
    model = load_model(checkpoint)
    paths = list_images(images, "--images")
    note = replacing_note([out, paths_file])  # the .txt was never named by the user: say so
    if note:
        print(note)
    features = embed_images(model, paths, batch_size, device, flip).numpy().astype(np.float32)
    with atomic_outputs([out, paths_file], "--out") as (npy_tmp, txt_tmp):
        np.save(npy_tmp, features)
        txt_tmp.write_text("".join(f"{p}\n" for p in paths), encoding="utf-8")
    print(f"wrote {out} ({features.shape[0]} x {features.shape[1]} float32, L2-normalised "
          f"{model.cfg.test_feature} embeddings{', flip' if flip else ''}) and {paths_file} (the image of "
          "each row, in order)")
    return features, paths
