# carkey — command ids, result codes, roles and key states shared by the ECU modules.
# SPDX-License-Identifier: MIT
#
# Every value here is on the wire or in the key store (docs/PROTOCOL.md §4, §5, §7),
# so they live in one module and nothing else spells them out.

from micropython import const

# Command ids (§4.1). Command n is governed by entitlement bit n - 1.
CMD_LOCK = const(0x01)
CMD_UNLOCK = const(0x02)
CMD_UNLOCK_DRIVER = const(0x03)
CMD_TRUNK = const(0x04)
CMD_DRIVE_ENABLE = const(0x05)  # argument: minutes, 1 byte, 1..240
CMD_LOCATE = const(0x06)
CMD_STATUS = const(0x07)
CMD_FIRST = const(0x01)
CMD_LAST = const(0x07)

DRIVE_MINUTES_MIN = const(1)
DRIVE_MINUTES_MAX = const(240)

ENT_ALL = const(0x7F)  # every entitlement bit of a defined command
# Role defaults (§7) as entitlement bitmaps (bits: 0 lock, 1 unlock, 2 driver door,
# 3 trunk, 4 drive-enable, 5 locate, 6 status). Owners and drivers get ENT_ALL.
ENT_GUEST = const(0x6F)  # everything but drive-enable
ENT_VALET = const(0x55)  # lock, driver door, drive-enable, status: never trunk or all doors

MAX_WINDOWS = const(8)  # schedule windows in one key's schedule (§5 tag 87)

# Command results (§4.2).
OK = const(0x00)
NOT_ENTITLED = const(0x01)
OUTSIDE_VALIDITY = const(0x02)
OUTSIDE_SCHEDULE = const(0x03)
USE_LIMIT_REACHED = const(0x04)
NEEDS_STANDARD = const(0x05)
KEY_SUSPENDED = const(0x06)
KEY_REVOKED = const(0x07)  # also: key unknown
LOCKED_OUT = const(0x08)
CLOCK_UNTRUSTED = const(0x09)
BAD_REQUEST = const(0x0A)  # unknown command or bad argument
DOCUMENT_REFUSED = const(0x0B)
HARDWARE_FAULT = const(0x0C)
NO_ROOM = const(0x0D)  # key store full, or revocation list full for a key never enrolled
DOCUMENT_SUPERSEDED = const(0x0E)  # a newer document for the key was applied (or this one already was)

# Roles (§5 tag 83, §7).
ROLE_OWNER = const(0x01)
ROLE_DRIVER = const(0x02)
ROLE_GUEST = const(0x03)
ROLE_VALET = const(0x04)
# Their names, as the admin interface and the host tools spell them, are ecu/admin.py's ROLES.

# Credential status in the key store.
STATUS_ACTIVE = const(0)
STATUS_SUSPENDED = const(1)
STATUS_REVOKED = const(2)

# Transaction kinds, numbered as the AUTH0 transaction type byte. A fast request
# that fell back to AUTH1 is a standard transaction.
KIND_STANDARD = const(0x00)
KIND_FAST = const(0x01)

# Admin request operations (§9 tag 8D).
ADMIN_SET_CLOCK = const(0x01)  # argument: Unix seconds, 4 bytes
ADMIN_EXPORT_LOG = const(0x02)  # argument: records after this sequence number, 4 bytes
ADMIN_LIST_KEYS = const(0x03)  # no argument
ADMIN_MAINTENANCE = const(0x04)  # argument: seconds of maintenance (REPL, deploy), 2 bytes
ADMIN_EXPORT_STRANGERS = const(0x05)  # argument: strangers' records after this sequence number, 4 bytes

# Revocation document actions (§6 tag 8C).
ACTION_REVOKE = const(0x01)
ACTION_SUSPEND = const(0x02)
ACTION_RESUME = const(0x03)

# Audit log entries that are not §4.1 commands use these ids in the command field
# (docs/STORAGE.md §4), and results beyond §4.2 for what never reached a command.
EVENT_TRANSACTION = const(0x00)  # a transaction that ended before any command
EVENT_SHARE = const(0xE2)  # a share document was judged
EVENT_REVOCATION = const(0xE3)  # a revocation document was judged
EVENT_ADMIN = const(0xE4)  # an owner-signed admin request was judged
EVENT_ENROLL = const(0xF1)  # a key enrolled or changed through the admin interface
EVENT_CLOCK = const(0xF2)  # the clock was set
EVENT_MAINTENANCE = const(0xF4)  # the owner opened a maintenance window (REPL, deploy)
EVENT_BATTERY = const(0xF3)  # a key fob reported its battery: the result byte is the voltage in 20 mV steps
AUTH_FAILED = const(0x80)  # the device did not prove its key (signature, cryptogram, MAC)
PROTOCOL_ERROR = const(0x81)  # malformed or refused message
LINK_LOST = const(0x82)  # the link dropped or timed out mid-transaction
READER_FAULT = const(0x83)  # the reader failed (flash, memory, a bug): the tap was refused and logged
