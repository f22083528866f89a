#!/usr/bin/env python3
"""Where the CPU of a DNS-over-TCP answer goes, server and client, at a fixed load.

../shared/bench/compare.py charges each server its own CPU per answer. Over
loopback part of that is not the server's work: a send delivers the answer
into the client's socket and wakes the client in the sender's context, and
how much that costs depends on what the client was doing at that instant
(asleep, busy, holding its socket). A server that answers late, in bursts,
finds the client busy and pays little; one that answers at once wakes it
every time and pays for that. So this also measures the client (dnsperf,
its CPU from wait4) and the answer latency, and reports the machine's CPU
per answer, server plus client, which no accounting shift can move.

Usage: tcp_cost.py --zone ZONEFILE --cpid 'CMD with {port}' [--origin NAME]
                   [--mixes pos,nx,nodata] [--rounds 3] [--seconds 8] [--rate 50000]

Servers (Knot, then cpid) run interleaved, each round on CPU 0 with dnsperf
on CPU 1 (-m tcp, 10 connections), with the query files and Knot
configuration of compare.py. Prints per mix the medians over rounds.
"""
import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
import compare  # noqa: E402


def client_run(port, qfile, seconds, rate):
    """dnsperf over TCP at a fixed rate: (answers, client CPU s, avg latency ms)."""
    cmd = ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile,
           "-l", str(seconds), "-c", "10", "-q", "200", "-T", "1", "-m", "tcp", "-Q", str(rate)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, _, usage = os.wait4(proc.pid, 0)
    answers, latency = 0, 0.0
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Queries completed:"):
            answers = int(line.split()[2])
        elif line.startswith("Average Latency (s):") and not latency:
            # The first is the queries'; a TCP run adds the connections'.
            latency = float(line.split()[3]) * 1000
    return answers, usage.ru_utime + usage.ru_stime, latency


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zone", required=True)
    ap.add_argument("--origin")
    ap.add_argument("--cpid", required=True)
    ap.add_argument("--mixes", default="pos,nx,nodata")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rate", type=int, default=50_000)
    a = ap.parse_args()
    compare.need(["dnsperf", "knotd"])
    origin = a.origin
    if origin is None:
        with open(a.zone) as f:
            origin = next(line.split()[1] for line in f if line.startswith("$ORIGIN"))
    read = compare.read_zone(a.zone, origin)
    names = next(x for x in (read if isinstance(read, tuple) else (read,)) if isinstance(x, dict))
    tmp = tempfile.mkdtemp(prefix="cpid-tcp-cost-")
    qfiles = compare.write_queries(tmp, origin, names)
    cmds = compare.configs(tmp, os.path.abspath(a.zone), origin)
    cmds["cpid"] = shlex.split(a.cpid.format(port=compare.PORTS["cpid"]))
    mixes = a.mixes.split(",")
    rows = {(s, m): [] for s in ("knot", "cpid") for m in mixes}
    print(f"{len(names)} names; {a.rounds} rounds x {a.seconds} s at {a.rate}/s over TCP; "
          "server on CPU 0, dnsperf on CPU 1")
    for r in range(a.rounds):
        for name in ("knot", "cpid"):
            srv = compare.Server(name, cmds[name], compare.PORTS[name], origin, tmp)
            try:
                for mix in mixes:
                    before = srv.cpu()
                    answers, client, latency = client_run(srv.port, qfiles[mix], a.seconds, a.rate)
                    server = srv.cpu() - before
                    if answers:
                        row = (server / answers * 1e6, client / answers * 1e6, latency)
                        rows[(name, mix)].append(row)
                        print(f"  round {r + 1} {name:4} {mix:6} server {row[0]:6.2f} µs  "
                              f"client {row[1]:6.2f} µs  latency {row[2]:6.3f} ms", flush=True)
                    time.sleep(0.5)
            finally:
                srv.stop()
    print("\nmedians, CPU µs per answer (server / client / both) and average latency")
    print(f"{'mix':7}{'knot':>34}{'cpid':>34}   ratio server  ratio both")
    for mix in mixes:
        med = {}
        for s in ("knot", "cpid"):
            got = rows[(s, mix)]
            if not got:
                continue
            srv_us = statistics.median(x[0] for x in got)
            cli_us = statistics.median(x[1] for x in got)
            both = statistics.median(x[0] + x[1] for x in got)
            lat = statistics.median(x[2] for x in got)
            med[s] = (srv_us, cli_us, both, lat)
        if len(med) < 2:
            continue
        cell = {s: f"{v[0]:.2f} / {v[1]:.2f} / {v[2]:.2f}, {v[3]:.2f} ms" for s, v in med.items()}
        print(f"{mix:7}{cell['knot']:>34}{cell['cpid']:>34}"
              f"   {med['cpid'][0] / med['knot'][0]:12.2f}  {med['cpid'][2] / med['knot'][2]:10.2f}")


if __name__ == "__main__":
    main()
