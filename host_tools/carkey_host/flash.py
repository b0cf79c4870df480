"""Flash a MicroPython firmware image onto an ESP32 over its ROM serial bootloader, through esptool's API.

    result = flash("/dev/ttyUSB0", "ESP32_GENERIC-v1.26.0.bin", erase=True)

The work is a short list of esptool.cmds calls (documented in esptool's scripting
guide): connect_esp (which detects the chip unless one is named), run_stub,
change_baud, attach_flash, erase_flash when asked, write_flash at the chip's offset,
reset_chip. `connect_call()` and `flash_calls()` build that list as data, so it can
be checked without a board; `flash()` runs it.

Image checks before anything touches the port: the file exists and is not empty or
larger than 16 MiB, starts with the ESP image magic 0xE9, is a full image (bootloader
first) rather than an application image, and its header's chip id matches the chip.
"""

import contextlib
import io
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CarkeyError, UsageError
from .serialport import NoAnswer, check_port

CHIPS = ("esp32", "esp32s3", "esp32c3")
# Where the image starts in flash: the ESP32 ROM loads its second-stage bootloader
# from 0x1000, the S3 and C3 from 0x0. MicroPython's .bin downloads start there.
FLASH_OFFSET = {"esp32": 0x1000, "esp32s3": 0x0, "esp32c3": 0x0}
# Chip id in the image's extended header (bytes 12..13, little endian).
IMAGE_CHIP_ID = {"esp32": 0x0000, "esp32s3": 0x0009, "esp32c3": 0x0005}
# esptool's CHIP_NAME for each.
CHIP_NAMES = {"ESP32": "esp32", "ESP32-S3": "esp32s3", "ESP32-C3": "esp32c3"}

IMAGE_MAGIC = 0xE9
APP_DESC_MAGIC = 0xABCD5432  # esp_app_desc_t at 0x20 marks an application-only image
MAX_IMAGE = 16 * 1024 * 1024
ROM_BAUD = 115200
BAUDS = (115200, 230400, 460800, 921600, 1500000, 2000000)
DEFAULT_BAUD = 460800
DEFAULT_CONNECT_ATTEMPTS = 4


class FirmwareFileError(UsageError):
    """The image file is missing, empty, not an ESP image or for another chip (bad usage: exit 2)."""


@dataclass
class Image:
    path: Path
    size: int
    chip: str  # from the header's chip id, or None if the id is unknown


@dataclass
class Call:
    """One esptool API call: `function(esp?, *args, **kwargs)`; uses_esp marks the loader argument."""

    function: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    uses_esp: bool = True


@dataclass
class FlashResult:
    port: str
    chip: str
    offset: int
    size: int
    erased: bool
    seconds: float

    def as_dict(self):
        return {"port": self.port, "chip": self.chip, "offset": self.offset, "size": self.size,
                "erased": self.erased, "seconds": round(self.seconds, 3)}


def check_image(path, chip="auto"):
    """Validate the firmware file (and its chip, when named); returns an Image."""
    path = Path(path)
    if not path.is_file():
        raise FirmwareFileError(f"firmware file {path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise FirmwareFileError(f"firmware file {path} is empty")
    if size > MAX_IMAGE:
        raise FirmwareFileError(f"firmware file {path} is {size} bytes, more than any ESP32 flash (16 MiB)")
    with open(path, "rb") as f:
        head = f.read(0x30)
    if head[0] != IMAGE_MAGIC:
        raise FirmwareFileError(
            f"{path} is not an ESP32 firmware image (first byte 0x{head[0]:02x}, expected 0xe9); "
            "download the .bin for your board from micropython.org/download"
        )
    if len(head) >= 0x24 and struct.unpack_from("<I", head, 0x20)[0] == APP_DESC_MAGIC:
        raise FirmwareFileError(
            f"{path} is an application image (it belongs at 0x10000, after a bootloader and partition "
            "table); use the full firmware .bin, which starts with the bootloader"
        )
    image_chip = None
    if len(head) >= 14:
        chip_id = struct.unpack_from("<H", head, 12)[0]
        image_chip = next((c for c, i in IMAGE_CHIP_ID.items() if i == chip_id), None)
        if image_chip is None:
            raise FirmwareFileError(f"{path} is built for a chip carkey does not support (image chip id {chip_id})")
    if chip != "auto":
        check_chip(chip)
        if image_chip is not None and image_chip != chip:
            raise FirmwareFileError(f"{path} is built for {image_chip}, not {chip}")
    return Image(path, size, image_chip)


def check_chip(chip):
    if chip not in CHIPS:
        raise UsageError(f"unknown chip {chip!r}; choose from auto, {', '.join(CHIPS)}")
    return chip


def check_baud(baud):
    if baud not in BAUDS:
        raise UsageError(f"unsupported baud rate {baud}; choose from {', '.join(map(str, BAUDS))}")
    return baud


def connect_call(port, chip="auto", attempts=DEFAULT_CONNECT_ATTEMPTS):
    """The esptool call that opens the port, resets into the ROM bootloader and syncs.

    connect_esp is esptool's recommended entry point; it detects the chip for "auto".
    """
    if chip != "auto":
        check_chip(chip)
    return Call("connect_esp", (), {"port": port, "chip": chip, "initial_baud": ROM_BAUD,
                                    "before": "default-reset", "connect_attempts": attempts}, uses_esp=False)


def flash_calls(image, chip, baud=DEFAULT_BAUD, erase=False):
    """The esptool calls that write `image` on a connected `chip`, in order."""
    calls = [Call("run_stub")]
    if baud != ROM_BAUD:
        calls.append(Call("change_baud", (baud,)))
    calls.append(Call("attach_flash"))
    if erase:
        calls.append(Call("erase_flash"))
    calls.append(Call("write_flash", ([(FLASH_OFFSET[chip], str(image.path))],), {"flash_size": "keep"}))
    calls.append(Call("reset_chip", ("hard-reset",)))
    return calls


class _Api:
    """esptool.cmds plus change_baud, which is a loader method rather than a function."""

    def __init__(self):
        from esptool import cmds

        self._cmds = cmds

    def __getattr__(self, name):
        if name == "change_baud":
            return lambda esp, baud: esp.change_baud(baud)
        return getattr(self._cmds, name)


def _chip_of(esp):
    name = getattr(esp, "CHIP_NAME", "?")
    chip = CHIP_NAMES.get(name)
    if chip is None:
        raise CarkeyError(f"found an {name}: carkey boards use {', '.join(CHIPS)}")
    return chip


def _no_answer(port, detail):
    return NoAnswer(
        f"no ESP32 bootloader answered on {port} (hold BOOT and tap EN/RST to enter download mode, "
        f"check that the USB cable carries data, close serial monitors): {detail}"
    )


def flash(port, firmware, chip="auto", baud=DEFAULT_BAUD, erase=False, attempts=DEFAULT_CONNECT_ATTEMPTS,
          progress=None, api=None):
    """Write `firmware` to the ESP32 on `port`; returns a FlashResult.

    progress(step) is called before each esptool call with its function name. `api`
    replaces esptool.cmds (tests record the calls with it). esptool's own console
    output is captured, and shown only inside an error message.
    """
    started = time.monotonic()
    image = check_image(firmware, chip)
    check_baud(baud)
    check_port(port)
    progress = progress or (lambda step: None)
    api = api or _Api()
    from esptool.util import FatalError
    from serial import SerialException

    log = io.StringIO()
    esp = None
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            call = connect_call(port, chip, attempts)
            progress(call.function)
            try:
                esp = getattr(api, call.function)(*call.args, **call.kwargs)
            except (FatalError, SerialException, OSError) as e:
                raise _no_answer(port, _last_line(e)) from None
            found = _chip_of(esp)
            if chip != "auto" and found != chip:
                raise CarkeyError(f"--chip {chip} but the board on {port} is an {found}")
            if image.chip is not None and image.chip != found:
                raise FirmwareFileError(f"{image.path} is built for {image.chip}, but the board is an {found}")
            for call in flash_calls(image, found, baud, erase):
                progress(call.function)
                try:
                    result = getattr(api, call.function)(esp, *call.args, **call.kwargs)
                except FatalError as e:
                    raise CarkeyError(f"esptool {call.function} failed: {_last_line(e)}") from None
                except (SerialException, OSError) as e:
                    raise _no_answer(port, f"the link dropped during {call.function}: {e}") from None
                if call.function == "run_stub" and result is not None:
                    esp = result
    finally:
        if esp is not None:
            with contextlib.suppress(Exception):
                esp._port.close()
    return FlashResult(port, found, FLASH_OFFSET[found], image.size, erase, time.monotonic() - started)


def _last_line(e):
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def flash_offset(chip):
    return FLASH_OFFSET[check_chip(chip)]

