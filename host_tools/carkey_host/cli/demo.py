"""`carkey demo`: the narrated scenario on a virtual car (what `make demo` runs)."""


def do_demo(args):
    from ..demo import run

    run(args.dir)


def register(sub):
    p = sub.add_parser("demo", help="a narrated scenario on a virtual car: provision, unlock, share, revoke")
    p.add_argument("--dir", metavar="DIR", help="keep the car's state and the phones' keys here (default: a temp dir)")
    p.set_defaults(func=do_demo)
