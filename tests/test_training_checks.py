"""What train and evaluate refuse, and how they fail: shards that are not the dataset's, batches of one, damaged
or locked files, memory, devices, full disks -- each one line naming the file or device and the fix, exit 1,
checkpoints intact. Tiny network (width 1/16) on tiny shards (64 px)."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from fakes import FAKES
from fakes.shards import make_shards

from acquisition.prep import main
from training import TrainConfig, TrainingError, evaluate, load_checkpoint, save_model_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
COUNTS = {"train": 8, "val": 4, "test": 4}


@pytest.fixture(scope="module")
def shards(tmp_path_factory, astronaut) -> Path:
    return make_shards(tmp_path_factory.mktemp("shards"), astronaut, COUNTS)


@pytest.fixture(scope="module")
def other_build(tmp_path_factory, astronaut) -> Path:
    """The same layout built with sigma_s 16 instead of 4 (and another fingerprint)."""
    return make_shards(tmp_path_factory.mktemp("other"), astronaut, COUNTS, sigma_s=16.0, build="other-build")


@pytest.fixture(scope="module")
def run(shards, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    train(shards, folder, config=tiny(epochs=1))
    return folder


def tiny(**overrides) -> TrainConfig:
    base = {"epochs": 1, "batch_size": 2, "lr": 1e-3, "width": 1 / 16, "workers": 0, "device": "cpu", "samples": 1,
            "seed": 1}
    return TrainConfig(**{**base, **overrides})


def prep(*args: str | Path) -> object:
    return CliRunner().invoke(main, ["-q", *map(str, args)])


def one_line(text: str) -> str:
    """The command's output, asserted to be a single line."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HDF5_USE_FILE_LOCKING"}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}


TRAIN_ARGS = ["--epochs", "1", "--steps-per-epoch", "1", "--width", "0.0625", "--workers", "0", "--device", "cpu"]


# ------------------------------------------------------------------------------ 1. exactly the listed shards
def _edit_json(folder: Path, edit) -> None:
    meta = json.loads((folder / "dataset.json").read_text())
    edit(meta)
    (folder / "dataset.json").write_text(json.dumps(meta))


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _drop_index_row(folder: Path) -> None:
    lines = (folder / "index.csv").read_text().splitlines()
    (folder / "index.csv").write_text("\n".join(lines[:3] + lines[4:]) + "\n")


SITUATIONS = {
    # name: (what is done to a copy of the shards, the file named, words of the message)
    "val shard copied as train-00001.h5": (
        lambda f, o: shutil.copy(f / "val-00000.h5", f / "train-00001.h5"), "train-00001.h5", "not listed"),
    "val shard copied over train-00000.h5": (
        lambda f, o: shutil.copy(f / "val-00000.h5", f / "train-00000.h5"), "train-00000.h5", "holds split 'val'"),
    "shard of another build beside the others": (
        lambda f, o: shutil.copy(o / "train-00000.h5", f / "train-00001.h5"), "train-00001.h5", "not listed"),
    "shard of another build in place of one": (
        lambda f, o: shutil.copy(o / "train-00000.h5", f / "train-00000.h5"), "train-00000.h5",
        "built with sigma_s 16.0"),
    "deleted shard": (lambda f, o: (f / "val-00000.h5").unlink(), "val-00000.h5", "missing"),
    "edited sample count": (
        lambda f, o: _edit_json(f, lambda m: m["counts"]["train"].update(samples=9)), "dataset.json",
        "counts train samples 9"),
    "edited shard entry": (
        lambda f, o: _edit_json(f, lambda m: m["shards"][0].update(samples=7)), "train-00000.h5",
        "holds 8 samples, dataset.json says 7"),
    "edited sigma_s": (
        lambda f, o: _edit_json(f, lambda m: m["parameters"].update(sigma_s=16.0)), "test-00000.h5",
        "built with sigma_s 4.0, dataset.json says 16.0"),
    "edited wide_factor": (
        lambda f, o: _edit_json(f, lambda m: m["parameters"].update(wide_factor=1.5)), "test-00000.h5",
        "built with wide_factor 2.0, dataset.json says 1.5"),
    "edited subjects map": (
        lambda f, o: _edit_json(f, lambda m: m["subjects"].update({"train-s0": "val"})), "train-00000.h5",
        "holds subject 'train-s0', which dataset.json puts in split 'val'"),
    "deleted index.csv row": (lambda f, o: _drop_index_row(f), "index.csv", "does not match the shards"),
    "byte-flipped shard": (lambda f, o: _flip_a_byte(f / "train-00000.h5"), "train-00000.h5", "SHA-256 differs"),
    "no dataset.json": (lambda f, o: (f / "dataset.json").unlink(), "dataset.json", "missing"),
}


@pytest.mark.parametrize("situation", sorted(SITUATIONS))
def test_train_and_evaluate_read_exactly_the_listed_shards(shards, other_build, run, tmp_path, situation):
    damage, named, words = SITUATIONS[situation]
    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    damage(copy, other_build)
    with pytest.raises(TrainingError) as caught:
        train(copy, tmp_path / "run", config=tiny())
    message = str(caught.value)
    assert named in message and words in message, message
    assert "prep build-h5" in message or "prep verify" in message, message
    assert not (tmp_path / "run" / "last.pt").exists()
    with pytest.raises(TrainingError, match=words):
        evaluate(run, copy, split="test", out_dir=tmp_path / "eval")


def test_refusals_are_one_line_on_the_command_line(shards, tmp_path):
    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    shutil.copy(copy / "val-00000.h5", copy / "train-00001.h5")
    result = prep("train", copy, tmp_path / "run", *TRAIN_ARGS)
    assert result.exit_code == 1
    assert "train-00001.h5: is not listed in dataset.json" in one_line(result.output)


def test_the_checkpoint_records_the_datasets_real_parameters(astronaut, tmp_path):
    shards = make_shards(tmp_path / "shards", astronaut, {"train": 4}, wide_factor=1.5)
    train(shards, tmp_path / "run", config=tiny(val_split="none"))
    recorded = load_checkpoint(tmp_path / "run" / "last.pt")["dataset"]
    assert recorded == json.loads((shards / "dataset.json").read_text())["parameters"]
    assert recorded["wide_factor"] == 1.5


def test_start_up_check_reads_no_pixels(shards, monkeypatch):
    """The cheap check (without hashes) never touches the image datasets."""
    from training import open_shards

    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        reads.append(self.name)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    open_shards(shards, hashes=False)
    assert reads and set(reads) <= {"/subject", "/pose", "/aug"}


# ----------------------------------------------------------------------------------------- 3. batches of one
def test_a_remainder_of_one_sample_joins_the_batch_before(shards, tmp_path):
    # 8 samples in batches of 7 leave one: alone at size 32 (1 x 1 at the bottleneck) BatchNorm cannot train it.
    result = train(shards, tmp_path / "run", config=tiny(batch_size=7, size=32, epochs=2))
    assert result.global_step == 2 and len(result.step_losses) == 2


def test_batch_size_one_with_batchnorm_is_a_usage_error(shards, tmp_path):
    result = prep("train", shards, tmp_path / "run", *TRAIN_ARGS, "--batch-size", "1")
    assert result.exit_code == 2 and "--norm none" in result.output
    assert prep("train", shards, tmp_path / "run", *TRAIN_ARGS, "--batch-size", "1", "--norm", "none").exit_code == 0


def test_library_failures_are_not_usage_errors():
    import click
    import torch.nn.functional as F

    from acquisition.cli_common import reports_errors
    from datasetgen.schema import shard_filename

    @click.command()
    @click.argument("where")
    @reports_errors
    def command(where: str) -> None:
        if where == "torch":  # BatchNorm on one value per channel, as a batch of one at the bottleneck
            F.batch_norm(torch.zeros(1, 4, 1, 1), None, None, training=True)
        shard_filename("nope", 0)  # the toolkit's ValueError for a bad argument

    result = CliRunner().invoke(command, ["torch"])
    assert result.exit_code == 1 and "Expected more than 1 value per channel" in one_line(result.output)
    assert "failure inside torch" in result.output
    result = CliRunner().invoke(command, ["ours"])
    assert result.exit_code == 2 and "split must be one of" in result.output


# ------------------------------------------------------------------------------------ 4. one-line failures
def test_a_shard_cut_short_while_workers_read_it(shards, tmp_path):
    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    victim = copy / "train-00000.h5"
    steps = []

    def cut_after_the_first_epoch(n: int) -> None:
        steps.append(n)
        if len(steps) == 4:  # the epoch's last batch: the next epoch's workers open the file afresh
            with open(victim, "r+b") as handle:
                handle.truncate(victim.stat().st_size // 2)

    with pytest.raises(TrainingError) as caught:
        train(copy, tmp_path / "run", config=tiny(epochs=3, workers=2), progress=cut_after_the_first_epoch)
    message = str(caught.value)
    assert "\n" not in message and "DataLoader" not in message, message
    assert str(victim) in message and "changed while this run read it" in message and "--resume" in message
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1  # the finished epoch is intact
    assert not multiprocessing.active_children()  # the workers stopped with the error


def _allocate_too_much(module, inputs, output):
    torch.empty(1 << 50, dtype=torch.uint8)  # the real allocator fails: "DefaultCPUAllocator: can't allocate"


def test_out_of_memory_is_one_line_and_keeps_the_checkpoints(shards, tmp_path, monkeypatch):
    from training import _train

    train(shards, tmp_path / "run", config=tiny(epochs=1))
    before = (tmp_path / "run" / "last.pt").read_bytes()
    real_build = _train.build_model

    def hungry_model(*args, **kwargs):
        model = real_build(*args, **kwargs)
        model.head.register_forward_hook(_allocate_too_much)
        return model

    monkeypatch.setattr(_train, "build_model", hungry_model)
    with pytest.raises(TrainingError) as caught:
        train(shards, tmp_path / "run", config=tiny(epochs=2), resume=True)
    message = str(caught.value)
    assert message.startswith("out of memory on cpu (an allocation of 1048576.00 GiB failed)"), message
    assert "smaller --batch-size" in message
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


def test_out_of_memory_in_a_loader_worker(shards, tmp_path, monkeypatch):
    from training import ShardDataset

    def numpy_cannot_allocate(self, index):
        return np.empty(1 << 60, np.uint8)  # numpy's MemoryError, raised inside a DataLoader worker

    monkeypatch.setattr(ShardDataset, "__getitem__", numpy_cannot_allocate)
    with pytest.raises(TrainingError, match=r"^out of memory on cpu .*smaller --batch-size"):
        train(shards, tmp_path / "run", config=tiny(workers=1))


def test_gpu_out_of_memory_names_the_fix(shards, tmp_path, monkeypatch):
    from training import _train

    real_build = _train.build_model

    def cuda_oom(module, inputs, output):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.19 GiB total)")

    def model_that_runs_out(*args, **kwargs):
        model = real_build(*args, **kwargs)
        model.head.register_forward_hook(cuda_oom)
        return model

    monkeypatch.setattr(_train, "build_model", model_that_runs_out)
    with pytest.raises(TrainingError, match=r"an allocation of 20.00 GiB failed.*smaller --batch-size"):
        train(shards, tmp_path / "run", config=tiny())


@pytest.mark.parametrize("device", ["gpu", "cuda", "cuda:7"])
def test_a_device_that_is_not_there_is_one_line(run, shards, astronaut, tmp_path, device):
    if device != "gpu" and torch.cuda.device_count() > int(device.partition(":")[2] or 0):
        pytest.skip("this machine has that GPU")
    from acquisition.imageio import write_image

    write_image(tmp_path / "me.png", astronaut)
    commands = {
        "train": ["train", shards, tmp_path / "new", *TRAIN_ARGS[:-2], "--device", device],
        "evaluate": ["evaluate", run, shards, "--device", device],
        "enhance": ["enhance", run, tmp_path / "me.png", tmp_path / "out.png", "--device", device],
    }
    for name, args in commands.items():
        result = prep(*args)
        line = one_line(result.output)
        assert result.exit_code == 1, (name, result.output)
        assert f"device {device!r}" in line and "--device cpu" in line and "this machine has auto, cpu" in line
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "new" / "last.pt").exists()


# ---------------------------------------------------------------------------------------------- 5. locking
@pytest.fixture
def held_for_writing(shards, tmp_path):
    """A copy of the shards, one of them locked for writing by another process.

    The lock is the one HDF5 takes when it opens a file for writing (an exclusive ``flock``); the holder leaves
    the bytes alone, so only the lock can tell.
    """
    copy = tmp_path / "held"
    shutil.copytree(shards, copy)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, time\n"
                               f"f = open({str(copy / 'train-00000.h5')!r}, 'r+b')\n"
                               "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
                               "print('open', flush=True)\ntime.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"
    yield copy / "train-00000.h5"
    holder.kill()
    holder.wait()


def _prep_process(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training", "-q", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=180)


@pytest.mark.skipif(os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE", reason="HDF5 locking is off")
def test_a_shard_held_for_writing_is_named_as_such(held_for_writing, tmp_path):
    shards = held_for_writing.parent
    result = prep("train", shards, tmp_path / "run", *TRAIN_ARGS)
    line = one_line(result.output)
    assert result.exit_code == 1 and str(held_for_writing) in line
    assert "open for writing in another process" in line and "rebuild" not in line and "verify" not in line
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.fixture(scope="module")
def no_locks(tmp_path_factory) -> Path:
    """The LD_PRELOAD shim of a file system without locks (ENOLCK), compiled here."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not sys.platform.startswith("linux"):
        pytest.skip("needs a C compiler on Linux")
    library = tmp_path_factory.mktemp("shim") / "no_locks.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(library), str(FAKES / "no_locks.c"), "-ldl"], check=True)
    return library


def test_training_works_on_a_file_system_without_locks(no_locks, shards, tmp_path):
    env = _env(LD_PRELOAD=str(no_locks))
    reader = ("import h5py\n"
              "try:\n"
              f"    h5py.File({str(shards / 'val-00000.h5')!r})\n"
              "except OSError as exc:\n"
              "    print(exc)\n"  # the shim works: an ordinary (locking) open fails as on NFS
              "from training import ShardDataset\n"
              f"dataset = ShardDataset({str(shards)!r}, 'train')\n"
              "print(len(dataset), tuple(dataset[7]['flash'].shape))\n")
    done = subprocess.run([sys.executable, "-c", reader], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "errno = 37" in done.stdout and "8 (64, 64, 3)" in done.stdout
    done = _prep_process("train", shards, tmp_path / "forced", *TRAIN_ARGS,
                         env={**env, "HDF5_USE_FILE_LOCKING": "TRUE"})
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "this file system has no file locks (NFS?)" in line and "HDF5_USE_FILE_LOCKING" in line


def test_build_h5_writes_shards_on_a_file_system_without_locks(no_locks, tmp_path):
    """build-h5's run lock guards the folder, so its shard writer asks HDF5 for no lock (which NFS refuses)."""
    writer = ("import h5py\n"
              "from datasetgen.schema import FILE_KWARGS\n"
              f"with h5py.File({str(tmp_path / 'train-00000.h5')!r}, 'w', **FILE_KWARGS) as h5:\n"
              "    h5['flash'] = [1, 2, 3]\n"
              "print('written')\n")
    done = subprocess.run([sys.executable, "-c", writer], env=_env(LD_PRELOAD=str(no_locks)), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "written" in done.stdout, done.stderr


# ----------------------------------------------------------------------------------- 6. numpy into checkpoints
def test_numpy_values_make_a_checkpoint_enhance_loads(shards, astronaut, tmp_path):
    from acquisition.imageio import write_image
    from training import DeepFlashNet

    with h5py.File(shards / "train-00000.h5") as h5:  # attributes come back as numpy scalars
        dataset = {key: h5.attrs[key] for key in ("size", "sigma_s", "sigma_r")}
    dataset["wide_factor"] = np.float32(2.0)
    assert all(isinstance(value, np.generic) for value in dataset.values())
    save_model_checkpoint(tmp_path / "net.pt", DeepFlashNet(width=1 / 16), size=dataset["size"], dataset=dataset)
    checkpoint = torch.load(tmp_path / "net.pt", weights_only=True)
    assert checkpoint["dataset"] == {"size": 64, "sigma_s": 4.0, "sigma_r": 0.1, "wide_factor": 2.0}
    assert type(checkpoint["config"]["size"]) is int
    write_image(tmp_path / "me.png", astronaut)
    result = prep("enhance", tmp_path / "net.pt", tmp_path / "me.png", tmp_path / "out.png")
    assert result.exit_code == 0, result.output


# ----------------------------------------------------------------------------------------- 8. a full disk
def _fills_after(limit: int):
    """An ``atomic_write`` whose file takes ``limit`` bytes, then fails like a full disk."""
    from acquisition.atomic import atomic_write

    class Full:
        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, data) -> int:
            self.written += len(data)
            if self.written > limit:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

    import contextlib

    @contextlib.contextmanager
    def full_disk(path, mode="wb", **kwargs):
        with atomic_write(path, mode, **kwargs) as handle:
            yield Full(handle)

    return full_disk


def test_a_full_disk_while_writing_a_checkpoint(shards, tmp_path, monkeypatch):
    from training import _checkpoint

    train(shards, tmp_path / "run", config=tiny(epochs=1))
    before = (tmp_path / "run" / "last.pt").read_bytes()
    monkeypatch.setattr(_checkpoint, "atomic_write", _fills_after(4096))
    with pytest.raises(TrainingError) as caught:
        train(shards, tmp_path / "run", config=tiny(epochs=2), resume=True)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'run' / 'last.pt'}: the disk is full; last.pt was not replaced"), message
    assert "--resume" in message and "\n" not in message
    assert (tmp_path / "run" / "last.pt").read_bytes() == before
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".tmp-")]


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 9 MiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=9m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    for _ in range(20):
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)


def test_a_real_full_disk_while_writing_a_checkpoint(shards, tiny_tmpfs):
    run_dir = tiny_tmpfs / "run"
    config = tiny(epochs=1, width=1 / 8, samples=0)
    train(shards, run_dir, config=config)
    before = (run_dir / "last.pt").read_bytes()
    assert 4 << 20 < len(before) < 8 << 20  # one fits, two do not
    result = prep("train", shards, run_dir, "--resume", "--epochs", "3")
    line = one_line(result.output)
    assert result.exit_code == 1 and "the disk is full; last.pt was not replaced" in line, result.output
    assert (run_dir / "last.pt").read_bytes() == before


# ------------------------------------------------------------------ resume never replaces a run it cannot read
def _snapshot(folder: Path) -> dict[str, bytes | str]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() and not p.is_symlink() else "special")
            for p in sorted(folder.rglob("*")) if not p.is_dir()}


def _no_last_pt(last: Path) -> None:
    last.unlink()


def _truncated(last: Path) -> None:
    os.truncate(last, last.stat().st_size // 3)


def _fifo(last: Path) -> None:
    last.unlink()
    os.mkfifo(last)


def _device(last: Path) -> None:
    last.unlink()
    last.symlink_to("/dev/zero")  # a character device (reading it would never end)


def _copy_of_best(last: Path) -> None:
    shutil.copyfile(last.with_name("best.pt"), last)  # what a user who lost last.pt tries: no optimizer state


@pytest.mark.parametrize(("damage", "words"), [
    (_no_last_pt, "there is no last.pt to resume from (the folder holds best.pt"),
    (_copy_of_best, "cannot resume: it holds no optimizer"),
    (_truncated, "cannot resume: cannot read the checkpoint (RuntimeError: PytorchStreamReader"),
    (_fifo, "is a FIFO (named pipe), not a regular file"),
    (_device, "is a character device, not a regular file"),
])
def test_resume_without_a_usable_last_pt_refuses_and_keeps_the_run(run, shards, tmp_path, damage, words):
    folder = shutil.copytree(run, tmp_path / "run", symlinks=True)
    damage(folder / "last.pt")
    before = _snapshot(folder)
    result = prep("train", shards, folder, "--resume", "--epochs", "2")
    line = one_line(result.output)
    assert result.exit_code == 1 and f"{folder / 'last.pt'}: {words}" in line, result.output
    assert _snapshot(folder) == before  # nothing written, nothing replaced
    fresh = prep("train", shards, folder, *TRAIN_ARGS)  # a fresh run refuses the folder too: it holds best.pt ...
    line = one_line(fresh.output)
    assert fresh.exit_code == 1 and ("already holds a training run" in line or "not a regular file" in line), line
    assert _snapshot(folder) == before


@pytest.mark.parametrize("stop_at", ["before the first checkpoint", "after epoch 1"])
def test_a_stopped_run_goes_on_as_its_note_says(shards, tmp_path, monkeypatch, stop_at):
    """The note says "with --resume" once the run has a last.pt (the plain command then refuses the folder); before
    that, "run the same command again", which starts it over (and --resume would too)."""
    import training._train as trainer

    real_save, saved = trainer.save_checkpoint, []

    def save_then_stop(path, *args, **kwargs):
        if stop_at == "before the first checkpoint":
            os.kill(os.getpid(), signal.SIGTERM)
        real_save(path, *args, **kwargs)
        saved.append(path.name)
        if stop_at == "after epoch 1" and path.name == "last.pt":
            os.kill(os.getpid(), signal.SIGTERM)

    folder = tmp_path / "run"
    args = ["train", shards, folder, *TRAIN_ARGS[:1], "2", *TRAIN_ARGS[2:]]
    with monkeypatch.context() as patch:
        patch.setattr(trainer, "save_checkpoint", save_then_stop)
        stopped = prep(*args)
    assert stopped.exit_code == 143, stopped.output
    way_on = "run the same command with --resume to continue" if stop_at == "after epoch 1" else \
        "run the same command again to resume"
    assert stopped.output == f"Interrupted (SIGTERM): finished work is kept; {way_on}.\n"
    assert os.path.exists(folder / "last.pt") == (stop_at == "after epoch 1")
    resumed = prep(*args, *(["--resume"] if stop_at == "after epoch 1" else []))  # just as the note says
    assert resumed.exit_code == 0, resumed.output
    history = load_checkpoint(folder / "last.pt")["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    again = prep(*args, "--resume")  # given --resume, the note would say "run the same command again"
    assert again.exit_code == 0, again.output


def test_resume_into_an_empty_folder_starts_a_run_and_into_a_missing_one_is_refused(shards, tmp_path):
    """A folder without run outputs (a run stopped before its first checkpoint, in a folder made beforehand)
    starts over; a folder that does not exist is a mistyped RUN_DIR (a tester's long run went to 'tr-typo')."""
    missing = prep("train", shards, tmp_path / "tr-typo", "--resume", *TRAIN_ARGS)
    assert missing.exit_code == 1 and one_line(missing.output) == (
        f"Error: {tmp_path / 'tr-typo'}: there is no training run to resume here: the folder does not exist (check "
        "the path; to start a new run there, leave out --resume)"), missing.output
    assert not (tmp_path / "tr-typo").exists()
    (tmp_path / "new").mkdir()
    result = prep("train", shards, tmp_path / "new", "--resume", *TRAIN_ARGS)
    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'new'}: the folder holds no checkpoint yet" in result.output, result.output
    assert "from the beginning" in result.output
    assert [row["epoch"] for row in load_checkpoint(tmp_path / "new" / "last.pt")["history"]] == [1]


def test_a_special_best_pt_is_an_error_not_a_fall_back_to_last_pt(run, shards, tmp_path):
    folder = shutil.copytree(run, tmp_path / "run")
    (folder / "best.pt").unlink()
    os.mkfifo(folder / "best.pt")
    for result in (prep("evaluate", folder, shards), prep("train", shards, folder, "--resume", "--epochs", "2")):
        line = one_line(result.output)
        assert result.exit_code == 1 and f"{folder / 'best.pt'}: is a FIFO (named pipe), not a regular file" in line
    assert (folder / "last.pt").read_bytes() == (run / "last.pt").read_bytes()


# ------------------------------------------------------------ a stop signal as the DataLoader workers start
_STOP_AS_WORKERS_START = {
    # Ctrl-C reaches the process group just as a worker begins: the parent and every worker get it.
    "worker start": "import torch.utils.data._utils.worker as w\n"
                    "real = w._worker_loop\n"
                    "def loop(*args, **kwargs):\n"
                    "    os.killpg(0, signal.{signal})\n"
                    "    return real(*args, **kwargs)\n"
                    "w._worker_loop = loop\n",
    # ... or while the parent is still starting them (held back until they have started, then raised): the
    # workers ignore stop signals, so a stop raised there must still shut them down, or the exit waits forever.
    "loader start": "import torch.utils.data as d\n"
                    "real = d.DataLoader.__iter__\n"
                    "def start(self):\n"
                    "    batches = real(self)\n"
                    "    os.killpg(0, signal.{signal})\n"
                    "    return batches\n"
                    "d.DataLoader.__iter__ = start\n",
    # ... and again while the parent shuts the workers down (Ctrl-C pressed twice): cut short, the shutdown
    # left workers that the interpreter's exit then waited for forever (CI: a 120 s timeout).
    "again in the shutdown": "import torch.utils.data._utils.worker as w\n"
                             "from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter as it\n"
                             "real_loop, real_shutdown = w._worker_loop, it._shutdown_workers\n"
                             "def loop(*args, **kwargs):\n"
                             "    os.killpg(0, signal.{signal})\n"
                             "    return real_loop(*args, **kwargs)\n"
                             "again = [1]\n"
                             "def shutdown(self):\n"
                             "    if again:\n"
                             "        os.kill(os.getpid(), signal.{signal}); again.clear()\n"
                             "    return real_shutdown(self)\n"
                             "w._worker_loop = loop\n"
                             "it._shutdown_workers = shutdown\n",
    # ... or while the parent runs its at-fork hooks, where Python swallows exceptions ("Exception ignored").
    "at-fork hook": "sent = []\n"
                    "def hook():\n"
                    "    if not sent:\n"
                    "        sent.append(1)\n"
                    "        os.killpg(0, signal.{signal})\n"
                    "os.register_at_fork(after_in_parent=hook)\n",
}


@pytest.mark.parametrize("when", sorted(_STOP_AS_WORKERS_START))
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_as_loader_workers_start_is_the_interruption(run, shards, tmp_path, when, signum):
    folder = shutil.copytree(run, tmp_path / "run")
    before = _snapshot(folder)
    script = ("import os, signal, sys\n"
              "from acquisition._entry import install_stop_handlers\n"
              "install_stop_handlers()\n"  # as prep's console script does first
              + _STOP_AS_WORKERS_START[when].format(signal=signum.name) +
              "from acquisition.prep import main\n"
              f"main(['-q', 'train', {str(shards)!r}, {str(folder)!r}, '--resume', '--epochs', '2', '--workers', "
              "'2'], prog_name='prep')\n")
    done = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=120,
                          start_new_session=True)  # its own process group: the signal stays in there
    assert done.returncode == 128 + signum, done.stderr
    assert done.stderr.strip() == f"Interrupted ({signum.name}): finished work is kept; run the same command again " \
                                  "to resume.", done.stderr
    assert _snapshot(folder) == before


def test_a_fifo_at_samples_is_refused_before_training(run, shards, tmp_path):
    for resume in (False, True):
        folder = shutil.copytree(run, tmp_path / f"run-{resume}") if resume else tmp_path / "new"
        folder.mkdir(exist_ok=True)
        shutil.rmtree(folder / "samples", ignore_errors=True)
        os.mkfifo(folder / "samples")
        before = _snapshot(folder)
        result = prep("train", shards, folder, *(["--resume", "--epochs", "2"] if resume else TRAIN_ARGS))
        line = one_line(result.output)
        assert result.exit_code == 1 and f"{folder / 'samples'}: is a FIFO (named pipe), where the folder of " \
                                          "sample pictures goes (remove or rename it" in line, line
        assert _snapshot(folder) == before


def test_a_parameter_that_differs_is_said_once(shards, tmp_path):
    folder = shutil.copytree(shards, tmp_path / "shards")
    _edit_json(folder, lambda meta: meta["parameters"].update(sigma_s=16.0))
    result = prep("train", folder, tmp_path / "run", *TRAIN_ARGS)
    assert one_line(result.output).count("sigma_s") == 1, result.output
