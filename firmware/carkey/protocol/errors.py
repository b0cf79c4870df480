# carkey — why a transaction ended without a session: link, protocol or authentication.
# SPDX-License-Identifier: MIT
#
# The ECU tells these apart: a LinkError is the radio or socket going away (retry
# on the next tap), a ProtocolError is a device that answered something wrong
# (with the status word when it sent one), AuthenticationFailed is a device that
# could not prove its keys. None of them ever comes with a partial session.
# DropLink goes the other way: a device (the key fob's) raises it to the link
# that carries it, which then hangs up without answering.


class TransactionError(Exception):
    pass


class LinkError(TransactionError):
    pass


class LinkTimeout(LinkError):
    pass


class ProtocolError(TransactionError):
    def __init__(self, reason, sw=None, status=None):
        # sw: the R-APDU status word; status: a device status inside an EXCHANGE answer.
        msg = reason
        if sw is not None:
            msg = "%s (SW %04X)" % (reason, sw)
        elif status is not None:
            msg = "%s (status %04X)" % (reason, status)
        super().__init__(msg)
        self.reason = reason
        self.sw = sw
        self.status = status


class AuthenticationFailed(TransactionError):
    pass


class DropLink(Exception):
    # The device goes silent: the reader is not one it trusts.
    pass
