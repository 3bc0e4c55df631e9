#!/usr/bin/env python3
"""Fails when a binary needs a glibc symbol version newer than the given one.

Usage: glibc_check.py 2.17 BINARY...   (reads the dynamic symbol table with objdump -T)
"""
import re
import subprocess
import sys

limit = tuple(int(x) for x in sys.argv[1].split("."))
failed = 0
for path in sys.argv[2:]:
    out = subprocess.run(["objdump", "-T", path], capture_output=True, text=True, check=True).stdout
    versions = {tuple(int(x) for x in v.split(".")) for v in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", out)}
    newest = max(versions) if versions else ()
    too_new = sorted(v for v in versions if v > limit)
    if too_new:
        failed += 1
        print(f"FAIL {path}: needs GLIBC_{'.'.join(map(str, too_new[-1]))} (limit {sys.argv[1]})")
    else:
        print(f"ok   {path}: newest glibc symbol GLIBC_{'.'.join(map(str, newest))} <= {sys.argv[1]}")
print(f"{len(sys.argv) - 2 - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
