"""Attention maps (the paper's Fig. 3) with Grad-CAM, on the `grad-cam` package's hooks.

Grad-CAM explains a *score*. A classifier has one per class; a re-ID model at test time outputs
an embedding, and what matters is how similar two embeddings are. So the score explained here is
the cosine similarity between an image's embedding and a reference embedding that the caller gives,
one per image. Notebook 08 pairs each IR query with one RGB gallery image of the same identity and
explains each against the other's embedding, so the map shows which regions make the *cross-modal
match*.

The maps are taken at each branch's CSA output (already a (B, C, h, w) token map) or, with
`layer="tokens"`, at the branch's last transformer block (tokens reshaped to the non-square grid:
24x12 for patch 12, 18x9 for patch 16 at 288x144). See `ReIDModel.gradcam_targets`. A map is drawn on
the image with each token at the centre of the pixels its patch embedding sees: for the convolutional
stem (`conv_stem`, the smoke profile) that is half a patch up and left of the patch the token is
numbered by (`reid.models.crossvit.receptive_field`); pytorch-grad-cam's own resize would draw it
there, 8 pixels too far down and right at 96x48 with patch 16.

`person_attention` measures the maps instead of picturing them, on the synthetic set whose person
masks are known (`reid.data.synthetic.ensure_masks`): over every IR query, the share of the Grad-CAM
energy on the person and the pointing-game hit rate (Zhang et al., "Top-down neural attention by
excitation backprop", ECCV 2016), each with its chance level. Both are read on the branch's token grid
(6x3 or 8x4 tokens at 96x48): they say which *token positions* the explained score reads, not which
pixels; docs/deviations.md says what they do and do not show.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pytorch_grad_cam import ActivationsAndGradients
from pytorch_grad_cam.utils.image import show_cam_on_image
from tqdm import tqdm

from reid.data.transforms import denormalize
from reid.utils.errors import UserError


class EmbeddingSimilarityTarget:
    """Grad-CAM target: cosine similarity between the model's embedding and a fixed reference."""

    def __init__(self, reference: torch.Tensor) -> None:
        self.reference = F.normalize(reference.detach().flatten(), dim=0)

    def __call__(self, embedding: torch.Tensor) -> torch.Tensor:
        return F.normalize(embedding.flatten(), dim=0) @ self.reference.to(embedding.device)


def grid_cams(model, images: torch.Tensor, references: torch.Tensor, branch: int = 0,
              layer: str = "csa") -> torch.Tensor:
    """Grad-CAM on the branch's token grid, (N, h, w) on the CPU: ReLU(sum_k alpha_k A^k) with alpha_k the
    spatial mean of d score / d A^k (Selvaraju et al., ICCV 2017, Eq. 1-2), the score being the cosine
    similarity of each image's embedding to its reference (`EmbeddingSimilarityTarget`).

    Raw values, not rescaled: what an energy share needs. One forward and one backward pass for the
    whole batch (each image's score depends on its own embedding only). The model is put in eval mode.
    """
    if images.shape[0] != references.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {references.shape[0]} reference embeddings")
    model.eval()
    layers, reshape_transform = model.gradcam_targets(branch, layer)
    grabbed = ActivationsAndGradients(model, layers, reshape_transform)
    try:
        model.zero_grad(set_to_none=True)
        embeddings = grabbed(images)
        score = (F.normalize(embeddings, dim=1) * F.normalize(references.to(embeddings), dim=1)).sum()
        score.backward()
        activations, gradients = grabbed.activations[0], grabbed.gradients[0]
    finally:
        grabbed.release()
        model.zero_grad(set_to_none=True)
    alpha = gradients.float().mean(dim=(2, 3), keepdim=True)
    return F.relu((alpha * activations.float()).sum(dim=1))


def _unit(maps: torch.Tensor) -> torch.Tensor:
    """Each map shifted to a minimum of 0 and scaled to a maximum of 1 (pytorch-grad-cam's display scaling)."""
    maps = maps - maps.amin(dim=(1, 2), keepdim=True)
    return maps / (maps.amax(dim=(1, 2), keepdim=True) + 1e-7)


def on_image(maps: torch.Tensor, size: tuple[int, int], field: tuple[int, int]) -> torch.Tensor:
    """Token-grid maps (N, h, w) -> (N, H, W): bilinear, each token at the centre of its receptive
    ``field`` = (start, size) of token (0, 0) in pixels, token (r, c) ``patch * (r, c)`` further, the
    border tokens' values held beyond their centres. With a plain patch embedding, field = (0, patch),
    this is the usual resize (cv2's and pytorch-grad-cam's)."""
    n, h, w = maps.shape
    patch = size[0] // h
    centre = field[0] + (field[1] - 1) / 2

    def axis(pixels: int, tokens: int) -> torch.Tensor:  # pixel -> token coordinate in [-1, 1] units
        u = (torch.arange(pixels, dtype=torch.float32) - centre) / patch
        return 2 * u / (tokens - 1) - 1 if tokens > 1 else torch.zeros_like(u)

    ys, xs = torch.meshgrid(axis(size[0], h), axis(size[1], w), indexing="ij")
    grid = torch.stack([xs, ys], dim=-1).expand(n, -1, -1, -1)
    return F.grid_sample(maps[:, None].float(), grid, mode="bilinear", padding_mode="border",
                         align_corners=True)[:, 0]


def attention_maps(model, images: torch.Tensor, references: torch.Tensor, branch: int = 0,
                   layer: str = "csa") -> np.ndarray:
    """Grad-CAM maps (N, H, W) in [0, 1] at the input resolution, one per image, for display.

    `images` are normalised model inputs (N, 3, H, W); `references` (N, D) the embedding each image's
    similarity is explained against. The model is put in eval mode (its forward returns embeddings).
    `grid_cams`, scaled to [0, 1], drawn on the image by `on_image` and scaled again, as pytorch-grad-cam
    does (with a plain patch embedding the maps are the ones its `GradCAM` gives).
    """
    cams = grid_cams(model, images, references, branch, layer)
    field = model.backbone.receptive_fields[branch]
    return _unit(on_image(_unit(cams), tuple(images.shape[-2:]), field)).numpy()


def token_cover(masks: torch.Tensor, grid: tuple[int, int], field: tuple[int, int] | None = None) -> torch.Tensor:
    """The share of each token's receptive field on the person: (N, H, W) masks in [0, 1] at the model's
    input size -> (N, h, w). ``field`` (start, size) as in `on_image`, default the token's own patch;
    pixels of the field outside the image (zero padding) are left out of the share."""
    height, width = masks.shape[1:]
    h, w = grid
    patch = height // h
    if height != patch * h or width != patch * w:
        raise ValueError(f"masks {tuple(masks.shape)} do not tile a {h}x{w} token grid")
    start, size = field if field is not None else (0, patch)
    pad = [-start, max(0, start + patch * (w - 1) + size - width),
           -start, max(0, start + patch * (h - 1) + size - height)]
    inside = F.pad(torch.ones(1, 1, height, width), pad)
    person = F.pad(masks[:, None].float(), pad)
    return (F.avg_pool2d(person, size, patch) / F.avg_pool2d(inside, size, patch))[:, 0, :h, :w]


def person_scores(cams: torch.Tensor, cover: torch.Tensor, min_cover: float = 0.5, tolerance: int = 0) -> dict:
    """Per-image attention-on-person scores of token-grid CAMs (N, h, w), given each token's person
    ``cover`` (N, h, w) (`token_cover`):

    - ``energy_share``: sum(cam * cover) / sum(cam), the CAM energy on the person when each token's energy
      is spread evenly over its pixels; ``area`` = mean(cover) is its chance level (a uniform CAM), the
      silhouette's area fraction (exactly so for a plain patch embedding);
    - ``hit`` (pointing game): the CAM's maximum is on a person token (cover >= ``min_cover``) or within
      ``tolerance`` tokens of one; ``pointing_chance``: the share of tokens that would be a hit, its
      chance level (a uniformly random peak);
    - ``empty``: the CAM is zero everywhere (no token adds to the score); its share and hit mean nothing.
    """
    if cover.shape != cams.shape:
        raise ValueError(f"token cover {tuple(cover.shape)} does not match CAMs {tuple(cams.shape)}")
    energy = cams.sum(dim=(1, 2))
    person = (cover >= min_cover).float()
    if tolerance > 0:
        person = F.max_pool2d(person[:, None], 2 * tolerance + 1, stride=1, padding=tolerance)[:, 0]
    peak = cams.flatten(1).argmax(dim=1, keepdim=True)
    return {
        "energy_share": (cams * cover).sum(dim=(1, 2)) / energy.clamp_min(torch.finfo(energy.dtype).tiny),
        "area": cover.mean(dim=(1, 2)),
        "hit": person.flatten(1).gather(1, peak)[:, 0],
        "pointing_chance": person.mean(dim=(1, 2)),
        "empty": energy <= 0,
    }


def person_attention(model, sysu_root: str | Path, masks: str | Path, branch: int = 0, layer: str = "csa",
                     mode: str = "all", batch_size: int = 64, device: str | torch.device | None = None,
                     min_cover: float = 0.5, tolerance: int = 0, progress: bool = True) -> dict:
    """How much of a branch's Grad-CAM lies on the person, over every IR query of a synthetic SYSU-MM01
    test set. ``masks`` is the set's masks folder (`reid.data.synthetic.ensure_masks`).

    Each query is explained against its identity's mean RGB embedding (every RGB test image of the id
    in the ``mode``'s cameras): the map shows what makes the cross-modal match. Returns fractions in
    [0, 1]: ``energy_share`` and ``pointing`` averaged over the queries whose CAM is not empty, with
    their chance levels ``area_fraction`` and ``pointing_chance`` over the same queries, and
    ``empty_maps``, the share of queries whose CAM is zero everywhere (see `person_scores`).
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import resize

    from reid.data import SYSUMM01, ImageCache, build_test_transform
    from reid.data.identity import synthetic_manifest
    from reid.data.synthetic import MASKS_MANIFEST, mask_path
    from reid.data.sysu import RGB_CAMERAS
    from reid.eval.evaluate import extract_features
    from reid.utils.device import default_device

    dataset = SYSUMM01(sysu_root)
    masks = Path(masks)
    try:
        made_for = json.loads((masks / MASKS_MANIFEST).read_text())
    except (OSError, ValueError):
        made_for = None
    if made_for is None or made_for != synthetic_manifest(dataset.root):
        raise UserError(f"masks folder {masks}: no person masks of the synthetic set at {dataset.root} "
                        "(real data has none); write them with reid.data.synthetic.ensure_masks(<set>, <folder>)")
    device = torch.device(device) if device is not None else default_device()
    height, width = model.cfg.img_size
    grid, field = model.backbone.grid_sizes[branch], model.backbone.receptive_fields[branch]
    cache = ImageCache(height, width)
    query = dataset.query(mode)
    rgb = [(p, pid, cam) for pid in dataset.test_ids for cam in RGB_CAMERAS[mode] for p in dataset.files(cam, pid)]
    features, pids, _ = extract_features(model, rgb, cache, batch_size=batch_size, device=device, desc="RGB")
    reference = {int(pid): F.normalize(features[pids == pid].mean(dim=0), dim=0) for pid in np.unique(pids)}
    transform = build_test_transform(height, width)
    model.to(device)
    scores = []
    batches = range(0, len(query), batch_size)
    for start in tqdm(batches, desc=f"Grad-CAM branch {branch}", unit="batch", leave=False, dynamic_ncols=True,
                      mininterval=1.0, disable=not progress):
        items = query[start:start + batch_size]
        images = torch.stack([transform(cache.tensor(p)) for p, _, _ in items]).to(device)
        refs = torch.stack([reference[pid] for _, pid, _ in items]).to(device)
        person = []
        for p, _, _ in items:
            with Image.open(mask_path(masks, "SYSU-MM01", Path(p).relative_to(dataset.root))) as mask:
                person.append(torch.from_numpy(np.asarray(mask, dtype=np.float32))[None])
        # The same bilinear, antialiased resize the images get (build_test_transform).
        person = torch.stack([resize(m, [height, width], InterpolationMode.BILINEAR, antialias=True)[0]
                              for m in person])
        cams = grid_cams(model, images, refs, branch, layer)
        scores.append(person_scores(cams, token_cover(person, grid, field), min_cover, tolerance))
    per_image = {k: torch.cat([s[k] for s in scores]) for k in scores[0]}
    kept = ~per_image["empty"]

    def mean(key: str) -> float:
        return float(per_image[key][kept].float().mean()) if kept.any() else float("nan")

    return {
        "images": len(query), "branch": branch, "layer": layer, "grid": list(grid),
        "energy_share": mean("energy_share"), "area_fraction": mean("area"),
        "pointing": mean("hit"), "pointing_chance": mean("pointing_chance"),
        "empty_maps": float(per_image["empty"].float().mean()), "min_cover": min_cover, "tolerance": tolerance,
    }


ATTENTION_KEYS = ("energy_share", "area_fraction", "pointing", "pointing_chance", "empty_maps")


def attention_record(runs: dict, sysu_root: str | Path, masks: str | Path, command: str,
                     device: str | torch.device | None = None) -> dict:
    """Fig. 3, measured: `person_attention` of every branch of every run in ``runs`` ({(model name, seed):
    run folder}), as the record notebook 08 writes to `results/` and `docs/claims.md` reads. One row per
    (model, branch, seed), in percent; the runs, the data and the provenance beside them."""
    from reid.data.identity import describe_data
    from reid.eval.evaluate import load_model
    from reid.records.provenance import provenance

    rows = []
    for (name, seed), run in runs.items():
        model = load_model(Path(run) / "best.pt")
        for b in range(len(model.csa)):
            r = person_attention(model, sysu_root, masks, branch=b, device=device, progress=False)
            branch = "single" if len(model.csa) == 1 else ("fine" if b == 0 else "coarse")
            rows.append({"model": name, "branch": branch, "seed": seed, "queries": r["images"],
                         **{k: 100 * r[k] for k in ATTENTION_KEYS}})
    return {"what": "Grad-CAM energy share and pointing game on the visible person (synthetic masks), percent; "
                    "chance: the person's share of the tokens (area_fraction) and of the hottest-token candidates "
                    "(pointing_chance); reid.tools.gradcam.person_attention",
            "scores": rows, "runs": {f"{name} seed {seed}": str(run) for (name, seed), run in runs.items()},
            "data": describe_data(sysu_root, "sysu"), "provenance": provenance(command)}


def write_attention_record(record: dict, path: str | Path) -> Path:
    """Write `attention_record`'s record whole or not at all."""
    from reid.utils.atomic import write_text_atomically

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(record, indent=2) + "\n")
    return path


def overlay(image: torch.Tensor, cam: np.ndarray, strength: float = 0.5) -> np.ndarray:
    """Heat map `cam` (H, W) over a normalised (3, H, W) image tensor, as uint8 (H, W, 3)."""
    return show_cam_on_image(denormalize(image).astype(np.float32), cam, use_rgb=True,
                             image_weight=1.0 - strength)
