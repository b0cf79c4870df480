"""What a car's owner does with carkey's host tools: provision, keys, clock, audit log.

Every change after provisioning is a document the owner's credential signs
(docs/PROTOCOL.md §5, §6, §9) and the car checks; these functions make the documents
and hand them to a *car target*: anything with `identity()`, `provision(pub, time)`,
`submit(document) -> dict` and `admin_session()` (a context manager whose value has
`challenge`, `identity` and `submit(document)`) — the virtual car
(carkey_host.vcar.VirtualCar) or a board on its USB serial port
(carkey_host.usb_car.UsbCar).
"""

import time

from . import documents
from .envelope import RESULTS
from .errors import CarkeyError, Refused, UsageError
from .keydir import KeyDir

MAINTENANCE_MAX_S = 3600  # the firmware's limit for one maintenance window (carkey.ecu.admin)

OK = 0x00


def _group(owner: KeyDir, target) -> bytes:
    """The car's group id, checked against the readers the owner's phone trusts."""
    return _trusted_group(owner, target.identity())


def _trusted_group(owner: KeyDir, ident: dict) -> bytes:
    group_id = bytes.fromhex(ident["group_id"])
    trusted = owner.trusted_readers()
    if trusted.get(group_id) != bytes.fromhex(ident["reader_public_key"]):
        raise CarkeyError(f"this car (group {ident['group_id']}) is not one {owner.path} trusts: "
                          "provision it, or `carkey phone trust` it first")
    return group_id


def _check(out: dict, what: str) -> dict:
    if out.get("result") != OK:
        code = out.get("result")
        reason = out.get("reason") or RESULTS.get(code, f"result 0x{code:02x}")
        raise Refused(f"the car refused {what}: {reason}")
    return out


def provision(target, owner: KeyDir, unix_time: int | None = None) -> dict:
    """Factory state: the car makes its identity, enrolls the owner, sets its clock;
    the owner's phone then trusts the car."""
    ident = target.provision(owner.public_key(), int(time.time() if unix_time is None else unix_time))
    owner.trust(bytes.fromhex(ident["group_id"]), bytes.fromhex(ident["reader_public_key"]), car_info(ident)["name"])
    return ident


def car_info(ident: dict) -> dict:
    """What a phone needs to find and trust a car: its advertised name, group id, reader key."""
    from .ble_phone import device_name

    return {"name": device_name(bytes.fromhex(ident["group_id"])), "group_id": ident["group_id"],
            "reader_public_key": ident["reader_public_key"]}


def share(target_or_group, owner: KeyDir, friend_pub: bytes, role: str, **fields) -> bytes:
    """A share document for friend_pub (role, entitlements, validity, schedule, use limit)."""
    group_id = target_or_group if isinstance(target_or_group, bytes) else _group(owner, target_or_group)
    ends = fields.get("valid_until") or 0
    if ends and ends <= time.time():
        # Refused rather than warned: the car would refuse every tap with it, and a
        # share not yet presented would only sit in the friend's phone.
        raise UsageError(f"the share's window ended at {time.strftime('%Y-%m-%d %H:%M', time.gmtime(ends))} UTC: "
                         "give a --valid-until in the future")
    try:
        return documents.make_share(owner.private_key(), group_id, friend_pub, role, serial=owner.next_serial(),
                                    **fields)
    except documents.DocumentError as e:
        raise UsageError(f"cannot share: {e}") from None


def share_file(owner: KeyDir, friend_pub: bytes, role: str, target=None, group_id: bytes | None = None, **fields):
    """The share file for a friend (carkey_host.share_file): the share document and the car's
    identity, both signed by the owner. The car is `target` (asked for its identity, which
    the owner must trust), else `group_id` among the cars the owner's phone trusts, else the
    only car it trusts."""
    from . import share_file as sf

    cars = {bytes.fromhex(c["group_id"]): c for c in owner.trusted_cars()}
    if target is not None:
        group_id = _group(owner, target)
    elif group_id is None:
        if len(cars) != 1:
            raise CarkeyError(f"{owner.path} trusts {len(cars)} cars: say which with --group-id "
                              "(`carkey car info --keys DIR` lists them)")
        group_id = next(iter(cars))
    if group_id not in cars:
        raise CarkeyError(f"{owner.path} does not trust a car with group {group_id.hex()}")
    car = cars[group_id]
    doc = share(group_id, owner, friend_pub, role, **fields)
    try:
        return sf.make(owner.private_key(), doc, group_id, bytes.fromhex(car["reader_public_key"]), car["name"])
    except sf.ShareFileError as e:
        raise CarkeyError(f"cannot share: {e}") from None


def add_key(target, owner: KeyDir, friend_pub: bytes, role: str, **fields) -> dict:
    """Enroll a key on the car now (a share document delivered over USB)."""
    return _check(target.submit(share(target, owner, friend_pub, role, **fields)), "the key")["key"]


def revocation(target_or_group, owner: KeyDir, slot: bytes, action: str) -> bytes:
    group_id = target_or_group if isinstance(target_or_group, bytes) else _group(owner, target_or_group)
    try:
        return documents.make_revocation(owner.private_key(), group_id, slot, serial=owner.next_serial(),
                                         action=action)
    except documents.DocumentError as e:
        raise CarkeyError(f"cannot {action}: {e}") from None


def change_key(target, owner: KeyDir, slot: bytes, action: str) -> dict:
    """Suspend, resume or revoke the key in `slot` now."""
    return _check(target.submit(revocation(target, owner, slot, action)), f"the {action}")


def find_slot(listing: dict, text: str) -> bytes:
    """The slot of the one key in `listing` (list_keys) whose slot starts with `text`
    (hex, at least 4 digits). A slot no key has is a usage error, never revoked
    blindly: a slot on the revocation list stays there for good."""
    prefix = text.strip().lower()
    if len(prefix) < 4 or len(prefix) > 16 or any(c not in "0123456789abcdef" for c in prefix):
        raise UsageError(f"--slot {text!r}: want 4 to 16 hex digits of a slot shown by `carkey keys list`")
    matches = [k["slot"] for k in listing["keys"] if k["slot"].startswith(prefix)]
    if not matches:
        raise UsageError(f"no key in this car has slot {prefix}: `carkey keys list` shows the slots "
                         "(to revoke a share not yet presented, use --credential FRIEND.pub.pem)")
    if len(matches) > 1:
        raise UsageError(f"slot {prefix} is ambiguous: {', '.join(matches)}; give more digits")
    return bytes.fromhex(matches[0])



class Admin:
    """An admin session of the owner with a car (docs/PROTOCOL.md §9): the car issues a
    challenge, each request is signed over it with the next request number, and the
    car runs each once. Reading (keys, log) writes nothing on the car but one audit
    record per session. Use as a context manager; `target.admin_session()` gives the
    car's side (`challenge`, `identity`, `submit(document)`)."""

    def __init__(self, target, owner: KeyDir):
        self.target, self.owner = target, owner
        self.number = 0

    def __enter__(self):
        self._session = self.target.admin_session()
        self._car = self._session.__enter__()
        try:
            self.group_id = _trusted_group(self.owner, self._car.identity)
        except BaseException:
            self._session.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        return self._session.__exit__(*exc)

    def request(self, operation: str, argument: bytes = b"") -> dict:
        self.number += 1
        doc = documents.make_admin(self.owner.private_key(), self.group_id, operation, argument,
                                   challenge=self._car.challenge, number=self.number)
        return _check(self._car.submit(doc), operation)

    def list_keys(self) -> dict:
        """Every enrolled key and revoked slot, a page (one request) at a time."""
        listing = {"keys": [], "revoked_slots": []}
        for page in range(256):
            answer = self.request("list-keys", bytes([page]))
            listing["keys"] += answer["keys"]
            listing["revoked_slots"] += answer["revoked_slots"]
            if not answer.get("more"):
                break
        return listing

    def audit_log(self, since: int = 0) -> list:
        """Every record after `since`, a page (one request) at a time."""
        records = []
        while True:
            answer = self.request("export-log", int(since).to_bytes(4, "big"))
            records += answer["records"]
            if not answer.get("more") or not answer["records"]:
                return records
            since = answer["records"][-1]["seq"]

    def stranger_log(self, since: int = 0) -> list:
        """The strangers' coalesced records (one per 10-minute interval and reason, with
        a count) after `since` in their own ring, a page at a time."""
        records = []
        while True:
            answer = self.request("export-strangers", int(since).to_bytes(4, "big"))
            records += answer["records"]
            if not answer.get("more") or not answer["records"]:
                return records
            since = answer["records"][-1]["seq"]

    def maintenance(self, seconds: int) -> int:
        """Ask an installed car to hand its USB REPL back for `seconds` (deploy,
        recovery); its watchdog then resets it into the application."""
        if not 0 < seconds <= MAINTENANCE_MAX_S:
            raise UsageError(f"a maintenance window is 1 s to {MAINTENANCE_MAX_S // 60} minutes")
        return self.request("maintenance", int(seconds).to_bytes(2, "big"))["maintenance_s"]

    def set_clock(self, unix_time: int | None = None) -> int:
        when = int(time.time() if unix_time is None else unix_time)
        return self.request("set-clock", when.to_bytes(4, "big"))["time"]


def list_keys(target, owner: KeyDir) -> dict:
    with Admin(target, owner) as admin:
        return admin.list_keys()


def set_clock(target, owner: KeyDir, unix_time: int | None = None) -> int:
    with Admin(target, owner) as admin:
        return admin.set_clock(unix_time)


def maintenance(target, owner: KeyDir, seconds: int) -> int:
    with Admin(target, owner) as admin:
        return admin.maintenance(seconds)


def audit_log(target, owner: KeyDir, since: int = 0) -> list:
    with Admin(target, owner) as admin:
        return admin.audit_log(since)
