"""File content sources for the fake drive.

Two immutable kinds share one interface (size, read(offset, n), iter_range,
quickxorhash(), to_bytes()):

* BytesContent     - real bytes held in memory (seeded text, small uploads).
* FileContent      - bytes in an anonymous temporary file (large uploads),
  read with os.pread so concurrent downloads need no lock.
* GeneratedContent - deterministic pseudo-random bytes defined by (size, seed),
  produced on demand so a 300 MiB file costs ~40 KiB of memory.

Generated layout: blocks of BLOCK bytes (a multiple of 160); block k is
stamp(seed, k) (16 bytes) followed by base(seed)[16:].  Every block is thus
distinct (an off-by-a-block read is detected) while slicing stays cheap and
the QuickXorHash can be computed without producing the bytes: with BLOCK a
multiple of 160 every block folds onto the same residues, so the hash is
fold(XOR of all full blocks) ^ fold(tail).
"""

import hashlib
import os
import threading

from . import qxhash

BLOCK = 160 * 256              # 40960 bytes
STAMP = 16
_base_cache = {}
_base_lock = threading.Lock()


def _base(seed, need=BLOCK):
    """At least `need` bytes (<= BLOCK) of the seed's base block.  SHAKE
    output is prefix-consistent, so small files only pay for what they use."""
    with _base_lock:
        b = _base_cache.get(seed)
        if b is None or len(b) < need:
            if len(_base_cache) > 4096:
                _base_cache.clear()
            b = hashlib.shake_256(b"fakegraph-content:%d" % seed).digest(max(need, 256))
            _base_cache[seed] = b
        return b


def _stamp(seed, k):
    return hashlib.blake2b(b"%d:%d" % (seed, k), digest_size=STAMP).digest()


class _Content:
    size = 0

    def read(self, offset, n):
        raise NotImplementedError

    def iter_range(self, start, end, chunk=1 << 20):
        """Yield the bytes [start, end) in chunks."""
        pos = start
        while pos < end:
            n = min(chunk, end - pos)
            yield self.read(pos, n)
            pos += n

    def to_bytes(self):
        return self.read(0, self.size)

    def quickxorhash(self):
        h = getattr(self, "_qx", None)
        if h is None:
            h = self._compute_qx()
            self._qx = h
        return h

    def _compute_qx(self):
        vec = 0
        pos = 0
        for part in self.iter_range(0, self.size):
            vec ^= qxhash.fold(part, pos)
            pos += len(part)
        return qxhash.b64(qxhash.finish(vec, self.size))


class BytesContent(_Content):
    __slots__ = ("data", "size", "_qx")

    def __init__(self, data, qx=None):
        self.data = bytes(data)
        self.size = len(self.data)
        self._qx = qx

    def read(self, offset, n):
        return self.data[offset:offset + n]

    def to_bytes(self):
        return self.data

    def describe(self):
        return {"kind": "bytes", "size": self.size}


class FileContent(_Content):
    """Immutable content backed by an (anonymous) temporary file object that
    this object owns: the file is closed when the content is collected.
    `qx` is the precomputed quickXorHash (uploads hash while receiving)."""
    __slots__ = ("_file", "size", "_qx")

    def __init__(self, fileobj, size, qx=None):
        self._file = fileobj
        self.size = int(size)
        self._qx = qx

    def read(self, offset, n):
        end = min(self.size, offset + n)
        if offset >= end:
            return b""
        out = []
        fd = self._file.fileno()
        while offset < end:
            part = os.pread(fd, end - offset, offset)
            if not part:
                break
            out.append(part)
            offset += len(part)
        return b"".join(out)

    def describe(self):
        return {"kind": "file", "size": self.size}


class GeneratedContent(_Content):
    __slots__ = ("size", "seed", "_qx")

    def __init__(self, size, seed=0):
        if size < 0:
            raise ValueError("size must be >= 0")
        self.size = int(size)
        self.seed = int(seed)
        self._qx = None

    def describe(self):
        return {"kind": "generated", "size": self.size, "seed": self.seed}

    def read(self, offset, n):
        end = min(self.size, offset + n)
        if offset >= end:
            return b""
        base = _base(self.seed, min(BLOCK, self.size))
        parts = []
        pos = offset
        while pos < end:
            k, inner = divmod(pos, BLOCK)
            stop = min(BLOCK, inner + (end - pos))
            if inner < STAMP:
                blk = _stamp(self.seed, k) + base[STAMP:stop]
                parts.append(blk[inner:stop])
            else:
                parts.append(base[inner:stop])
            pos += stop - inner
        return b"".join(parts)

    def _compute_qx(self):
        full, tail = divmod(self.size, BLOCK)
        stamps = 0
        for k in range(full):
            stamps ^= int.from_bytes(_stamp(self.seed, k), "little")
        vec = 0
        if full:
            vec = stamps
            if full & 1:
                vec ^= qxhash.fold(_base(self.seed)[STAMP:], STAMP)
        if tail:
            vec ^= qxhash.fold(self.read(full * BLOCK, tail), 0)
        return qxhash.b64(qxhash.finish(vec, self.size))


def make_content(spec):
    """Build content from a seed spec: str (UTF-8 text), bytes, or
    {"size": N, "seed": S} / {"base64": "..."}."""
    if spec is None:
        return BytesContent(b"")
    if isinstance(spec, (bytes, bytearray, memoryview)):
        return BytesContent(spec)
    if isinstance(spec, str):
        return BytesContent(spec.encode("utf-8"))
    if isinstance(spec, _Content):
        return spec
    if isinstance(spec, dict):
        if "base64" in spec:
            import base64
            return BytesContent(base64.b64decode(spec["base64"]))
        if "size" in spec:
            return GeneratedContent(int(spec["size"]), int(spec.get("seed", 0)))
    raise ValueError("unsupported content spec: %r" % (spec,))
