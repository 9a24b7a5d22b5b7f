#!/usr/bin/env python3
"""Tables for the overlap, sparsification and decentralized experiments (experiments/README.md).

Reads results directories written by `stsyn run` (summary.json, evals.csv, metrics.csv,
config.toml); standard library only.

  overlap_report.py final DIR...       final F(x̄) − F* per algorithm (mean ± SE over seeds),
                                        communications and wall-clock time, one table per DIR
  overlap_report.py speedup DIR...     speed-up of every algorithm at every N against single-worker
                                        SGD: the DIR run with --workers 1 (every schedule is plain
                                        SGD there; each seed's schedules are averaged, and the
                                        standard error is over the seeds)
  overlap_report.py training DIR       per algorithm over seeds: time and bytes to the target
                                        accuracy, final accuracy, bytes, local updates, overlap
                                        steps, backup workers, consensus distance
  overlap_report.py workers DIR        per algorithm (mean over seeds): the least, median and most
                                        bytes one worker sent, and its local steps (workers.csv)
"""

import csv
import json
import math
import re
import sys
from collections import defaultdict
from pathlib import Path


def mean_se(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return None, None
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var / len(xs))


def mean_sd(xs):
    m, se = mean_se(xs)
    if se is None:
        return m, None
    return m, se * math.sqrt(len([x for x in xs if x is not None]))


def fmt(m, e, digits=4, sci=False):
    if m is None:
        return "-"
    f = (lambda v: f"{v:.{digits}e}") if sci else (lambda v: f"{v:.{digits}f}")
    return f(m) if e is None else f"{f(m)} ± {f(e)}"


def workers_of(directory):
    text = (Path(directory) / "config.toml").read_text()
    match = re.search(r"^workers\s*=\s*(\d+)", text, re.M)
    return int(match.group(1))


def runs_of(directory):
    summary = json.loads((Path(directory) / "summary.json").read_text())
    by_algorithm = defaultdict(list)
    for run in summary["runs"]:
        by_algorithm[run["name"]].append(run)
    order = [a["name"] for a in summary["algorithms"]]
    return order, by_algorithm


def gap(run):
    final = run.get("final_eval") or {}
    return final.get("train_loss")


def final(dirs):
    for directory in dirs:
        n = workers_of(directory)
        order, runs = runs_of(directory)
        print(f"## {directory} (N = {n})")
        print("| algorithm | seeds | F(x̄_T) − F* (mean ± SE) | communications | wall clock |")
        print("|---|---|---|---|---|")
        for name in order:
            rs = runs[name]
            g = mean_se([gap(r) for r in rs])
            comms = mean_se([r["rounds"] for r in rs])[0]
            clock = mean_se([r["wall_clock"] for r in rs])[0]
            print(f"| {name} | {len(rs)} | {fmt(*g, digits=3, sci=True)} | {comms:.0f} | {clock:.0f} |")
        print()


def speedup(dirs):
    by_n = {}
    for directory in dirs:
        by_n[workers_of(directory)] = runs_of(directory)
    if 1 not in by_n:
        sys.exit("speedup needs a results directory run with --workers 1")
    order, base_runs = by_n[1]
    # With one worker every schedule is plain SGD, but a seed's schedules share most of their
    # noise draws, so they are not independent runs: average each seed's schedules first and
    # take the standard error over the seeds.
    per_seed = {}
    for name in order:
        for r in base_runs[name]:
            per_seed.setdefault(r["seed"], []).append(gap(r))
    base, base_se = mean_se([sum(v) / len(v) for v in per_seed.values()])
    ns = sorted(n for n in by_n if n > 1)
    print(f"single-worker SGD: E[F(x_T)] − F* = {fmt(base, base_se, 3, sci=True)} ({len(per_seed)} seeds, their schedules averaged)")
    print()
    print("| algorithm | " + " | ".join(f"N = {n}" for n in ns) + " |")
    print("|---|" + "---|" * len(ns))
    for name in order:
        cells = []
        for n in ns:
            _, runs = by_n[n]
            m, se = mean_se([gap(r) for r in runs.get(name, [])])
            if m is None or m <= 0:
                cells.append("-")
                continue
            s = base / m
            # Delta method: relative errors add in quadrature.
            rel = math.sqrt((base_se / base) ** 2 + ((se or 0.0) / m) ** 2)
            cells.append(f"{s:.1f} ± {s * rel:.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    print("| communications R | " + " | ".join(f"N = {n}" for n in ns) + " |")
    print("|---|" + "---|" * len(ns))
    for name in order:
        cells = []
        for n in ns:
            _, runs = by_n[n]
            rs = runs.get(name, [])
            cells.append(f"{rs[0]['rounds']}" if rs else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")


def read_csv(path):
    if not Path(path).exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(x):
    return float(x) if x not in (None, "") else None


def training(directory):
    directory = Path(directory)
    summary = json.loads((directory / "summary.json").read_text())
    target = summary.get("target_accuracy")
    evals = read_csv(directory / "evals.csv")
    metrics = {(r["algorithm"], r["seed"], r["round"]): r for r in read_csv(directory / "metrics.csv")}
    order = [a["name"] for a in summary["algorithms"]]
    rows = defaultdict(lambda: defaultdict(list))
    for e in evals:
        rows[e["algorithm"]][e["seed"]].append(e)
    print(f"## {directory} (target accuracy {target})")
    print(
        "| algorithm | reached | time to target (mean ± sd) | MB to target | final accuracy % (mean ± sd) "
        "| final time | MB sent | local updates | overlap steps | backup b̄ | consensus |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in order:
        times, mbytes, accs, ends, total_mb, updates, overlap, backup, consensus = ([] for _ in range(9))
        seeds = rows[name]
        for seed, es in seeds.items():
            hit = next((e for e in es if target is not None and num(e["test_accuracy"]) >= target), None)
            if hit is not None:
                times.append(num(hit["wall_clock"]))
                m = metrics.get((name, seed, hit["round"]))
                if m is not None:
                    mbytes.append(num(m["bytes_sent"]) / 1e6)
            last = es[-1]
            accs.append(100 * num(last["test_accuracy"]))
            ends.append(num(last["wall_clock"]))
            updates.append(num(last["local_updates"]))
            m = metrics.get((name, seed, last["round"]))
            if m is not None:
                total_mb.append(num(m["bytes_sent"]) / 1e6)
                overlap.append(num(m["overlap_steps"]))
                backup.append(num(m["mean_backup_workers"]))
                consensus.append(num(m["consensus_distance"]))
        print(
            f"| {name} | {len(times)}/{len(seeds)} | {fmt(*mean_sd(times), 0)} | {fmt(mean_sd(mbytes)[0], None, 2)} "
            f"| {fmt(*mean_sd(accs), 1)} | {fmt(mean_sd(ends)[0], None, 0)} | {fmt(mean_sd(total_mb)[0], None, 2)} "
            f"| {fmt(mean_sd(updates)[0], None, 0)} | {fmt(mean_sd(overlap)[0], None, 0)} "
            f"| {fmt(mean_sd(backup)[0], None, 2)} | {fmt(mean_sd(consensus)[0], None, 3)} |"
        )
    print()


def per_worker(directory):
    directory = Path(directory)
    rows = read_csv(directory / "workers.csv")
    runs = defaultdict(lambda: defaultdict(list))
    for r in rows:
        runs[r["algorithm"]][r["seed"]].append(r)
    print(f"## {directory}: per-worker totals (mean over seeds)")
    print("| algorithm | MB sent: least / median / most | local steps: least / median / most | iterations: least / most |")
    print("|---|---|---|---|")
    for name, seeds in runs.items():
        stats = defaultdict(list)
        for workers in seeds.values():
            mb = sorted(num(w["bytes_sent"]) / 1e6 for w in workers)
            steps = sorted(num(w["local_steps"]) for w in workers)
            its = sorted(num(w["iterations"]) for w in workers)
            for key, xs in (("mb", mb), ("steps", steps), ("its", its)):
                stats[key + "_min"].append(xs[0])
                stats[key + "_med"].append(xs[len(xs) // 2])
                stats[key + "_max"].append(xs[-1])
        m = {k: sum(v) / len(v) for k, v in stats.items()}
        print(
            f"| {name} | {m['mb_min']:.2f} / {m['mb_med']:.2f} / {m['mb_max']:.2f} "
            f"| {m['steps_min']:.0f} / {m['steps_med']:.0f} / {m['steps_max']:.0f} "
            f"| {m['its_min']:.0f} / {m['its_max']:.0f} |"
        )
    print()


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("final", "speedup", "training", "workers"):
        sys.exit(__doc__)
    what, dirs = sys.argv[1], sys.argv[2:]
    if what == "final":
        final(dirs)
    elif what == "speedup":
        speedup(dirs)
    elif what == "workers":
        for d in dirs:
            per_worker(d)
    else:
        for d in dirs:
            training(d)


if __name__ == "__main__":
    main()
