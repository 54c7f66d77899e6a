"""Faces, in data-flow order: detect (RetinaFace; prefetch: detection ahead in a thread), cut (scene cuts), track
(association; motion: the Kalman model and innovation gate; smooth: the fixed-lag RTS smoother), align (FFHQ
template), microbatch (fixed-size restorer calls), temporal (blending across frames), parse (ParseNet mask), paste
(back into the frame; blur: the one Gaussian blur), report (jitter and flicker figures), stage (all of them)."""

from .face import Face

__all__ = ["Face"]
