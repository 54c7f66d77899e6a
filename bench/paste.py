"""Paste-back speed: batched torch paste (vidrestore.faces.paste.paste_faces) against a per-face OpenCV
implementation in the style of facexlib's FaceRestoreHelper.paste_faces_to_input_image, in the same run.

    python bench/paste.py [--device cpu|cuda] [--repeat 5] [--threads 1]

Prints ms per face for 1 and 3 faces at 640x480 and 1920x1080, with the box (use_parse=False) and the
parse mask (use_parse=True), and the ratio OpenCV / torch. "torch tensors" takes the frame and faces as
float tensors already on the device (the pipeline's case); "torch uint8" takes and returns numpy uint8
(upload and download included). "max diff" is the largest per-channel difference between the two uint8
results (facexlib's truncating blend makes ±1 common).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidrestore.faces.align import FFHQ_TEMPLATE_512, align_faces, paste_affine  # noqa: E402
from vidrestore.faces.paste import paste_faces  # noqa: E402


def cv2_paste(frame: np.ndarray, faces: np.ndarray, affines: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
    """facexlib-style paste with OpenCV, one face at a time, on the full frame (uint8 RGB in and out)."""
    h, w = frame.shape[:2]
    out: np.ndarray = frame
    for i, (face, m) in enumerate(zip(faces, affines)):
        inv = paste_affine(m)
        inv_face = cv2.warpAffine(face, inv, (w, h))
        if masks is None:
            inv_mask = cv2.warpAffine(np.ones(face.shape[:2], np.float32), inv, (w, h))
            erosion = cv2.erode(inv_mask, np.ones((2, 2), np.uint8))
            pasted = erosion[:, :, None] * inv_face
            w_edge = int(np.sum(erosion) ** 0.5) // 20
            center = cv2.erode(erosion, np.ones((2 * w_edge, 2 * w_edge), np.uint8))
            soft = cv2.GaussianBlur(center, (2 * w_edge + 1, 2 * w_edge + 1), 0)[:, :, None]
        else:
            soft = cv2.warpAffine(masks[i], inv, (w, h), flags=cv2.INTER_LINEAR)[:, :, None]
            pasted = inv_face
        out = soft * pasted + (1 - soft) * out
    return out.astype(np.uint8)


def scene(width: int, height: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A noise frame with ``n`` faces side by side (crop footprint ~ height/3.5), slightly rotated."""
    frame = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    scale = height / 3.5 / 512
    lms = []
    for i in range(n):
        cx = width * (i + 1) / (n + 1)
        a = np.deg2rad(10 * (i - 1))
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        lms.append((FFHQ_TEMPLATE_512 - 256) @ rot.T * scale + [cx, height / 2])
    crops, affines = align_faces(frame, lms)
    return frame, 255 - crops, affines


def timed(fn: Callable[[], object], repeat: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch and OpenCV threads (default: library defaults)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rng = np.random.default_rng(0)
    mask512 = np.zeros((512, 512), np.float64)
    mask512[10:-10, 10:-10] = 1.0
    mask512 = cv2.GaussianBlur(cv2.GaussianBlur(mask512, (101, 101), 11), (101, 101), 11)

    print(f"device {device}, torch threads {torch.get_num_threads()}, OpenCV threads {cv2.getNumThreads()}, "
          f"median of {args.repeat}")
    head = f"{'frame':>10} {'faces':>5} {'mask':>5} | {'OpenCV ms/face':>14} {'torch tensors':>13} {'torch uint8':>11} | {'ratio t':>7} {'ratio u8':>8} | {'max diff':>8}"
    print(head)
    print("-" * len(head))
    for w, h in ((640, 480), (1920, 1080)):
        for n in (1, 3):
            frame, faces, affines = scene(w, h, n, rng)
            frame_t = torch.from_numpy(frame).permute(2, 0, 1).float().to(device)
            faces_t = torch.from_numpy(faces).permute(0, 3, 1, 2).float().to(device)
            for kind in ("box", "parse"):
                masks = None if kind == "box" else np.repeat(mask512[None], n, axis=0)
                masks_t = None if masks is None else torch.from_numpy(masks).to(device)
                t_cv = timed(lambda: cv2_paste(frame, faces, affines, masks), args.repeat, sync)
                t_tt = timed(lambda: paste_faces(frame_t, faces_t, affines, masks_t, device), args.repeat, sync)
                t_u8 = timed(lambda: paste_faces(frame, faces, affines, masks_t, device), args.repeat, sync)
                diff = np.abs(
                    cv2_paste(frame, faces, affines, masks).astype(int) - paste_faces(frame, faces, affines, masks_t, device)
                ).max()
                print(
                    f"{w}x{h:<5} {n:>5} {kind:>5} | {1e3 * t_cv / n:>14.2f} {1e3 * t_tt / n:>13.2f} {1e3 * t_u8 / n:>11.2f}"
                    f" | {t_cv / t_tt:>6.2f}x {t_cv / t_u8:>7.2f}x | {diff:>8d}"
                )


if __name__ == "__main__":
    main()
