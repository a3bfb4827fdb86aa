"""Tests of scripts/regress (standard library only): baseline gating, reports (JUnit, CSV,
Markdown), baseline updates, errors, and the generated cluster scripts (Slurm array and GNU
parallel) with a collection round trip on local results.

They run scripts/regress as a subprocess on tiny suites against stand-in kpu-compile and
kpu-sim programs (written into a temporary build dir), whose cycles and bytes follow from the
shape, so every run is fast and deterministic; some shapes make the stand-in fail on purpose
(M=13: check fails, M=17: device stuck, M=19: hangs). The real binaries are exercised by the
regress_smoke ctest test. Run: python3 -m unittest -v test_regress (in tests/regress).
"""

import csv
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import unittest
import xml.etree.ElementTree as ET

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REGRESS = os.path.join(REPO, "scripts", "regress")
sys.path.insert(0, os.path.join(REPO, "scripts"))
import regress_report  # noqa: E402
import regress_suite  # noqa: E402

FAKE_COMPILE = r'''
import json, sys
args = sys.argv[1:]
graph_path, out = args[0], args[args.index("-o") + 1]
dataflow = args[args.index("--dataflow") + 1] if "--dataflow" in args else "output-stationary"
config = json.load(open(args[args.index("--config") + 1]))
graph = json.load(open(graph_path))
if graph["A"]["shape"][0] == 23:
    print("kpu-compile: error: op 'matmul': no tiling fits config", file=sys.stderr)
    sys.exit(1)
json.dump({"graph": graph, "dataflow": dataflow, "rows": config["fabric"]["rows"]}, open(out, "w"))
r = config["fabric"]["rows"]
print("compiled %s -> %s" % (graph_path, out))
print("op 'matmul': C = A @ B")
print("  dataflow %s, tiles %dx%dx64, tile grid 1x1x1, 3 tasks" % (dataflow, r, r))
'''

FAKE_SIM = r'''
import json, sys, time
args = sys.argv[1:]
program = json.load(open(args[args.index("--program") + 1]))
stats_path = args[args.index("--stats") + 1]
g = program["graph"]
m, k = g["A"]["shape"]
n = g["B"]["shape"][1]
if m == 17:
    print("kpu-sim: error: the program got stuck: op 3 (MATMUL_TILE) waits for op 2", file=sys.stderr)
    sys.exit(3)
if m == 19:
    time.sleep(60)
check = "fail" if m == 13 else "pass"
stats = {"total_cycles": m * k * n // program["rows"] + (7 if program["dataflow"] == "weight-stationary" else 0),
         "total_time_us": m * k * n / 1000.0, "dram_reads_bytes": 4 * (m * k + k * n),
         "dram_writes_bytes": 4 * m * n, "macs": m * k * n, "ops": 12, "achieved_flops": 1.5e9,
         "peak_flops": 4e9, "compute_utilization": 0.375, "roofline_efficiency": 0.5, "wall_time_s": 0.01,
         "check": check if "--check" in args else None,
         "energy_pj": 12.5, "stall_breakdown": {"dma": 0.1}}  # fields a later simulator adds
json.dump(stats, open(stats_path, "w"))
if check == "fail":
    print("kpu-sim: check failed: C [13, %d]: MISMATCH in 4 elements" % n, file=sys.stderr)
    sys.exit(4)
'''


def write_executable(path, body):
    with open(path, "w") as f:
        f.write("#!%s\n%s" % (sys.executable, body))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


def matmul(cid, m, k, n, **extra):
    case = {"id": cid, "group": extra.pop("group", "matmul"), "workload": {"matmul": [m, k, n]},
            "config": "configs/minimal.json"}
    case.update(extra)
    return case


class RegressTestCase(unittest.TestCase):
    def assert_usage_error(self, r, *fragments):
        """Exit 2, nothing on stdout, one line on stderr holding every fragment."""
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "")
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        for fragment in fragments:
            self.assertIn(fragment, lines[0])
        return lines[0]

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="regress-test-")
        self.addCleanup(shutil.rmtree, self.tmp)
        self.build = os.path.join(self.tmp, "build")
        os.makedirs(os.path.join(self.build, "bin"))
        write_executable(os.path.join(self.build, "bin", "kpu-compile"), FAKE_COMPILE)
        write_executable(os.path.join(self.build, "bin", "kpu-sim"), FAKE_SIM)
        self.baselines = os.path.join(self.tmp, "baselines.json")
        self.out = os.path.join(self.tmp, "out")

    def write_suite(self, cases, name="tiny", **extra):
        path = tempfile.mkstemp(prefix=name + "-", suffix=".json", dir=self.tmp)[1]
        suite = {"name": name, "description": "unit-test suite", "cases": cases}
        suite.update(extra)
        with open(path, "w") as f:
            json.dump(suite, f)
        return path

    def regress(self, suite, *args, out=None, baselines=True, env=None, default_out=False):
        cmd = [sys.executable, REGRESS, "--suite", suite, "--build-dir", self.build]
        if not default_out:
            cmd += ["--out", out or self.out]
        if baselines:
            cmd += ["--baselines", self.baselines]
        full_env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        full_env.update(env or {})
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120, env=full_env)

    def record(self, suite, *args):
        r = self.regress(suite, "--update-baselines", *args)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def edit_baseline(self, case_id, metric, factor):
        with open(self.baselines) as f:
            data = json.load(f)
        old = data["cases"][case_id][metric]
        data["cases"][case_id][metric] = int(round(old * factor))
        with open(self.baselines, "w") as f:
            json.dump(data, f)
        return old, data["cases"][case_id][metric]


class BaselineGate(RegressTestCase):
    def test_recorded_baselines_pass_and_hold_the_gated_metrics(self):
        suite = self.write_suite([matmul("a", 32, 64, 16), matmul("b", 48, 16, 32, dataflow="weight-stationary")])
        r = self.record(suite)
        self.assertIn("a: added (total_cycles 4096, dram_reads_bytes 12288, dram_writes_bytes 2048)", r.stdout)
        with open(self.baselines) as f:
            data = json.load(f)
        self.assertEqual(sorted(data["cases"]), ["a", "b"])
        self.assertEqual(data["cases"]["b"]["total_cycles"], 48 * 16 * 32 // 8 + 7)
        self.assertIn("wall_time_s", data["cases"]["a"])
        r = self.regress(suite, "-j", "2")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip().splitlines()[-1], "regress: 2 passed, 0 failed")

    def test_changed_cycles_baseline_fails_naming_case_metric_values_and_percentage(self):
        suite = self.write_suite([matmul("steady", 32, 32, 32), matmul("moved", 64, 32, 32)])
        self.record(suite)
        old, changed = self.edit_baseline("moved", "total_cycles", 1.10)  # the run now looks 9.09% faster
        r = self.regress(suite)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        lines = [l for l in r.stdout.splitlines() if l.startswith("FAIL ")]
        self.assertEqual(len(lines), 1, r.stdout)
        self.assertIn("moved", lines[0])
        self.assertIn("total_cycles", lines[0])
        self.assertIn("%d -> %d" % (changed, old), lines[0])
        self.assertIn("(-9.09%)", lines[0])
        self.assertIn("+-5%", lines[0])
        self.assertIn("regress: 1 passed, 1 failed", r.stdout)

    def test_changed_dram_baseline_fails_in_both_directions(self):
        suite = self.write_suite([matmul("a", 32, 32, 32)])
        self.record(suite)
        old, changed = self.edit_baseline("a", "dram_writes_bytes", 0.9)  # the run now writes 11.1% more
        r = self.regress(suite)
        self.assertEqual(r.returncode, 1)
        self.assertIn("FAIL a: dram_writes_bytes %d -> %d (%+.2f%%)" % (changed, old, 100.0 * (old - changed) / changed),
                      r.stdout)
        self.assertIn("(+11.1", r.stdout)

    def test_change_within_tolerance_passes_and_tolerance_is_configurable(self):
        suite = self.write_suite([matmul("a", 32, 32, 32)])
        self.record(suite)
        self.edit_baseline("a", "dram_reads_bytes", 1.04)
        self.assertEqual(self.regress(suite).returncode, 0)
        self.edit_baseline("a", "dram_reads_bytes", 1.10 / 1.04)  # now 10% off the run
        self.assertEqual(self.regress(suite).returncode, 1)
        r = self.regress(suite, "--tolerance", "12")
        self.assertEqual(r.returncode, 0, r.stdout)
        r = self.regress(suite, "--tolerance", "2")
        self.assertIn("+-2%", r.stdout)
        self.assertEqual(r.returncode, 1)

    def test_tolerance_must_be_a_number_of_percent_at_least_zero(self):
        suite = self.write_suite([matmul("a", 32, 32, 32)])
        self.record(suite)
        # -3 would make every case fail with "(+0.00%) is beyond +--3%"; nan would pass every one.
        for bad in ("-3", "-0.5", "abc", "nan", "inf", ""):
            self.assert_usage_error(self.regress(suite, "--tolerance", bad), "--tolerance %s:" % bad, ">= 0")
        self.assert_usage_error(self.regress(suite, "--tolerance=-3"), "--tolerance -3: must be a percentage >= 0")
        # 0 is allowed: the metrics must not move at all.
        self.assertEqual(self.regress(suite, "--tolerance", "0").returncode, 0)
        self.edit_baseline("a", "total_cycles", 4097 / 4096)
        r = self.regress(suite, "--tolerance", "0")
        self.assertEqual(r.returncode, 1)
        self.assertIn("FAIL a: total_cycles 4097 -> 4096 (-0.02%) is beyond +-0% of the baseline", r.stdout)

    def test_suite_tolerance_and_timeout_must_be_positive(self):
        # The suite's and each case's: the same check (NaN, which Python's json reads, passed
        # a case's and would have passed every metric).
        for key in ("tolerance_pct", "timeout_s"):
            for bad in (-3, 0, "5", True, float("nan"), float("inf")):
                suite = self.write_suite([matmul("a", 32, 32, 32)], **{key: bad})
                self.assert_usage_error(self.regress(suite, "--list"), "%s must be a positive number" % key)
                suite = self.write_suite([matmul("a", 32, 32, 32, **{key: bad})])
                self.assert_usage_error(self.regress(suite, "--list"), "cases[0]", "%s must be a positive number" % key)

    def test_case_and_suite_tolerance(self):
        suite = self.write_suite([matmul("loose", 32, 32, 32, tolerance_pct=15), matmul("strict", 64, 32, 32)],
                                 tolerance_pct=1)
        self.record(suite)
        self.edit_baseline("loose", "total_cycles", 1.1)
        self.edit_baseline("strict", "total_cycles", 1.02)
        r = self.regress(suite)
        self.assertEqual(r.returncode, 1)
        self.assertIn("FAIL strict: total_cycles", r.stdout)
        self.assertNotIn("FAIL loose", r.stdout)

    def test_missing_baseline_fails_unless_allowed(self):
        suite = self.write_suite([matmul("a", 32, 32, 32)])
        r = self.regress(suite)
        self.assertEqual(r.returncode, 1)
        self.assertIn("a: no baseline recorded (record it with --update-baselines)", r.stdout)
        r = self.regress(suite, "--allow-new")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertRegex(r.stdout, r"\ba\s+NEW\b")

    def test_update_baselines_prints_what_changed_and_then_passes(self):
        suite = self.write_suite([matmul("a", 32, 32, 32), matmul("b", 16, 16, 16)])
        self.record(suite)
        old, changed = self.edit_baseline("a", "total_cycles", 2.0)
        with open(self.baselines) as f:
            data = json.load(f)
        data["cases"]["gone"] = {"total_cycles": 1, "dram_reads_bytes": 1, "dram_writes_bytes": 1}
        with open(self.baselines, "w") as f:
            json.dump(data, f)
        r = self.record(suite)
        self.assertIn("1 changed, 0 added, 1 removed, 1 unchanged", r.stdout)
        self.assertIn("a: total_cycles %d -> %d (-50.00%%)" % (changed, old), r.stdout)
        self.assertIn("gone: removed", r.stdout)
        self.assertEqual(self.regress(suite).returncode, 0)

    def test_update_baselines_does_not_record_a_failed_check(self):
        suite = self.write_suite([matmul("good", 32, 32, 32), matmul("bad", 13, 32, 32)])
        r = self.regress(suite, "--update-baselines")
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad: not recorded (FAIL)", r.stdout)
        with open(self.baselines) as f:
            self.assertEqual(list(json.load(f)["cases"]), ["good"])

    def test_pct_change(self):
        self.assertEqual(regress_report.pct_change(100, 105), 5.0)
        self.assertAlmostEqual(regress_report.pct_change(200, 150), -25.0)
        self.assertEqual(regress_report.fmt_pct(regress_report.pct_change(0, 3)), "+inf%")
        self.assertEqual(regress_report.pct_change(0, 0), 0.0)


class Reports(RegressTestCase):
    CASES = [matmul("pass-os", 32, 32, 32), matmul("pass-ws", 32, 32, 32, dataflow="weight-stationary"),
             matmul("checkfail", 13, 32, 32, group="broken"), matmul("stuck", 17, 8, 8, group="broken"),
             matmul("nocompile", 23, 8, 8, group="broken"), matmul("slower", 64, 64, 16)]

    def run_mixed(self, *args):
        suite = self.write_suite(self.CASES)
        self.record(self.write_suite([c for c in self.CASES if c["group"] != "broken"]))
        self.edit_baseline("slower", "total_cycles", 0.5)
        junit, csv_path, md = (os.path.join(self.tmp, n) for n in ("j.xml", "r.csv", "s.md"))
        r = self.regress(suite, "-j", "2", "--junit", junit, "--csv", csv_path, "--markdown", md, *args)
        return r, junit, csv_path, md

    def table_verdicts(self, stdout):
        lines = stdout.splitlines()
        start = next(i for i, l in enumerate(lines) if l.startswith("case ")) + 2
        verdicts = {}
        for line in lines[start:]:
            if not line.strip():
                break
            cid, verdict = line.split()[:2]
            verdicts[cid] = verdict
        return verdicts

    def test_junit_is_well_formed_and_counts_match_the_table(self):
        r, junit, _, _ = self.run_mixed()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        verdicts = self.table_verdicts(r.stdout)
        self.assertEqual(verdicts, {"pass-os": "PASS", "pass-ws": "PASS", "checkfail": "FAIL", "stuck": "ERROR",
                                    "nocompile": "ERROR", "slower": "FAIL"})
        root = ET.parse(junit).getroot()
        suites = root.findall("testsuite")
        self.assertEqual(len(suites), 1)
        ts = suites[0]
        cases = ts.findall("testcase")
        self.assertEqual(int(ts.get("tests")), len(verdicts))
        self.assertEqual(len(cases), len(verdicts))
        self.assertEqual(int(ts.get("failures")), list(verdicts.values()).count("FAIL"))
        self.assertEqual(int(ts.get("errors")), list(verdicts.values()).count("ERROR"))
        self.assertEqual(int(root.get("tests")), len(verdicts))
        by_name = {c.get("name"): c for c in cases}
        self.assertEqual(set(by_name), set(verdicts))
        for cid, verdict in verdicts.items():
            tc = by_name[cid]
            self.assertEqual(tc.find("failure") is not None, verdict == "FAIL", cid)
            self.assertEqual(tc.find("error") is not None, verdict == "ERROR", cid)
        self.assertEqual(by_name["checkfail"].find("failure").get("type"), "check")
        self.assertIn("MISMATCH", by_name["checkfail"].find("failure").get("message"))
        self.assertEqual(by_name["slower"].find("failure").get("type"), "regression")
        self.assertIn("slower: total_cycles", by_name["slower"].find("failure").get("message"))
        self.assertIn("stuck", by_name["stuck"].find("error").get("message"))
        self.assertIn("no tiling fits", by_name["nocompile"].find("error").get("message"))
        self.assertEqual(by_name["pass-ws"].get("classname"), "regress.tiny.matmul")
        self.assertIn("regress: 2 passed, 4 failed", r.stdout)

    def test_csv_has_the_documented_columns_and_one_row_per_case(self):
        _, _, csv_path, _ = self.run_mixed()
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
        self.assertEqual(reader.fieldnames, regress_report.CSV_COLUMNS)
        for column in ("case", "verdict", "config", "dataflow", "total_cycles", "baseline_total_cycles",
                       "total_cycles_delta_pct", "dram_reads_bytes", "dram_writes_bytes", "achieved_flops",
                       "roofline_efficiency", "wall_time_s", "tiles"):
            self.assertIn(column, reader.fieldnames)
        self.assertEqual([r["case"] for r in rows], [c["id"] for c in self.CASES])
        row = {r["case"]: r for r in rows}
        self.assertEqual(row["pass-os"]["total_cycles"], str(32 * 32 * 32 // 8))
        self.assertEqual(row["pass-os"]["dram_writes_bytes"], str(4 * 32 * 32))
        self.assertEqual(row["pass-os"]["tiles"], "8x8x64")
        self.assertEqual((row["pass-os"]["M"], row["pass-os"]["K"], row["pass-os"]["N"]), ("32", "32", "32"))
        self.assertEqual(row["slower"]["total_cycles_delta_pct"], "100.0")
        self.assertEqual(row["stuck"]["total_cycles"], "")
        self.assertEqual(row["stuck"]["verdict"], "ERROR")
        # one CSV per group beside the main reports
        with open(os.path.join(self.out, "group-broken.csv"), newline="") as f:
            self.assertEqual([r["case"] for r in csv.DictReader(f)], ["checkfail", "stuck", "nocompile"])

    def test_markdown_summary_has_a_table_per_group_and_the_failures(self):
        _, _, _, md = self.run_mixed()
        with open(md) as f:
            text = f.read()
        self.assertIn("**2 passed, 4 failed**", text)
        self.assertIn("## matmul", text)
        self.assertIn("## broken", text)
        self.assertRegex(text, r"\| pass-os \| matmul 32x32x32 \| minimal \| OS \| 8x8x64 \| 3 \| 4096 \|")
        self.assertIn("- slower: total_cycles", text)

    def test_reports_also_land_in_the_results_directory(self):
        self.run_mixed()
        for name in ("junit.xml", "results.csv", "summary.md"):
            self.assertTrue(os.path.isfile(os.path.join(self.out, name)), name)

    def test_timeout_is_an_error(self):
        suite = self.write_suite([matmul("hang", 19, 8, 8)])
        r = self.regress(suite, "--timeout", "1", "--allow-new")
        self.assertEqual(r.returncode, 1)
        self.assertIn("ERROR hang: kpu-sim timed out after 1 s", r.stdout)

    def test_a_timeout_under_a_second_is_applied_as_given(self):
        # kpu-sim gets what --timeout says, not at least 1 s.
        suite = self.write_suite([matmul("hang", 19, 8, 8)])
        r = self.regress(suite, "--timeout", "0.6", "--allow-new")
        self.assertEqual(r.returncode, 1)
        self.assertIn("ERROR hang: kpu-sim timed out after 0.6 s", r.stdout)
        with open(os.path.join(self.out, "cases", "hang", "result.json")) as f:
            result = json.load(f)
        self.assertLess(result["compile"]["wall_s"] + result["sim"]["wall_s"], 0.95, result)

    def test_timeout_must_be_a_positive_number_of_seconds(self):
        suite = self.write_suite([matmul("a", 8, 8, 8)])
        for bad in ("0", "-1", "abc", "nan", "inf"):
            self.assertEqual(self.assert_usage_error(self.regress(suite, "--timeout", bad)),
                             "regress: error: --timeout %s: must be a number of seconds > 0" % bad)

    def test_an_explicit_timeout_of_zero_is_not_taken_for_unset(self):
        # run_case's own contract (the command line refuses 0): None means the case's timeout_s,
        # any number is applied; 0 does not fall back to the suite's 3600 s.
        suite = regress_suite.load_suite(self.write_suite([matmul("hang", 19, 8, 8, timeout_s=30)]))
        binaries = regress_suite.find_binaries(self.build)
        r = regress_suite.run_case(suite["cases"][0], suite, REPO, binaries, self.out, 0)
        self.assertEqual(r["status"], "error")
        self.assertEqual(r["message"], "kpu-compile timed out after 0 s")
        self.assertLess(r["wall_s"], 5)


class Setup(RegressTestCase):
    def test_missing_binaries_fail_with_one_clear_line(self):
        suite = self.write_suite([matmul("a", 8, 8, 8)])
        os.remove(os.path.join(self.build, "bin", "kpu-sim"))
        self.assert_usage_error(self.regress(suite), "kpu-sim not found in %s" % os.path.join(self.build, "bin"))

    def test_unknown_suite_and_unknown_key_are_one_line_errors(self):
        r = self.regress("no-such-suite")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no such suite file", r.stderr)
        bad = self.write_suite([dict(matmul("a", 8, 8, 8), dataflw="weight-stationary")])
        r = self.regress(bad)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown key 'dataflw'", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)

    def test_matrix_expands_and_ids_must_be_unique(self):
        path = self.write_suite([{"id": "mm{n}-{df[s]}", "workload": {"matmul": ["{n}", 8, "{n}"]},
                                  "config": "configs/minimal.json", "dataflow": "{df[name]}",
                                  "matrix": {"n": [16, 32], "df": [{"s": "os", "name": "output-stationary"},
                                                                   {"s": "ws", "name": "weight-stationary"}]}}])
        suite = regress_suite.load_suite(path)
        self.assertEqual([c["id"] for c in suite["cases"]], ["mm16-os", "mm16-ws", "mm32-os", "mm32-ws"])
        self.assertEqual(suite["cases"][3]["workload"], {"matmul": [32, 8, 32]})
        self.assertEqual(suite["cases"][3]["dataflow"], "weight-stationary")
        dup = self.write_suite([matmul("x", 8, 8, 8), matmul("x", 16, 8, 8)], name="dup")
        with self.assertRaisesRegex(regress_suite.SuiteError, "duplicate case id 'x'"):
            regress_suite.load_suite(dup)

    def test_selection_by_pattern_and_size(self):
        suite = self.write_suite([matmul("small-a", 8, 8, 8), matmul("small-b", 16, 8, 8), matmul("big", 512, 512, 512)])
        r = self.regress(suite, "--list", "--case", "small-*", "--exclude", "*-b")
        self.assertEqual([l.split()[0] for l in r.stdout.splitlines()[:-1]], ["small-a"])
        r = self.regress(suite, "--list", "--max-macs", "1e6")
        self.assertEqual([l.split()[0] for l in r.stdout.splitlines()[:-1]], ["small-a", "small-b"])
        r = self.regress(suite, "--list", "--case", "nothing*")
        self.assertEqual(r.returncode, 2)

    def test_config_overrides_reach_both_tools(self):
        suite = self.write_suite([matmul("r4", 32, 32, 32, set={"fabric.rows": 4}),
                                  matmul("typo", 32, 32, 32, set={"fabric.rowz": 4})])
        r = self.regress(suite, "--allow-new")
        self.assertIn("ERROR typo: case 'typo': set fabric.rowz: configs/minimal.json has no field 'rowz'", r.stdout)
        with open(os.path.join(self.out, "results.csv"), newline="") as f:
            row = next(r for r in csv.DictReader(f) if r["case"] == "r4")
        self.assertEqual(row["total_cycles"], str(32 * 32 * 32 // 4))  # the simulator saw rows=4
        self.assertEqual(row["tiles"], "4x4x64")                         # and so did the compiler
        self.assertEqual(row["config"], "minimal fabric.rows=4")

    def test_results_of_a_changed_case_are_not_collected(self):
        suite = self.write_suite([matmul("a", 32, 32, 32)])
        self.record(suite)
        changed = self.write_suite([matmul("a", 32, 32, 64)])
        r = self.regress(changed, "--collect", self.out)
        self.assertEqual(r.returncode, 1)
        self.assertIn("stale result", r.stdout)


class SuiteFiles(RegressTestCase):
    """Where baselines and results go: a shipped suite (regress/suites/NAME.json) keeps
    regress/baselines/NAME.json and BUILD/regress/NAME; a suite given by a path keeps its
    baselines beside its file and its results apart, whatever its "name" says."""

    SHIPPED_BASELINES = os.path.join(REPO, "regress", "baselines", "smoke.json")

    def setUp(self):
        super().setUp()
        with open(self.SHIPPED_BASELINES, "rb") as f:
            self.shipped_bytes = f.read()
        self.addCleanup(self.restore_shipped_baselines)

    def restore_shipped_baselines(self):
        """Should the fix regress, leave the repository as it was (the test fails anyway)."""
        with open(self.SHIPPED_BASELINES, "rb") as f:
            if f.read() != self.shipped_bytes:
                with open(self.SHIPPED_BASELINES, "wb") as g:
                    g.write(self.shipped_bytes)

    def assert_shipped_baselines_untouched(self):
        with open(self.SHIPPED_BASELINES, "rb") as f:
            self.assertEqual(f.read(), self.shipped_bytes, "the shipped smoke baselines were rewritten")

    def shipped_smoke_copy(self):
        """A copy of the shipped smoke suite elsewhere, still named "smoke", with one case edited."""
        with open(os.path.join(REPO, "regress", "suites", "smoke.json")) as f:
            suite = json.load(f)
        self.assertEqual(suite["name"], "smoke")
        suite["cases"] = [matmul("mine", 32, 32, 32)]
        path = os.path.join(self.tmp, "mine", "smoke.json")
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            json.dump(suite, f)
        return path

    def test_default_paths_of_shipped_and_path_suites(self):
        build = os.path.join(self.tmp, "b")
        for given in ("smoke", os.path.join(REPO, "regress", "suites", "smoke.json"),
                      os.path.relpath(os.path.join(REPO, "regress", "suites", "smoke.json"))):
            suite = regress_suite.load_suite(regress_suite.resolve_suite_path(given, REPO))
            self.assertTrue(regress_suite.is_shipped(suite, REPO), given)
            self.assertEqual(regress_suite.default_baselines(suite, REPO),
                             os.path.join(REPO, "regress", "baselines", "smoke.json"))
            self.assertEqual(regress_suite.default_results(suite, REPO, build), os.path.join(build, "regress", "smoke"))
        copy = regress_suite.load_suite(self.shipped_smoke_copy())
        self.assertEqual(copy["name"], "smoke")
        self.assertFalse(regress_suite.is_shipped(copy, REPO))
        self.assertEqual(regress_suite.default_baselines(copy, REPO),
                         os.path.join(self.tmp, "mine", "smoke.baseline.json"))
        results = regress_suite.default_results(copy, REPO, build)
        self.assertRegex(results, "^%s-[0-9a-f]{8}$" % re.escape(os.path.join(build, "regress", "files", "smoke")))
        # Another file with the same stem elsewhere gets a directory of its own.
        other = os.path.join(self.tmp, "other", "smoke.json")
        os.makedirs(os.path.dirname(other))
        shutil.copy(copy["path"], other)
        self.assertNotEqual(regress_suite.default_results(regress_suite.load_suite(other), REPO, build), results)

    def test_a_copied_suite_keeps_the_shipped_baselines_and_results_untouched(self):
        listing = sorted(os.listdir(os.path.dirname(self.SHIPPED_BASELINES)))
        # A results directory of the shipped smoke suite in this build, to be left alone.
        smoke_results = os.path.join(self.build, "regress", "smoke")
        os.makedirs(smoke_results)
        with open(os.path.join(smoke_results, "summary.md"), "w") as f:
            f.write("the real smoke run\n")

        path = self.shipped_smoke_copy()
        r = self.regress(path, "--update-baselines", baselines=False, default_out=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        beside = os.path.join(self.tmp, "mine", "smoke.baseline.json")
        self.assertIn("baselines %s: 0 changed, 1 added, 0 removed, 0 unchanged, 0 not recorded" % beside, r.stdout)
        with open(beside) as f:
            self.assertEqual(list(json.load(f)["cases"]), ["mine"])
        self.assert_shipped_baselines_untouched()
        self.assertEqual(sorted(os.listdir(os.path.dirname(self.SHIPPED_BASELINES))), listing)
        self.assertEqual(os.listdir(smoke_results), ["summary.md"])
        with open(os.path.join(smoke_results, "summary.md")) as f:
            self.assertEqual(f.read(), "the real smoke run\n")
        header = r.stdout.splitlines()[0]
        self.assertIn("suite 'smoke' (%s)" % path, header)
        results = regress_suite.default_results(regress_suite.load_suite(path), REPO, self.build)
        self.assertTrue(header.endswith("results in %s" % results), header)
        self.assertTrue(os.path.isfile(os.path.join(results, "cases", "mine", "result.json")))
        # Later runs are judged against the baselines beside the file.
        r = self.regress(path, baselines=False, default_out=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("regress: 1 passed, 0 failed", r.stdout)

    def test_cluster_collection_uses_the_baselines_beside_a_suite_file(self):
        path = self.shipped_smoke_copy()
        self.assertEqual(self.regress(path, "--update-baselines", baselines=False, default_out=True).returncode, 0)
        emit = os.path.join(self.tmp, "slurm")
        r = self.regress(path, "--emit-slurm", emit, baselines=False, out=os.path.join(emit, "results"))
        self.assertEqual(r.returncode, 0, r.stderr)
        env = dict(os.environ, PYTHON=sys.executable, SLURM_ARRAY_TASK_ID="0", PYTHONDONTWRITEBYTECODE="1")
        subprocess.run(["bash", os.path.join(emit, "regress-smoke.sbatch")], env=env, check=True,
                       capture_output=True, timeout=60)
        collect = subprocess.run(["bash", os.path.join(emit, "collect-smoke.sbatch")], env=env,
                                 capture_output=True, text=True, timeout=60)
        self.assertEqual(collect.returncode, 0, collect.stdout + collect.stderr)
        self.assertIn("regress: 1 passed, 0 failed", collect.stdout)
        self.assert_shipped_baselines_untouched()


class Cluster(RegressTestCase):
    CASES = [matmul("c0", 32, 32, 32), matmul("c1", 16, 32, 8, dataflow="weight-stationary"),
             matmul("c2", 13, 8, 8), matmul("c3", 24, 24, 24, group="other")]

    def local_reference(self, suite):
        """Reports of a plain local run of the same suite, for comparison."""
        out = os.path.join(self.tmp, "local")
        r = self.regress(suite, "-j", "2", out=out)
        with open(os.path.join(out, "results.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        return r, rows

    @staticmethod
    def comparable(rows):
        keep = ("case", "group", "verdict", "message", "config", "dataflow", "total_cycles", "dram_reads_bytes",
                "dram_writes_bytes", "tiles")
        return [{k: r[k] for k in keep} for r in rows]

    def test_slurm_array_has_one_index_per_case_and_collects_like_a_local_run(self):
        suite = self.write_suite(self.CASES)
        self.record(self.write_suite([c for c in self.CASES if c["id"] != "c2"]))
        emit = os.path.join(self.tmp, "slurm")
        r = self.regress(suite, "--emit-slurm", emit, "--sbatch-option=--partition=cpu", "--timeout", "60",
                         out=os.path.join(emit, "results"))
        self.assertEqual(r.returncode, 0, r.stderr)
        array = os.path.join(emit, "regress-tiny.sbatch")
        with open(array) as f:
            text = f.read()
        self.assertTrue(text.startswith("#!/usr/bin/env bash\n#SBATCH "))
        directives = re.findall(r"^#SBATCH (\S+)$", text, re.M)
        arrays = [d for d in directives if d.startswith("--array=")]
        self.assertEqual(arrays, ["--array=0-%d" % (len(self.CASES) - 1)])
        self.assertIn("--partition=cpu", directives)
        self.assertTrue(any(d.startswith("--output=") and "%A_%a" in d for d in directives))
        # The case table: one entry per array index, in suite order.
        body = re.search(r"^CASES=\(\n(.*?)^\)$", text, re.M | re.S).group(1)
        self.assertEqual([shlex.split(l)[0] for l in body.splitlines()], [c["id"] for c in self.CASES])
        with open(os.path.join(emit, "cases.txt")) as f:
            self.assertEqual(f.read().split(), [c["id"] for c in self.CASES])
        with open(os.path.join(emit, "submit.sh")) as f:
            submit = f.read()
        self.assertIn("sbatch --parsable %s" % array, submit)
        self.assertIn("--dependency=afterany:$jid %s" % os.path.join(emit, "collect-tiny.sbatch"), submit)

        # Run every array index as Slurm would, then the collection step.
        env = dict(os.environ, PYTHON=sys.executable, PYTHONDONTWRITEBYTECODE="1")
        for i in range(len(self.CASES)):
            job = subprocess.run(["bash", array], env=dict(env, SLURM_ARRAY_TASK_ID=str(i)),
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(job.returncode, 0, job.stderr)
            self.assertIn("regress: %s " % self.CASES[i]["id"], job.stdout)
        no_index = subprocess.run(["bash", array], env=env, capture_output=True, text=True, timeout=60)
        self.assertNotEqual(no_index.returncode, 0)
        collect = subprocess.run(["bash", os.path.join(emit, "collect-tiny.sbatch")], env=env,
                                 capture_output=True, text=True, timeout=60)
        self.assertEqual(collect.returncode, 1, collect.stdout + collect.stderr)  # c2's check fails
        self.assertIn("regress: 3 passed, 1 failed", collect.stdout)

        ref, ref_rows = self.local_reference(suite)
        self.assertEqual(ref.returncode, 1)
        with open(os.path.join(emit, "results.csv"), newline="") as f:
            self.assertEqual(self.comparable(list(csv.DictReader(f))), self.comparable(ref_rows))
        ts = ET.parse(os.path.join(emit, "junit.xml")).getroot().find("testsuite")
        self.assertEqual((ts.get("tests"), ts.get("failures"), ts.get("errors")), ("4", "1", "0"))
        self.assertTrue(os.path.isfile(os.path.join(emit, "summary.md")))

    def test_collection_reports_array_tasks_that_never_ran(self):
        suite = self.write_suite(self.CASES[:2])
        self.record(suite)
        emit = os.path.join(self.tmp, "slurm")
        self.assertEqual(self.regress(suite, "--emit-slurm", emit, out=os.path.join(emit, "results")).returncode, 0)
        env = dict(os.environ, PYTHON=sys.executable, SLURM_ARRAY_TASK_ID="0", PYTHONDONTWRITEBYTECODE="1")
        subprocess.run(["bash", os.path.join(emit, "regress-tiny.sbatch")], env=env, check=True,
                       capture_output=True, timeout=60)
        collect = subprocess.run(["bash", os.path.join(emit, "collect-tiny.sbatch")], env=env,
                                 capture_output=True, text=True, timeout=60)
        self.assertEqual(collect.returncode, 1)
        self.assertIn("ERROR c1: no result in", collect.stdout)
        self.assertIn("regress: 1 passed, 1 failed", collect.stdout)

    def test_a_job_killed_midway_leaves_no_result_behind(self):
        suite = self.write_suite(self.CASES[:1])
        self.record(suite)  # leaves a good result for c0 in the results directory
        # Slurm kills the job (time limit) while kpu-sim runs: here kpu-sim kills its parent.
        write_executable(os.path.join(self.build, "bin", "kpu-sim"),
                         "import os, signal, time\nos.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(5)\n")
        r = self.regress(suite, "--run-case", "c0")
        self.assertEqual(r.returncode, -9)
        r = self.regress(suite, "--collect", self.out)
        self.assertEqual(r.returncode, 1)
        self.assertIn("ERROR c0: no result in", r.stdout)

    def test_gnu_parallel_command_with_sshlogins_round_trip(self):
        suite = self.write_suite(self.CASES)
        self.record(self.write_suite([c for c in self.CASES if c["id"] != "c2"]))
        emit = os.path.join(self.tmp, "par")
        r = self.regress(suite, "--emit-parallel", emit, "-j", "3", "--sshlogin", "4/node1", "--sshlogin", "node2",
                         "--sshlogin", ":", out=os.path.join(emit, "results"))
        self.assertEqual(r.returncode, 0, r.stderr)
        script = os.path.join(emit, "parallel.sh")
        with open(script) as f:
            text = f.read()
        command = " ".join(l.rstrip("\\").strip() for l in text.splitlines() if l.startswith(("parallel", "  ")))
        words = shlex.split(command)
        self.assertEqual(words[0], "parallel")
        self.assertEqual(words[words.index("--sshlogin") + 1], "4/node1,node2,:")
        self.assertEqual(words[words.index("--jobs") + 1], "3")
        self.assertEqual(words[-2:], ["::::", os.path.join(emit, "cases.txt")])
        self.assertNotIn("--timeout", words)
        self.assertIn("--run-case", words)
        self.assertEqual(words[words.index("--run-case") + 1], "{}")
        with open(os.path.join(emit, "cases.txt")) as f:
            self.assertEqual(f.read().split(), [c["id"] for c in self.CASES])

        # Run it with a stand-in for GNU parallel that runs each line locally.
        fake_bin = os.path.join(self.tmp, "fakebin")
        os.makedirs(fake_bin)
        write_executable(os.path.join(fake_bin, "parallel"), textwrap.dedent(r'''
            import subprocess, sys
            args = sys.argv[1:]
            i = 0
            while args[i].startswith("--"):
                i += 2
            split = args.index("::::")
            cmd, lines = args[i:split], open(args[split + 1]).read().split()
            sys.exit(sum(subprocess.call([w.replace("{}", line) for w in cmd]) != 0 for line in lines))
        '''))
        env = dict(os.environ, PATH=fake_bin + os.pathsep + os.environ["PATH"], PYTHON=sys.executable,
                   PYTHONDONTWRITEBYTECODE="1")
        run = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn("regress: 3 passed, 1 failed", run.stdout)
        _, ref_rows = self.local_reference(suite)
        with open(os.path.join(emit, "results.csv"), newline="") as f:
            self.assertEqual(self.comparable(list(csv.DictReader(f))), self.comparable(ref_rows))

    def test_a_sub_second_timeout_reaches_the_cluster_jobs(self):
        suite = self.write_suite(self.CASES[:1])
        emit = os.path.join(self.tmp, "par")
        self.assertEqual(self.regress(suite, "--emit-parallel", emit, "--timeout", "0.5").returncode, 0)
        with open(os.path.join(emit, "parallel.sh")) as f:
            self.assertIn(" --run-case '{}' --timeout 0.5 ", f.read())

    def test_parallel_defaults_to_this_machine(self):
        suite = self.write_suite(self.CASES[:1])
        emit = os.path.join(self.tmp, "par")
        self.assertEqual(self.regress(suite, "--emit-parallel", emit).returncode, 0)
        with open(os.path.join(emit, "parallel.sh")) as f:
            self.assertIn("--sshlogin :", f.read())


class ModelCases(RegressTestCase):
    """Cases of the model zoo ("model") and extra kpu-compile arguments ("compile_args"); the
    zoo's export and the comparison with PyTorch run in tests/e2e/models_check.py."""

    def test_compile_args_reach_kpu_compile_after_the_usual_arguments(self):
        suite = self.write_suite([matmul("a", 8, 8, 8, compile_args=["-O1", "--verbose"])])
        r = self.regress(suite, "--allow-new")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(self.out, "cases", "a", "result.json")) as f:
            cmd = json.load(f)["compile"]["cmd"]
        self.assertEqual(cmd[-2:], ["-O1", "--verbose"])
        self.assertIn("--config", cmd[:-2])
        bad = self.write_suite([matmul("a", 8, 8, 8, compile_args="-O1")])
        self.assert_usage_error(self.regress(bad), "compile_args must be a list of strings")

    def test_model_cases_are_validated_in_one_line(self):
        def error(case):
            with self.assertRaises(regress_suite.SuiteError) as e:
                regress_suite.load_suite(self.write_suite([case]))
            return str(e.exception)
        base = {"id": "m", "config": "configs/edge.json"}
        self.assertIn("model must be {", error(dict(base, model="resnet18")))
        self.assertIn("unknown model key 'imagesize'", error(dict(base, model={"name": "resnet18", "imagesize": 64})))
        self.assertIn("model seq must be a positive integer, got 0", error(dict(base, model={"name": "bert", "seq": 0})))
        self.assertIn("model tolerance must be a positive number",
                      error(dict(base, model={"name": "bert", "tolerance": -1})))
        self.assertIn("exactly one of 'graph' (a file), 'workload' (generated) and 'model' (the zoo)",
                      error(dict(base, model={"name": "bert"}, workload={"matmul": [8, 8, 8]})))
        suite = regress_suite.load_suite(self.write_suite([dict(base, model={"name": "bert", "seq": 32, "layers": 1})]))
        case = suite["cases"][0]
        self.assertFalse(case["check"])  # judged against PyTorch's outputs instead
        self.assertEqual(regress_suite.model_args(case["model"]), (["bert", "--seq", "32", "--layers", "1"], 0.01))
        self.assertEqual(regress_suite.describe_workload(case, REPO), "model bert seq=32 layers=1")

    def test_models_suite_is_fully_gated_and_its_ci_group_is_small(self):
        suite = regress_suite.load_suite(os.path.join(REPO, "regress", "suites", "models.json"))
        baselines = regress_report.load_baselines(os.path.join(REPO, "regress", "baselines", "models.json"))
        self.assertEqual(sorted(baselines), sorted(c["id"] for c in suite["cases"]))
        for case in suite["cases"]:
            self.assertTrue(os.path.isfile(os.path.join(REPO, case["config"])), case["id"])
        ci = [c for c in suite["cases"] if c["group"] == "ci"]
        # Each of the two small networks at -O0 and -O2.
        self.assertEqual(sorted((c["model"]["name"], c["compile_args"][0]) for c in ci),
                         [("bert", "-O0"), ("bert", "-O2"), ("resnet18", "-O0"), ("resnet18", "-O2")])
        self.assertTrue(all(c["config"] == "configs/edge.json" for c in ci))


class ShippedSuites(unittest.TestCase):
    """The shipped suites load, and every case has a recorded baseline or is a declared
    cluster-sized point (the smoke suite must be fully gated)."""

    def test_shipped_suites_are_named_after_their_files(self):
        # Their baselines and results are found by name (regress/baselines/NAME.json,
        # BUILD/regress/NAME); "files" holds the results of suites given by a path.
        for entry in sorted(os.listdir(os.path.join(REPO, "regress", "suites"))):
            suite = regress_suite.load_suite(os.path.join(REPO, "regress", "suites", entry))
            self.assertEqual(suite["name"] + ".json", entry)
            self.assertNotEqual(suite["name"], "files")

    def test_shipped_suites_load_and_smoke_is_fully_gated(self):
        for name in ("smoke", "full"):
            suite = regress_suite.load_suite(os.path.join(REPO, "regress", "suites", name + ".json"))
            for case in suite["cases"]:
                self.assertTrue(os.path.isfile(os.path.join(REPO, case["config"])), case["id"])
                if "graph" in case:
                    self.assertTrue(os.path.isfile(os.path.join(REPO, case["graph"])), case["id"])
        smoke = regress_suite.load_suite(os.path.join(REPO, "regress", "suites", "smoke.json"))
        baselines = regress_report.load_baselines(os.path.join(REPO, "regress", "baselines", "smoke.json"))
        self.assertEqual(sorted(baselines), sorted(c["id"] for c in smoke["cases"]))
        dataflows = {c["dataflow"] for c in smoke["cases"]}
        self.assertEqual(dataflows, set(regress_suite.DATAFLOWS))


if __name__ == "__main__":
    unittest.main()
