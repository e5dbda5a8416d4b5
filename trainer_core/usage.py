"""What a run used of its device: the GPU's name, mean utilisation and peak memory.

On CUDA the figures come from NVML (``nvidia-ml-py``, the ``nvml`` extra, imported only
here and only on CUDA): a daemon thread samples the GPU's utilisation and this process's
memory once a second while the run trains. Without NVML the name and peak memory come from
torch and the utilisation stays unknown. On the CPU there is no GPU to describe: the name
says cpu and the GPU figures are None, never zeros that would read as an idle GPU.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch

__all__ = ["DeviceUsage", "UsageSampler", "measure_usage"]

log = logging.getLogger(__name__)

SAMPLE_EVERY_S = 1.0
"""Seconds between two NVML samples: a few microseconds of C call a second."""


@dataclass(frozen=True)
class DeviceUsage:
    """One run's device, as measured; None where nothing measured it.

    ``source`` says where the figures came from: ``nvml``, ``torch`` (CUDA without NVML:
    no utilisation) or ``cpu`` (no GPU figures at all).
    """

    kind: Literal["cuda", "cpu"]
    name: str
    source: Literal["nvml", "torch", "cpu"]
    utilization_pct: float | None = None
    """Mean GPU utilisation over the run's samples, 0-100 (the whole GPU's, which the
    processes sharing it share)."""
    peak_memory_mb: float | None = None
    """This process's peak GPU memory: NVML's view (the CUDA context and the caching
    allocator's reserve included), else torch's peak reserved memory."""
    samples: int = 0


def describe_device(device: torch.device) -> str:
    """The device's name as results show it: the GPU's model, or ``cpu (x86_64)``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()})"


class UsageSampler:
    """Samples one CUDA device through NVML in a daemon thread; :meth:`stop` summarises."""

    def __init__(self, device: torch.device, every_s: float = SAMPLE_EVERY_S) -> None:
        self.device = device
        self.every_s = every_s
        self._nvml: Any = None
        self._handle: Any = None
        self._util: list[float] = []
        self._peak_bytes = 0
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        if device.type == "cuda":
            self._nvml, self._handle = _nvml_handle(device)

    def start(self) -> None:
        if self._handle is None:
            return
        self._thread = threading.Thread(target=self._loop, name="nvml-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self._sample()
            if self._done.wait(self.every_s):
                return

    def _sample(self) -> None:
        nvml = self._nvml
        try:
            self._util.append(float(nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu))
            self._peak_bytes = max(self._peak_bytes, _process_memory(nvml, self._handle))
        except nvml.NVMLError as e:  # a GPU that stops answering ends the sampling only
            log.warning("NVML sampling stopped: %s", e)
            self._done.set()

    def stop(self) -> DeviceUsage:
        """Stop sampling (one last sample for runs shorter than the interval); the figures."""
        if self._thread is not None:
            self._done.set()
            self._thread.join()
            self._thread = None
            self._sample()
        device = self.device
        name = describe_device(device)
        if device.type != "cuda":
            return DeviceUsage("cpu", name, "cpu")
        torch_peak = torch.cuda.max_memory_reserved(device) / 2**20
        if self._handle is None:
            return DeviceUsage("cuda", name, "torch", None, torch_peak)
        util = sum(self._util) / len(self._util) if self._util else None
        peak = self._peak_bytes / 2**20 if self._peak_bytes else torch_peak
        return DeviceUsage("cuda", name, "nvml", util, peak, len(self._util))


@contextlib.contextmanager
def measure_usage(device: torch.device) -> Iterator[UsageSampler]:
    """Sample ``device`` while the block runs; ``sampler.stop()`` inside it gives the
    figures, and the sampling stops on the way out whatever happened."""
    sampler = UsageSampler(device)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()


def _nvml_handle(device: torch.device) -> tuple[Any, Any]:
    """``(pynvml, handle)`` of the CUDA ``device``, or (None, None) without NVML.

    The device is found by its UUID, so ``CUDA_VISIBLE_DEVICES`` renumbering cannot
    point NVML at a neighbour's GPU.
    """
    try:
        import pynvml  # the nvml extra (nvidia-ml-py)
    except ImportError:
        return None, None
    try:
        pynvml.nvmlInit()
        uuid = str(torch.cuda.get_device_properties(device).uuid)
        uuid = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
        return pynvml, pynvml.nvmlDeviceGetHandleByUUID(uuid)
    except (pynvml.NVMLError, AttributeError, RuntimeError) as e:
        log.info("NVML not usable (%s): GPU utilisation will not be recorded", e)
        return None, None


def _process_memory(nvml: Any, handle: Any) -> int:
    """Bytes of GPU memory this process holds on ``handle``; 0 where NVML cannot say
    (a container that hides host PIDs)."""
    pid = os.getpid()
    for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
        if proc.pid == pid and proc.usedGpuMemory:
            return int(proc.usedGpuMemory)
    return 0
