"""Image bytes for the DAM: real photographs where the catalog ships them, small generated PNGs otherwise.

Standard library only. A generated placeholder depends on nothing but the image path, so its checksum and pixel
size are as stable as a real file's and a connector can verify a download against the DAM's metadata.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

PLACEHOLDER_SIZE = (64, 80)  # portrait, like the catalog's product shots


@dataclass(frozen=True)
class ImageBlob:
    data: bytes
    content_type: str
    width: int
    height: int

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def placeholder_png(seed: str, size: tuple[int, int] = PLACEHOLDER_SIZE) -> ImageBlob:
    """A deterministic RGB PNG: two colours from the seed's hash in diagonal stripes, so images differ visibly."""
    width, height = size
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    fg, bg = digest[0:3], digest[3:6]
    stripe = 4 + digest[6] % 8
    period = 2 * stripe
    # one long scanline of stripes; row y is the slice starting y pixels in (the stripes run diagonally)
    line = b"".join(fg if (x // stripe) % 2 else bg for x in range(width + period))
    rows = bytearray()
    for y in range(height):
        offset = (y % period) * 3
        rows += b"\x00" + line[offset : offset + width * 3]  # filter type "None" for every scanline
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _png_chunk(b"IEND", b"")
    )
    return ImageBlob(data, "image/png", width, height)


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's first start-of-frame marker (baseline or progressive)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG (no SOI marker)")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise ValueError("JPEG without a start-of-frame marker")


def png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def photograph(data: bytes) -> ImageBlob:
    """An image file from disk: JPEG or PNG, with its real pixel size."""
    if data[:2] == b"\xff\xd8":
        return ImageBlob(data, "image/jpeg", *jpeg_size(data))
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ImageBlob(data, "image/png", *png_size(data))
    raise ValueError("unsupported image format (JPEG and PNG only)")
