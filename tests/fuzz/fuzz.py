# carkey — fuzz campaign driver inside the MicroPython Unix port: one surface, many cases, one JSON line out.
# SPDX-License-Identifier: MIT
#
# Usage (MICROPYPATH: firmware, tests/mpy, tests/fuzz, boards):
#   micropython tests/fuzz/fuzz.py SURFACE CASES SEED [CORPUS_FILE [NEW_FILE]]
# Replays CORPUS_FILE first (each entry counts as a case), then generates cases
# from SEED. Inputs that reach an outcome class not seen before in this run are
# written to NEW_FILE (hex, one a line) for the host to add to the corpus.
# tests/fuzz/run.py starts this in batches; docs/TESTING.md describes the campaign.

import gc
import json
import sys

from fuzzlib import Report, Rng, corpus

SURFACES = ("apdu", "ble", "pn532", "documents", "state", "usb")
# Keys, identities and the committed history come from this seed in every run, so a
# corpus entry meets the same car it was found on; SEED varies only the cases.
WORLD_SEED = 1


def _module(surface):
    if surface == "apdu":
        import surf_apdu as m
    elif surface == "ble":
        import surf_ble as m
    elif surface == "pn532":
        import surf_pn532 as m
    elif surface == "documents":
        import surf_documents as m
    elif surface == "state":
        import surf_state as m
    elif surface == "usb":
        import surf_usb as m
    else:
        raise SystemExit("unknown surface %r (one of %s)" % (surface, ", ".join(SURFACES)))
    return m


def main(argv):
    surface, cases, seed = argv[1], int(argv[2]), int(argv[3])
    corpus_file = argv[4] if len(argv) > 4 else None
    new_file = argv[5] if len(argv) > 5 else None
    m = _module(surface)
    from scratch import remove_tree, scratch_dir

    dir = scratch_dir()
    report = Report(surface, seed)
    try:
        world = m.World(dir, Rng(WORLD_SEED))
        # Outcome-guided feedback: surfaces that build on earlier inputs (apdu, documents)
        # draw some of their bases from world.pool, which starts as the corpus and takes
        # in every input that reached an outcome class new to this run.
        world.pool = corpus(corpus_file) if corpus_file else []
        case = 0
        for entry in list(world.pool):
            m.run_case(world, Rng(seed * 1000003 + case), report, case, entry)
            case += 1
        report.hist["(corpus replayed)"] = case
        seen = len(report.new)
        for i in range(cases):
            m.run_case(world, Rng(seed * 1000003 + case), report, case)
            case += 1
            if len(report.new) > seen:
                for _, data in report.new[seen:]:
                    if len(world.pool) < 2000:
                        world.pool.append(bytes.fromhex(data))
                seen = len(report.new)
            if not case & 63:
                gc.collect()
        m.final_check(world, report)
    finally:
        close = getattr(m, "close", None)
        if close is not None:
            close()
        _clean(dir, remove_tree)
    if new_file:
        with open(new_file, "w") as f:
            for key, data in report.new:
                f.write("# %s\n%s\n" % (key, data))
    print(json.dumps(report.summary()))


def _clean(dir, remove_tree):
    import os

    try:
        for name in os.listdir(dir):
            path = dir + "/" + name
            if os.stat(path)[0] & 0x4000:
                remove_tree(path)
            else:
                os.remove(path)
        os.rmdir(dir)
    except OSError:
        pass


main(sys.argv)
