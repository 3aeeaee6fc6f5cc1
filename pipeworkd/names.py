"""Host-side interface names: at most 15 characters and collision-free."""

from __future__ import annotations

import base64
import hashlib

from .spec import IFNAMSIZ_MAX

HASHED_PREFIX = "pw"


def host_veth_name(container_ifname: str, pid: int, container_id: str) -> str:
    """pipework's `v<CIF>pl<PID>` when it fits, else `pw` + 13 hash characters.

    The legacy form is unique per (CIF, PID): the PID is all digits and follows
    the last "pl". The hashed form starts with "pw", never with "v", so the two
    families cannot meet; it is keyed on the container ID and CIF, which cannot
    repeat among live attachments.
    """
    legacy = f"v{container_ifname}pl{pid}"
    if len(legacy.encode()) <= IFNAMSIZ_MAX:
        return legacy
    digest = hashlib.sha256(f"{container_id}/{container_ifname}".encode()).digest()
    suffix = base64.b32encode(digest).decode().lower()
    return HASHED_PREFIX + suffix[: IFNAMSIZ_MAX - len(HASHED_PREFIX)]
