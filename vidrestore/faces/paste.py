"""Paste-back of restored faces: :func:`paste_faces` inverse-warps every face of a frame at once in torch on
the caller's device, each on its own region of interest (all of one size, so the faces batch), and blends it with a
soft mask, reproducing facexlib's ``paste_faces_to_input_image`` (use_parse True and False) on OpenCV 5.
What it takes to match within one level (see the helpers): OpenCV 5's float32 coordinate arithmetic and
lerp-form bilinear for the face and box mask, the legacy 1/32 px fixed-point coordinates for the
float64 parse mask, OpenCV's even-kernel erosion anchor, its small Gaussian tables, and facexlib's
float32/float64 blend with a final truncation. The remaining ±1 values come from the summation order
of the Gaussian blur (cv2: row taps in sequence, column taps paired, both with FMA) and the truncation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .align import invert_affine, paste_affine
from .blur import gaussian_blur

__all__ = ["paste_faces", "antialias_crop"]


def _float_dtype(device: torch.device) -> torch.dtype:
    """float64 on the CPU (the parse-mask warp and its coordinates reproduce facexlib's float64 paste bit for bit),
    float32 on a GPU: float64 runs at 1/32-1/64 of the float32 rate on most GPUs (and not at all on MPS), and
    the float32 paste stays within one level of it but for a few pixels at the parse mask's edge
    (tests/test_align.py)."""
    return torch.float64 if device.type == "cpu" else torch.float32


def _roi_boxes(samplers: np.ndarray, hw: tuple[int, int], crop: int, margin: Sequence[int]) -> np.ndarray:
    """Per face (x0, y0, x1, y1) image boxes (exclusive end) holding the warped crop plus ``margin`` px.

    ``samplers`` are image -> crop matrices; the bilinear footprint of the crop reaches one pixel past it.
    """
    h, w = hw
    boxes = np.empty((len(samplers), 4), dtype=np.int64)
    corners = np.array([[-1, -1, 1], [crop, -1, 1], [-1, crop, 1], [crop, crop, 1]], dtype=np.float64)
    for i, s in enumerate(samplers):
        p = corners @ invert_affine(s).T  # crop corners in image pixels
        mg = margin[i]
        x0 = math.floor(p[:, 0].min()) - mg
        y0 = math.floor(p[:, 1].min()) - mg
        x1 = math.ceil(p[:, 0].max()) + mg + 1
        y1 = math.ceil(p[:, 1].max()) + mg + 1
        boxes[i] = (max(x0, 0), max(y0, 0), min(max(x1, 0), w), min(max(y1, 0), h))
    return boxes


def _common_origins(boxes: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, int, int]:
    """One ROI size for all faces (the largest box) and each face's origin, kept inside the image."""
    h, w = hw
    rw = int(max(1, (boxes[:, 2] - boxes[:, 0]).max()))
    rh = int(max(1, (boxes[:, 3] - boxes[:, 1]).max()))
    rw, rh = min(rw, w), min(rh, h)
    ox = np.minimum(boxes[:, 0], w - rw)
    oy = np.minimum(boxes[:, 1], h - rh)
    return np.stack([ox, oy], axis=1), rh, rw


def _source_coords(
    samplers: np.ndarray,
    origins: np.ndarray,
    rh: int,
    rw: int,
    device: torch.device,
    fixed_point: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source (crop) pixel coordinates (N, rh, rw) of every pixel of each face's ROI.

    Image pixel (x, y) samples the crop at ``M @ (x, y, 1)`` with integer pixel centres, as
    ``cv2.warpAffine``. Without ``fixed_point`` the arithmetic is OpenCV 5's float path for uint8/float32
    images (M rounded to float32, ``t = f32(f32(M01*y) + M02)``, ``x' = fma(M00, x, t)`` rounded once to
    float32; emulated in float64 where the device has it): it reproduces cv2's mask warp bit for bit.
    With ``fixed_point`` the coordinates are quantised to 1/32 px as OpenCV's legacy path does for float64
    images (the path facexlib's parse mask takes):
    ``X = (rint((M01*y + M02)*1024) + 16 + rint(M00*x*1024)) >> 5``, coordinate ``X / 32``.
    Returned in float64 (float32 on devices without it).
    """
    cdt = _float_dtype(device)
    m = torch.as_tensor(samplers, dtype=torch.float64 if fixed_point else torch.float32).to(device, cdt)
    o = torch.as_tensor(origins, dtype=cdt, device=device)  # (N, 2)
    xs = torch.arange(rw, dtype=cdt, device=device)[None, :] + o[:, 0:1]  # (N, rw)
    ys = torch.arange(rh, dtype=cdt, device=device)[None, :] + o[:, 1:2]  # (N, rh)

    def f32(t: torch.Tensor) -> torch.Tensor:
        return t.float().to(cdt)

    def coord(row: torch.Tensor) -> torch.Tensor:
        if fixed_point:
            a = torch.round((row[:, 1:2] * ys + row[:, 2:3]) * 1024.0) + 16.0  # (N, rh)
            b = torch.round(row[:, 0:1] * xs * 1024.0)  # (N, rw)
            return torch.floor((a[:, :, None] + b[:, None, :]) / 32.0) / 32.0
        t = f32(f32(row[:, 1:2] * ys) + row[:, 2:3])  # (N, rh)
        return f32(row[:, 0:1, None] * xs[:, None, :] + t[:, :, None])

    return coord(m[:, 0]), coord(m[:, 1])


def _grid(sx: torch.Tensor, sy: torch.Tensor, src_size: int, dtype: torch.dtype) -> torch.Tensor:
    """Pixel coordinates -> grid_sample grid (N, rh, rw, 2) for ``align_corners=True``."""
    scale = 2.0 / (src_size - 1)
    return torch.stack([sx * scale - 1.0, sy * scale - 1.0], dim=-1).to(dtype)


def _axis(c: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integer cell, fraction (float32) and in-range flags of both neighbours along one axis."""
    c = c.float()
    i = torch.floor(c)
    a = c - i
    ok0 = (i >= 0) & (i < n)
    ok1 = (i >= -1) & (i < n - 1)
    return i.long(), a, ok0, ok1


def _warp_lerp(src: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    """Bilinear inverse warp with a 0 border in OpenCV 5's float form, (N, C, rh, rw) float32.

    ``v0 = p00 + ax*(p01 - p00)``, ``v1 = p10 + ax*(p11 - p10)``, ``v = v0 + ay*(v1 - v0)`` in float32
    (grid_sample's weighted sum differs in the last bits, which facexlib's truncating blend turns into
    off-by-ones); a neighbour outside the source counts as 0, as cv2's BORDER_CONSTANT.
    """
    n, c, hs, ws = src.shape
    ix, ax, okx0, okx1 = _axis(sx, ws)
    iy, ay, oky0, oky1 = _axis(sy, hs)
    flat = src.float().reshape(n, c, hs * ws)
    rh, rw = sx.shape[1:]

    def corner(dy: int, dx: int, ok: torch.Tensor) -> torch.Tensor:
        idx = ((iy + dy).clamp(0, hs - 1) * ws + (ix + dx).clamp(0, ws - 1)).reshape(n, 1, rh * rw)
        v = torch.gather(flat, 2, idx.expand(n, c, rh * rw)).reshape(n, c, rh, rw)
        return v * ok[:, None].to(v.dtype)

    p00 = corner(0, 0, oky0 & okx0)
    p01 = corner(0, 1, oky0 & okx1)
    p10 = corner(1, 0, oky1 & okx0)
    p11 = corner(1, 1, oky1 & okx1)
    axc, ayc = ax[:, None], ay[:, None]
    v0 = p00 + axc * (p01 - p00)
    v1 = p10 + axc * (p11 - p10)
    return v0 + ayc * (v1 - v0)


def _warp_ones(sx: torch.Tensor, sy: torch.Tensor, src_size: int) -> torch.Tensor:
    """:func:`_warp_lerp` of a (src_size x src_size) image of ones, without reading it: (N, 1, rh, rw)."""
    _, ax, okx0, okx1 = _axis(sx, src_size)
    _, ay, oky0, oky1 = _axis(sy, src_size)
    x0, x1 = okx0.float(), okx1.float()
    fx = x0 + ax * (x1 - x0)
    r0 = oky0.float() * fx
    r1 = oky1.float() * fx
    return (r0 + ay * (r1 - r0))[:, None]


def _warp(src: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear inverse warp with grid_sample, constant 0 border (used for the float64 parse mask)."""
    return F.grid_sample(src, grid.to(src.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)


def _window_min(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Min over windows ``[i, i + k)`` along ``dim`` (output shorter by k - 1), in O(log k) passes.

    Doubling: mins over windows of 1, 2, 4, ... p <= k, then the two overlapping p-windows covering k.
    """
    p = 1
    m = x
    while 2 * p <= k:
        n = m.shape[dim] - p
        m = torch.minimum(m.narrow(dim, 0, n), m.narrow(dim, p, n))
        p *= 2
    n = x.shape[dim] - k + 1
    return torch.minimum(m.narrow(dim, 0, n), m.narrow(dim, k - p, n))


def _erode(x: torch.Tensor, k: int) -> torch.Tensor:
    """``cv2.erode`` with a k x k box on (N, 1, H, W): anchor k//2, pixels outside the image ignored.

    Separable (rows, then columns). ``k == 0`` is OpenCV's empty-kernel default, a 3 x 3 box.
    """
    if k == 0:
        k = 3
    if k == 1:
        return x
    lo, hi = k // 2, k - 1 - k // 2
    y = _window_min(F.pad(x, (lo, hi, 0, 0), value=math.inf), k, 3)
    return _window_min(F.pad(y, (0, 0, lo, hi), value=math.inf), k, 2)


def _box_soft_masks(inv_mask: torch.Tensor, upscale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """facexlib's use_parse=False mask, on each face's ROI.

    Returns ``(inv_mask_erosion, inv_soft_mask)``, both (N, 1, rh, rw) float32: the warped square of ones
    eroded by 2*up; ``w_edge = int(sqrt(area)) // 20`` per face; the soft mask is that eroded again by
    2*w_edge and Gaussian-blurred with a (2*w_edge+1) kernel. Faces are grouped by w_edge.
    """
    erosion = _erode(inv_mask, 2 * upscale)
    area = erosion.sum(dim=(1, 2, 3), dtype=torch.float64).cpu().numpy()
    w_edges = [int(float(np.float32(a)) ** 0.5) // 20 for a in area]
    soft = torch.empty_like(erosion)
    for w in sorted(set(w_edges)):
        sel = torch.tensor([i for i, wi in enumerate(w_edges) if wi == w], device=inv_mask.device)
        center = _erode(erosion.index_select(0, sel), 2 * w)
        soft[sel] = gaussian_blur(center, 2 * w + 1)
    return erosion, soft


def _as_chw_batch(faces: np.ndarray | torch.Tensor, device: torch.device) -> tuple[torch.Tensor, bool]:
    """Faces as (N, 3, S, S) float32 on ``device``, and whether they were integer (uint8) images."""
    if isinstance(faces, torch.Tensor):
        t = faces.to(device)
        if t.ndim == 3:
            t = t[None]
        integer = not t.is_floating_point()
        if t.shape[-1] == 3 and t.shape[1] != 3:
            t = t.permute(0, 3, 1, 2)
        return t.float(), integer
    a = np.asarray(faces)
    if a.ndim == 3:
        a = a[None]
    t = torch.from_numpy(np.ascontiguousarray(a)).to(device)
    integer = not np.issubdtype(a.dtype, np.floating)
    if t.shape[-1] == 3:
        t = t.permute(0, 3, 1, 2)
    return t.float(), integer


def paste_faces(
    frame: torch.Tensor | np.ndarray,
    faces: torch.Tensor | np.ndarray,
    affines: np.ndarray | torch.Tensor,
    masks: torch.Tensor | np.ndarray | None = None,
    device: torch.device | str | None = None,
    *,
    upscale: int = 1,
) -> torch.Tensor | np.ndarray:
    """Paste restored faces back into a frame, all faces at once on ``device``.

    ``frame``: a (3, H, W) float tensor or an (H, W, 3) uint8 RGB array. ``faces``: (N, S, S, 3) uint8 RGB
    or an (N, 3, S, S) float tensor, on the same value scale as the frame (uint8 values are used as they
    are, never rescaled). ``affines``: (N, 2, 3) image -> crop, as returned by :func:`align_face` (for the
    frame *before* upscaling). ``masks``: (N, S, S) parse masks in [0, 1] (the ParseNet mask after its
    blurs, border zeroing and /255), or None for facexlib's feathered box mask. ``upscale``: integer
    factor of ``frame`` over the frame the faces were aligned on.

    Reproduces ``FaceRestoreHelper.paste_faces_to_input_image``: the face is warped back bilinearly
    (rounded when faces are uint8, as OpenCV's uint8 warp is), the mask as described above, faces are
    blended one after another (``soft * face + (1 - soft) * frame``) and a uint8 frame is truncated at the
    end, as facexlib's ``astype(uint8)``. Returns the same type as ``frame`` (a new array or tensor; a
    tensor result is on ``device``).
    """
    if device is None:
        device = frame.device if isinstance(frame, torch.Tensor) else torch.device("cpu")
    device = torch.device(device)
    upscale = int(upscale)
    if upscale < 1:
        raise ValueError(f"upscale must be a positive integer, got {upscale}")

    # facexlib blends in float64 with a parse mask and in float32 without; the truncation makes it matter.
    wdt = _float_dtype(device) if masks is not None else torch.float32
    result, (h, w) = _copy_frame(frame, device)
    aff = affines.detach().cpu().numpy() if isinstance(affines, torch.Tensor) else np.asarray(affines)
    aff = aff.astype(np.float64).reshape(-1, 2, 3)
    n = len(aff)
    if n == 0:
        return result
    face_t, integer = _as_chw_batch(faces, device)
    if face_t.shape[0] != n or face_t.shape[1] != 3 or face_t.shape[2] != face_t.shape[3]:
        raise ValueError(f"faces {tuple(face_t.shape)} do not match {n} affines")
    size = int(face_t.shape[-1])
    # facexlib hands cv2.warpAffine the crop -> image matrix, which OpenCV inverts again: do the same.
    samplers = np.stack([invert_affine(paste_affine(a, upscale)) for a in aff])
    if masks is None:
        scale = np.array([abs(np.linalg.det(invert_affine(s)[:, :2])) for s in samplers])
        # the blur reaches w_edge past the eroded mask; w_edge <= sqrt(warped area) / 20
        margin = [int(math.sqrt(size * size * sc) // 20) + 2 * upscale + 4 for sc in scale]
    else:
        margin = [2] * n
    boxes = _roi_boxes(samplers, (h, w), size, margin)
    origins, rh, rw = _common_origins(boxes, (h, w))
    sx, sy = _source_coords(samplers, origins, rh, rw, device, fixed_point=False)
    inv_face = _warp_lerp(face_t, sx, sy)
    if integer:
        inv_face = torch.round(inv_face).clamp_(0, 255)
    if masks is None:
        erosion, soft = _box_soft_masks(_warp_ones(sx, sy, size), upscale)
        pasted = erosion * inv_face
    else:
        mdt = _float_dtype(device)
        m = masks if isinstance(masks, torch.Tensor) else torch.from_numpy(np.asarray(masks))
        m = m.to(device=device, dtype=mdt).reshape(n, 1, size, size)
        mx, my = _source_coords(samplers, origins, rh, rw, device, fixed_point=True)
        soft = _warp(m, _grid(mx, my, size, mdt)).to(wdt)
        pasted = inv_face.to(wdt)

    return _blend(result, origins, (rh, rw), soft, pasted, wdt, device)


def antialias_crop(crop: np.ndarray, affine: np.ndarray, k: float, upscale: int = 1) -> np.ndarray:
    """``crop`` (uint8 (S, S, 3)) low-passed for a paste that shrinks it ``s`` times (``affine``: frame -> crop, as
    :func:`paste_faces` takes it; ``s`` = its scale / ``upscale``): a Gaussian of sigma ``k`` · sqrt(s² − 1) crop px
    (``k`` = 0.5 is the usual anti-alias; 0, or no shrink, returns ``crop`` itself). facexlib's paste samples the
    512-px crop bilinearly at the face's size with no low-pass, so detail finer than the frame's pixels aliases,
    and a texture that moves a fraction of a pixel from frame to frame shimmers."""
    s = math.sqrt(abs(float(np.linalg.det(np.asarray(affine, np.float64)[:, :2])))) / upscale
    sigma = k * math.sqrt(max(0.0, s * s - 1.0))
    return crop if sigma < 0.05 else cv2.GaussianBlur(crop, (0, 0), sigma)


def _copy_frame(frame: torch.Tensor | np.ndarray, device: torch.device) -> tuple[torch.Tensor | np.ndarray, tuple[int, int]]:
    """A copy of the frame to paste into (a tensor on ``device``, or an array), and its (H, W)."""
    if isinstance(frame, torch.Tensor):
        if frame.ndim != 3 or frame.shape[0] != 3:
            raise ValueError(f"expected a (3, H, W) tensor frame, got {tuple(frame.shape)}")
        return frame.to(device=device, copy=True), tuple(frame.shape[1:])
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) frame, got {arr.shape}")
    return arr.copy(), arr.shape[:2]


def _blend(
    result: torch.Tensor | np.ndarray,
    origins: np.ndarray,
    roi: tuple[int, int],
    soft: torch.Tensor,
    pasted: torch.Tensor,
    wdt: torch.dtype,
    device: torch.device,
) -> torch.Tensor | np.ndarray:
    """Blend every face into ``result`` (in place) and return it.

    Only the union of the faces' regions is converted to float, blended and written back."""
    rh, rw = roi
    ux0, uy0 = int(origins[:, 0].min()), int(origins[:, 1].min())
    ux1, uy1 = int(origins[:, 0].max()) + rw, int(origins[:, 1].max()) + rh
    is_tensor = isinstance(result, torch.Tensor)
    if is_tensor:
        work = result[:, uy0:uy1, ux0:ux1].to(wdt)
    else:
        region = np.ascontiguousarray(result[uy0:uy1, ux0:ux1])
        work = torch.from_numpy(region).to(device).permute(2, 0, 1).to(wdt)
    for i in range(len(origins)):  # later faces overwrite earlier ones, as in facexlib
        ox, oy = int(origins[i, 0]) - ux0, int(origins[i, 1]) - uy0
        cut = work[:, oy : oy + rh, ox : ox + rw]
        work[:, oy : oy + rh, ox : ox + rw] = soft[i] * pasted[i] + (1 - soft[i]) * cut

    if is_tensor:
        if not result.is_floating_point():  # integer frames truncate, as facexlib's astype(uint8)
            work = work.floor_().clamp_(0, 255)
        result[:, uy0:uy1, ux0:ux1] = work.to(result.dtype)
        return result
    result[uy0:uy1, ux0:ux1] = work.clamp_(0, 255).floor_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return result
