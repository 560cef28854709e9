"""reid/utils/device.py without a GPU: `torch.cuda` faked (monkeypatch), so that the rule for each card is
tested on the CPU -- bf16 only where native, fp16 + GradScaler on V100/T4/RTX 20xx; the device names."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from reid.utils.device import autocast_dtype, check_device, describe_device, grad_scaler, native_bf16
from reid.utils.errors import UserError


def fake_gpu(monkeypatch, capability, name="NVIDIA GPU", memory_gib=16, hip=None):
    """A machine whose cuda:0 has `capability`; torch.cuda.is_bf16_supported() says True, as torch's does on
    every card from sm_53 up (it counts emulation): the rule must not ask it."""
    monkeypatch.setattr(torch.version, "hip", hip)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device=None: SimpleNamespace(total_memory=memory_gib * 2**30))


@pytest.mark.parametrize("capability, card, expected", [
    ((7, 0), "Tesla V100-SXM2-32GB", torch.float16),
    ((7, 5), "Tesla T4", torch.float16),
    ((7, 5), "NVIDIA GeForce RTX 2080 Ti", torch.float16),
    ((8, 0), "NVIDIA A100-SXM4-80GB", torch.bfloat16),
    ((8, 6), "NVIDIA GeForce RTX 3090", torch.bfloat16),
    ((9, 0), "NVIDIA H100 80GB HBM3", torch.bfloat16),
])
def test_bf16_only_where_the_gpu_computes_it_natively(monkeypatch, capability, card, expected):
    fake_gpu(monkeypatch, capability, card)
    cuda = torch.device("cuda", 0)
    assert autocast_dtype(cuda, enabled=True) is expected
    assert native_bf16(cuda) is (expected is torch.bfloat16)
    line = describe_device(cuda, expected)
    assert card in line and f"sm_{capability[0]}{capability[1]}" in line
    assert ("AMP fp16 (GradScaler)" if expected is torch.float16 else "AMP bf16") in line


def test_rocm_counts_as_native_and_amp_is_off_on_the_cpu_or_when_disabled(monkeypatch):
    fake_gpu(monkeypatch, (9, 0), hip="6.2")
    assert autocast_dtype(torch.device("cuda", 0), enabled=True) is torch.bfloat16
    assert autocast_dtype(torch.device("cuda", 0), enabled=False) is None
    assert autocast_dtype(torch.device("cpu"), enabled=True) is None


@pytest.mark.parametrize("capability, scaled", [((7, 0), True), ((7, 5), True), ((8, 0), False), ((9, 0), False)])
def test_fp16_and_only_fp16_gets_a_grad_scaler(monkeypatch, capability, scaled):
    """A V100 or T4 run scales its loss (fp16 loses small gradients otherwise); an A100 or H100 run does not."""
    fake_gpu(monkeypatch, capability)
    assert grad_scaler(autocast_dtype(torch.device("cuda", 0), True)).is_enabled() is scaled
    assert not grad_scaler(None).is_enabled()


def test_device_line_names_the_gpu_memory_and_amp_dtype(monkeypatch):
    fake_gpu(monkeypatch, (9, 0), "NVIDIA H100 80GB HBM3", memory_gib=80)
    line = describe_device(torch.device("cuda", 0), torch.bfloat16)
    assert line.startswith("device: cuda:0 (NVIDIA H100 80GB HBM3, 80 GiB, sm_90), AMP bf16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert describe_device(torch.device("cpu"), None).endswith(f"no CUDA GPU visible), AMP off, torch {torch.__version__}")


def test_unknown_device_or_missing_gpu_is_one_line(monkeypatch):
    check_device(None)
    check_device("cpu")
    with pytest.raises(UserError, match="--device foo: not a torch device"):
        check_device("foo")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="--device cuda:1: CUDA is not available"):
        check_device("cuda:1")
