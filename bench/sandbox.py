"""What one python-tool call costs: wall time from `run()` to its result, per mode.

- `cold`: no sandbox started ahead (`agent.python.prestart: 0`): every call pays for the
  namespaces, the interpreter and the numpy/PIL imports;
- `warm`: one sandbox started ahead (`prestart: 1`, the default), with a pause between
  calls as a rollout has while the model writes its next turn (`--gap`); back to back,
  a call waits for the next sandbox to finish starting;
- `warm x4, bursts of 4`: `prestart: 4` and four calls back to back after each pause (a
  turn in which four trajectories of a group call the tool);
- `weak`: the audit-hook mode, cold, for comparison (no namespaces, no cgroup).
Two payloads: `print(1)` with one 224x224 image, and a crop + resize that returns an image.

    .venv/bin/python bench/sandbox.py --calls 40 --gap 1.0
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAYLOADS = {
    "print": "print(1)",
    "crop+resize": "images[0].crop((0, 0, 112, 112)).resize((224, 224)).save('output.png')",
}


def measure(sandbox, code: str, images, calls: int, gap: float, burst: int = 1) -> list[float]:
    sandbox.run(code, images)  # a first call outside the figures: caches, page faults
    times = []
    for i in range(calls):
        if i % burst == 0:
            time.sleep(gap)
        t0 = time.perf_counter()
        res = sandbox.run(code, images)
        times.append((time.perf_counter() - t0) * 1000)
        if not res.ok:
            raise SystemExit(f"call failed: {res.error}")
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between warm calls")
    args = parser.parse_args()

    from PIL import Image

    from miva.agent.sandbox.limits import SandboxLimits
    from miva.agent.sandbox.local import Isolation, LocalSandbox, resolve_isolation

    images = [Image.new("RGB", (224, 224), (200, 40, 40))]
    limits = SandboxLimits()
    kernel = resolve_isolation(False)
    setups = [
        ("cold", LocalSandbox(limits, prestart=0), 0.0, 1),
        ("warm", LocalSandbox(limits, prestart=1), args.gap, 1),
        ("warm, back to back", LocalSandbox(limits, prestart=1), 0.0, 1),
        ("warm x4, bursts of 4", LocalSandbox(limits, prestart=4), args.gap * 4, 4),
        (
            "weak (audit hook), cold",
            LocalSandbox(limits, prestart=0, isolation=Isolation("weak")),
            0.0,
            1,
        ),
    ]
    print(f"isolation here: {kernel.describe()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"{'mode':<26} {'payload':<12} {'median ms':>10} {'p95 ms':>8} {'calls':>6}")
    for name, sandbox, gap, burst in setups:
        for payload, code in PAYLOADS.items():
            times = measure(sandbox, code, images, args.calls, gap, burst)
            print(
                f"{name:<26} {payload:<12} {statistics.median(times):>10.1f} "
                f"{p95(times):>8.1f} {len(times):>6}"
            )
        sandbox.close()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
