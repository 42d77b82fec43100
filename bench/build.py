"""Benchmark of the dataset builder: bilateral filter, build time per pair, shard reading.

Every figure is measured beside an anchor run in the same process (machines differ, and other jobs may be
running), and printed as a markdown table: figure | ours | anchor | ratio | target.

* bilateral: ``datasetgen.bilateral_filter`` vs ``cv2.bilateralFilter(d=-1)`` on a 512x512 RGB float image,
  both single-threaded (and with default threads), PSNR of both against the exact brute-force filter
  (``datasetgen.bilateral_reference``, about a minute; cached in ~/.cache/deepflash/).
* build: seconds per 12 MP pair (20 samples of 512) on one core, anchor = decoding the pair's three PNGs; and
  --workers 2 vs 1 on twelve pairs (an even count, so both workers have the same share; the workers'
  start-up, ~2.5 s for imports and face models, still weighs in: a session of hundreds of pairs gains more).
* reading: random-access samples/s (flash_bl + target) from the shards, anchor = raw sequential h5py reads.

Usage: ``.venv/bin/python bench/build.py`` (about 3 minutes; ``--quick`` skips the 12 MP build).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acquisition.atomic import write_bytes_atomic
from acquisition.imageio import read_image, write_image
from acquisition.parallel import limit_threads
from datasetgen import BuildConfig, bilateral_filter, bilateral_reference, build_shards

ROWS: list[tuple[str, str, str, str, str]] = []


def row(figure: str, ours: str, anchor: str, ratio: str, target: str) -> None:
    ROWS.append((figure, ours, anchor, ratio, target))
    print(f"  {figure}: {ours} | {anchor} | {ratio} | {target}", file=sys.stderr, flush=True)


def best_of(fn, repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def portrait() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def bench_bilateral() -> None:
    image = portrait().astype(np.float32) / 255
    # Keyed on the image's content and the sigmas, written atomically: a stale or half-written reference
    # would silently change the PSNR figure.
    key = hashlib.sha256(image.tobytes()).hexdigest()[:16]
    cache = (Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "deepflash"
             / f"bilateral_exact_{key}_s16_r0.1.npy")
    if cache.is_file():
        exact = np.load(cache)
    else:
        print("computing the exact 512x512 reference once (about a minute)...", file=sys.stderr, flush=True)
        exact = bilateral_reference(image, 16.0, 0.1)
        buffer = io.BytesIO()
        np.save(buffer, exact)
        write_bytes_atomic(cache, buffer.getvalue())
    for label, threads in (("1 thread", 1), ("default threads", 0)):
        torch.set_num_threads(threads or os.cpu_count() or 1)
        cv2.setNumThreads(threads if threads else -1)
        ours = best_of(lambda: bilateral_filter(image))
        anchor = best_of(lambda: cv2.bilateralFilter(image, -1, 0.1, 16.0), repeat=3)
        row(f"bilateral 512x512, {label} (ms)", f"{ours * 1e3:.0f}", f"{anchor * 1e3:.0f} (cv2 d=-1)",
            f"{anchor / ours:.1f}x faster", ">= 5x faster")
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    ours_psnr = psnr(bilateral_filter(image), exact)
    cv2_psnr = psnr(cv2.bilateralFilter(image, -1, 0.1, 16.0), exact)
    row("bilateral PSNR vs exact Euclidean (dB)", f"{ours_psnr:.1f}", f"{cv2_psnr:.1f} (cv2)",
        f"{ours_psnr - cv2_psnr:+.1f} dB", ">= 45 dB")


def make_aligned(root: Path, subjects: int) -> None:
    """One 3120x4160 pair (the paper's Nexus 6 size) from a portrait, upscaled; copied as ``subjects`` subjects."""
    face = portrait()[:480, 76:436]  # 3:4
    flash = cv2.resize(face, (3120, 4160), interpolation=cv2.INTER_CUBIC)
    studio = np.clip(flash.astype(np.float32) * np.linspace(1.1, 0.85, 3120, dtype=np.float32)[None, :, None],
                     0, 255).astype(np.uint8)
    valid = np.full((4160, 3120, 3), 255, np.uint8)
    first = root / "s00" / "p0"
    first.mkdir(parents=True)
    write_image(first / "flash.png", flash)
    write_image(first / "studio.png", studio)
    write_image(first / "valid.png", valid)
    for i in range(1, subjects):
        shutil.copytree(first, root / f"s{i:02d}" / "p0")
    with open(root / "registration.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject", "pose", "status"])
        writer.writerows([(f"s{i:02d}", "p0", "ok") for i in range(subjects)])


def bench_build(work: Path, pairs: int) -> Path:
    aligned = work / "aligned"
    make_aligned(aligned, pairs)
    config = BuildConfig(split=(1.0, 0.0, 0.0))
    limit_threads()  # one core for the one-worker figure
    torch.set_num_threads(1)
    start = time.perf_counter()
    for _ in range(3):
        for name in ("flash.png", "studio.png", "valid.png"):
            read_image(aligned / "s00" / "p0" / name)
    decode = (time.perf_counter() - start) / 3
    start = time.perf_counter()
    build_shards(aligned, work / "shards1", config=config, workers=1)
    one = (time.perf_counter() - start) / pairs
    row("build, s per 12 MP pair (20 samples of 512, 1 core)", f"{one:.2f}", f"{decode:.2f} (decode 3 PNGs)",
        f"{one / decode:.1f}x decode", "<= 4 s")
    start = time.perf_counter()
    build_shards(aligned, work / "shards2", config=config, workers=2)
    two = (time.perf_counter() - start) / pairs
    row(f"build --workers 2 vs 1 ({pairs} pairs, s per pair)", f"{two:.2f}", f"{one:.2f} (workers 1)",
        f"{one / two:.2f}x speed-up", "near 2x")
    same = all(p.read_bytes() == (work / "shards2" / p.name).read_bytes() for p in (work / "shards1").glob("*.h5"))
    row("shards identical for workers 1 and 2", "yes" if same else "NO", "", "", "yes")
    return work / "shards1"


def bench_small_shards(work: Path) -> Path:
    """--quick: shards from 512 px copies instead of 12 MP pairs (reading speed does not depend on it)."""
    aligned = work / "aligned-small"
    face = cv2.resize(portrait(), (900, 900), interpolation=cv2.INTER_CUBIC)
    for i in range(4):
        folder = aligned / f"s{i:02d}" / "p0"
        folder.mkdir(parents=True)
        write_image(folder / "flash.png", face)
        write_image(folder / "studio.png", face)
        write_image(folder / "valid.png", np.full_like(face, 255))
    build_shards(aligned, work / "shards-small", config=BuildConfig(split=(1.0, 0.0, 0.0)))
    return work / "shards-small"


def bench_reading(shards: Path) -> None:
    import h5py

    files = sorted(shards.glob("*.h5"))
    handles = [h5py.File(p, "r") for p in files]
    sizes = [h["flash_bl"].shape[0] for h in handles]
    index = [(f, r) for f, n in enumerate(sizes) for r in range(n)]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(index))
    reads = max(400, len(index))

    def random_access() -> None:
        for k in range(reads):
            f, r = index[order[k % len(order)]]
            h = handles[f]
            x = h["flash_bl"][r]
            t = h["target"][r]
            assert x.shape == t.shape

    def sequential() -> None:
        done = 0
        while done < reads:
            for h in handles:
                for start in range(0, h["flash_bl"].shape[0], 16):
                    x = h["flash_bl"][start:start + 16]
                    h["target"][start:start + 16]
                    done += len(x)

    ours = reads / best_of(random_access, repeat=3)
    anchor = reads / best_of(sequential, repeat=3)
    row("reading, samples/s (flash_bl + target, random access, 1 process)", f"{ours:.0f}",
        f"{anchor:.0f} (sequential h5py, 16 per read)", f"{ours / anchor:.2f}", ">= 300")
    for h in handles:
        h.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 12 MP build (reading uses small shards)")
    parser.add_argument("--pairs", type=int, default=12, help="12 MP pairs for the build figures")
    args = parser.parse_args()
    bench_bilateral()
    with tempfile.TemporaryDirectory(prefix="deepflash-bench-") as tmp:
        work = Path(tmp)
        shards = bench_small_shards(work) if args.quick else bench_build(work, args.pairs)
        bench_reading(shards)
    print("| figure | ours | anchor | ratio | target |")
    print("|---|---|---|---|---|")
    for figure in ROWS:
        print("| " + " | ".join(figure) + " |")


if __name__ == "__main__":
    main()
