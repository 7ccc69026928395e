"""Thumbnails: small WebP previews made once at indexing, kept in a content-addressed store.

The gateway serves photos to the web page only through these: it never keeps or reads the
photographer's original file after indexing. See `store.py` for swapping in object storage.
"""

from withsense.thumbnails.render import THUMBNAIL_MEDIA_TYPE, THUMBNAIL_PX, make_thumbnail
from withsense.thumbnails.store import FileThumbnailStore, ThumbnailStore, open_thumbnail_store

__all__ = [
    "THUMBNAIL_MEDIA_TYPE",
    "THUMBNAIL_PX",
    "FileThumbnailStore",
    "ThumbnailStore",
    "make_thumbnail",
    "open_thumbnail_store",
]
