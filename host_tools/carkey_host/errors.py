"""The one user-facing error class of the host tools; the CLI prints it as `carkey: message`."""

EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as a shell reports it


class CarkeyError(Exception):
    """An operational error with a message meant for the person at the terminal (exit code 1)."""

    exit_code = 1


class UsageError(CarkeyError):
    """An argument that parses but means nothing usable: a bad date, a slot no key has (exit code 2)."""

    exit_code = 2


class Refused(CarkeyError):
    """The work ran to its end and the answer was no (a refused transaction, a failed check)."""

    exit_code = 3
