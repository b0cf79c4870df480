"""carkey fuzz campaign runner: starts tests/fuzz/fuzz.py in the MicroPython Unix port in batches and sums up.

Usage: python tests/fuzz/run.py [--surface S ...] [--cases N] [--batch B] [--seed S] [--jobs J]
                                [--update-corpus] [--json PATH]

Each batch is one MicroPython process running B cases of one surface from its own
seed (seed, seed+1, ...), after replaying the surface's corpus. The runner adds up
cases, outcome histograms and violations per surface, prints a table and exits 1
if any property was violated. With --update-corpus, inputs that reached an outcome
class the corpus lacks are appended to tests/fuzz/corpus/<surface>.txt.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from carkey_host import paths
from carkey_host import runner

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / "corpus"
SURFACES = ("apdu", "ble", "pn532", "documents", "state", "usb")
BATCH_TIMEOUT_S = 3600
# The usb surface holds a whole application (car, key store, tables) beside its run's
# inputs and answers (a key list is ~12 KB of text): more than the port's default 2 MB.
HEAPSIZE = {"usb": "8m"}


def fuzz_env():
    root = paths.REPO_ROOT
    extra = [root / "tests" / "mpy", FUZZ_DIR, root / "boards", root / "boards" / "virtual_hw"]
    return runner.environment(extra_paths=extra)


def run_batch(surface, cases, seed, corpus=True):
    """One MicroPython process: its summary dict and the new-outcome inputs it found."""
    corpus_file = CORPUS_DIR / f"{surface}.txt"
    with tempfile.TemporaryDirectory() as tmp:
        new_file = Path(tmp) / "new.txt"
        cmd = runner.command(FUZZ_DIR / "fuzz.py", surface, cases, seed,
                             corpus_file if corpus and corpus_file.exists() else "", new_file,
                             heapsize=HEAPSIZE.get(surface))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=fuzz_env(), cwd=paths.REPO_ROOT,
                              timeout=BATCH_TIMEOUT_S)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"fuzz {surface} seed {seed} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
        summary = json.loads(lines[-1])
        new = new_file.read_text() if new_file.exists() else ""
    return summary, new


def merge(total, summary):
    total["cases"] += summary["cases"]
    total["violations"] += summary["violations"]
    total["examples"] += summary["examples"]
    total["seconds"] += summary["seconds"]
    total["slowest_case_ms"] = max(total["slowest_case_ms"], summary["slowest_case_ms"])
    for key, n in summary["outcomes"].items():
        total["outcomes"][key] = total["outcomes"].get(key, 0) + n


def known_classes(surface):
    path = CORPUS_DIR / f"{surface}.txt"
    if not path.exists():
        return set()
    return {ln[2:].strip() for ln in path.read_text().splitlines() if ln.startswith("# ")}


def add_to_corpus(surface, new_text):
    known = known_classes(surface)
    lines = new_text.splitlines()
    added = []
    for comment, data in zip(lines[::2], lines[1::2]):
        key = comment[2:].strip()
        if key not in known and len(data) <= 4000:
            known.add(key)
            added.append(f"{comment}\n{data}\n")
    if added:
        path = CORPUS_DIR / f"{surface}.txt"
        CORPUS_DIR.mkdir(exist_ok=True)
        with path.open("a") as f:
            if path.stat().st_size == 0:
                f.write(f"# carkey fuzz corpus, surface {surface}: one hex input per line after its outcome class.\n")
            f.writelines(added)
    return len(added)


def campaign(surfaces, cases, batch, seed, jobs=1, update_corpus=False, log=print):
    results = {}
    for surface in surfaces:
        total = {"surface": surface, "cases": 0, "violations": 0, "examples": [], "outcomes": {}, "seconds": 0.0,
                 "slowest_case_ms": 0}
        seeds = []
        left = cases
        s = seed
        while left > 0:
            seeds.append((s, min(batch, left)))
            left -= batch
            s += 1
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            # The corpus is replayed by the first batch only.
            futures = [pool.submit(run_batch, surface, n, sd, i == 0) for i, (sd, n) in enumerate(seeds)]
            for fut in futures:
                try:
                    summary, new = fut.result()
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)  # a broken harness: stop now
                    raise
                merge(total, summary)
                print(f"  {surface}: {total['cases']} cases, {total['violations']} violations so far",
                      file=sys.stderr, flush=True)
                if update_corpus and new:
                    total["corpus_added"] = total.get("corpus_added", 0) + add_to_corpus(surface, new)
        total["wall_seconds"] = round(time.monotonic() - start, 1)
        results[surface] = total
        log(f"{surface:10} {total['cases']:8} cases  {len(total['outcomes']):4} outcome classes  "
            f"{total['violations']} violations  slowest case {total['slowest_case_ms']} ms  "
            f"{total['wall_seconds']} s")
        for ex in total["examples"][:5]:
            log(f"    violation: case {ex['case']}: {ex['what']}  input {ex['input'][:120]}")
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--surface", action="append", choices=SURFACES)
    ap.add_argument("--cases", type=int, default=100_000, help="cases per surface (default 100000)")
    ap.add_argument("--batch", type=int, default=5000, help="cases per MicroPython process")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1, help="MicroPython processes at once")
    ap.add_argument("--update-corpus", action="store_true")
    ap.add_argument("--json", help="write the per-surface results here")
    args = ap.parse_args(argv)
    results = campaign(args.surface or SURFACES, args.cases, args.batch, args.seed, args.jobs, args.update_corpus)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1, sort_keys=True))
    return 1 if any(r["violations"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
