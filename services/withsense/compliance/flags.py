"""Image flags, set at indexing from the photo's own captions and user descriptions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from withsense.compliance.mentions import child_mentions


@dataclass(frozen=True)
class ImageFlags:
    """``minor``: the photo shows or is described as showing a child; such a photo never
    reaches a client in a restricted region. ``reasons``: one line per finding."""

    minor: bool = False
    reasons: tuple[str, ...] = ()


def flag_image(descriptions: Iterable[str]) -> ImageFlags:
    """Flag a photo ``minor`` if any of its descriptions mentions a child.

    Descriptions are numbered from 0 in the order given (as Flickr captions ``#0``..``#4``); the
    reasons name every description that mentions a child and every term it mentions, e.g.
    ``("description 2 mentions 'girl'",)``.
    """
    reasons: list[str] = []
    for index, text in enumerate(descriptions):
        for term in child_mentions(text or ""):
            reasons.append(f"description {index} mentions '{term}'")
    return ImageFlags(minor=bool(reasons), reasons=tuple(reasons))
