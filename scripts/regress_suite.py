"""Suites and design points for scripts/regress (Python standard library only).

A suite file (regress/suites/NAME.json) lists cases; a case with a "matrix" expands into one
case per combination of its values. Running a case = kpu-compile + kpu-sim --check in its own
work directory, leaving result.json there. Nothing here compares against baselines: that is
done when results are collected (regress_report.py), so results made on other machines
(Slurm, GNU parallel) are judged exactly like local ones. See docs/regression.md.
"""

import copy
import hashlib
import itertools
import json
import math
import os
import re
import signal
import socket
import subprocess
import threading
import time

RESULT_SCHEMA = 1
GATED_METRICS = ("total_cycles", "dram_reads_bytes", "dram_writes_bytes")
DEFAULT_TOLERANCE_PCT = 5.0
DEFAULT_TIMEOUT_S = 3600
DATAFLOWS = ("output-stationary", "weight-stationary")

SUITE_KEYS = {"name", "description", "tolerance_pct", "timeout_s", "slurm", "cases"}
CASE_KEYS = {"id", "group", "description", "graph", "workload", "model", "config", "set", "dataflow", "seed",
             "compile_args", "sim_args", "check", "tolerance_pct", "timeout_s", "matrix"}
# A "model" case runs a network of the model zoo (examples/models/zoo.py, PyTorch under Debian's
# python3): exported once per results directory, judged against PyTorch's outputs.
ZOO_SCRIPT = os.path.join("examples", "models", "zoo.py")
ZOO_PYTHON = "/usr/bin/python3"
MODEL_KEYS = {"name", "image_size", "seq", "layers", "seed", "tolerance"}
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class SuiteError(Exception):
    """A problem with a suite file, a case or the command line: one line, reported as such."""


# ---------------------------------------------------------------------------------------------
# Suite loading


def _substitute(value, variables):
    """Replaces {var} and {var[key]} in every string of `value` (str.format); a string that is
    exactly one such field becomes the value itself, so numbers and lists keep their type."""
    if isinstance(value, str):
        m = re.fullmatch(r"\{(\w+)((?:\[\w+\])*)\}", value)
        if m and m.group(1) in variables:
            item = variables[m.group(1)]
            for key in re.findall(r"\[(\w+)\]", m.group(2)):
                try:
                    item = item[int(key)] if isinstance(item, list) else item[key]
                except (KeyError, IndexError, ValueError, TypeError):
                    raise SuiteError("cannot substitute %r: no item [%s]" % (value, key))
            return item
        try:
            return value.format(**variables)
        except (KeyError, IndexError, ValueError) as e:
            raise SuiteError("cannot substitute %r with %s: %s" % (value, sorted(variables), e))
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {_substitute(k, variables): _substitute(v, variables) for k, v in value.items()}
    return value


def expand_case(raw, where):
    """One case of the suite file -> the list of concrete cases (matrix expanded)."""
    if not isinstance(raw, dict):
        raise SuiteError("%s: a case must be an object" % where)
    unknown = sorted(set(raw) - CASE_KEYS)
    if unknown:
        raise SuiteError("%s: unknown key '%s' (known: %s)" % (where, unknown[0], ", ".join(sorted(CASE_KEYS))))
    matrix = raw.get("matrix")
    if matrix is None:
        return [copy.deepcopy(raw)]
    if not isinstance(matrix, dict) or not matrix or not all(isinstance(v, list) and v for v in matrix.values()):
        raise SuiteError("%s: matrix must map each variable to a non-empty list of values" % where)
    body = {k: v for k, v in raw.items() if k != "matrix"}
    names = list(matrix)
    cases = []
    for combo in itertools.product(*(matrix[n] for n in names)):
        cases.append(_substitute(body, dict(zip(names, combo))))
    return cases


def _check_case(case, where, suite):
    cid = case.get("id")
    if not isinstance(cid, str) or not ID_RE.match(cid):
        raise SuiteError("%s: case id %r must be letters, digits and . _ + - (not starting with one of those)"
                         % (where, cid))
    where = "%s (case '%s')" % (where, cid)
    if ("graph" in case) + ("workload" in case) + ("model" in case) != 1:
        if "model" in case:
            raise SuiteError("%s: give exactly one of 'graph' (a file), 'workload' (generated) and 'model' (the zoo)"
                             % where)
        raise SuiteError("%s: give exactly one of 'graph' (a file) and 'workload' (generated)" % where)
    if "model" in case:
        model_args(case["model"], where)  # validates
    elif "workload" in case:
        workload_graph(case["workload"], where)  # validates
    elif not isinstance(case["graph"], str):
        raise SuiteError("%s: graph must be a path" % where)
    if not isinstance(case.get("config"), str):
        raise SuiteError("%s: config (a path such as configs/t64.json) is required" % where)
    if case.get("dataflow", DATAFLOWS[0]) not in DATAFLOWS:
        raise SuiteError("%s: dataflow '%s' is not one of %s" % (where, case["dataflow"], ", ".join(DATAFLOWS)))
    if not isinstance(case.get("set", {}), dict):
        raise SuiteError("%s: set must map config paths to values, e.g. {\"fabric.rows\": 8}" % where)
    for key in ("compile_args", "sim_args"):
        if not isinstance(case.get(key, []), list) or not all(isinstance(a, str) for a in case.get(key, [])):
            raise SuiteError("%s: %s must be a list of strings" % (where, key))
    _check_positive_numbers(case, where)
    case.setdefault("group", "default")
    case.setdefault("dataflow", DATAFLOWS[0])
    case.setdefault("set", {})
    case.setdefault("sim_args", [])
    if "model" in case:
        case.setdefault("check", False)  # judged against PyTorch's outputs; kpu-sim --check on request
    case.setdefault("check", True)
    case.setdefault("tolerance_pct", suite.get("tolerance_pct", DEFAULT_TOLERANCE_PCT))
    case.setdefault("timeout_s", suite.get("timeout_s", DEFAULT_TIMEOUT_S))


def _check_positive_numbers(entry, where):
    """tolerance_pct and timeout_s, where given, must be finite numbers > 0 (not true, not NaN,
    which Python's json reads)."""
    for key in ("tolerance_pct", "timeout_s"):
        value = entry.get(key)
        if key in entry and (isinstance(value, bool) or not isinstance(value, (int, float))
                             or not math.isfinite(value) or value <= 0):
            raise SuiteError("%s: %s must be a positive number" % (where, key))


def resolve_suite_path(name_or_path, repo):
    if os.path.sep in name_or_path or name_or_path.endswith(".json"):
        return os.path.abspath(name_or_path)
    return os.path.join(repo, "regress", "suites", name_or_path + ".json")


def load_suite(path):
    """Reads and expands a suite file: {"name", "description", "tolerance_pct", "timeout_s",
    "slurm", "cases": [...]}. Returns the suite dict with "cases" expanded and "path" set."""
    try:
        with open(path) as f:
            suite = json.load(f)
    except FileNotFoundError:
        raise SuiteError("%s: no such suite file (suites are in regress/suites/)" % path)
    except json.JSONDecodeError as e:
        raise SuiteError("%s: malformed JSON: %s" % (path, e))
    if not isinstance(suite, dict):
        raise SuiteError("%s: a suite must be a JSON object" % path)
    unknown = sorted(set(suite) - SUITE_KEYS)
    if unknown:
        raise SuiteError("%s: unknown key '%s' (known: %s)" % (path, unknown[0], ", ".join(sorted(SUITE_KEYS))))
    suite.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    _check_positive_numbers(suite, path)  # the cases' defaults, checked like the cases' own
    if not isinstance(suite.get("cases"), list) or not suite["cases"]:
        raise SuiteError("%s: 'cases' must be a non-empty list" % path)
    cases, seen = [], {}
    for i, raw in enumerate(suite["cases"]):
        where = "%s: cases[%d]" % (path, i)
        for case in expand_case(raw, where):
            _check_case(case, where, suite)
            if case["id"] in seen:
                raise SuiteError("%s: duplicate case id '%s' (also from cases[%d])" % (where, case["id"], seen[case["id"]]))
            seen[case["id"]] = i
            cases.append(case)
    suite["cases"] = cases
    suite["path"] = os.path.abspath(path)
    return suite


def is_shipped(suite, repo):
    """True when the suite file is regress/suites/STEM.json of this repository (given by name,
    or by a path to that very file). Any other file is a suite given by a path."""
    stem = os.path.splitext(os.path.basename(suite["path"]))[0]
    return os.path.realpath(suite["path"]) == os.path.realpath(os.path.join(repo, "regress", "suites", stem + ".json"))


def default_baselines(suite, repo):
    """Where the baselines live unless --baselines says: regress/baselines/NAME.json for a
    shipped suite; beside the file for a suite given by a path (DIR/STEM.json ->
    DIR/STEM.baseline.json), so a copy of a shipped suite never writes the shipped baselines."""
    if is_shipped(suite, repo):
        return os.path.join(repo, "regress", "baselines", suite["name"] + ".json")
    return os.path.splitext(os.path.abspath(suite["path"]))[0] + ".baseline.json"


def default_results(suite, repo, build_dir):
    """The results directory unless --out says: BUILD/regress/NAME for a shipped suite;
    BUILD/regress/files/STEM-HASH for a suite given by a path (HASH: 8 hex digits of the file's
    absolute path), apart from every shipped suite's and every other suite file's."""
    if is_shipped(suite, repo):
        return os.path.abspath(os.path.join(build_dir, "regress", suite["name"]))
    path = os.path.abspath(suite["path"])
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.abspath(os.path.join(build_dir, "regress", "files",
                                        "%s-%s" % (stem, hashlib.sha256(path.encode()).hexdigest()[:8])))


def case_hash(case):
    """Identifies a case's definition, so results made from an older suite are not mixed in."""
    text = json.dumps({k: v for k, v in case.items() if k not in ("description",)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Workloads and graphs


def workload_graph(workload, where="workload"):
    """A generated workload -> graph JSON (docs/graph-format.md).
    {"matmul": [M, K, N], "bias": false, "activation": "none"} or
    {"mlp": {"batch": B, "layers": [d0, d1, ..., dn], "activation": "relu"}}."""
    def dims(values, n, what):
        if not isinstance(values, list) or len(values) != n or not all(isinstance(v, int) and v > 0 for v in values):
            raise SuiteError("%s: %s must be %d positive integers, got %r" % (where, what, n, values))
        return values
    if not isinstance(workload, dict):
        raise SuiteError("%s: workload must be an object" % where)
    if "matmul" in workload:
        unknown = sorted(set(workload) - {"matmul", "bias", "activation"})
        if unknown:
            raise SuiteError("%s: unknown workload key '%s'" % (where, unknown[0]))
        m, k, n = dims(workload["matmul"], 3, "matmul [M, K, N]")
        graph = {"op": "matmul", "A": {"shape": [m, k], "dtype": "float32"},
                 "B": {"shape": [k, n], "dtype": "float32"}, "C": {"shape": [m, n], "dtype": "float32"}}
        if workload.get("bias"):
            graph["bias"] = {"shape": [n], "dtype": "float32"}
        if workload.get("activation", "none") != "none":
            graph["activation"] = workload["activation"]
        return graph
    if "mlp" in workload:
        spec = workload["mlp"]
        if set(workload) != {"mlp"} or not isinstance(spec, dict):
            raise SuiteError("%s: mlp workload is {\"mlp\": {\"batch\": B, \"layers\": [...]}}" % where)
        unknown = sorted(set(spec) - {"batch", "layers", "activation"})
        if unknown:
            raise SuiteError("%s: unknown mlp key '%s'" % (where, unknown[0]))
        batch = dims([spec.get("batch")], 1, "mlp batch")[0]
        layers = spec.get("layers")
        if not isinstance(layers, list) or len(layers) < 2:
            raise SuiteError("%s: mlp layers must list at least two widths" % where)
        dims(layers, len(layers), "mlp layers")
        act = spec.get("activation", "relu")
        tensors = [{"name": "x", "shape": [batch, layers[0]], "dtype": "float32", "role": "input"}]
        ops = []
        for i in range(1, len(layers)):
            tensors.append({"name": "W%d" % i, "shape": [layers[i - 1], layers[i]], "role": "constant"})
            tensors.append({"name": "b%d" % i, "shape": [layers[i]], "role": "constant"})
            out = "y" if i == len(layers) - 1 else "h%d" % i
            tensors.append({"name": out})
            op = {"op": "matmul", "name": "fc%d" % i, "A": "x" if i == 1 else "h%d" % (i - 1),
                  "B": "W%d" % i, "bias": "b%d" % i, "C": out}
            if i < len(layers) - 1 and act != "none":
                op["activation"] = act
            ops.append(op)
        return {"tensors": tensors, "ops": ops}
    raise SuiteError("%s: workload needs 'matmul' or 'mlp'" % where)


def model_args(model, where="model"):
    """A zoo model {"name": "resnet18", "image_size": 64, "seq": 32, "layers": 1, "seed": 0,
    "tolerance": 0.01} -> (the zoo's export arguments, the comparison's tolerance)."""
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise SuiteError("%s: model must be {\"name\": \"resnet18\", ...} (examples/models/zoo.py list)" % where)
    unknown = sorted(set(model) - MODEL_KEYS)
    if unknown:
        raise SuiteError("%s: unknown model key '%s' (known: %s)" % (where, unknown[0], ", ".join(sorted(MODEL_KEYS))))
    args = [model["name"]]
    for key in ("image_size", "seq", "layers", "seed"):
        if key in model:
            value = model[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
                raise SuiteError("%s: model %s must be a positive integer, got %r" % (where, key, value))
            args += ["--" + key.replace("_", "-"), str(value)]
    tolerance = model.get("tolerance", 0.01)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance > 0:
        raise SuiteError("%s: model tolerance must be a positive number" % where)
    return args, float(tolerance)


_zoo_locks = {}
_zoo_locks_guard = threading.Lock()


def zoo_model(case, repo, out_dir, timeout_s):
    """The case's model exported into OUT/models/NAME-HASH/ (once per results directory and
    version of the zoo script: cases of the same model on other configs reuse it). Returns (directory, tolerance); raises
    SuiteError with the exporter's last lines when it fails."""
    args, tolerance = model_args(case["model"])
    # Keyed by the arguments and the zoo script itself: an edited model is exported again.
    with open(os.path.join(repo, ZOO_SCRIPT), "rb") as f:
        script_hash = hashlib.sha256(f.read()).hexdigest()
    key = "%s-%s" % (case["model"]["name"], hashlib.sha256((" ".join(args) + script_hash).encode()).hexdigest()[:8])
    target = os.path.join(out_dir, "models", key)
    with _zoo_locks_guard:
        lock = _zoo_locks.setdefault(key, threading.Lock())
    with lock:
        if os.path.isfile(os.path.join(target, "meta.json")):
            return target, tolerance
        log = os.path.join(out_dir, "models", key + ".log")
        os.makedirs(os.path.dirname(log), exist_ok=True)
        code, _, _ = run_process([ZOO_PYTHON, os.path.join(repo, ZOO_SCRIPT), "export", target] + args + ["--flat"], log,
                                 timeout_s)
        if code != 0:
            raise SuiteError("exporting model %s %s: %s" % (" ".join(args), "timed out" if code is None
                                                             else "exited %d" % code, _tail(log, "Error")))
    return target, tolerance


def describe_model(model):
    """'resnet18 image_size=64'."""
    return " ".join([model["name"]] + ["%s=%s" % (k, v) for k, v in model.items() if k not in ("name", "tolerance")])


def graph_matmuls(graph):
    """[(name, M, K, N)] of a graph in either form, or None if the shapes cannot be worked out."""
    try:
        if "op" in graph:
            m, k = graph["A"]["shape"]
            n = graph["B"]["shape"][1]
            return [(graph.get("name", "matmul"), m, k, n)]
        shapes = {t["name"]: t.get("shape") for t in graph["tensors"]}
        pending, result = list(graph["ops"]), []
        while pending:
            progress = False
            for op in list(pending):
                a, b = shapes.get(op["A"]), shapes.get(op["B"])
                if a and b:
                    shapes[op["C"]] = [a[0], b[1]]
                    result.append((op.get("name", "matmul"), a[0], a[1], b[1]))
                    pending.remove(op)
                    progress = True
            if not progress:
                return None
        return result
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def case_graph(case, repo):
    """The case's graph as a dict (generated, or read from its file); None if unreadable or a
    zoo model (its graph is only known once exported)."""
    if "model" in case:
        return None
    if "workload" in case:
        return workload_graph(case["workload"])
    try:
        with open(os.path.join(repo, case["graph"])) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def case_macs(case, repo):
    graph = case_graph(case, repo)
    mms = graph_matmuls(graph) if graph is not None else None
    return None if mms is None else sum(m * k * n for _, m, k, n in mms)


def describe_workload(case, repo):
    """Short text: 'matmul 64x64x64', 'mlp 64:256-512-128', 'examples/mlp.json (2 matmuls)'."""
    if "model" in case:
        return "model " + describe_model(case["model"])
    if "workload" in case:
        w = case["workload"]
        if "matmul" in w:
            text = "matmul %dx%dx%d" % tuple(w["matmul"])
            extras = [x for x in ("bias" if w.get("bias") else "", w.get("activation", "none")) if x and x != "none"]
            return text + ("+" + "+".join(extras) if extras else "")
        spec = w["mlp"]
        return "mlp %d:%s" % (spec["batch"], "-".join(str(d) for d in spec["layers"]))
    graph = case_graph(case, repo)
    mms = graph_matmuls(graph) if graph is not None else None
    if mms and len(mms) == 1:
        return "%s (%dx%dx%d)" % (case["graph"], mms[0][1], mms[0][2], mms[0][3])
    return "%s (%d matmuls)" % (case["graph"], len(mms)) if mms else case["graph"]


def matmul_dims(case, repo):
    """(M, K, N) for a single-matmul case, else (None, None, None)."""
    graph = case_graph(case, repo)
    mms = graph_matmuls(graph) if graph is not None else None
    if mms and len(mms) == 1:
        return mms[0][1:]
    return (None, None, None)


def describe_config(case):
    """'t64' or 't64 fabric.rows=8 fabric.cols=8'."""
    name = os.path.splitext(os.path.basename(case["config"]))[0]
    sets = " ".join("%s=%s" % (k, json.dumps(v) if not isinstance(v, str) else v) for k, v in case["set"].items())
    return (name + " " + sets).strip()


# ---------------------------------------------------------------------------------------------
# Selection


def select_cases(cases, include=(), exclude=(), max_macs=None, repo="."):
    import fnmatch
    out = []
    for case in cases:
        if include and not any(fnmatch.fnmatchcase(case["id"], p) for p in include):
            continue
        if any(fnmatch.fnmatchcase(case["id"], p) for p in exclude):
            continue
        if max_macs is not None:
            macs = case_macs(case, repo)
            if macs is not None and macs > max_macs:
                continue
        out.append(case)
    return out


# ---------------------------------------------------------------------------------------------
# Running one design point


def find_binaries(build_dir):
    """(kpu-compile, kpu-sim) in BUILD/bin; raises SuiteError (one line) if either is missing."""
    paths = []
    for name in ("kpu-compile", "kpu-sim"):
        path = os.path.join(build_dir, "bin", name)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise SuiteError("%s not found in %s (build first: cmake --build %s, or give --build-dir)"
                             % (name, os.path.join(build_dir, "bin"), build_dir))
        paths.append(path)
    return tuple(paths)


def derived_config(case, repo, path_out):
    """Writes the case's config with its "set" overrides applied (same for compiler and
    simulator, since kpu-compile has no --set); returns the path to use."""
    source = os.path.join(repo, case["config"])
    if not case["set"]:
        return source
    with open(source) as f:
        config = json.load(f)
    for dotted, value in case["set"].items():
        node, parts = config, dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise SuiteError("case '%s': set %s: %s has no object '%s'" % (case["id"], dotted, case["config"], part))
            node = node[part]
        if parts[-1] not in node:
            raise SuiteError("case '%s': set %s: %s has no field '%s'" % (case["id"], dotted, case["config"], parts[-1]))
        node[parts[-1]] = value
    with open(path_out, "w") as f:
        json.dump(config, f, indent=2)
    return path_out


def run_process(cmd, log_path, timeout_s):
    """Runs cmd with stdout+stderr to log_path. Returns (exit code or None on timeout,
    wall seconds, peak RSS in MiB of that process)."""
    start = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        timed_out = threading.Event()

        def kill():
            timed_out.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        timer = threading.Timer(timeout_s, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    rss_mib = usage.ru_maxrss / 1024.0  # kB on Linux
    return (None if timed_out.is_set() else proc.returncode), wall, rss_mib


def _tail(path, pattern=None, lines=3):
    try:
        with open(path, errors="replace") as f:
            text = [l.rstrip("\n") for l in f]
    except OSError:
        return ""
    if pattern:
        hits = [l for l in text if pattern in l]
        if hits:
            return " | ".join(hits[:lines])
    return " | ".join(l for l in text[-lines:] if l.strip())


TILING_RE = re.compile(r"^op '([^']*)'.*\n\s*dataflow (\S+), tiles (\d+x\d+x\d+), tile grid (\S+), (\d+) tasks", re.M)


def parse_tiling(compile_log):
    """[{"op", "tiles" (tm x tn x tk), "grid", "tasks"}] from kpu-compile's summary (best effort)."""
    try:
        with open(compile_log, errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    return [{"op": m.group(1), "tiles": m.group(3), "grid": m.group(4), "tasks": int(m.group(5))}
            for m in TILING_RE.finditer(text)]


def run_case(case, suite, repo, binaries, out_dir, timeout_s=None):
    """Runs one design point in OUT/cases/ID/ and writes result.json there. Returns the result.
    status: "ok" (ran, check passed or not asked), "check-fail", "error" (did not produce stats).
    timeout_s (None: the case's timeout_s) bounds kpu-compile and kpu-sim together: kpu-sim
    gets what kpu-compile left of it, exactly, however small."""
    compile_bin, sim_bin = binaries
    work = os.path.join(out_dir, "cases", case["id"])
    os.makedirs(work, exist_ok=True)
    timeout = timeout_s if timeout_s is not None else case["timeout_s"]
    result = {"schema": RESULT_SCHEMA, "suite": suite["name"], "case": case["id"], "case_hash": case_hash(case),
              "group": case["group"], "host": socket.gethostname(), "status": "error", "message": "", "stats": {},
              "tiling": [], "compile": {}, "sim": {}}
    started = time.monotonic()
    stats_path = os.path.join(work, "stats.json")
    for stale in (stats_path, os.path.join(work, "result.json")):  # a job killed midway leaves no result
        if os.path.exists(stale):
            os.remove(stale)
    try:
        model_dir = None
        if "model" in case:
            model_dir, tolerance = zoo_model(case, repo, out_dir, timeout - (time.monotonic() - started))
            graph_path = os.path.join(model_dir, "model.onnx")
        elif "workload" in case:
            graph_path = os.path.join(work, "graph.json")
            with open(graph_path, "w") as f:
                json.dump(workload_graph(case["workload"]), f, indent=1)
        else:
            graph_path = os.path.join(repo, case["graph"])
        config_path = derived_config(case, repo, os.path.join(work, "config.json"))
        program = os.path.join(work, "program.kpu")
        compile_cmd = ([compile_bin, graph_path, "-o", program, "--config", config_path, "--dataflow", case["dataflow"]]
                       + case.get("compile_args", []))
        # The timeout bounds the whole case: set-up, kpu-compile and kpu-sim together.
        code, wall, rss = run_process(compile_cmd, os.path.join(work, "compile.log"),
                                      timeout - (time.monotonic() - started))
        result["compile"] = {"cmd": compile_cmd, "exit": code, "wall_s": round(wall, 4), "peak_rss_mib": round(rss, 1)}
        result["tiling"] = parse_tiling(os.path.join(work, "compile.log"))
        if code is None:
            result["message"] = "kpu-compile timed out after %g s" % timeout
            return result
        if code != 0:
            result["message"] = "kpu-compile exited %d: %s" % (code, _tail(os.path.join(work, "compile.log"), "error"))
            return result
        sim_cmd = [sim_bin, "--config", config_path, "--program", program, "--stats", stats_path]
        if case["check"]:
            sim_cmd.append("--check")
        if "seed" in case:
            sim_cmd += ["--seed", str(case["seed"])]
        if model_dir:
            sim_cmd += ["--inputs", os.path.join(model_dir, "inputs"), "--outputs", os.path.join(work, "outputs"),
                        "--report", os.path.join(work, "layers.csv")]
        sim_cmd += case["sim_args"]
        remaining = timeout - (time.monotonic() - started)
        if remaining <= 0:
            result["message"] = ("timed out after %g s: kpu-compile took %.2f s of it, none was left for kpu-sim"
                                 % (timeout, result["compile"]["wall_s"]))
            return result
        code, wall, rss = run_process(sim_cmd, os.path.join(work, "sim.log"), remaining)
        result["sim"] = {"cmd": sim_cmd, "exit": code, "wall_s": round(wall, 4), "peak_rss_mib": round(rss, 1)}
        if code is None:
            result["message"] = "kpu-sim timed out after %g s" % timeout
            return result
        sim_log = os.path.join(work, "sim.log")
        if code not in (0, 4):
            meaning = {1: "bad input", 3: "device error or stuck"}.get(code, "crashed" if code < 0 else "failed")
            result["message"] = "kpu-sim exited %d (%s): %s" % (code, meaning, _tail(sim_log, "error"))
            return result
        try:
            with open(stats_path) as f:
                result["stats"] = json.load(f)
        except (OSError, ValueError) as e:
            result["message"] = "kpu-sim exited %d but its stats file is unreadable: %s" % (code, e)
            return result
        missing = [m for m in GATED_METRICS if not isinstance(result["stats"].get(m), (int, float))]
        if missing:
            result["message"] = "stats lack %s" % ", ".join(missing)
            return result
        if code == 4 or (case["check"] and result["stats"].get("check") != "pass"):
            result["status"] = "check-fail"
            result["message"] = "check failed: " + (_tail(sim_log, "check failed") or "stats say check=%s"
                                                     % result["stats"].get("check"))
            return result
        if model_dir:
            if not compare_with_torch(repo, result, model_dir, tolerance, work,
                                      timeout - (time.monotonic() - started)):
                return result
        result["status"] = "ok"
        return result
    except SuiteError as e:
        result["message"] = str(e)
        return result
    except OSError as e:
        result["message"] = "cannot run: %s" % e
        return result
    finally:
        result["wall_s"] = round(time.monotonic() - started, 4)
        tmp = os.path.join(work, "result.json.tmp")
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)
        os.replace(tmp, os.path.join(work, "result.json"))


def compare_with_torch(repo, result, model_dir, tolerance, work, timeout_s):
    """Compares kpu-sim's outputs with PyTorch's (zoo.py compare); on a difference sets the
    result's status to check-fail and says which output. Returns whether they agree."""
    log = os.path.join(work, "compare.log")
    code, _, _ = run_process([ZOO_PYTHON, os.path.join(repo, ZOO_SCRIPT), "compare", model_dir,
                              os.path.join(work, "outputs"), "--tolerance", repr(tolerance)], log, max(timeout_s, 1))
    try:
        with open(log, errors="replace") as f:
            result["torch_compare"] = [line.rstrip("\n") for line in f if line.strip()]
    except OSError:
        result["torch_compare"] = []
    if code == 0:
        return True
    result["status"] = "check-fail" if code == 1 else "error"
    result["message"] = "outputs differ from PyTorch's: " + (_tail(log, "FAIL") or _tail(log))
    return False


def read_result(case, suite, out_dir):
    """The stored result of a case, or a synthesized error result when it is missing or stale."""
    path = os.path.join(out_dir, "cases", case["id"], "result.json")
    base = {"schema": RESULT_SCHEMA, "suite": suite["name"], "case": case["id"], "group": case["group"],
            "status": "error", "stats": {}, "tiling": [], "compile": {}, "sim": {}, "wall_s": 0.0}
    try:
        with open(path) as f:
            result = json.load(f)
    except FileNotFoundError:
        return dict(base, message="no result in %s (the job did not run or did not finish)" % path)
    except (OSError, ValueError) as e:
        return dict(base, message="unreadable result %s: %s" % (path, e))
    if result.get("case_hash") != case_hash(case):
        return dict(base, message="stale result in %s: the case's definition changed since it ran" % path)
    return result
