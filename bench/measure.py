"""Runs one command and prints its wall time and peak memory as JSON.

Peak memory is the child's maximum resident set size (getrusage RUSAGE_CHILDREN), measured in a fresh process per
command so that one tool's peak never hides another's.
"""
import json
import resource
import subprocess
import sys
import time

cmd = sys.argv[1:]
start = time.perf_counter()
proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - start
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"ok": proc.returncode == 0, "seconds": wall, "peak_mb": peak_kb / 1024,
                  "stdout": proc.stdout[-4000:], "stderr": proc.stderr[-4000:]}))
