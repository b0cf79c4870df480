"""The simulated phone: an Aliro user device that speaks carkey's EXCHANGE extension.

`Phone` wraps the independent `aliro.UserDevice` (cryptography only, no firmware
code) with what a carkey app adds: command requests, share documents for readers it
is not enrolled in, revocation documents from an owner, and the results the car sends.
`serve()` answers readers over the TCP link, one connection after another.
"""

from dataclasses import dataclass, field

from . import envelope as env
from .aliro import tlv
from .aliro.user_device import LinkDropped, State, UserDevice
from .keydir import KeyDir
from .tcp_link import FramedSocket, FramingError, LinkClosed, listen


@dataclass
class Transaction:
    """What one reader connection did, as the phone saw it."""

    number: int
    results: list = field(default_factory=list)
    documents: list = field(default_factory=list)  # [(document tag, result code)] as the car judged them
    share_presented_to: bytes | None = None  # reader group id, when this phone presented its share document
    share_dropped: int | None = None  # the car's result code when the phone dropped its share after this visit
    reader_status: bytes | None = None
    control_flow: tuple | None = None
    dropped: bool = False
    error: str | None = None
    authenticated: bool = False  # the secure channel opened: the reader proved the key this phone trusts

    def describe(self) -> str:
        """One line on what happened, as `phone serve` and `nfc-sim` print it."""
        if self.dropped:
            return "dropped the link (reader not trusted)"
        if self.error:
            return f"link error: {self.error}"
        results = "; ".join(r.describe() for r in self.results) or "no carkey results"
        if self.control_flow is not None:
            return f"{'granted' if self.control_flow[0] == 1 else 'refused'}: {results}"
        if self.authenticated:
            # e.g. an Aliro reader that is not a carkey car: no verdict is no refusal
            return "authenticated; reader sent no result" + (f": {results}" if self.results else "")
        return "reader hung up before authenticating"


class Phone:
    def __init__(self, keydir: KeyDir, commands=(), revocations=()):
        """commands: [(command id, argument bytes)] requested in every transaction, in order."""
        self.keydir = keydir
        self.commands = list(commands)
        self.revocations = list(revocations)
        self.share_documents = keydir.share_documents()
        # Drive-enable needs a standard transaction: a phone asking for it sends no
        # fast cryptogram, so the reader runs AUTH1.
        wants_drive = any(cmd == env.COMMANDS["drive"] for cmd, _ in self.commands)
        self.device = UserDevice(
            keydir.private_key(),
            keydir.trusted_readers(),
            kpersistent_cache=keydir.kpersistent_cache(),
            exchange_handler=self._on_exchange,
            fast_enabled=not wants_drive,
        )
        self._pending = []
        self.transaction = None

    def _on_exchange(self, items):
        inner = env.open_envelope(items)
        tags = [t for t, _ in inner]
        reply = []
        if env.HELLO_VERSION in tags:
            # A carkey reader opened the conversation: present what this phone carries.
            self._pending = list(self.commands)
            reader_id = self.device.current_reader_identifier
            document = self.share_documents.get(reader_id[:16]) if reader_id else None
            if document is not None:
                reply.append((env.SHARE_DOCUMENT, document))
                if self.transaction is not None:
                    self.transaction.share_presented_to = reader_id[:16]
            reply.extend((env.REVOCATION_DOCUMENT, doc) for doc in self.revocations)
        for tag, value in inner:
            if self.transaction is None:
                continue
            if tag == env.COMMAND_RESULT:
                self.transaction.results.append(env.parse_result(value))
            elif tag == env.DOCUMENT_RESULT:
                self.transaction.documents.append(env.parse_document_result(value))
        if self._pending:
            reply.append(env.command_request(*self._pending.pop(0)))
        return [env.envelope(reply)] if reply else []

    def handle_connection(self, link: FramedSocket, number: int) -> Transaction:
        """Answer one reader until it closes the link (or this device drops it)."""
        self.transaction = txn = Transaction(number)
        self.device.last_reader_status = self.device.last_control_flow = None
        try:
            while True:
                try:
                    c_apdu = link.receive()
                except LinkClosed:
                    break
                try:
                    r_apdu = self.device.process(c_apdu)
                except LinkDropped:
                    txn.dropped = True
                    break
                link.send(r_apdu)
                txn.authenticated = txn.authenticated or self.device.state is State.SECURE
        except (FramingError, OSError, tlv.TlvError) as e:
            txn.error = str(e)
        finally:
            txn.reader_status = self.device.last_reader_status
            txn.control_flow = self.device.last_control_flow
            self.device.reset()
            self._pending = []
            self.keydir.save_kpersistent_cache(self.device.kpersistent_cache)
            self.settle_share(txn)
        return txn

    def settle_share(self, txn: Transaction, now: float | None = None):
        """After a visit: drop the share document the car judged for good, accepted (this
        phone is enrolled now) or definitely refused (revoked, superseded, refused, ended),
        so it is not presented again. A refusal that may pass later (clock not trusted,
        not yet valid) keeps it."""
        group = txn.share_presented_to
        codes = [code for tag, code in txn.documents if tag == env.SHARE_TAG]
        if group is None or not codes:
            return
        code = codes[0]
        if code not in env.SHARE_FINAL:
            if code != env.OUTSIDE_VALIDITY:
                return
            import time

            from .documents import parse_share

            if not parse_share(self.share_documents[group]).ended(time.time() if now is None else now):
                return  # not valid yet: keep it for later
        self.keydir.remove_share_document(group)
        self.share_documents.pop(group, None)
        if code != 0:
            txn.share_dropped = code

    def serve(self, host, port, framing, connections=None, on_listening=None, on_transaction=None):
        """Serve readers one connection after another; `connections` bounds how many."""
        server = listen(host, port)
        try:
            if on_listening:
                on_listening(server.getsockname())
            served = 0
            while connections is None or served < connections:
                sock, _ = server.accept()
                served += 1
                with sock:
                    txn = self.handle_connection(FramedSocket(sock, framing), served)
                if on_transaction:
                    on_transaction(txn)
        finally:
            server.close()
