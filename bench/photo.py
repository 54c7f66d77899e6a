"""Per-photo time of ``restore_image`` beside the time of its I/O alone (read + write of the same file).

The restorer is the marker fake (the cost of GFP-GAN itself is per face and measured in bench/restorer.py), the
detector the trained RetinaFace MobileNet-0.25 in ../shared/reference/real/, parse masks off. Photos are made
here from skimage's astronaut: a 512 portrait (JPEG), a 2000x1400 group scan (TIFF, 3 faces), a 6000x4000
600-dpi scan (TIFF, 3 faces; faces searched on a 2048 copy), and a 16-bit 2000x1400 PNG.

    python bench/photo.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def scan(astronaut: np.ndarray, width: int, height: int) -> np.ndarray:
    canvas = np.full((height, width, 3), 200, np.uint8)
    k = width / 2000
    for scale, (x, y) in ((1.6, (60, 80)), (0.8, (1100, 150)), (0.4, (1300, 900))):
        m = np.array([[scale * k, 0, x * k], [0, scale * k, y * k]], np.float64)
        cv2.warpAffine(astronaut, m, (width, height), dst=canvas, flags=cv2.INTER_AREA,
                       borderMode=cv2.BORDER_TRANSPARENT)
    return canvas


def make_photos(folder: Path) -> list[Path]:
    import skimage.data

    a = skimage.data.astronaut()
    out = [folder / "portrait.jpg", folder / "group.tif", folder / "scan600dpi.tif", folder / "group16.png"]
    Image.fromarray(a).save(out[0], quality=90)
    Image.fromarray(scan(a, 2000, 1400)).save(out[1], compression="tiff_lzw", dpi=(300, 300))
    Image.fromarray(scan(a, 6000, 4000)).save(out[2], compression="tiff_lzw", dpi=(600, 600))
    cv2.imwrite(str(out[3]), scan(a, 2000, 1400)[..., ::-1].astype(np.uint16) * 257)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    from vidrestore.faces.detect import load_detector
    from vidrestore.media.image import read_image, write_image
    from vidrestore.photo import restore_image
    from vidrestore.testing import MarkerRestorer

    detector = load_detector(REF / "real" / "retinaface_mobilenet0.25_trained.pth")
    with tempfile.TemporaryDirectory() as tmp:
        photos = make_photos(Path(tmp))
        print(f"{'photo':<18} {'size':>10} {'faces':>5} {'restore s':>10} {'I/O s':>7}")
        for path in photos:
            best, io_best, faces = float("inf"), float("inf"), 0
            dst = path.with_name(f"{path.stem}_out{path.suffix}")
            for _ in range(args.repeat):
                t = time.perf_counter()
                stats = restore_image(path, dst, restorer=MarkerRestorer(), detector=detector, parse=False,
                                      overwrite=True)
                best = min(best, time.perf_counter() - t)
                faces = stats.faces
                t = time.perf_counter()
                write_image(dst, read_image(path))
                io_best = min(io_best, time.perf_counter() - t)
            w, h = stats.report["width"], stats.report["height"]
            print(f"{path.name:<18} {f'{w}x{h}':>10} {faces:>5} {best:>10.2f} {io_best:>7.2f}")


if __name__ == "__main__":
    main()
