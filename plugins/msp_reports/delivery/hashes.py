"""The content hashes the archives report, so an interrupted upload is settled by comparing.

SharePoint and OneDrive for Business give only ``quickXorHash`` (``file.hashes``); Drive gives
``md5Checksum``. QuickXorHash: a 160-bit cell; byte ``i`` is XORed in at bit ``(11 * i) % 160``
(wrapping around), then the length as a little-endian 64-bit integer is XORed into the last
8 of the 20 bytes; the result is base64. Since 11 and 160 are coprime, all bytes at the same
index modulo 160 land at the same bit, so they are XORed together first (numpy), which keeps a
large PDF fast.
"""

from __future__ import annotations

import base64
import hashlib

import numpy as np

WIDTH = 160
SHIFT = 11


def quick_xor_hash(data: bytes) -> str:
    arr = np.frombuffer(data, dtype=np.uint8)
    cell = 0
    mask = (1 << WIDTH) - 1
    for k in range(min(WIDTH, len(arr))):
        folded = int(np.bitwise_xor.reduce(arr[k::WIDTH]))
        if not folded:
            continue
        bit = (SHIFT * k) % WIDTH
        cell ^= ((folded << bit) | (folded >> (WIDTH - bit))) & mask
    digest = bytearray(cell.to_bytes(WIDTH // 8, "little"))
    for i, b in enumerate(len(data).to_bytes(8, "little")):
        digest[WIDTH // 8 - 8 + i] ^= b
    return base64.b64encode(bytes(digest)).decode()


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
