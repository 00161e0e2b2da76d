"""Small shared helpers: clocks and timestamp formats, random ids, JSON
encoding and sealed (encrypted + authenticated) opaque tokens.

Sealed tokens back every opaque string the fake hands out that must carry
state (download URLs, $skiptoken): they are self-contained, look random, and
any tampering or truncation is detected, so clients can only use them
verbatim - as with the real service.
"""

import base64
import calendar
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from datetime import datetime, timezone


def now():
    return time.time()


def iso_seconds(t):
    """2024-01-02T03:04:05Z (fileSystemInfo style, whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


def iso_millis(t):
    """2024-01-02T03:04:05.123Z (service timestamps)."""
    ms = int(round((t - int(t)) * 1000))
    if ms >= 1000:
        t, ms = int(t) + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(t))) + ".%03dZ" % ms


def inner_error_date(t=None):
    """innerError.date: 2020-08-18T12:51:51 (no zone suffix)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(t if t is not None else now())))


def aad_timestamp(t=None):
    """Identity platform style: 2016-01-09 02:02:12Z."""
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(int(t if t is not None else now())))


def parse_iso(s):
    """Parse an ISO-8601 UTC timestamp ("...Z", optional fraction or
    +00:00 offset) into epoch seconds (float)."""
    if not isinstance(s, str):
        raise ValueError("timestamp must be a string")
    txt = s.strip()
    if txt.endswith("Z") or txt.endswith("z"):
        txt = txt[:-1] + "+00:00"
    dt = datetime.fromisoformat(txt)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def new_guid():
    return str(uuid.uuid4())


def new_guid_upper():
    return str(uuid.uuid4()).upper()


def random_hex(nbytes):
    return secrets.token_hex(nbytes)


def random_urlsafe(nbytes):
    return base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).rstrip(b"=").decode("ascii")


def dumps(obj):
    """Compact UTF-8 JSON as the service sends it."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Sealer:
    """seal(domain, payload bytes) -> opaque URL-safe string; unseal()
    returns the payload or None if the token is malformed or forged."""

    _TAG = 12
    _NONCE = 9

    def __init__(self, key=None):
        self._key = key or os.urandom(32)

    def _stream(self, domain, nonce, n):
        out = b""
        counter = 0
        while len(out) < n:
            out += hashlib.blake2b(domain.encode() + b"|" + nonce + counter.to_bytes(4, "big"),
                                   key=self._key, person=b"fg-stream").digest()
            counter += 1
        return out[:n]

    def _tag(self, domain, body):
        return hashlib.blake2b(domain.encode() + b"|" + body, key=self._key, person=b"fg-tag",
                               digest_size=self._TAG).digest()

    @staticmethod
    def _xor(a, b):
        return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(len(a), "little")

    def seal(self, domain, payload):
        nonce = os.urandom(self._NONCE)
        body = nonce + self._xor(payload, self._stream(domain, nonce, len(payload)))
        raw = body + self._tag(domain, body)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def unseal(self, domain, token):
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            return None
        if len(raw) < self._NONCE + self._TAG:
            return None
        body, tag = raw[:-self._TAG], raw[-self._TAG:]
        if not hmac.compare_digest(tag, self._tag(domain, body)):
            return None
        nonce, ct = body[:self._NONCE], body[self._NONCE:]
        return self._xor(ct, self._stream(domain, nonce, len(ct)))

    def seal_json(self, domain, obj):
        return self.seal(domain, json.dumps(obj, separators=(",", ":")).encode())

    def unseal_json(self, domain, token):
        raw = self.unseal(domain, token)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None


def utc_epoch(y, mo, d, h=0, mi=0, s=0):
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
