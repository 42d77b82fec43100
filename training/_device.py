"""Where the network runs, defined once for train, evaluate and enhance, and what running out of memory there means.

:func:`resolve_device` turns ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``) into a
``torch.device`` that exists on this machine, or one line naming the device, why it is not there and what is
(torch itself answers ``--device gpu`` with a RuntimeError and ``cuda`` on a CPU build with an AssertionError).
:func:`memory_errors` turns the three ways torch runs out of memory (``torch.OutOfMemoryError`` on a GPU,
``RuntimeError: DefaultCPUAllocator: can't allocate memory`` and ``MemoryError`` on the CPU) into one line
that says how much was asked for and what to lower.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Final

import torch

from .errors import TrainingError

__all__ = ["available_devices", "is_out_of_memory", "memory_errors", "resolve_device"]

_KINDS: Final = ("cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """The ``--device`` values this machine can run: auto, cpu, and each visible GPU."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def _refuse(name: str, why: str) -> TrainingError:
    return TrainingError(f"device {name!r} {why}",
                         hint=f"use --device cpu; this machine has {', '.join(available_devices())}")


def resolve_device(name: str | torch.device, *, local_rank: int = 0, world: int = 1) -> torch.device:
    """The ``torch.device`` for ``name``, checked against this machine.

    Parameters
    ----------
    name : str or torch.device
        ``auto`` (the first GPU when there is one, else the CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    local_rank, world : int
        Under ``torchrun`` (``world`` > 1) a bare ``cuda`` means this process's GPU, ``cuda:LOCAL_RANK``.

    Raises
    ------
    TrainingError
        An unknown device name, or one this machine (or this torch build) does not have; the message lists
        what it has.
    """
    text = str(name).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise _refuse(str(name), "is not a device name") from None
    if device.type not in _KINDS:
        raise _refuse(str(name), "is not supported here")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = torch.version.cuda is not None
            raise _refuse(str(name), "is not available: " + ("no CUDA GPU is visible" if built else
                                                              "this torch build has no CUDA support"))
        if device.index is None:
            device = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
        if device.index >= torch.cuda.device_count():
            raise _refuse(str(name), f"is not available: this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and "mps" not in available_devices():
        raise _refuse(str(name), "is not available on this machine")
    return device


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is torch (or Python) running out of memory, on the CPU or a GPU."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc)
    # A DataLoader worker's MemoryError may arrive as a RuntimeError holding the worker's traceback.
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower()
                                              or re.search(r"Caught \w*MemoryError in DataLoader", text) is not None)


def _requested(text: str) -> str:
    """How much the failed allocation asked for, from torch's message ("" when it does not say)."""
    match = re.search(r"[Tt]ried to allocate (\d+) bytes", text)
    if match:
        return f"{int(match.group(1)) / 2**30:.2f} GiB"
    match = re.search(r"([Tt]ried to|Unable to) allocate ([\d.]+ [KMGTPE]iB)", text)  # CUDA, numpy
    return match.group(2) if match else ""


@contextlib.contextmanager
def memory_errors(device: torch.device | str, *, hint: str) -> Iterator[None]:
    """Turn running out of memory inside the block into one TrainingError naming the device and ``hint``.

    Works for errors that DataLoader workers raised too (they arrive re-raised, with the worker's message).
    """
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        asked = _requested(str(exc))
        raise TrainingError(f"out of memory on {device}" + (f" (an allocation of {asked} failed)" if asked else ""),
                            hint=hint) from exc
