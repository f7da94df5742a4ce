#!/usr/bin/env python
"""Two agor-db source trees A/B on `agor-db copy`, beside the bare bound, in one run.

For before/after comparisons on a shared machine, where only same-run figures mean anything: the trees
and the bound run in turn (the order reversed every other round), as whole processes, against one
pgserver, with bench_copy.py's measures (wall, client CPU, server CPU after a CHECKPOINT).

    git archive BASE runner sql | tar -x -C /tmp/a && ln -s /tmp/a/sql /tmp/a/runner/sql
    mkdir -p /tmp/a/pkg && ln -s /tmp/a/runner /tmp/a/pkg/agor_db
    python bench/ab_copy.py /tmp/a/pkg . --shape small --rounds 2      # "." = this checkout

An extra environment for a tree: ``NAME=PATH`` then ``--env NAME:VAR=VALUE`` (e.g. a worker count).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pgserver
import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_copy import Bench, prepare_source, timed  # noqa: E402


def run_tree(bench: Bench, path: str, env_extra: dict[str, str]) -> dict[str, Any]:
    env = dict(os.environ, **env_extra)
    if path != ".":
        env["PYTHONPATH"] = str(Path(path).resolve())  # before the editable install's finder
    url = bench.fresh("bench_ab")
    before = bench.server_cpu.read()
    cmd = [sys.executable, "-m", "agor_db", "copy", "--from", str(bench.source), "--to", url, "--json"]
    r = timed(cmd, env=env)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    time.sleep(0.5)
    after = bench.server_cpu.read()
    r["server_cpu_s"] = after - before if after is not None and before is not None else None
    if r["code"] != 0:
        raise SystemExit(f"agor-db copy ({path}) failed: {r['stderr'][-2000:]}")
    r["phases"] = json.loads(r["stdout"])["phases"]
    return r


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="+", help="[NAME=]PYTHONPATH entry holding an agor_db package ('.': this one)")
    parser.add_argument("--shape", choices=("large", "small"), default="small")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--env", action="append", default=[], help="NAME:VAR=VALUE for one tree")
    args = parser.parse_args()
    trees = dict(t.split("=", 1) if "=" in t else (t, t) for t in args.trees)
    envs: dict[str, dict[str, str]] = {name: {} for name in trees}
    for e in args.env:
        name, _, kv = e.partition(":")
        var, _, value = kv.partition("=")
        envs[name][var] = value
    source, rows = prepare_source(None, args.shape, args.messages)
    data = Path(tempfile.mkdtemp(prefix="agorab"))
    server = pgserver.get_server(data, cleanup_mode="delete")
    bench = Bench(source, rows, data, server.get_uri())
    names = [*trees, "bound"]
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    try:
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else names[::-1]:
                if name == "bound":
                    r = bench.child("bare bound", "--bound-child")
                else:
                    r = run_tree(bench, trees[name], envs[name])
                runs[name].append(r)
                print(
                    f"{name}: wall {r['wall']:.2f} s, client CPU {r['cpu_s']:.2f} s, "
                    f"server CPU {r['server_cpu_s']:.2f} s, load {r['load']:.1f} {r.get('phases', '')}",
                    flush=True,
                )
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)
    bound = min(r["wall"] for r in runs["bound"])
    for name, rs in runs.items():
        best = min(rs, key=lambda r: r["wall"])
        walls = " / ".join(f"{r['wall']:.2f}" for r in rs)
        print(
            f"{name:>10}: fastest {best['wall']:.2f} s (all {walls}), client CPU {best['cpu_s']:.2f} s, "
            f"server CPU {best['server_cpu_s']:.2f} s, / bound {bound / best['wall']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
