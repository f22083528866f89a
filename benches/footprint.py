#!/usr/bin/env python3
"""Start-up time and resident memory of cpid beside Knot on the same data.

For each data set (a seeded cpid data directory and its exported zone) this
starts each server pinned to CPU 0, measures the time from exec to the first
answered SOA query, then reads the resident memory of every process in the
server's session from /proc. Each server is measured --rounds times; the
median is printed as a markdown table.

  cpid bench seed --count 100000 --data /tmp/d100k
  cpid zone export --data /tmp/d100k -o /tmp/d100k.zone
  python3 benches/footprint.py --set 100k:/tmp/d100k:/tmp/d100k.zone \
      --cpid target/release/cpid

Reuses the server configurations of ../shared/bench/compare.py.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench"))
import compare  # noqa: E402


def session_rss_kib(sid):
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) != sid:  # field 6 of stat: session id
                continue
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total


def measure(cmd, port, origin):
    start = time.monotonic()
    proc = subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        while not compare.answers(port, origin, timeout=0.2):
            if proc.poll() is not None:
                sys.exit(f"{cmd} exited during start-up")
            if time.monotonic() - start > 600:
                sys.exit(f"{cmd[0]} did not come up")
            time.sleep(0.02)
        ready = time.monotonic() - start
        time.sleep(1.0)
        rss = session_rss_kib(proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
        proc.wait()
    return ready, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", action="append", required=True, help="LABEL:DATA_DIR:ZONE_FILE")
    ap.add_argument("--cpid", default="target/release/cpid")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    compare.need(["knotd"])
    rows = []
    for spec in a.set:
        label, data, zone = spec.split(":")
        origin = None
        with open(zone) as f:
            for line in f:
                if line.startswith("$ORIGIN"):
                    origin = line.split()[1]
                    break
        tmp = tempfile.mkdtemp(prefix="cpid-footprint-")
        cmds = compare.configs(tmp, os.path.abspath(zone), origin)
        servers = {
            "knot": (cmds["knot"], compare.PORTS["knot"]),
            "cpid": ([a.cpid, "serve", "--data", data, "--dns", f"127.0.0.1:{compare.PORTS['cpid']}",
                      "--http", "127.0.0.1:0", "--udp-workers", "1"], compare.PORTS["cpid"]),
        }
        for name, (cmd, port) in servers.items():
            results = [measure(cmd, port, origin) for _ in range(a.rounds)]
            ready = statistics.median(r[0] for r in results)
            rss = statistics.median(r[1] for r in results)
            rows.append((label, name, ready, rss / 1024))
            print(f"{label} {name}: ready in {ready:.2f} s, RSS {rss / 1024:.0f} MiB", flush=True)
    print()
    print("| identifiers | server | start-up to first answer (s) | resident memory (MiB) |")
    print("|---|---|---:|---:|")
    for label, name, ready, rss in rows:
        print(f"| {label} | {name} | {ready:.2f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
