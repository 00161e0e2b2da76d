"""Fault injection (POST /_control/faults).

A fault set is {"latency_ms": N, "stall_ms": N, "rules": [rule, ...]};
setting a new set replaces the old one, {} clears.  latency_ms delays every
request before it is handled; the top-level stall_ms pauses every response
half-way through its body (headers and the first half sent, then silence for
stall_ms, then the rest) - for client read timeouts.  A rule:

  match       "METHOD /path-prefix" (METHOD may be "*"; the prefix is compared
              with the raw and the percent-decoded request path), a route label
              such as "GET children", or "*" for every request.
  times       how many matching requests it applies to (absent = unlimited);
              it counts down and disappears at 0.
  stall_ms    sleep before answering (alone: the real answer follows late).
  stall_body_ms  send headers and half the body, pause, then the rest.
  drop        close the connection without any response.
  status      answer with this status and a default error body of the right
              dialect (Graph, or identity platform for /oauth2 routes);
  retry_after Retry-After header value (string, may be fractional);
  body        raw body text sent instead (status defaults to 200) - for
              malformed JSON;
  headers     extra response headers {name: value};
  truncate    send the real response's headers (full Content-Length) but only
              half of the body, then close;
  oversize    answer 200 with a syntactically valid JSON body of N bytes.

The first matching rule with times left wins.  Control requests are never
affected.  Requests inside a JSON batch (batch.py) are matched one by one
and take only rules that answer (status or body).
"""

import threading
from urllib.parse import unquote

RULE_KEYS = {"match", "times", "stall_ms", "stall_body_ms", "drop", "status", "retry_after", "body", "headers",
             "truncate", "oversize"}


class FaultError(ValueError):
    pass


def _check_rule(rule):
    if not isinstance(rule, dict):
        raise FaultError("a rule must be an object")
    unknown = set(rule) - RULE_KEYS
    if unknown:
        raise FaultError("unknown rule keys: %s" % ", ".join(sorted(unknown)))
    if not isinstance(rule.get("match"), str) or not rule["match"]:
        raise FaultError("a rule needs a 'match' string")
    if "times" in rule and rule["times"] is not None:
        if not isinstance(rule["times"], int) or rule["times"] < 1:
            raise FaultError("'times' must be a positive integer")
    if "status" in rule and not isinstance(rule["status"], int):
        raise FaultError("'status' must be an integer")
    if "retry_after" in rule and not isinstance(rule["retry_after"], (str, int, float)):
        raise FaultError("'retry_after' must be a string")
    for k in ("stall_ms", "stall_body_ms"):
        if k in rule and (isinstance(rule[k], bool) or not isinstance(rule[k], (int, float)) or rule[k] < 0):
            raise FaultError("'%s' must be a non-negative number" % k)
    if "oversize" in rule and (not isinstance(rule["oversize"], int) or rule["oversize"] < 16):
        raise FaultError("'oversize' must be an integer >= 16")
    if "headers" in rule and not isinstance(rule["headers"], dict):
        raise FaultError("'headers' must be an object")
    r = dict(rule)
    if "retry_after" in r:
        r["retry_after"] = str(r["retry_after"])
    return r


def matches(pattern, req):
    if pattern == "*":
        return True
    method, sep, rest = pattern.partition(" ")
    if sep and rest.startswith("/"):
        if method not in ("*", req.method):
            return False
        return req.path.startswith(rest) or unquote(req.path).startswith(rest)
    return pattern == req.label


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self.latency_ms = 0
        self.stall_ms = 0
        self.rules = []

    def set(self, spec):
        spec = spec or {}
        if not isinstance(spec, dict):
            raise FaultError("faults must be an object")
        unknown = set(spec) - {"latency_ms", "stall_ms", "rules"}
        if unknown:
            raise FaultError("unknown keys: %s" % ", ".join(sorted(unknown)))
        for k in ("latency_ms", "stall_ms"):
            v = spec.get(k, 0) or 0
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise FaultError("'%s' must be a non-negative number" % k)
        rules = [_check_rule(r) for r in spec.get("rules", []) or []]
        with self._lock:
            self.latency_ms = spec.get("latency_ms", 0) or 0
            self.stall_ms = spec.get("stall_ms", 0) or 0
            self.rules = rules

    def clear(self):
        self.set({})

    def take(self, req, usable=None):
        """The rule to apply to req (consuming one use), or None.  usable:
        a test a rule must pass as well (a request inside a batch can only
        take rules that answer)."""
        with self._lock:
            for i, rule in enumerate(self.rules):
                if matches(rule["match"], req) and (usable is None or usable(rule)):
                    t = rule.get("times")
                    if t is not None:
                        if t <= 1:
                            del self.rules[i]
                        else:
                            rule["times"] = t - 1
                    return dict(rule)
        return None

    def snapshot(self):
        with self._lock:
            return {"latency_ms": self.latency_ms, "stall_ms": self.stall_ms,
                    "rules": [dict(r) for r in self.rules]}
