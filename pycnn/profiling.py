"""Per-node profiles of a session: which node took how long, with which
algorithm, at how many GFLOP/s; printable as a table or written as a Chrome
trace (chrome://tracing, Perfetto)."""
from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass
class NodeTiming:
    name: str
    op_type: str
    algorithm: str
    input_shapes: list
    output_shapes: list
    ms: float           # mean per run
    percent: float      # of the summed node time
    gflops: float       # achieved, 0 when the op does no counted arithmetic
    last_start_ms: float
    last_ms: float
    images: int = 1     # calls per run: > 1 where the batch went through image by image


class Profile:
    """Timings of every node over `runs` runs (InferenceSession.profile returns one)."""

    def __init__(self, records: list, runs: int):
        total = sum(r["total_ms"] for r in records) or 1.0
        self.runs = runs
        self.total_ms = total / max(runs, 1)
        self.nodes = [
            NodeTiming(r["name"], r["op_type"], r["algorithm"], r["input_shapes"], r["output_shapes"],
                       r["total_ms"] / max(r["runs"], 1), 100.0 * r["total_ms"] / total,
                       (r["flops"] * r["runs"] / (r["total_ms"] * 1e6)) if r["total_ms"] > 0 and r["flops"] else 0.0,
                       r["last_start_ms"], r["last_ms"], r.get("images", 1))
            for r in records
        ]

    def by_op_type(self) -> dict:
        """{op_type: (ms per run, percent)}, largest first."""
        agg = {}
        for n in self.nodes:
            ms, pct = agg.get(n.op_type, (0.0, 0.0))
            agg[n.op_type] = (ms + n.ms, pct + n.percent)
        return dict(sorted(agg.items(), key=lambda kv: -kv[1][0]))

    def table(self, top: int | None = None) -> str:
        """The nodes as a text table, slowest first (all of them when top is None)."""
        rows = sorted(self.nodes, key=lambda n: -n.ms)[:top]
        lines = [f"{'node':28s} {'op':18s} {'algorithm':22s} {'output':22s} {'ms':>8s} {'%':>6s} {'GFLOP/s':>8s}"]
        for n in rows:
            shape = "x".join(map(str, n.output_shapes[0])) if n.output_shapes else ""
            per_image = "*" if n.images > 1 else " "
            lines.append(f"{n.name[:28]:28s} {n.op_type[:18]:18s} {n.algorithm[:22]:22s} {shape[:22]:22s} "
                         f"{n.ms:8.3f}{per_image}{n.percent:6.1f} {n.gflops:8.1f}")
        lines.append(f"total node time per run: {self.total_ms:.3f} ms over {self.runs} runs")
        if any(n.images > 1 for n in self.nodes):
            lines.append("*: run image by image (SessionOptions.enable_image_by_image), time summed over the images "
                         "(divided by the threads that took them side by side)")
        return "\n".join(lines)

    def chrome_trace(self, path: str) -> None:
        """Writes the last run's timeline in the Chrome trace event format. A node
        run image by image shows its first image's call (args: images, total_ms)."""
        events = [{"name": n.name, "cat": n.op_type, "ph": "X", "ts": n.last_start_ms * 1e3,
                   "dur": n.last_ms * 1e3 / n.images, "pid": 0, "tid": 0,
                   "args": {"op_type": n.op_type, "algorithm": n.algorithm, "inputs": n.input_shapes,
                            "outputs": n.output_shapes, "images": n.images, "total_ms": n.last_ms}}
                  for n in self.nodes]
        with open(path, "w") as f:
            json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)
