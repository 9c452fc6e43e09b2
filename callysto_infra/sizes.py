"""Byte counts for people: the one formatter, in binary units the way zfs prints them (1.5G,
512K), so quotas, free space and transfers all read alike."""

from __future__ import annotations

# The hub refuses to start a student's server when the home has less free space than this (the
# 507 page), so a pool with less cannot serve anyone. The hub gets it from the inventory.
MIN_FREE_BYTES = 512 * 1024


def human_size(value: float | None) -> str:
    """VALUE bytes as zfs prints them (1.5G, 512K, 100B); None (no quota) is 'none'."""
    if value is None:
        return "none"
    size = float(value)
    for unit in ("B", "K", "M", "G", "T"):
        if abs(size) < 1024 or unit == "T":
            if unit == "B":
                return f"{int(size)}B"
            return f"{size:.2f}".rstrip("0").rstrip(".") + unit
        size /= 1024
    raise AssertionError("unreachable")
