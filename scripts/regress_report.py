"""Judging results against baselines and writing the reports of scripts/regress: the terminal
table, JUnit XML, CSV (all cases, plus one per group) and a Markdown summary. Python standard
library only. See docs/regression.md."""

import csv
import datetime
import io
import json
import math
import os
import socket
import xml.etree.ElementTree as ET

from regress_suite import GATED_METRICS, describe_config, describe_workload, matmul_dims

# Final verdicts of a case.
PASS, NEW, FAIL, ERROR = "PASS", "NEW", "FAIL", "ERROR"
METRIC_LABELS = {"total_cycles": "cycles", "dram_reads_bytes": "DRAM read", "dram_writes_bytes": "DRAM write"}


# ---------------------------------------------------------------------------------------------
# Baselines


def load_baselines(path):
    """{case id: {metric: value, ...}}; an absent file is an empty baseline set."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise ValueError("%s: malformed baseline JSON: %s" % (path, e))
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, dict):
        raise ValueError("%s: a baseline file is {\"suite\": ..., \"cases\": {id: {metric: value}}}" % path)
    return cases


def pct_change(old, new):
    if old == new:
        return 0.0
    if old == 0:
        return math.inf if new > old else -math.inf
    return 100.0 * (new - old) / old


def fmt_pct(p):
    if p is None:
        return ""
    if math.isinf(p):
        return "+inf%" if p > 0 else "-inf%"
    if p != 0 and abs(p) < 0.01:
        return "%+.2g%%" % p  # a one-cycle change of a long run still shows
    return "%+.2f%%" % p


def judge(case, result, baseline, tolerance_pct, allow_new):
    """Adds the verdict to a result: "verdict", "failures" (lines naming case, metric, both
    values and the percentage), "deltas" {metric: pct} and "baseline" {metric: value}."""
    judged = dict(result)
    judged["failures"], judged["deltas"], judged["baseline"] = [], {}, {}
    judged["tolerance_pct"] = tolerance_pct
    if result.get("status") == "error":
        judged["verdict"] = ERROR
        judged["failures"] = ["%s: %s" % (case["id"], result.get("message") or "failed")]
        return judged
    stats = result.get("stats", {})
    if result.get("status") == "check-fail":
        judged["failures"].append("%s: %s" % (case["id"], result.get("message")))
    if baseline is None:
        if not allow_new:
            judged["failures"].append("%s: no baseline recorded (record it with --update-baselines)" % case["id"])
    else:
        for metric in GATED_METRICS:
            if metric not in baseline:
                judged["failures"].append("%s: %s has no baseline value (record it with --update-baselines)"
                                          % (case["id"], metric))
                continue
            old, new = baseline[metric], stats[metric]
            judged["baseline"][metric] = old
            delta = pct_change(old, new)
            judged["deltas"][metric] = delta
            if abs(delta) > tolerance_pct:
                judged["failures"].append("%s: %s %s -> %s (%s) is beyond +-%g%% of the baseline"
                                          % (case["id"], metric, old, new, fmt_pct(delta), tolerance_pct))
    if judged["failures"]:
        judged["verdict"] = FAIL
    else:
        judged["verdict"] = NEW if baseline is None else PASS
    return judged


def update_baselines(path, suite, all_case_ids, judged, out):
    """Rewrites the baseline file from the cases that ran cleanly (check passed); prints what
    changed. Entries of cases no longer in the suite are dropped; others are kept."""
    try:
        old = load_baselines(path)
    except ValueError:
        old = {}
    new = {k: v for k, v in old.items() if k in all_case_ids}
    changed = added = same = skipped = 0
    lines = []
    for r in judged:
        cid = r["case"]
        if r.get("status") != "ok":
            skipped += 1
            lines.append("  %s: not recorded (%s)" % (cid, r["verdict"]))
            continue
        entry = {m: r["stats"][m] for m in GATED_METRICS}
        entry["wall_time_s"] = round(float(r["stats"].get("wall_time_s", r.get("wall_s", 0.0))), 3)
        if cid not in old:
            added += 1
            lines.append("  %s: added (%s)" % (cid, ", ".join("%s %s" % (m, entry[m]) for m in GATED_METRICS)))
        else:
            diffs = ["%s %s -> %s (%s)" % (m, old[cid].get(m), entry[m], fmt_pct(pct_change(old[cid][m], entry[m])))
                     for m in GATED_METRICS if old[cid].get(m) != entry[m] and m in old[cid]]
            diffs += ["%s recorded %s" % (m, entry[m]) for m in GATED_METRICS if m not in old[cid]]
            if diffs:
                changed += 1
                lines.append("  %s: %s" % (cid, "; ".join(diffs)))
            else:
                same += 1
        new[cid] = entry
    removed = sorted(set(old) - set(new))
    for cid in removed:
        lines.append("  %s: removed (no longer in the suite)" % cid)
    data = {"suite": suite["name"],
            "note": "written by scripts/regress --update-baselines; gated: %s; wall_time_s is informational"
                    % ", ".join(GATED_METRICS),
            "cases": {k: new[k] for k in sorted(new)}}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.write("\n")
    print("baselines %s: %d changed, %d added, %d removed, %d unchanged, %d not recorded"
          % (path, changed, added, len(removed), same, skipped), file=out)
    for line in lines:
        print(line, file=out)


# ---------------------------------------------------------------------------------------------
# Rows (shared by all reports)

CSV_COLUMNS = [
    "suite", "case", "group", "verdict", "message", "workload", "M", "K", "N", "config", "dataflow", "tiles",
    "tasks", "check",
    "total_cycles", "baseline_total_cycles", "total_cycles_delta_pct",
    "dram_reads_bytes", "baseline_dram_reads_bytes", "dram_reads_bytes_delta_pct",
    "dram_writes_bytes", "baseline_dram_writes_bytes", "dram_writes_bytes_delta_pct",
    "macs", "total_time_us", "achieved_flops", "peak_flops", "compute_utilization", "roofline_efficiency",
    "arithmetic_intensity", "wall_time_s", "sim_cycles_per_s", "sim_peak_rss_mib", "case_wall_s", "host",
    "layer_roofline_ratio",
]


def make_row(case, judged, suite, repo):
    stats = judged.get("stats", {})
    m, k, n = matmul_dims(case, repo)
    tiling = judged.get("tiling") or []
    row = {c: "" for c in CSV_COLUMNS}
    row.update({
        "suite": suite["name"], "case": case["id"], "group": case["group"], "verdict": judged["verdict"],
        "message": " | ".join(judged["failures"]) if judged["failures"] else "",
        "workload": describe_workload(case, repo), "M": m or "", "K": k or "", "N": n or "",
        "config": describe_config(case), "dataflow": case["dataflow"],
        "tiles": " ".join(t["tiles"] for t in tiling), "tasks": " ".join(str(t["tasks"]) for t in tiling),
        "check": stats.get("check") or torch_check(judged), "host": judged.get("host", ""),
        "case_wall_s": judged.get("wall_s", ""),
    })
    for key in ("macs", "total_time_us", "achieved_flops", "peak_flops", "compute_utilization",
                "roofline_efficiency", "wall_time_s"):
        if key in stats and stats[key] is not None:
            row[key] = stats[key]
    for metric in GATED_METRICS:
        if metric in stats:
            row[metric] = stats[metric]
        if metric in judged["baseline"]:
            row["baseline_" + metric] = judged["baseline"][metric]
        if metric in judged["deltas"]:
            d = judged["deltas"][metric]
            row[metric + "_delta_pct"] = ("inf" if d > 0 else "-inf") if math.isinf(d) else round(d, 3)
    dram = stats.get("dram_reads_bytes", 0) + stats.get("dram_writes_bytes", 0) if stats else 0
    if stats.get("macs") and dram:
        row["arithmetic_intensity"] = round(2.0 * stats["macs"] / dram, 3)
    if stats.get("total_cycles") and stats.get("wall_time_s"):
        row["sim_cycles_per_s"] = round(stats["total_cycles"] / stats["wall_time_s"])
    if isinstance(stats.get("layer_report"), dict):  # kpu-sim --report: time over the layers' roofline sum
        row["layer_roofline_ratio"] = round(stats["layer_report"].get("roofline_ratio", 0.0), 4)
    rss = (judged.get("sim") or {}).get("peak_rss_mib")
    if rss is not None:
        row["sim_peak_rss_mib"] = rss
    return row


def torch_check(judged):
    """A zoo model case's comparison with PyTorch's outputs: "pytorch pass" / "pytorch fail"."""
    if judged.get("torch_compare") is None:
        return ""
    return "pytorch " + ("fail" if judged.get("status") == "check-fail" else "pass")


def counts(rows):
    c = {PASS: 0, NEW: 0, FAIL: 0, ERROR: 0}
    for r in rows:
        c[r["verdict"]] += 1
    return {"tests": len(rows), "passed": c[PASS] + c[NEW], "new": c[NEW], "failures": c[FAIL],
            "errors": c[ERROR], "failed": c[FAIL] + c[ERROR]}


# ---------------------------------------------------------------------------------------------
# Formatting helpers


def si(value, unit=""):
    if value in ("", None):
        return ""
    value = float(value)
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return "%.3g %s%s" % (value / factor, prefix, unit)
    return "%.3g %s" % (value, unit) if unit else "%.3g" % value


def with_delta(row, metric):
    if row[metric] == "":
        return ""
    delta = row[metric + "_delta_pct"]
    text = str(row[metric])
    if delta not in ("", 0, 0.0):
        text += " (%s)" % (delta if isinstance(delta, str) else fmt_pct(delta))
    return text


def pct(value):
    return "" if value in ("", None) else "%.1f" % (100.0 * float(value))


TABLE_COLUMNS = [("case", lambda r: r["case"]), ("verdict", lambda r: r["verdict"]),
                 ("cycles", lambda r: with_delta(r, "total_cycles")),
                 ("DRAM rd B", lambda r: with_delta(r, "dram_reads_bytes")),
                 ("DRAM wr B", lambda r: with_delta(r, "dram_writes_bytes")),
                 ("FLOP/s", lambda r: si(r["achieved_flops"])),
                 ("roof %", lambda r: pct(r["roofline_efficiency"])),
                 ("wall s", lambda r: "" if r["wall_time_s"] == "" else "%.2f" % float(r["wall_time_s"]))]


def print_table(rows, out):
    cells = [[name for name, _ in TABLE_COLUMNS]] + [[f(r) for _, f in TABLE_COLUMNS] for r in rows]
    widths = [max(len(str(line[i])) for line in cells) for i in range(len(TABLE_COLUMNS))]
    for j, line in enumerate(cells):
        print("  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(line, widths))),
              file=out)
        if j == 0:
            print("  ".join("-" * w for w in widths), file=out)


# ---------------------------------------------------------------------------------------------
# Report files


def write_junit(path, suite, rows, judged_by_id):
    c = counts(rows)
    total_time = sum(float(r["case_wall_s"] or 0) for r in rows)
    root = ET.Element("testsuites", name="regress", tests=str(c["tests"]), failures=str(c["failures"]),
                      errors=str(c["errors"]), time="%.3f" % total_time)
    ts = ET.SubElement(root, "testsuite", name="regress.%s" % suite["name"], tests=str(c["tests"]),
                       failures=str(c["failures"]), errors=str(c["errors"]), skipped="0",
                       time="%.3f" % total_time, hostname=socket.gethostname(),
                       timestamp=datetime.datetime.now().replace(microsecond=0).isoformat())
    for r in rows:
        tc = ET.SubElement(ts, "testcase", classname="regress.%s.%s" % (suite["name"], r["group"]), name=r["case"],
                           time="%.3f" % float(r["case_wall_s"] or 0))
        judged = judged_by_id[r["case"]]
        details = "\n".join(judged["failures"] + [
            "compile: " + " ".join(judged.get("compile", {}).get("cmd", [])),
            "simulate: " + " ".join(judged.get("sim", {}).get("cmd", []))])
        if r["verdict"] == FAIL:
            kind = "check" if judged.get("status") == "check-fail" else "regression"
            el = ET.SubElement(tc, "failure", message=judged["failures"][0], type=kind)
            el.text = details
        elif r["verdict"] == ERROR:
            el = ET.SubElement(tc, "error", message=judged["failures"][0], type="run")
            el.text = details
        so = ET.SubElement(tc, "system-out")
        so.text = "; ".join("%s=%s" % (k, r[k]) for k in ("workload", "config", "dataflow", "total_cycles",
                                                           "dram_reads_bytes", "dram_writes_bytes",
                                                           "achieved_flops", "roofline_efficiency"))
    if hasattr(ET, "indent"):  # Python 3.9+
        ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow(r)


GROUP_COLUMNS = [("case", lambda r: r["case"]), ("workload", lambda r: r["workload"]),
                 ("config", lambda r: r["config"]), ("dataflow", lambda r: r["dataflow"].split("-")[0][0].upper() + "S"),
                 ("tiles tm x tn x tk", lambda r: r["tiles"]), ("tasks", lambda r: r["tasks"]),
                 ("cycles", lambda r: r["total_cycles"]),
                 ("sim time us", lambda r: "" if r["total_time_us"] == "" else "%.2f" % float(r["total_time_us"])),
                 ("FLOP/s", lambda r: si(r["achieved_flops"])), ("% of peak", lambda r: pct(r["compute_utilization"])),
                 ("roofline eff. %", lambda r: pct(r["roofline_efficiency"])),
                 ("DRAM MB", lambda r: "" if r["total_cycles"] == "" else "%.2f" % (
                     (float(r["dram_reads_bytes"]) + float(r["dram_writes_bytes"])) / 1e6)),
                 ("FLOP/B", lambda r: r["arithmetic_intensity"]),
                 ("wall s", lambda r: "" if r["wall_time_s"] == "" else "%.2f" % float(r["wall_time_s"])),
                 ("verdict", lambda r: r["verdict"])]


def markdown_table(rows, columns):
    buf = io.StringIO()
    buf.write("| " + " | ".join(name for name, _ in columns) + " |\n")
    buf.write("|" + "---|" * len(columns) + "\n")
    for r in rows:
        buf.write("| " + " | ".join(str(f(r)).replace("|", "/") for _, f in columns) + " |\n")
    return buf.getvalue()


def write_markdown(path, suite, rows, command, commit, elapsed_s):
    c = counts(rows)
    with open(path, "w") as f:
        f.write("# Regression suite `%s`\n\n" % suite["name"])
        if suite.get("description"):
            f.write(suite["description"] + "\n\n")
        f.write("- command: `%s`\n" % command)
        f.write("- commit: %s; host: %s; %s\n" % (commit or "unknown", socket.gethostname(),
                                                  datetime.datetime.now().replace(microsecond=0).isoformat()))
        if elapsed_s is not None:
            f.write("- elapsed: %.1f s\n" % elapsed_s)
        f.write("- result: **%d passed, %d failed** (%d cases: %d FAIL for a regression, a check or no baseline; "
                "%d ERROR, did not run through; %d NEW, no baseline yet)\n\n" % (c["passed"], c["failed"], c["tests"], c["failures"], c["errors"], c["new"]))
        failing = [r for r in rows if r["verdict"] in (FAIL, ERROR)]
        if failing:
            f.write("## Failures\n\n")
            for r in failing:
                for line in r["message"].split(" | "):
                    f.write("- %s\n" % line)
            f.write("\n")
        groups = []
        for r in rows:
            if r["group"] not in groups:
                groups.append(r["group"])
        for g in groups:
            f.write("## %s\n\n" % g)
            f.write(markdown_table([r for r in rows if r["group"] == g], GROUP_COLUMNS))
            f.write("\n")
