"""Faces: detection (RetinaFace, ParseNet), tracking (Kalman) and alignment (FFHQ template, paste-back)."""

from .face import Face

__all__ = ["Face"]
