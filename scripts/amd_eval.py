#!/usr/bin/env python3
"""Scores `trunkline amd` output against a corpus's labels.csv (called by scripts/amd-eval.sh).

usage: amd_eval.py LABELS_CSV RESULTS_JSONL

Prints accuracy (4 classes: human, machine, fax, silence; `unknown` counts as wrong), the
accuracy of the impaired variant, per-class precision and recall, the confusion matrix,
human->machine and machine->human rates, beep onset within +-100 ms, false beeps, messages that
would start before the beep ended, decision latency (median, p95; humans from the end of their
first utterance) and, last, one machine-readable line starting with `AMD_EVAL_SUMMARY `.
Standard library only.
"""

import csv
import json
import os
import sys

CLASSES = ["human", "machine", "fax", "silence"]
PRED = CLASSES + ["unknown", "error"]


def pct(a, b):
    return 100.0 * a / b if b else float("nan")


def quantile(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))
    return xs[k]


def main():
    labels_path, results_path = sys.argv[1], sys.argv[2]
    labels = {}
    with open(labels_path) as f:
        for row in csv.DictReader(f):
            labels[row["file"]] = row
    results = {}
    with open(results_path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            obj = json.loads(line)
            results[os.path.basename(obj["file"])] = obj
    confusion = {t: {p: 0 for p in PRED} for t in CLASSES}
    n = ok = 0
    by_variant = {}
    by_category = {}
    beeps = beep_ok = 0
    no_beep = false_beep = 0
    early_drop = 0
    drops_checked = 0
    human_lat = []
    all_lat = []
    misses = []
    for name, lab in sorted(labels.items()):
        res = results.get(name)
        truth = lab["class"]
        pred = "error" if res is None or "error" in res else res["class"]
        confusion[truth][pred] += 1
        n += 1
        hit = pred == truth
        ok += hit
        v = by_variant.setdefault(lab["variant"], [0, 0])
        v[0] += hit
        v[1] += 1
        c = by_category.setdefault(lab["category"], [0, 0])
        c[0] += hit
        c[1] += 1
        if not hit:
            misses.append((name, truth, pred, res.get("answered_by") if res else None))
        if res is None or "error" in res:
            continue
        beep_ms = res.get("beep_ms")
        if lab["beep_onset_ms"]:
            beeps += 1
            onset = int(lab["beep_onset_ms"])
            if beep_ms is not None and abs(beep_ms - onset) <= 100:
                beep_ok += 1
            drop = res.get("drop_ms")
            if drop is not None:
                drops_checked += 1
                if drop < int(lab["beep_end_ms"]):
                    early_drop += 1
        else:
            no_beep += 1
            if beep_ms is not None:
                false_beep += 1
        dec = res.get("decision_ms")
        if dec is not None and hit and truth in ("human", "machine", "fax"):
            all_lat.append(dec)
            if truth == "human" and lab["first_utterance_end_ms"]:
                human_lat.append(dec - int(lab["first_utterance_end_ms"]))
    humans = sum(confusion["human"].values())
    machines = sum(confusion["machine"].values())
    h2m = confusion["human"]["machine"]
    m2h = confusion["machine"]["human"]

    print("AMD evaluation: %d files (%s)" % (n, ", ".join(
        "%s %d" % (k, v[1]) for k, v in sorted(by_variant.items()))))
    print("accuracy (4 classes)      %6.2f %%  (%d/%d)" % (pct(ok, n), ok, n))
    for k, v in sorted(by_variant.items()):
        print("  %-22s  %6.2f %%  (%d/%d)" % (k, pct(v[0], v[1]), v[0], v[1]))
    print("per class                 precision  recall")
    for c in CLASSES:
        tp = confusion[c][c]
        predicted = sum(confusion[t][c] for t in CLASSES)
        actual = sum(confusion[c].values())
        print("  %-22s  %6.2f %%  %6.2f %%" % (c, pct(tp, predicted), pct(tp, actual)))
    print("confusion (rows = truth)  " + " ".join("%8s" % p for p in PRED))
    for t in CLASSES:
        print("  %-22s  " % t + " ".join("%8d" % confusion[t][p] for p in PRED))
    print("human called machine      %6.2f %%  (%d/%d)" % (pct(h2m, humans), h2m, humans))
    print("machine called human      %6.2f %%  (%d/%d)" % (pct(m2h, machines), m2h, machines))
    print("beep onset within 100 ms  %6.2f %%  (%d/%d)" % (pct(beep_ok, beeps), beep_ok, beeps))
    print("false beeps               %6.2f %%  (%d/%d files without a beep)" % (
        pct(false_beep, no_beep), false_beep, no_beep))
    print("message before beep end   %d  (of %d drops on files with a beep)" % (
        early_drop, drops_checked))
    print("decision latency          median %.0f ms, p95 %.0f ms (correct decisions)" % (
        quantile(all_lat, 0.5), quantile(all_lat, 0.95)))
    print("human after 1st utterance median %.0f ms, p95 %.0f ms (%d humans)" % (
        quantile(human_lat, 0.5), quantile(human_lat, 0.95), len(human_lat)))
    print("per category accuracy:")
    for k, v in sorted(by_category.items()):
        print("  %-28s %6.2f %%  (%d/%d)" % (k, pct(v[0], v[1]), v[0], v[1]))
    if misses:
        print("misclassified:")
        for m in misses:
            print("  %s truth=%s got=%s (%s)" % m)
    summary = {
        "files": n,
        "accuracy": round(pct(ok, n), 2),
        "accuracy_impaired": round(pct(*by_variant.get("impaired", [0, 0])), 2),
        "human_called_machine": round(pct(h2m, humans), 2),
        "machine_called_human": round(pct(m2h, machines), 2),
        "beep_within_100ms": round(pct(beep_ok, beeps), 2),
        "false_beeps": round(pct(false_beep, no_beep), 2),
        "message_before_beep_end": early_drop,
        "latency_median_ms": quantile(all_lat, 0.5),
        "latency_p95_ms": quantile(all_lat, 0.95),
        "human_latency_median_ms": quantile(human_lat, 0.5),
        "human_latency_p95_ms": quantile(human_lat, 0.95),
    }
    summary = {k: (None if isinstance(v, float) and v != v else v) for k, v in summary.items()}
    print("AMD_EVAL_SUMMARY " + json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
