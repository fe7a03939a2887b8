"""Rekognition Custom Labels on the twin (filled in by the next commits)."""

from __future__ import annotations


class CustomLabels:
    def __init__(self, twin):
        self.twin = twin

    def state(self) -> dict:
        return {}

    def shutdown(self) -> None:
        pass
