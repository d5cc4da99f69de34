"""The sha256 and the size of a dump as its bytes pass, on the way into storage and back out."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

PROGRESS_EVERY_S = 1.0
Told = Callable[[int], None]
"""Told the count of bytes so far (or seconds waited), about once a second."""


class Digest:
    def __init__(self, told: Told):
        self.told = told
        self.hash = hashlib.sha256()
        self.size = 0
        self.last_told = 0.0  # the first bytes are told: a cancel is seen from the start

    def add(self, data: bytes) -> bytes:
        """Count and hash ``data``, telling the size so far at most once a second; returns it."""
        self.hash.update(data)
        self.size += len(data)
        if time.monotonic() - self.last_told >= PROGRESS_EVERY_S:
            self.last_told = time.monotonic()
            self.told(self.size)
        return data

    @property
    def sha256(self) -> str:
        return self.hash.hexdigest()
