"""The unfused path's time against its bandwidth floor (make gpu-check).

    python benchmarks/bandwidth_floor.py --device cuda --bench build/bench_rasterizer.json

The fragments of N images of H x W with K faces per pixel are 48 bytes per slot, written and read
once between them by the forward and the backward (``lib3dr.renderer.memory.memory_estimate``). No
implementation can move them faster than the device copies memory, so bytes / copy bandwidth is a
floor for the unfused forward+backward. The bandwidth is measured here: a device-to-device copy of
1 GiB (CPU: 256 MiB), counting bytes read and written, median of 10.
"""
import argparse
import json
import statistics
import time

import torch

from lib3dr.renderer.memory import memory_estimate


def copy_bandwidth(device):
    """Bytes per second of a large copy on ``device``, reads plus writes."""
    size = 2**30 if device.type == "cuda" else 2**28
    source = torch.empty(size, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    times = []
    for _ in range(11):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        target.copy_(source)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * size / statistics.median(times[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--bench", required=True, help="JSON written by bench_rasterizer.py")
    parser.add_argument("--out", default=None, help="Markdown table to write")
    args = parser.parse_args()
    device = torch.device(args.device)
    bandwidth = copy_bandwidth(device)
    with open(args.bench) as f:
        rows = [r for r in json.load(f)["rows"] if r["kind"] == "unfused" and r["K"] > 1]
    lines = [f"Copy bandwidth on {args.device}: {bandwidth / 1e9:.0f} GB/s (reads + writes).", "",
             "| mesh | N | K | backend | fragment bytes | floor ms | forward+backward ms | x floor |",
             "| --- | --: | --: | --- | --: | --: | --: | --: |"]
    for r in rows:
        moved = memory_estimate(r["batch"], r["size"], r["size"], r["K"])
        floor_ms = 1000 * moved / bandwidth
        lines.append(f"| {r['mesh']} | {r['batch']} | {r['K']} | {r['backend']} | {moved / 2**20:.0f} MiB | "
                     f"{floor_ms:.2f} | {r['forward_backward_ms']:.2f} | {r['forward_backward_ms'] / floor_ms:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
