"""Who is acting: a configured approver, proven each time by their own secret (RELIABILITY invariant 18).

The surface supplies the secret through a `SecretSource`, asked only for a configured approver (a name that is
not one is refused without being asked); a source that cannot get one raises the surface's own bad-input error.
A name that is not an approver, or a secret that does not match, is a refused attempt: audited and notified.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from bot.core.approvals import Refused
from bot.notify import note
from bot.settings import Settings
from bot.store.repo import Store

# the approver's secret, asked for by name; raises (bad input) when none can be given
SecretSource = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Proven:
    """A configured approver whose secret matched."""

    name: str


def secret_matches(secret: str | None, configured_sha256: str | None) -> bool:
    """The approver's secret hashes to the sha256 in config (constant-time compare; no secret, no match)."""
    if not secret or not configured_sha256:
        return False
    return hmac.compare_digest(hashlib.sha256(secret.encode()).hexdigest(), configured_sha256)


def authenticated(s: Settings, name: str, secret: SecretSource) -> bool:
    """`name` is a configured approver and their secret matches (the secret is asked for only then)."""
    return name in s.approvals.approvers and secret_matches(
        secret(name), s.approvals.approver_secrets.get(name)
    )


def prove(
    s: Settings, store: Store, name: str, secret: SecretSource, *, action: str, now: float
) -> Proven | Refused:
    """`name` proven as an approver for `action`, or the refusal, recorded as `auth.refused` and notified."""
    if name not in s.approvals.approvers:
        why = f"{name!r} is not in approvals.approvers"
    elif secret_matches(secret(name), s.approvals.approver_secrets.get(name)):
        return Proven(name)
    else:
        why = f"{name}: secret does not match"
    store.audit.record(
        now,
        [("auth.refused", None, {"by": name, "action": action, "reason": why})],
        notes=[note("warning", "auth", f"{action} by {name} refused: {why}", desk=s.bot.desk)],
    )
    return Refused(why)
