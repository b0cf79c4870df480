# carkey — fake UART for firmware tests: records every byte written, can refuse part of a write.
# SPDX-License-Identifier: MIT

# Newest writes kept, as fakelog.LIMIT (test_fake_logs checks they agree). Not imported
# from there: this file is also compiled alone onto a board-sized heap.
LOG_LIMIT = 32


class FakeUART:
    """A machine.UART stand-in with write(); `accept` caps how many bytes one write takes.

    `writes` keeps the newest LOG_LIMIT writes, and data() joins those.
    """

    def __init__(self, accept=None):
        self.writes = []
        self.accept = accept

    def write(self, buf):
        data = bytes(buf)  # the writer reuses its buffer: keep a copy
        if self.accept is not None:
            data = data[: self.accept]
        self.writes.append(data)
        if len(self.writes) > LOG_LIMIT:
            self.writes.pop(0)
        return len(data)

    def data(self):
        return b"".join(self.writes)


def uart_factory(uarts):
    """A Board uart_factory that hands out (and remembers) one FakeUART per bus name."""

    def make(name, spec):
        uart = FakeUART()
        uarts[name] = (uart, spec)
        return uart

    return make
