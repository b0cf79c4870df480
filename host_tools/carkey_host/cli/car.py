"""`carkey car info`: the car's advertised name, reader public key and group id.

Asked of the car itself (`--port P`, `--state DIR`; public, no signature needed), or
read from a phone's key directory (`--keys DIR`: the cars it trusts). This is what a
phone needs to find and trust a car (`carkey phone trust`); share files carry it too.
"""

import json

from .. import owner
from ..errors import CarkeyError
from ..keydir import KeyDir
from . import out


def do_car_info(args):
    if args.port or args.state:
        from .owner import _target

        cars = [owner.car_info(_target(args).identity())]
    elif args.keys:
        cars = KeyDir(args.keys).trusted_cars()
        if not cars:
            raise CarkeyError(f"{args.keys} trusts no car yet (`carkey provision`, `carkey phone import-share`)")
    else:
        raise CarkeyError("say which car: --port P (a board), --state DIR (the virtual car) or --keys DIR")
    for car in cars:
        if args.json:
            out(json.dumps(car))
        else:
            out(f"name               {car['name']}\ngroup id           {car['group_id']}\n"
                f"reader public key  {car['reader_public_key']}")


def register(sub):
    car = sub.add_parser("car", help="the car's identity: advertised name, reader public key, group id")
    csub = car.add_subparsers(dest="car_command", metavar="ACTION", required=True)
    p = csub.add_parser("info", help="print the car's name, reader public key and group id")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--port", metavar="P", help="ask the board on this USB serial port (or `carkey vboard` link)")
    which.add_argument("--state", metavar="DIR", help="ask the virtual car with this state directory")
    which.add_argument("--keys", metavar="DIR", help="the cars this phone key directory trusts")
    p.add_argument("--json", action="store_true", help="one JSON object per car")
    p.set_defaults(func=do_car_info)
