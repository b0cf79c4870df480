# carkey — the crypto seam: protocol code reaches every primitive as carkey.crypto.p256/aes/kdf.
# SPDX-License-Identifier: MIT
#
# The functions of those three modules are the whole interface (docs/CRYPTO.md). The pure
# MicroPython modules in this package are the default backend. A board with other hardware
# (an ATECC608 secure element on I2C, a C module) names a replacement in its config,
#     carkey_config.CRYPTO_BACKENDS = {"p256": "atecc608_p256"}
# and this package installs it under the same name, so no caller changes.

import sys

_NAMES = ("p256", "aes", "kdf")


def _configured():
    try:
        import carkey_config
    except ImportError as e:
        # Only a missing config means "defaults"; a config that itself fails to import is a fault.
        if "carkey_config" not in str(e):
            raise
        return None
    return getattr(carkey_config, "CRYPTO_BACKENDS", None)


def install(backends):
    """Put the modules named in `backends` ({"p256": "module.name", ...}) behind the seam."""
    package = sys.modules[__name__]
    for name, module_name in backends.items():
        if name not in _NAMES:
            raise ValueError("unknown crypto interface " + name)
        module = __import__(module_name)
        for part in module_name.split(".")[1:]:
            module = getattr(module, part)
        sys.modules[__name__ + "." + name] = module
        setattr(package, name, module)


_backends = _configured()
if _backends:
    install(_backends)
