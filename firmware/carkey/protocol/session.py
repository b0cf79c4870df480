# carkey — an authenticated expedited-phase session: EXCHANGE through the channel, CONTROL FLOW.
# SPDX-License-Identifier: MIT
#
# The reader hands a Session to the ECU only once the device has proved its
# keys (AUTH1 signature or a matching fast cryptogram). The ECU talks carkey's
# envelope through exchange() and finishes with end(granted).

from micropython import const

from carkey.protocol import apdu, tlv
from carkey.protocol.channel import ChannelError
from carkey.protocol.errors import AuthenticationFailed, LinkError, ProtocolError

STANDARD = "standard"
FAST = "fast"
FALLBACK = "fallback"  # a fast request whose cryptogram matched no cached key: AUTH1 ran

_TAG_STATUS = const(0x00)  # EXCHANGE answers end 00 02 <status>; 0000 = success
_CF_GRANTED = const(0x01)  # CONTROL FLOW [41 01 S1]: granted
_CF_REFUSED = const(0x00)  # [41 01 S1]: refused
_CF_S2 = const(0x00)  # [42 01 S2]: no further step


def split_status(plaintext):
    # (data before the status object, status) of a decrypted EXCHANGE answer. The
    # status must be the last object, and the only tag 00, of well-formed TLVs.
    status_at = -1
    pos = 0
    for tag, start, end in tlv.iterate(plaintext):
        if tag == _TAG_STATUS:
            if status_at >= 0 or end - start != 2:
                raise tlv.TlvError("bad status object")
            status_at = pos
        pos = end
    if status_at < 0 or status_at != len(plaintext) - 4:
        raise tlv.TlvError("status object missing or not last")
    return plaintext[:status_at], (plaintext[status_at + 2] << 8) | plaintext[status_at + 3]


class Session:
    def __init__(self, link, channel, kind, credential_pub, credential, kpersistent, signaling_bitmap, timeout_ms):
        self._link = link
        self._channel = channel
        self._timeout_ms = timeout_ms
        self.kind = kind
        self.credential_pub = credential_pub
        # What the credential lookup returned (None: not in the store). An unknown
        # credential has still proved its key; the ECU decides on share documents.
        self.credential = credential
        self.known = credential is not None
        # New Kpersistent after AUTH1 (standard, fallback), for the ECU to store; None after fast.
        self.kpersistent = kpersistent
        self.signaling_bitmap = signaling_bitmap
        self.ended = False
        self._broken = False  # the channel refused a message or the device an EXCHANGE
        self._link_lost = False

    def _dead(self):
        self._broken = True
        self._channel.close()

    async def exchange(self, plaintext_tlvs):
        # One EXCHANGE: returns the device's TLVs with the trailing status removed.
        # A device status other than 0000 raises ProtocolError(status=...).
        if self.ended or self._broken:
            raise ProtocolError("session already ended")
        try:
            data = self._channel.seal(plaintext_tlvs)
        except ChannelError:
            self._dead()
            raise ProtocolError("secure channel exhausted") from None
        try:
            body, sw = await apdu.transmit(self._link, apdu.CLA_PROPRIETARY, apdu.INS_EXCHANGE,
                                           0, 0, data, 256, self._timeout_ms)
        except LinkError:
            self._link_lost = True
            self._dead()
            raise
        except Exception:
            self._dead()
            raise
        if sw != apdu.SW_OK:
            self._dead()
            raise ProtocolError("EXCHANGE refused", sw=sw)
        try:
            plaintext = self._channel.open(body)
        except ChannelError:
            self._dead()
            raise AuthenticationFailed("EXCHANGE answer does not authenticate") from None
        try:
            data, status = split_status(plaintext)
        except tlv.TlvError as e:
            self._dead()
            raise ProtocolError("malformed EXCHANGE answer: %s" % e) from None
        if status:
            raise ProtocolError("device reported an error", status=status)
        return data

    async def end(self, granted):
        # CONTROL FLOW [41 01 S1][42 01 00], also after a failed exchange (the
        # device learns the tap is over) unless the link is gone; a second call
        # does nothing. The link stays open: its owner closes it.
        if self.ended:
            return
        self.ended = True
        self._channel.close()
        if self._link_lost:
            return
        cf = bytes((0x41, 1, _CF_GRANTED if granted else _CF_REFUSED, 0x42, 1, _CF_S2))
        _, sw = await apdu.transmit(self._link, apdu.CLA_PROPRIETARY, apdu.INS_CONTROL_FLOW,
                                    0, 0, cf, None, self._timeout_ms)
        if sw != apdu.SW_OK:
            raise ProtocolError("CONTROL FLOW refused", sw=sw)

    def __repr__(self):
        return "<Session %s known=%s>" % (self.kind, self.known)
