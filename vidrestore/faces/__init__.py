"""Faces, in data-flow order: detect (RetinaFace), track (Kalman), align (FFHQ template), parse (ParseNet mask),
temporal (blending across frames), paste (back into the frame; blur: the one Gaussian blur), stage (all of them)."""

from .face import Face

__all__ = ["Face"]
