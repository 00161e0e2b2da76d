"""QuickXorHash (OneDrive's 160-bit content hash), standard library only.

Algorithm (od-docs code-snippets/quickxorhash.md): byte i of the content is
XORed into a 160-bit circular register at bit offset (i * 11) mod 160; the
register is emitted as 20 little-endian bytes and the content length, as a
64-bit little-endian integer, is XORed into the last 8 of them (bytes 12..19,
the "least significant bits" of the reversed block in the pseudo-code).
Base64 of the 20 bytes is the `quickXorHash` value; empty content hashes to
"AAAAAAAAAAAAAAAAAAAAAAAAAAA=".

Implementation: because gcd(11, 160) == 1 the bit offset only depends on
i mod 160, so the content is first folded into a 160-byte "residue vector"
(XOR of all 160-byte rows, done with big-int arithmetic, hundreds of MB/s)
and only the final 160 bytes are rotated into place.  `fold()` / `finish()`
are exposed so generated content (content.py) can be hashed algebraically.
"""

import base64

WIDTH_BITS = 160
SHIFT = 11
ROW = 160                      # bytes per residue row (period of the offsets)
ROW_BITS = ROW * 8
_MASK160 = (1 << WIDTH_BITS) - 1
_CHUNK = ROW * 6554            # ~1 MiB, a multiple of ROW

EMPTY_B64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="


def _fold_rows(buf):
    """XOR of all ROW-byte rows of buf (len multiple of ROW) as an int."""
    n = len(buf) // ROW
    if n == 0:
        return 0
    x = int.from_bytes(buf, "little")
    acc = 0
    while n > 1:
        if n & 1:
            n -= 1
            acc ^= x >> (ROW_BITS * n)
            x &= (1 << (ROW_BITS * n)) - 1
        half = n // 2
        bits = ROW_BITS * half
        x = (x >> bits) ^ (x & ((1 << bits) - 1))
        n = half
    return acc ^ x


def fold(data, start=0):
    """Residue vector (int, byte r at bits 8r..8r+7) of `data` placed at
    stream offset `start`."""
    mv = memoryview(data)
    total = len(mv)
    if total == 0:
        return 0
    off = start % ROW
    vec = 0
    pos = 0
    if off:
        head = min(ROW - off, total)
        vec ^= int.from_bytes(mv[:head], "little") << (8 * off)
        pos = head
    while total - pos >= ROW:
        take = min(_CHUNK, (total - pos) // ROW * ROW)
        vec ^= _fold_rows(mv[pos:pos + take])
        pos += take
    if pos < total:
        vec ^= int.from_bytes(mv[pos:], "little")
    return vec


_POS = [(r * SHIFT) % WIDTH_BITS for r in range(ROW)]


def finish(vec, length):
    """Turn a residue vector and the total length into the 20-byte digest."""
    reg = 0
    for r, b in enumerate(vec.to_bytes(ROW, "little")):
        if b:
            reg ^= b << _POS[r]
    reg = (reg & _MASK160) ^ (reg >> WIDTH_BITS)     # wrap bits 160..167 around
    out = bytearray(reg.to_bytes(20, "little"))
    for i, lb in enumerate((length & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")):
        out[12 + i] ^= lb
    return bytes(out)


def b64(digest):
    return base64.b64encode(digest).decode("ascii")


class QuickXorHash:
    """Incremental hasher: update(bytes)..., digest() / b64digest()."""

    def __init__(self, data=b""):
        self._vec = 0
        self._len = 0
        if data:
            self.update(data)

    def update(self, data):
        self._vec ^= fold(data, self._len)
        self._len += len(data)
        return self

    def digest(self):
        return finish(self._vec, self._len)

    def b64digest(self):
        return b64(self.digest())


def quickxorhash(data):
    """Base64 quickXorHash of a bytes-like object."""
    return QuickXorHash(data).b64digest()
