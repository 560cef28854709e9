"""Which device a run uses, and how it computes there: one home for training, evaluation and the tools.

- `check_device(name)`: a one-line error for a name torch does not know or a GPU this machine lacks;
- `default_device()`: the GPU where there is one, else the CPU;
- `autocast_dtype(device, enabled)`: bf16 autocast where the GPU computes in bf16 natively, fp16 (with a
  GradScaler) on older GPUs, nothing on the CPU;
- `grad_scaler(amp)`: the GradScaler that fp16 needs (off for bf16 and fp32);
- `describe_device(device, amp)`: the run's device line, printed before any other work.

Here, not in `reid.eval.evaluate`, so that training (a floor above evaluation) does not import the
evaluation to name its device, and so that both read the same rule.
"""

from __future__ import annotations

import torch

from reid.utils.errors import UserError

# The first compute capability with bf16 tensor cores (Ampere, sm_80). Below it (V100 sm_70, T4 and RTX 20xx
# sm_75) torch still "supports" bf16 by emulating it (torch.cuda.is_bf16_supported() counts emulation):
# slower than fp16, not faster than fp32. Those GPUs get fp16 with a GradScaler instead.
NATIVE_BF16_CAPABILITY = (8, 0)


def check_device(device: str | None) -> None:
    """A one-line error for a device name torch does not know or a GPU this machine does not have."""
    if device is None:
        return
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise UserError(f"--device {device}: not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def native_bf16(device: torch.device) -> bool:
    """Does this GPU compute in bf16 in hardware? Asked of `device` itself, not of the current GPU (what
    `torch.cuda.is_bf16_supported(including_emulation=False)` asks), so that a node with mixed cards answers
    per rank. ROCm GPUs count as native, as torch counts them."""
    if torch.version.hip:
        return True
    return tuple(torch.cuda.get_device_capability(device)) >= NATIVE_BF16_CAPABILITY


def autocast_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast dtype of a run (`train.amp`): bf16 where native, else fp16 (the caller adds a
    GradScaler: fp16's range loses small gradients without one); None on the CPU or with AMP off."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if native_bf16(device) else torch.float16


def grad_scaler(amp: torch.dtype | None) -> torch.amp.GradScaler:
    """The loss scaler of a run: on for fp16 only (bf16 has fp32's range; the CPU runs in fp32). Off, it
    passes every call through, so the training step has one code path."""
    return torch.amp.GradScaler("cuda", enabled=amp == torch.float16)


def describe_device(device: torch.device, amp: torch.dtype | None) -> str:
    """The device a run trains on, in one line: the GPU's name, memory and compute capability or the CPU's
    threads, the AMP dtype, torch and CUDA versions."""
    name = {torch.bfloat16: "bf16", torch.float16: "fp16 (GradScaler)"}.get(amp, "off")
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        major, minor = torch.cuda.get_device_capability(device)
        return (f"device: {device} ({torch.cuda.get_device_name(device)}, {props.total_memory / 2**30:.0f} GiB, "
                f"sm_{major}{minor}), AMP {name}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    why = "" if torch.cuda.is_available() else ", no CUDA GPU visible"
    return f"device: {device} ({torch.get_num_threads()} threads{why}), AMP {name}, torch {torch.__version__}"
