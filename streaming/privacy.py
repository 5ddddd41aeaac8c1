"""Raw IP addresses never at rest (rulebook §1): only a salted hash of an IP may be stored.

`ip_hasher(cfg)` is that hash (SHA-256 with a salt from the environment, or in local/ci a
per-home random one).

A valid click's `ip` field is replaced by its salted hash in `contracts.to_row` (column
`ip_hash`). A dead letter, though, keeps the message as it came (raw bytes, key, reason) so that
an operator can see what was wrong, and a message the contract refuses may carry an IP anywhere:
in a click's `ip`, in an unparseable blob, in a free-text field. `IpMasker` therefore rewrites the
raw bytes, the key and the reason of every dead letter — the Parquet row in
`landing/deadletters/` and the message (value and `o2p.reason` header) sent to the dead-letter
topic — before either is written:

* candidates are found by one compiled regex: a dotted quad (`203.0.113.9`, also inside
  `203.0.113.9:8080` or `ip=203.0.113.9.`), or a run of hex digits, dots and colons with at least
  two colons that does not continue a word (IPv6: `2001:db8::1`, full form, `::ffff:203.0.113.9`,
  `64:ff9b::1.2.3.4`, `ip:2001:db8::1`, `[2001:db8::1]:443`; not `std::vector`);
* each candidate is confirmed with `ipaddress.ip_address` (a dotted quad's octets may carry
  leading zeros, `010.0.0.1`, which `ipaddress` itself refuses), so that timestamps
  (`10:00:00`), versions (`Chrome/120.0.6099.109`, `1.2.3`), `999.1.1.1`, MAC addresses and
  bare `::` stay as they are; an IPv6 run that is not an address as a whole is tried without a
  trailing `.`/`:` or a leading `:` (`ip:2001:db8::1`), then searched for a dotted quad;
* a confirmed address is replaced by `ip-masked:<the first 12 hex digits of the sink's salted
  hash of the address as written>`: it says what was there, two dead letters of the same IP can
  still be correlated, and the prefix equals the start of `ip_hash` of a valid click that wrote
  the IP the same way — without the IP itself;
* the bytes are scanned as bytes, so a payload that is not UTF-8 (GBK, Latin-1, random binary)
  is masked wherever it holds an ASCII address; a payload with NUL bytes is also scanned as
  UTF-16 (LE and BE), where ASCII text is interleaved with NULs.

Not recognised: addresses hidden by JSON escapes (`\\u0032...`) or in other encodings, and
addresses glued to more digits (`203.0.113.9203.0.113.9`, which is no address either). False
positives (a standalone hex word like `cafe::1` is a valid IPv6) only ever cost a few characters
of a dead letter. The cost is paid by dead letters alone: valid events never go through this module.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import secrets
from collections.abc import Callable

from o2p.config import Config
from o2p.errors import InputError


def ip_hasher(cfg: Config) -> Callable[[str], str]:
    """A salted SHA-256 of raw IPs. The salt comes from the environment, or (local/ci only) a
    per-home random salt kept in $O2P_HOME/ip_salt — never in the repo."""
    salt = os.environ.get(cfg.capture.ip_salt_env)
    if not salt:
        if cfg.environment == "prod":
            raise InputError(f"capture.ip_salt_env: environment variable {cfg.capture.ip_salt_env} is not set")
        path = cfg.home_path / "ip_salt"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        salt = path.read_text().strip()
    salt_b = salt.encode()
    return lambda ip: hashlib.sha256(salt_b + b"\x00" + ip.encode("utf-8")).hexdigest()


MASK_PREFIX = "ip-masked:"
HASH_CHARS = 12

# Dotted quad: not preceded by a digit or "digit.", not followed by a digit or ".digit" (so
# "1.2.3.4.5", a version, is left alone; "host.1.2.3.4" and "1.2.3.4." at the end of a sentence
# are not).
_V4 = r"(?<![0-9])(?<![0-9]\.)(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9]|\.[0-9])"
# IPv6 candidate: a run of hex digits, dots and colons holding at least two colons, not glued to
# a word on its left ("std::", "Foo::bar" are not addresses) unless through one colon ("ip:").
_V6 = r"(?:(?<![0-9A-Za-z:.])|(?<=[A-Za-z]:))(?=[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]+"
_PATTERN = f"{_V4}|{_V6}"
_BYTES = re.compile(_PATTERN.encode("ascii"))
_TEXT = re.compile(_PATTERN, re.ASCII)
_V4_TEXT = re.compile(_V4, re.ASCII)


def _is_v4(token: str) -> bool:
    parts = token.split(".")
    if len(parts) != 4 or not all(p.isdigit() and p.isascii() for p in parts):
        return False
    try:   # leading zeros dropped first: "010.0.0.1" is an address written with them
        ipaddress.IPv4Address(".".join(str(int(p)) for p in parts))
    except ValueError:      # an octet above 255
        return False
    return True


def _is_v6(token: str) -> bool:
    if not any(c not in ":." for c in token):    # "::" alone (or "::.") is not anyone's address
        return False
    try:
        ipaddress.IPv6Address(token)
    except ValueError:
        return False
    return True


class IpMasker:
    """Masks what looks like an IP address in dead letters (see the module docstring).

    `hasher` is the sink's salted hash of a raw IP (`ip_hasher` above): str → hex str."""

    def __init__(self, hasher: Callable[[str], str]):
        self.hasher = hasher

    def mask_for(self, ip: str) -> str:
        return MASK_PREFIX + self.hasher(ip)[:HASH_CHARS]

    def _v4_in(self, text: str) -> str:
        return _V4_TEXT.sub(lambda m: self.mask_for(m[0]) if _is_v4(m[0]) else m[0], text)

    def _token(self, token: str) -> str:
        """A candidate → its mask if it is (or holds) an address, else itself."""
        if ":" not in token:                          # a dotted quad
            return self.mask_for(token) if _is_v4(token) else token
        if _is_v6(token):
            return self.mask_for(token)
        # punctuation around an address in the same run: "ip:2001:db8::1", "2001:db8::1." or ":"
        lead = 1 if token.startswith(":") and not token.startswith("::") else 0
        body = token[lead:]
        for trimmed in (body, body.rstrip("."), body.rstrip(".:")):
            if trimmed and len(trimmed) < len(token) and _is_v6(trimmed):
                return token[:lead] + self.mask_for(trimmed) + body[len(trimmed):]
        return self._v4_in(token)                     # e.g. "10:00:203.0.113.9"

    def text(self, text: str | None) -> str | None:
        """`text` with every IP address masked (None and "" stay as they are)."""
        if not text:
            return text
        return _TEXT.sub(lambda m: self._token(m[0]), text)

    def bytes(self, data: bytes | None) -> bytes | None:
        """`data` with every (ASCII) IP address masked, whatever the encoding around it."""
        if not data:
            return data
        out = _BYTES.sub(lambda m: self._token(m[0].decode("ascii")).encode("ascii"), data)
        if b"\x00" in out:                            # UTF-16 text: ASCII interleaved with NULs
            even = len(out) - len(out) % 2
            for enc in ("utf-16-le", "utf-16-be"):
                text = out[:even].decode(enc, "surrogatepass")    # every code unit decodes, and
                masked = self.text(text)                          # re-encodes to the same bytes
                if masked != text:
                    out = masked.encode(enc, "surrogatepass") + out[even:]
                    even = len(out) - len(out) % 2
        return out

