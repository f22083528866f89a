#!/usr/bin/env python3
"""../shared/bench/compare.py with one more server, "cpid-old" (command in $CPID_OLD with
{port}), so that a build before a change runs in the same rounds as the
build after it and Knot. Does not modify ../shared/bench/compare.py."""
import os
import shlex
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
import compare  # noqa: E402

compare.PORTS["cpid-old"] = 5407
_configs = compare.configs


def configs(tmp, zone, origin):
    c = _configs(tmp, zone, origin)
    c["cpid-old"] = shlex.split(os.environ["CPID_OLD"].format(port=compare.PORTS["cpid-old"]))
    return c


compare.configs = configs
compare.main()
