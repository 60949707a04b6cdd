"""Decoded frame images kept in memory while a training loop revisits them (pose crops, ReID crops)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from crowdbench.datasets.model import Frame


class ImageCache:
    """``index -> image`` of ``frames``, least recently used first out (synthetic frames render on demand; real
    ones are JPEGs)."""

    def __init__(self, frames: Sequence[Frame], capacity: int = 512) -> None:
        self.frames, self.capacity = frames, capacity
        self._images: OrderedDict[int, np.ndarray] = OrderedDict()

    def __call__(self, index: int) -> np.ndarray:
        if index in self._images:
            self._images.move_to_end(index)
            return self._images[index]
        image = self.frames[index].load_image()
        self._images[index] = image
        if len(self._images) > self.capacity:
            self._images.popitem(last=False)
        return image
