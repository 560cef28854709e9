"""`python -m reid export`: the eval-mode embedding network as an ONNX file, to serve without this package.

    model = load_model("runs/sysu/best.pt")
    export_onnx(model, "model.onnx")            # input "images" (N, 3, H, W) -> output "embedding" (N, D)
    onnx_parity(model, "model.onnx")            # max |torch - onnxruntime| on random batches of 2 and 3

In the graph: backbone -> CSA -> pooling -> BN neck -> L2 normalisation, i.e. exactly what `model.eval()(x)`
returns and evaluation ranks by (the feature before or after the BN neck, as the checkpoint's
`test_feature` says). The batch axis is dynamic. Not in the graph: decoding an image file, converting it to
RGB, resizing it to img_size and the ImageNet normalisation (the caller does these, as `describe_input`
says), and the training-only parts: the classifier, drop-path, the losses. The file's metadata records
img_size, mean, std and test_feature, so a server can read them from the model itself.

torch's exporter (`torch.onnx.export(dynamo=True)`) needs the `onnx` and `onnxscript` packages, and the
check needs `onnxruntime`: `pip install -e ".[export]"`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from reid.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from reid.eval.evaluate import load_model
from reid.records.provenance import check_output_file, replacing_note
from reid.utils.atomic import atomic_outputs
from reid.utils.errors import UserError

INPUT, OUTPUT = "images", "embedding"
FORMATS = ("onnx",)


def describe_input(model: torch.nn.Module) -> str:
    """One line: what the exported graph expects and returns."""
    height, width = model.cfg.img_size
    return (f"input '{INPUT}': float32 (N, 3, {height}, {width}), RGB resized (bilinear) to {height}x{width}, "
            f"scaled to [0, 1], then (x - mean) / std with ImageNet mean {IMAGENET_MEAN} and std {IMAGENET_STD}; "
            f"output '{OUTPUT}': float32 (N, {model.feature_dim}), the L2-normalised {model.cfg.test_feature} "
            "embedding (cosine distance = 1 - a.b)")


def check_exporter() -> None:
    """torch's ONNX exporter imports onnx and onnxscript only when it runs: say so before any work."""
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"exporting to ONNX needs the package(s) {', '.join(missing)}: pip install -e '.[export]'")


def export_onnx(model: torch.nn.Module, out: str | Path, opset_version: int | None = None) -> Path:
    """Write the eval-mode embedding network of `model` to `out` (ONNX, batch axis dynamic)."""
    out = Path(out)
    model = model.eval()
    height, width = model.cfg.img_size
    device = next(model.parameters()).device
    # Batch 2 as the example: torch.export specialises a dimension seen as 0 or 1 to that constant.
    example = torch.zeros(2, 3, height, width, device=device)
    batch = torch.export.Dim("batch", min=1)
    check_exporter()
    # verbose=False: without it the exporter prints a progress line per stage.
    program = torch.onnx.export(model, (example,), input_names=[INPUT], output_names=[OUTPUT],
                                dynamic_shapes={"x": {0: batch}}, opset_version=opset_version, dynamo=True,
                                verbose=False)
    program.model.metadata_props.update({
        "img_size": f"{height}x{width}", "mean": str(IMAGENET_MEAN), "std": str(IMAGENET_STD),
        "test_feature": model.cfg.test_feature, "input": describe_input(model),
    })
    # Saved beside `out` and renamed over it: a full disk or a kill leaves any earlier file whole.
    with atomic_outputs([out], "--out") as (tmp,):
        program.save(tmp)
    return out


def onnx_parity(model: torch.nn.Module, path: str | Path, batch_sizes=(2, 3), seed: int = 0) -> float:
    """Max |torch - onnxruntime (CPU)| of the embeddings of random inputs, over one batch of each size."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = model.eval()
    device = next(model.parameters()).device
    height, width = model.cfg.img_size
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for n in batch_sizes:
        x = torch.randn(n, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = model(x.to(device)).cpu().numpy()
        got = session.run([OUTPUT], {INPUT: x.numpy()})[0]
        if got.shape != expected.shape:
            raise AssertionError(f"{path}: onnxruntime returned {got.shape} for a batch of {n}, torch "
                                 f"{expected.shape}")
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def export_command(checkpoint: str | Path, out: str | Path, fmt: str = "onnx", check: bool = True) -> dict:
    """`python -m reid export`: the checkpoint's embedding network to `out`, then (with onnxruntime
    installed) its outputs compared with torch's. Returns {"path", "max_abs_diff"} (None: not checked)."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: expected one of {list(FORMATS)}")
    out = Path(out)
    check_output_file(out, "--out", (".onnx",))
    check_exporter()
    model = load_model(checkpoint)  # on the CPU: the check below compares with onnxruntime's CPU results
    note = replacing_note([out])
    if note:
        print(note)
    export_onnx(model, out)
    print(f"wrote {out}: the eval-mode embedding network of {checkpoint}, batch size dynamic")
    print(describe_input(model))
    diff = None
    if check:
        try:
            diff = onnx_parity(model, out)
        except ImportError:
            print("not checked: onnxruntime is not installed (pip install -e '.[export]')")
        else:
            print(f"checked with onnxruntime (CPU): max |torch - onnx| = {diff:.1e} on batches of 2 and 3")
    return {"path": out, "max_abs_diff": diff}
