"""Mesh building and loading times: ico_sphere(6) and the cow's OBJ with its MTL and texture.

    python benchmarks/bench_io.py [--repeats 7]

Prints the median, fastest and slowest of --repeats runs after one warm-up (imports, the file
cache). These were once tests asserting "under 1 s"; a busy or slow machine failed them, so the
times are reported here and asserted nowhere.
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from lib3dr.io import load_obj  # noqa: E402
from lib3dr.utils import ico_sphere  # noqa: E402

COW = os.path.join(ROOT, "data", "cow_mesh", "cow.obj")
ROWS = [
    ("ico_sphere(6): 40962 vertices, 81920 faces", lambda: ico_sphere(6)),
    ("load_obj(cow.obj): 2930 vertices, MTL, 1024x1024 texture", lambda: load_obj(COW)),
]


def times_ms(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print("| what | median ms | min ms | max ms |")
    print("| --- | --: | --: | --: |")
    for name, fn in ROWS:
        times = times_ms(fn, args.repeats)
        print(f"| {name} | {statistics.median(times):.1f} | {min(times):.1f} | {max(times):.1f} |")


if __name__ == "__main__":
    main()
