"""The subjects of the virtual studio: real portraits, one per subject."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AcquisitionError
from ..imageio import IMAGE_EXTENSIONS, read_image
from ..layout import check_name

__all__ = ["Portrait", "default_portraits", "load_portraits"]


@dataclass(frozen=True, eq=False)
class Portrait:
    """One subject of the virtual studio.

    Parameters
    ----------
    name : str
        The subject's folder name in the pair layout (checked with :func:`acquisition.layout.check_name`).
    image : ndarray, shape (H, W, 3)
        The portrait, upright RGB ``uint8`` (or ``uint16``); lit softly, as a studio portrait is. It is the
        subject's reference pose: flash shots show it unmoved.
    """

    name: str
    image: np.ndarray

    def __post_init__(self) -> None:
        check_name(self.name, what="portrait name")
        image = np.asarray(self.image)
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 32:
            raise ValueError(f"portrait {self.name!r}: expected an RGB image of at least 32x32, got {image.shape}")
        if image.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"portrait {self.name!r}: expected uint8 or uint16 pixels, got {image.dtype}")
        image = np.ascontiguousarray(image)
        image.setflags(write=False)
        object.__setattr__(self, "image", image)

    def from_afar(self, factor: float = 3.0) -> Portrait:
        """The subject from ``factor`` times as far: the portrait centred on a mid-grey canvas ``factor`` times
        its size, so the face is that much smaller in the frame.

        The embedded portraits fill their frames; a subject seen from afar leaves most of the frame to the
        still room behind it, which then decides any whole-frame match (a face 9 % of the frame's width moved
        7-20 px off before the face-led search saw its landmarks' start again).
        """
        if not factor >= 1.0:
            raise ValueError(f"factor must be >= 1, got {factor}")
        h, w = self.image.shape[:2]
        canvas_h, canvas_w = round(h * factor), round(w * factor)
        canvas = np.full((canvas_h, canvas_w, 3), np.iinfo(self.image.dtype).max // 2, dtype=self.image.dtype)
        top, left = (canvas_h - h) // 2, (canvas_w - w) // 2
        canvas[top:top + h, left:left + w] = self.image
        return Portrait(f"{self.name}-afar", canvas)


def default_portraits() -> list[Portrait]:
    """The two embedded subjects: ``astronaut`` (scikit-image) and ``grace_hopper`` (matplotlib).

    Both ship inside dependencies, so ``prep capture --simulate`` and ``prep demo`` need no download.
    """
    import matplotlib.cbook as cbook
    from PIL import Image
    from skimage import data

    with cbook.get_sample_data("grace_hopper.jpg") as handle, Image.open(handle) as im:
        hopper = np.asarray(im.convert("RGB"))
    return [Portrait("astronaut", data.astronaut()), Portrait("grace_hopper", hopper)]


def load_portraits(folder: str | Path) -> list[Portrait]:
    """A user's own subjects: every image file in ``folder`` is one subject, named after the file.

    Parameters
    ----------
    folder : str or Path
        Holds portraits in any format :func:`~acquisition.imageio.read_image` reads (JPEG, PNG, TIFF, HEIC,
        WebP, AVIF; hidden files ignored); ``anna.jpg`` becomes subject ``anna``.

    Returns
    -------
    list of Portrait
        Sorted by name, so ``--subjects N`` takes the same N subjects every time.

    Raises
    ------
    AcquisitionError
        When the folder is missing or holds no image, when a file name is not a usable subject name, when two
        files give the same name, or when an image cannot be read; the message names every such file, each on
        its own line with its fix, so one run shows them all.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AcquisitionError("no such folder of portraits", path=folder,
                               hint="give a folder with one portrait image per subject")
    files = sorted(p for p in folder.iterdir()  # a broken link, a FIFO or a folder named like a photo is reported
                   if not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise AcquisitionError("this folder holds no portrait image", path=folder,
                               hint=f"put one image per subject in it ({', '.join(IMAGE_EXTENSIONS)})")
    portraits: dict[str, Portrait] = {}
    problems: list[AcquisitionError] = []  # every unusable portrait, so one run names them all
    for path in files:
        try:
            name = check_name(path.stem, what="subject name")
        except ValueError as exc:
            problems.append(AcquisitionError(f"the file name is not a usable subject name: {exc}", path=path,
                                             hint="rename the file"))
            continue
        if name in portraits:
            problems.append(AcquisitionError(f"two portraits would both be subject {name!r}", path=path,
                                             hint="keep one image per subject name"))
            continue
        try:
            portraits[name] = Portrait(name, read_image(path))
        except AcquisitionError as exc:
            problems.append(exc)
        except ValueError as exc:
            problems.append(AcquisitionError(f"unusable portrait: {exc}", path=path,
                                             hint="use a colour photo of at least 32x32 pixels, or remove it"))
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise AcquisitionError(f"{len(problems)} of the {len(files)} portraits cannot be used:\n  "
                               + "\n  ".join(map(str, problems)), path=folder,
                               hint="fix or remove each of them, then run the command again")
    return [portraits[name] for name in sorted(portraits)]
