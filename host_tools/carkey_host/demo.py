"""`make demo` / `carkey demo`: a narrated day in the life of a carkey car, with nothing but this computer.

The car is the real reader firmware in the MicroPython Unix port (carkey_host.vcar),
with its flash in a state directory; the owner's and a friend's phones are the
simulated phone (carkey_host.phone), which shares no code with the firmware. They
talk over the TCP link of docs/PROTOCOL.md §2. Every figure printed is measured.
"""

import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import documents, runner
from . import envelope as env
from .auditlog import command_name, format_record, format_tally, result_name
from .errors import CarkeyError
from .keydir import KeyDir
from .phone import Phone
from .tcp_link import ThreadedServer
from .vcar import VirtualCar


class Demo:
    def __init__(self, workdir: Path, console: Console):
        self.dir = workdir
        self.console = console
        self.car = VirtualCar(workdir / "car")
        self.timings = []  # (step, who, kind, granted, ms)

    def say(self, text):
        self.console.print(text)

    def tap(self, step, who, keydir, kinds, commands=(), revocations=()):
        """`who` taps the car once per kind; prints what the car and the phone saw."""
        phone = Phone(keydir, commands=commands, revocations=revocations)
        seen_by_phone = []
        served = ThreadedServer(lambda link, n: seen_by_phone.append(phone.handle_connection(link, n)),
                                count=len(kinds))
        txns, pulses = self.car.connect("127.0.0.1", served.port, "lp", kinds)
        served.join()
        served.close()
        for txn, seen in zip(txns, seen_by_phone):
            self.timings.append((step, who, txn.kind or "-", txn.granted, txn.ms))
            verdict = "[green]granted[/]" if txn.granted else "[red]refused[/]"
            results = "; ".join(r.describe() for r in seen.results) or (
                "; ".join(f"{command_name(c)}: {result_name(r)}" for c, r in txn.results) or result_name(txn.error or 0)
            )
            self.say(f"    {who}'s phone, {txn.kind or 'no'} transaction: {verdict} in {txn.ms:.1f} ms — {results}")
        relays = ", ".join(f"{role} {ms} ms" for role, ms in pulses if role not in ("led", "buzzer"))
        if relays:
            self.say(f"    relays pulsed: {relays}")
        return txns, seen_by_phone

    def run(self):
        c = self.console
        c.rule("[bold]carkey demo: a virtual car, an owner, a friend")
        self.say("Building the firmware (mpy-cross, as it is deployed to an ESP32)...")
        runner.compiled_firmware()

        self.say("\n[bold]1. The car's first boot[/]: the reader makes its identity; the private key never leaves it.")
        ident = self.car.init()
        group_id = bytes.fromhex(ident["group_id"])
        reader_pub = bytes.fromhex(ident["reader_public_key"])
        self.say(f"    reader public key {ident['reader_public_key'][:24]}…  group {ident['group_id']}")

        self.say("\n[bold]2. Provisioning the owner[/]: a credential on the owner's phone, enrolled in the car.")
        owner = KeyDir(self.dir / "owner-phone")
        owner_pub = owner.init()
        owner.trust(group_id, reader_pub)
        key = self.car.enroll(owner_pub, "owner")
        now = int(time.time())
        self.car.set_clock(now)
        self.say(f"    owner key slot {key['slot']} enrolled as owner; car clock set to {time.strftime('%Y-%m-%d %H:%M', time.gmtime(now))} UTC")

        self.say("\n[bold]3. The owner walks up[/]: first a standard transaction (AUTH1, signatures both ways),")
        self.say("   then fast ones from the key both sides derived (no public-key work at all).")
        self.tap("owner unlocks", "owner", owner, ["standard"])
        self.tap("owner locks, fast", "owner", owner, ["fast"], commands=[(env.COMMANDS["lock"], b"")])
        self.tap("owner unlocks, fast", "owner", owner, ["fast"])

        self.say("\n[bold]4. The owner shares the car[/] with a friend: driver, for the next two hours.")
        friend = KeyDir(self.dir / "friend-phone")
        friend_pub = friend.init()
        friend.trust(group_id, reader_pub)
        serial = documents.next_serial(0, now)
        doc = documents.make_share(owner.private_key(), group_id, friend_pub, "driver", serial=serial,
                                   valid_from=now - 60, valid_until=now + 2 * 3600)
        friend.add_share_document(group_id, doc)
        self.say(f"    share document: {len(doc)} bytes, signed by the owner's credential, sent to the friend")

        self.say("\n[bold]5. The friend arrives[/]: the phone presents the share; the car checks it and enrolls the friend.")
        self.tap("friend's first unlock", "friend", friend, ["standard"])
        self.say("   The friend starts the car (drive-enable needs a standard transaction):")
        self.tap("friend enables driving", "friend", friend, ["standard"], commands=[(env.COMMANDS["drive"], bytes([30]))])

        self.say("\n[bold]6. The owner revokes the friend[/]: the revocation travels with the owner's next tap.")
        revocation = documents.make_revocation(owner.private_key(), group_id, documents.key_slot(friend_pub),
                                               serial=serial + 1, action="revoke")
        self.tap("owner locks and revokes", "owner", owner, ["fast"], commands=[(env.COMMANDS["lock"], b"")],
                 revocations=[revocation])

        self.say("\n[bold]7. The friend tries again[/]:")
        txns, _ = self.tap("friend after revocation", "friend", friend, ["standard"])
        if txns[0].granted:
            raise CarkeyError("the revoked friend was let in: the demo found a bug")

        self.radios(owner, group_id)
        self.timing_table()
        self.audit_table()

    def radios(self, owner, group_id):
        """The same car as a board runs it: firmware main on the virtual board, with the
        virtual BLE radio and the PN532 stand-in, the owner's phone on both."""
        from .ble_phone import device_name, visit_car
        from .pn532_sim import PhoneTarget, Pn532Sim
        from .vcar import RunningCar
        from .virtual_air import VirtualAir

        self.say("\n[bold]8. The car on its radios[/]: the firmware's main application on the virtual board,")
        self.say("   with a BLE radio (virtual air) and a PN532 NFC reader (its byte-exact stand-in on a pty);")
        self.say("   then a key fob (its firmware too) enrolled by the owner presses unlock and lock.")
        flash = self.dir / "board-flash"
        flash.mkdir()
        # The board's flash holds the same state as the car above: copy it over.
        import shutil

        shutil.copytree(self.car.state_dir, flash / "state")
        name = device_name(group_id)
        fob = self._fob(flash, owner, group_id)
        ended = []
        with VirtualAir(port=0) as air, Pn532Sim() as sim, RunningCar(flash, sim.path, air.address) as board:
            phone = Phone(owner, commands=[(env.COMMANDS["unlock"], b"")])
            start = time.perf_counter()
            txn, log = visit_car(phone, air.address, name, 1)
            ms = (time.perf_counter() - start) * 1000
            self._radio_line("BLE", txn, ms, f"{log.indications} indications + {log.writes} writes at MTU {log.mtu}")
            lock = Phone(owner, commands=[(env.COMMANDS["lock"], b"")])
            start = time.perf_counter()
            sim.place(PhoneTarget(lock, on_end=ended.append))
            board.wait_for(lambda: ended, "the NFC tap")
            ms = (time.perf_counter() - start) * 1000
            self._radio_line("NFC", ended[0], ms, f"{sim.target.apdu_count} APDUs through the PN532")
            sim.remove()
            for command in ("unlock", "lock"):
                self._fob_press(fob, air.address, command)
        if board.output.strip():
            self.say(f"    [dim]{board.output.strip()[-500:]}[/]")
        self.car = type(self.car)(flash / "state")  # the audit log below is the board's

    def _fob(self, flash, owner, group_id):
        """A key fob (its firmware in the Unix port), enrolled by the owner's signature."""
        from . import owner as owner_ops
        from .vcar import VirtualCar
        from .vfob import VirtualFob

        fob = VirtualFob(self.dir / "fob")
        pub = fob.init()
        owner_ops.add_key(VirtualCar(flash / "state"), owner, pub, "driver")
        fob.trust(group_id, owner.trusted_readers()[group_id])
        return fob

    def _fob_press(self, fob, air, command):
        start = time.perf_counter()
        press = fob.press(command, air)
        ms = (time.perf_counter() - start) * 1000
        self.timings.append((f"key fob {command} over BLE", "fob", press["kind"] or "-", press["granted"], ms))
        verdict = "[green]granted[/]" if press["granted"] else "[red]refused[/]"
        self.say(f"    key fob, {command} pressed: {verdict} ({press['kind']} transaction; LED: {press['signal']}) "
                 f"in {ms:.0f} ms, the fob's whole visit from its process start")

    def _radio_line(self, radio, txn, ms, detail):
        granted = txn.control_flow is not None and txn.control_flow[0] == 1
        self.timings.append(("owner over " + radio, "owner", "-", granted, ms))
        verdict = "[green]granted[/]" if granted else "[red]refused[/]"
        results = "; ".join(r.describe() for r in txn.results)
        self.say(f"    {radio}: {verdict} in {ms:.0f} ms from the phone's side ({detail}) — {results}")

    def timing_table(self):
        table = Table(title="transactions (firmware in the MicroPython Unix port on this computer)")
        for col in ("step", "phone", "kind", "result", "ms"):
            table.add_column(col, justify="right" if col == "ms" else "left")
        for step, who, kind, granted, ms in self.timings:
            table.add_row(step, who, kind, "granted" if granted else "refused", f"{ms:.1f}")
        self.console.print()
        self.console.print(table)
        self.say("Timings include the TCP link and the key-store commit; see `make bench` for ESP32 estimates.")

    def audit_table(self):
        self.console.print()
        self.console.rule("the car's audit log (read from its flash by the firmware)")
        for rec in self.car.log():
            self.console.print("  " + format_record(rec), highlight=False)
        # Devices that proved no enrolled key (here: the revoked friend) are counted apart,
        # so they can never push the owner's records out of the log.
        self.console.rule("strangers' refusals, counted per 10 minutes and reason")
        for rec in self.car.stranger_log():
            self.console.print("  " + format_tally(rec), highlight=False)


def run(workdir=None, console=None):
    if console is None:
        console = Console()
        if console.width < 110:
            console = Console(width=110)  # audit lines and tables stay one line each
    if workdir is not None:
        path = Path(workdir)
        if path.exists() and any(path.iterdir()):
            raise CarkeyError(f"{path} is not empty: the demo starts from a new car")
        path.mkdir(parents=True, exist_ok=True)
        Demo(path, console).run()
        return
    with tempfile.TemporaryDirectory(prefix="carkey-demo-") as tmp:
        Demo(Path(tmp), console).run()
