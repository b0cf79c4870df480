"""`carkey phone web`: serve the phone key page (web/) on this computer."""

from ..tcp_link import parse_endpoint
from . import out


def do_phone_web(args):
    from ..errors import CarkeyError
    from ..web_server import make_server

    try:
        host, port = parse_endpoint(args.listen)
        air = parse_endpoint(args.air) if args.air else None
    except CarkeyError as e:
        raise CarkeyError(str(e).replace("--tcp", "--listen/--air")) from None
    server = make_server(host, port, air, quiet=not args.verbose_http)
    h, p = server.server_address[:2]
    out(f"phone key page on http://{h}:{p}/" + ("  (virtual air at /air: add ?air to the address)" if air else ""))
    if h not in ("127.0.0.1", "localhost", "::1"):
        out("note: browsers allow Web Bluetooth only on localhost or over HTTPS; put this behind an HTTPS proxy")
    try:
        server.serve_forever()
    finally:
        server.server_close()


def register(psub):
    p = psub.add_parser("web", help="serve the phone key web page (Web Bluetooth) on this computer")
    p.add_argument("--listen", default="127.0.0.1:8300", metavar="HOST:PORT", help="default 127.0.0.1:8300")
    p.add_argument("--air", metavar="HOST:PORT", help="also tunnel a WebSocket at /air to this virtual air hub "
                   "(development without a radio)")
    p.add_argument("--verbose-http", action="store_true", help="log every request")
    p.set_defaults(func=do_phone_web)
