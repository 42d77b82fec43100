"""Benchmarks of the training stage; prints a markdown table (figure | ours | anchor | ratio | target).

* loader samples/s (HDF5 shards at 256 px -> float batches) beside the model's training samples/s at 256 px:
  the loader must never be the bottleneck (ratio > 1);
* CPU training throughput at 256^2, full width (the paper's network) and thin (width 1/8), each beside an
  anchor measured in the same process: the bare VGG-16 encoder (13 convs) trained on the same batch, i.e. the
  floor any VGG-16-based network pays;
* the start-up check of the shards (cheap, no hashes) beside the same with every shard's SHA-256, and the
  seconds per GiB the hash costs beside reading the bytes (folders up to 1 GiB are hashed at every start);
* the decoder's upsampling, ``deconv`` (the paper's 4x4 stride-2 transposed convolutions) beside ``resize``
  (bilinear x2 + 3x3 conv), at full width and 512^2: CPU training samples/s (steps of the two alternate) and the
  checkerboard energy of the output (:func:`training.checkerboard_energy`, dB; ~0 = no grid) on a held-out crop,
  untrained and after the same short training;
* ``prep enhance`` on a 12 MP photo at full width and size 512, beside the anchor of reading and writing that
  JPEG (the I/O floor); target <= 5 s on 2 cores; and how much the change steps across the crop's border on the
  background (:func:`training.border_step`; the photo is a portrait pasted on a painted wall, so the background
  is known) with ``--paste subject`` beside ``--paste crop``; target < 1/255.

GPU throughput at 512^2 (target >= 85 samples/s on one H100; the paper: 62 epochs x 9,900 images in 5 days on
a Titan Xp, ~1.4 samples/s), for both upsamplings, is measured only when run on a GPU (``--gpu``).

Usage: ``python bench/train.py [--threads 2] [--gpu]`` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rate(fn, count: int, *, min_seconds: float = 2.0, max_rounds: int = 20) -> float:  # loader passes
    """Items per second of ``fn`` (which handles ``count`` items), after one warm-up call."""
    fn()
    rounds, start = 0, time.perf_counter()
    while True:
        fn()
        rounds += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or rounds >= max_rounds:
            return rounds * count / elapsed


def _paired_rates(fn_a, count_a: int, fn_b, count_b: int, rounds: int) -> tuple[float, float]:
    """Items per second of two workloads, measured in alternating rounds (medians), after one warm-up each.

    Alternating makes the ratio robust when other processes load the machine unevenly over time.
    """
    fn_a()
    fn_b()
    times_a, times_b = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        fn_a()
        times_a.append(time.perf_counter() - start)
        start = time.perf_counter()
        fn_b()
        times_b.append(time.perf_counter() - start)
    return count_a / float(np.median(times_a)), count_b / float(np.median(times_b))


def make_shards(folder: Path, count: int, size: int) -> Path:
    """Synthetic shards (random crops of the astronaut) in the schema of datasetgen.schema."""
    import cv2
    import h5py
    from skimage import data

    from datasetgen import aug_table, write_manifest
    from datasetgen.schema import create_shard_datasets, shard_filename, write_shard_attrs

    rng = np.random.default_rng(0)
    astronaut = data.astronaut()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / shard_filename("train", 0)
    table = [spec.as_dict() for spec in aug_table()]
    parameters = {"size": size, "sigma_s": 16.0, "sigma_r": 0.1, "wide_factor": 2.0}
    with h5py.File(path, "w") as h5:
        create_shard_datasets(h5, count, size)
        write_shard_attrs(h5, split="train", size=size, sigma_s=16.0, sigma_r=0.1, aug_table=table,
                          parameters=parameters)
        for row in range(count):
            side = int(rng.integers(256, 512))
            y0, x0 = (int(v) for v in rng.integers(0, 513 - side, 2))
            o = cv2.resize(astronaut[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_AREA)
            x = np.clip(o.astype(np.float32) * 1.3 + 20, 0, 255).astype(np.uint8)
            blur_x = cv2.GaussianBlur(x.astype(np.float32) / 255, (0, 0), 8)  # stands in for BL: I/O bench only
            blur_o = cv2.GaussianBlur(o.astype(np.float32) / 255, (0, 0), 8)
            h5["flash"][row], h5["studio"][row] = x, o
            h5["flash_bl"][row] = blur_x.astype(np.float16)
            h5["target"][row] = ((blur_x - blur_o + 1) / 2).astype(np.float16)
            h5["valid"][row] = 1
            h5["subject"][row], h5["pose"][row], h5["aug"][row] = "s", f"p{row}", 0
    write_manifest(folder, [path], parameters=parameters, aug_table=table, subjects={"s": "train"})
    return folder


def check_seconds(shards: Path) -> tuple[float, float, float, float]:
    """Seconds of training's start-up check of the shards without and with hashes, of reading the same bytes,
    and the bytes (all from the page cache)."""
    from training import open_shards

    files = sorted(shards.glob("*.h5"))

    def read_all() -> None:
        for path in files:
            with open(path, "rb") as handle:
                while handle.read(1 << 22):
                    pass

    times = {}
    for name, run in (("cheap", lambda: open_shards(shards, hashes=False)),
                      ("hashed", lambda: open_shards(shards, hashes=True)), ("read", read_all)):
        run()  # warm
        start = time.perf_counter()
        for _ in range(5):
            run()
        times[name] = (time.perf_counter() - start) / 5
    return times["cheap"], times["hashed"], times["read"], float(sum(p.stat().st_size for p in files))


def loader_rate(shards: Path, batch: int, workers: int) -> float:
    from torch.utils.data import DataLoader

    from training._data import ShardDataset, batch_to_device, worker_init

    dataset = ShardDataset(shards, "train")
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                        worker_init_fn=worker_init if workers else None, persistent_workers=bool(workers))

    def one_pass() -> None:
        for raw in loader:
            batch_to_device(raw, "cpu")

    return _rate(one_pass, len(dataset), min_seconds=2.0, max_rounds=5)


def train_step(width: float, size: int, batch: int, *, encoder_only: bool = False, device: str = "cpu"):
    """A callable doing one Adam step of DeepFlashNet (or of its bare VGG-16 encoder) on a random batch."""
    import torch

    from training import DeepFlashNet, deepflash_loss

    torch.manual_seed(0)
    net = DeepFlashNet(width=width).to(device)
    x = torch.rand(batch, 3, size, size, device=device)
    t = torch.rand(batch, 3, size, size, device=device)
    if device != "cpu":
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    params = net.features.parameters() if encoder_only else net.parameters()
    opt = torch.optim.Adam(params, lr=1e-5)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device != "cpu"):
            if encoder_only:
                loss = net.features(x).float().square().mean()
            else:
                loss = deepflash_loss(net(x).float(), t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device != "cpu":
            torch.cuda.synchronize()

    return step


#: Part of the astronaut (x0, y0, x1, y1, at 512 px) that is her: hair, face, shoulders; the rest is backdrop.
_ASTRONAUT_SUBJECT = (145, 20, 295, 512)


def selfie_12mp(path: Path) -> np.ndarray:
    """A 3000x4000 portrait JPEG: the astronaut x6 (face ~540 px) on a painted wall; returns the wall's mask.

    The background is known by construction (everything outside the pasted part), not taken from any matte.
    """
    import cv2
    from skimage import data

    from acquisition.imageio import write_image

    h, w, k = 4000, 3000, 6
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paint = np.stack([110 + 40 * xx / w, 120 + 15 * np.sin(yy / 220.0), 140 + 0 * yy], axis=-1)  # even in y
    canvas = np.clip(paint + np.random.default_rng(0).normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)
    x0, y0, x1, y1 = (v * k for v in _ASTRONAUT_SUBJECT)
    big = cv2.resize(data.astronaut(), (512 * k, 512 * k), interpolation=cv2.INTER_CUBIC)
    ox, oy = 180, h - 512 * k  # the face centred, the shoulders at the bottom edge
    canvas[y0 + oy:y1 + oy, x0 + ox:x1 + ox] = big[y0:y1, x0:x1]
    write_image(path, canvas, quality=92)
    background = np.ones((h, w), bool)
    background[y0 + oy:y1 + oy, x0 + ox:x1 + ox] = False
    return background


def enhance_seconds(tmp: Path) -> dict[str, object]:
    """Enhance time (model loaded) of both pastes, the JPEG read+write anchor, and each paste's border step."""
    import torch

    from acquisition.imageio import read_image, write_image
    from training import DeepFlashNet, Enhancer, border_step, enhance, save_model_checkpoint

    photo = tmp / "selfie.jpg"
    background = selfie_12mp(photo)
    torch.manual_seed(0)
    save_model_checkpoint(tmp / "full.pt", DeepFlashNet(width=1.0), size=512)
    enhancer = Enhancer(tmp / "full.pt")
    enhance(enhancer, photo, tmp / "warm.jpg")  # first call pays one-off allocations
    times: dict[str, list[float]] = {"subject": [], "crop": [], "io": []}
    for _ in range(2):
        for paste in ("subject", "crop"):
            start = time.perf_counter()
            result = enhance(enhancer, photo, tmp / f"{paste}.jpg", paste=paste)
            times[paste].append(time.perf_counter() - start)
        start = time.perf_counter()
        write_image(tmp / "copy.jpg", read_image(photo))
        times["io"].append(time.perf_counter() - start)
    original = read_image(photo)
    steps = {}
    for paste in ("subject", "crop"):  # lossless outputs: the step is the paste's, not JPEG's
        done = enhance(enhancer, photo, tmp / f"{paste}.png", paste=paste)
        steps[paste] = border_step(original, read_image(tmp / f"{paste}.png"), done.crop, background)
    return {"seconds": {k: min(v) for k, v in times.items()}, "shape": result.shape, "steps": steps}


def upsampling_runs(size: int, *, steps: int, batch: int, device: str = "cpu") -> dict[str, dict[str, float]]:
    """deconv and resize trained side by side (alternating steps) on astronaut crops towards a smooth relighting.

    Returns, per upsampling, samples/s (median step) and the checkerboard energy (dB) of the output on a
    held-out crop before and after the training.
    """
    import cv2
    import torch
    from skimage import data

    from training import DeepFlashNet, checkerboard_energy, deepflash_loss

    astronaut = data.astronaut()
    rng = np.random.default_rng(0)

    def crops(count: int) -> torch.Tensor:
        out = []
        for _ in range(count):
            side = int(rng.integers(200, 400))
            y, x = (int(v) for v in rng.integers(0, 512 - side, 2))
            out.append(cv2.resize(astronaut[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_CUBIC))
        return (torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255).to(device)

    inputs, held_out = crops(4 * batch), crops(1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size, device=device), torch.linspace(-1, 1, size, device=device),
                            indexing="ij")
    ramp = torch.stack([xx, yy, xx * yy])
    cuda = device != "cpu"
    runs = {}
    for upsample in ("deconv", "resize"):
        torch.manual_seed(0)
        net = DeepFlashNet(width=1.0, upsample=upsample).to(device)
        if cuda:
            net = net.to(memory_format=torch.channels_last)
        runs[upsample] = {"net": net, "opt": torch.optim.Adam(net.parameters(), lr=1e-4), "times": []}

    def energy(net: torch.nn.Module) -> float:
        net.eval()
        with torch.no_grad():
            y = net(held_out)[0].float().permute(1, 2, 0).cpu().numpy()
        net.train()
        return checkerboard_energy(y)

    for run in runs.values():
        run["before"] = energy(run["net"])
    for step in range(steps + 1):  # the first step of each is a warm-up, not timed
        x = inputs[(step % 4) * batch:(step % 4 + 1) * batch]
        target = (0.5 + 0.2 * x.mean(1, keepdim=True) * ramp).clamp(0, 1)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        for run in runs.values():
            start = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss = deepflash_loss(run["net"](x).float(), target, offset_weight=0.5)
            run["opt"].zero_grad(set_to_none=True)
            loss.backward()
            run["opt"].step()
            if cuda:
                torch.cuda.synchronize()
            if step:
                run["times"].append(time.perf_counter() - start)
    return {name: {"samples_per_s": batch / float(np.median(run["times"])), "before": run["before"],
                   "after": energy(run["net"])} for name, run in runs.items()}


def cold_cli_seconds(tmp: Path, threads: int) -> tuple[float, float]:
    """Wall time of a fresh ``prep enhance`` process on the 12 MP photo, beside a bare ``import torch``."""
    import os
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "training", "-q", "enhance", str(tmp / "full.pt"), str(tmp / "selfie.jpg"),
                    str(tmp / "cold.jpg")], env=env, check=True, capture_output=True)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], env=env, check=True)
    return cold, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the target: 2 cores)")
    parser.add_argument("--gpu", action="store_true", help="also measure 512^2 training on CUDA")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        shards = make_shards(tmp / "shards", 64, 256)
        cheap, hashed, read, size = check_seconds(shards)
        per_gib = (hashed - cheap) * 2**30 / size
        rows += [
            ("start-up shard check ms, 64 samples @256 (metadata, columns, index) vs the same with SHA-256",
             cheap * 1e3, hashed * 1e3, cheap / hashed, "report"),
            ("SHA-256 at start, s per GiB (page cache; folders <= 1 GiB) vs reading the bytes", per_gib,
             read * 2**30 / size, per_gib / (read * 2**30 / size), "report"),
        ]
        loader0 = loader_rate(shards, 8, 0)
        loader2 = loader_rate(shards, 8, 2)
        thin, thin_anchor = _paired_rates(train_step(1 / 8, 256, 4), 4,
                                          train_step(1 / 8, 256, 4, encoder_only=True), 4, rounds=8)
        full, full_anchor = _paired_rates(train_step(1.0, 256, 2), 2,
                                          train_step(1.0, 256, 2, encoder_only=True), 2, rounds=3)
        rows += [
            ("loader samples/s (256 px, 0 workers) vs thin-model samples/s", loader0, thin, loader0 / thin, "> 1"),
            ("loader samples/s (256 px, 2 workers) vs full-model samples/s", loader2, full, loader2 / full, "> 1"),
            ("CPU training samples/s, 256^2, width 1/8 vs bare VGG-16 encoder", thin, thin_anchor,
             thin / thin_anchor, "report"),
            ("CPU training samples/s, 256^2, full width vs bare VGG-16 encoder", full, full_anchor,
             full / full_anchor, "report"),
        ]
        cpu_steps = 6
        up = upsampling_runs(512, steps=cpu_steps, batch=1)
        rows += [
            ("CPU training samples/s, 512^2, full width: resize vs deconv (the paper's)",
             up["resize"]["samples_per_s"], up["deconv"]["samples_per_s"],
             up["resize"]["samples_per_s"] / up["deconv"]["samples_per_s"], "report"),
            ("checkerboard energy (dB; ratio column: difference) of y, untrained, 512^2 full width: resize vs deconv",
             up["resize"]["before"],
             up["deconv"]["before"], up["resize"]["before"] - up["deconv"]["before"], "resize < 3 dB"),
            (f"checkerboard energy (dB; difference) of y after {cpu_steps} Adam steps (lr 1e-4): resize vs deconv",
             up["resize"]["after"], up["deconv"]["after"], up["resize"]["after"] - up["deconv"]["after"],
             "resize < 3 dB"),
        ]
        enhanced = enhance_seconds(tmp)
        seconds, (h, w), steps = enhanced["seconds"], enhanced["shape"], enhanced["steps"]
        rows += [
            (f"enhance s, {w}x{h} JPEG, full width @512, model loaded vs JPEG read+write", seconds["subject"],
             seconds["io"], seconds["subject"] / seconds["io"], "<= 5 s"),
            ("enhance s, same photo: --paste subject (matte) vs crop", seconds["subject"], seconds["crop"],
             seconds["subject"] / seconds["crop"], "report"),
            ("border step x255 on the wall, across the crop's edge: --paste subject vs crop",
             steps["subject"] * 255, steps["crop"] * 255, steps["subject"] / max(steps["crop"], 1e-12),
             "subject < 1"),
        ]
        cold, floor = cold_cli_seconds(tmp, args.threads)
        rows.append(("`prep enhance` s, same photo, fresh process (imports, model and face-model load) vs "
                     "`import torch`", cold, floor, cold / floor, "<= 5 s"))
    notes = []
    if args.gpu and torch.cuda.is_available():
        step = train_step(1.0, 512, 16, device="cuda")
        gpu, _ = _paired_rates(step, 16, step, 16, rounds=10)
        rows.append(("GPU training samples/s, 512^2, full width, bf16 (paper: Titan Xp ~1.4)", gpu, 1.4, gpu / 1.4,
                     ">= 85"))
        gpu_up = upsampling_runs(512, steps=20, batch=16, device="cuda")
        rows += [
            ("GPU training samples/s, 512^2, full width, bf16, batch 16: resize vs deconv",
             gpu_up["resize"]["samples_per_s"], gpu_up["deconv"]["samples_per_s"],
             gpu_up["resize"]["samples_per_s"] / gpu_up["deconv"]["samples_per_s"], ">= 85 each"),
            ("checkerboard energy (dB; difference) of y after 20 GPU steps: resize vs deconv",
             gpu_up["resize"]["after"], gpu_up["deconv"]["after"],
             gpu_up["resize"]["after"] - gpu_up["deconv"]["after"], "resize < 3 dB"),
        ]
        notes.append(f"GPU: {torch.cuda.get_device_name()}")
    elif args.gpu:
        notes.append("--gpu was given but this torch build sees no CUDA device: the GPU rows (512^2 throughput of "
                     "deconv and resize, target >= 85 samples/s on one H100) were not measured.")
    else:
        notes.append("GPU 512^2 throughput (target >= 85 samples/s on one H100; the paper ~1.4 samples/s on a Titan "
                     "Xp), for deconv and resize, was not measured: run with --gpu on a CUDA machine.")
    print(f"torch {torch.__version__}, {args.threads} threads\n")
    print("| figure | ours | anchor | ratio | target |")
    print("|---|---:|---:|---:|---|")
    for name, value, anchor, ratio, target in rows:
        print(f"| {name} | {value:.3g} | {anchor:.3g} | {ratio:.2f} | {target} |")
    print("\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
