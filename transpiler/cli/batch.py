"""`tf-transpile batch IN_DIR OUT_DIR --to V`: convert every model under a directory, in parallel.

Each model is converted by `transpiler.pipeline.convert.convert`, with the
options of a single conversion, in a process of its own (a crash, a hang
ended by Ctrl-C or an out-of-memory kill takes down only that model).
OUT_DIR mirrors IN_DIR: IN_DIR/a/b.pb is written to OUT_DIR/a/b.pb, so each
output has the form of its input (README: "OUT's form follows its name").

A converted model gets a stamp in OUT_DIR/.tf-transpile-batch/: the hash of
the conversion options, of its input files (relative path, size, mtime) and
of the output it wrote. A rerun skips a model whose stamp matches all three,
so a batch interrupted or extended later only does what is left.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing import connection
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from transpiler.cli.output import quiet, verbose
from transpiler.errors import IncompatibleModel, TranspileError
from transpiler.options import ConvertOptions
from transpiler.pipeline.markdown import md_table
from transpiler.version import __version__

DESCRIPTION = """\
Convert every model under IN_DIR for release V, in parallel worker processes
(one process per model), into OUT_DIR with the same relative paths: a
SavedModel directory (holding saved_model.pb or .pbtxt; not searched
further), a GraphDef (.pb/.pbtxt) or a meta graph (.meta, its checkpoint
beside it) is written in the same form under the same name. Symbolic links in
IN_DIR are never followed: each is reported as skipped.

stdout: one JSON line per model as it finishes, {"path", "out", "status",
"exit_code", "problems", "seconds"}; status is converted, refused (the
model cannot be made to load: problems name each blocking node and op),
error (bad input: exit_code 2; a bug: 3), timeout (its worker ran past
--timeout and was killed: exit_code 1), skipped (converted before with the
same options and input, or a symbolic link) or skipped-refused (refused
before with the same options and input: its problems again, exit_code 1).
stderr: a summary table (-q: only the models that failed; -v: also a line
per model as it finishes). --format json is these lines; --format markdown
prints, instead, one Markdown report on stdout at the end (a table of
counts, a table of every model). --checkpoint is refused: each .meta's
checkpoint is found beside it.

Resumable: a converted model is stamped in OUT_DIR/.tf-transpile-batch/
(hash of the options, of the input files' sizes and mtimes, and of the
output); a rerun skips it. A refused model is stamped too (options and
input), so a rerun does not convert it again, but reports it again. An
existing OUT that is not stamped as the same conversion needs --force.
--shard K/N converts the models whose relative path hashes to share K of
N: N machines share the work, and adding models never moves the others
to another shard.

exit status: 0 every model converted or skipped; 1 some model refused (now
or in a resumed run) or timed out; 2 some model is bad input, or bad usage
(nothing run); 3 an internal error in some model (a bug:
TF_TRANSPILE_DEBUG=1 for a traceback in the worker); 130 interrupted
(finished models are kept and stamped)."""

#: Files that make a directory a SavedModel (readers.SAVED_MODEL_FILES).
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
#: Files that are models on their own.
MODEL_SUFFIXES = (".pb", ".pbtxt", ".meta")
#: Where the stamps live, under OUT_DIR.
STAMP_DIR = ".tf-transpile-batch"
#: Our own temporary and stamp directories, never taken for input.
OWN_PREFIX = ".tf-transpile-"

STATUSES = ("converted", "refused", "error", "timeout", "skipped", "skipped-refused")
#: Statuses of a model that did not come out converted (the summary table lists each).
FAILED = ("refused", "error", "timeout", "skipped-refused")
#: Seconds a timed-out worker has, after SIGTERM, to remove its staged output before SIGKILL.
TERM_GRACE = 5.0


@dataclasses.dataclass(frozen=True)
class Entry:
    """One thing found under IN_DIR: a model, or a symbolic link that is not followed."""

    rel: str  # path relative to IN_DIR, with "/"
    link: Optional[str] = None  # the link's target when the entry is a symbolic link


# ---------------------------------------------------------------------------
# finding models


def find_models(in_dir: Path) -> List[Entry]:
    """Every model under `in_dir`, sorted by relative path; links are entries of their own, never followed."""
    if any(os.path.lexists(in_dir / name) for name in SAVED_MODEL_FILES):
        raise TranspileError("%s is itself a SavedModel: give the directory that holds models, or convert it "
                             "with `tf-transpile %s OUT --to V`" % (in_dir, in_dir))
    found: List[Entry] = []
    for root, dirs, files in os.walk(in_dir, followlinks=False):
        here = Path(root)
        rel_root = here.relative_to(in_dir)
        if here != in_dir and any(name in files for name in SAVED_MODEL_FILES):
            found.append(Entry(rel_root.as_posix()))  # a SavedModel: its own links are refused by its reader
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if not d.startswith(OWN_PREFIX)]
        for name in dirs + files:
            path = here / name
            rel = (rel_root / name).as_posix()
            if path.is_symlink():
                if name in dirs or name.endswith(MODEL_SUFFIXES):
                    found.append(Entry(rel, link=os.readlink(path)))
            elif name in files and name.endswith(MODEL_SUFFIXES):
                found.append(Entry(rel))
        dirs[:] = sorted(d for d in dirs if not (here / d).is_symlink())
    return sorted(found, key=lambda e: e.rel)


def parse_shard(text: str) -> Tuple[int, int]:
    """"K/N" -> (K, N), 1 <= K <= N."""
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise argparse.ArgumentTypeError("--shard is K/N with 1 <= K <= N, e.g. 1/4 (not %r)" % text)
    return int(k), int(n)


def shard(entries: Sequence[Entry], k: int, n: int) -> List[Entry]:
    """The K-th of N shares: the entries whose relative path hashes to K-1 modulo N (disjoint, together
    complete). By hash, not by position, so adding or removing a model never moves another one."""
    return [e for e in entries if shard_of(e.rel, n) == k]


def shard_of(rel: str, n: int) -> int:
    """The shard (1..n) of a model's relative path: a hash the same on every machine and Python."""
    return int(hashlib.sha256(rel.encode()).hexdigest()[:16], 16) % n + 1


# ---------------------------------------------------------------------------
# stamps


def options_digest(options: ConvertOptions, release: str) -> str:
    """What makes two conversions the same: every option but --force, the resolved target release,
    the rule files' contents, and tf-transpile's version."""
    fields = dataclasses.asdict(options.replace(force=False, to=release, link=False))  # --link: the same bytes
    fields.pop("progress", None)  # how work is shown, not what it makes
    rules = []
    for path in options.rule_files:
        try:
            rules.append(hashlib.sha256(Path(path).read_bytes()).hexdigest())
        except OSError:
            rules.append(None)
    document = {"options": fields, "rule_contents": rules, "version": __version__}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def files_digest(paths: Sequence[Path], base: Path) -> str:
    """Hash of (relative path, size, mtime) of every file: a changed, added or removed file changes it."""
    h = hashlib.sha256()
    for path in sorted(paths):
        try:
            st = os.lstat(path)
        except OSError:
            continue
        h.update(("%s\0%d\0%d\n" % (os.path.relpath(path, base), st.st_size, st.st_mtime_ns)).encode())
    return h.hexdigest()


def model_files(path: Path) -> List[Path]:
    """The files a model is read from: a SavedModel's tree, or a graph file (and a .meta's checkpoint)."""
    if path.is_dir():
        return [Path(root) / name for root, dirs, files in os.walk(path) for name in dirs + files]
    from transpiler.io.checkpoints import checkpoint_files

    return [path] + (checkpoint_files(path.with_suffix("")) if path.suffix == ".meta" else [])


def output_files(out: Path) -> List[Path]:
    return model_files(out) if out.exists() else []


def stamp_path(out_dir: Path, rel: str) -> Path:
    return out_dir / STAMP_DIR / (hashlib.sha256(rel.encode()).hexdigest()[:24] + ".json")


def read_stamp(out_dir: Path, rel: str) -> Optional[dict]:
    try:
        return json.loads(stamp_path(out_dir, rel).read_text())
    except (OSError, ValueError):
        return None


def write_stamp(out_dir: Path, rel: str, stamp: dict) -> None:
    path = stamp_path(out_dir, rel)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(stamp, sort_keys=True))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# one model, in its own process


def problem_list(exc: BaseException) -> List[dict]:
    """The problems of a failed conversion: the report's blocking problems, or the error as one."""
    report = getattr(exc, "report", None)
    if report is not None:
        return [dict(dataclasses.asdict(p), graph=label) for label, ps in report.sections for p in ps]
    return [{"kind": "error", "detail": str(exc)}]


def convert_one(path: Path, out: Path, options: ConvertOptions) -> dict:
    """Convert one model with the pipeline's own `convert`; never raises (but on Ctrl-C)."""
    from transpiler.pipeline.convert import convert

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        convert(path, out, options)
        return {"status": "converted", "exit_code": 0, "problems": []}
    except IncompatibleModel as exc:
        return {"status": "refused", "exit_code": exc.exit_code, "problems": problem_list(exc)}
    except TranspileError as exc:
        return {"status": "error", "exit_code": exc.exit_code, "problems": problem_list(exc)}
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a bug; the other models go on
        if os.environ.get("TF_TRANSPILE_DEBUG"):
            import traceback

            traceback.print_exc()
        return {"status": "error", "exit_code": 3,
                "problems": [{"kind": "internal-error", "detail": "%s: %s" % (type(exc).__name__, exc)}]}


def _worker(conn, path: Path, out: Path, options: ConvertOptions) -> None:
    """A worker process: stdout is the batch's JSON stream, so whatever the conversion prints goes to stderr.

    SIGTERM (--timeout) unwinds like Ctrl-C: the staged output is removed on the way out."""
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        conn.send(convert_one(path, out, options))
    except KeyboardInterrupt:
        pass
    finally:
        conn.close()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


# ---------------------------------------------------------------------------
# the batch


@dataclasses.dataclass
class Task:
    entry: Entry
    path: Path
    out: Path
    inputs: str = ""
    started: float = 0.0
    process: Optional[multiprocessing.Process] = None
    conn: Optional[connection.Connection] = None
    result: Optional[dict] = None


def _context():
    """fork where there is one (workers start with the package already imported), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def run_batch(tasks: List[Task], options: ConvertOptions, jobs: int,
              done: Callable[[Task], None], target: Callable = None, timeout: Optional[float] = None) -> None:
    """Run every task in a process of its own, at most `jobs` at a time; `done(task)` as each finishes.

    `target(conn, path, out, options)` is what a worker runs (default `_worker`: send convert_one's result).
    A worker still running `timeout` seconds after it started is killed; its task's status is "timeout"."""
    ctx = _context()
    pending = list(reversed(tasks))
    running: List[Task] = []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                running.append(_start(ctx, pending.pop(), options, target or _worker))
            ready = connection.wait([t.conn for t in running] + [t.process.sentinel for t in running],
                                    timeout=_until_first_deadline(running, timeout))
            for task in list(running):
                if task.conn in ready and task.result is None:
                    _receive(task)
                if task.result is not None or task.process.sentinel in ready:
                    if task.result is None:
                        _receive(task)  # sent just before exiting
                    _finish(task)
                elif timeout is not None and time.monotonic() - task.started >= timeout:
                    _kill(task, timeout)
                else:
                    continue
                running.remove(task)
                done(task)
    except KeyboardInterrupt:
        for task in running:  # the workers got the SIGINT too: their staged outputs vanish
            task.process.join(timeout=10)
            if task.process.is_alive():
                task.process.terminate()
                task.process.join()
        raise


def _until_first_deadline(running: Sequence[Task], timeout: Optional[float]) -> Optional[float]:
    """Seconds until the first running task's --timeout (None: wait for a result however long it takes)."""
    if timeout is None or not running:
        return None
    return max(0.0, min(t.started for t in running) + timeout - time.monotonic())


def _kill(task: Task, timeout: float) -> None:
    """End a worker past its time: SIGTERM (it removes its staged output), SIGKILL if it lingers."""
    task.process.terminate()
    task.process.join(TERM_GRACE)
    if task.process.is_alive():
        task.process.kill()
        task.process.join()
    task.conn.close()
    task.result = {"status": "timeout", "exit_code": 1, "problems": [
        {"kind": "timeout", "detail": "the conversion took longer than --timeout %g s; its worker was killed"
         % timeout}]}
    task.result["seconds"] = round(time.monotonic() - task.started, 3)


def _start(ctx, task: Task, options: ConvertOptions, target: Callable) -> Task:
    receiver, sender = ctx.Pipe(duplex=False)
    task.conn = receiver
    task.started = time.monotonic()
    task.process = ctx.Process(target=target, args=(sender, task.path, task.out, options))
    task.process.start()
    sender.close()
    return task


def _receive(task: Task) -> None:
    try:
        if task.conn.poll():
            task.result = task.conn.recv()
    except (EOFError, OSError):
        pass


def _finish(task: Task) -> None:
    """Reap the worker; one that died without a result (a crash, a kill) is an internal error of its model."""
    task.process.join(timeout=60)
    if task.process.is_alive():  # sent its result but does not exit
        task.process.terminate()
        task.process.join()
    task.conn.close()
    if task.result is None:
        code = task.process.exitcode
        how = "was killed by signal %d" % -code if code is not None and code < 0 else "exited with status %s" % code
        task.result = {"status": "error", "exit_code": 3,
                       "problems": [{"kind": "crash", "detail": "the worker converting this model %s" % how}]}
    task.result["seconds"] = round(time.monotonic() - task.started, 3)


def exit_status(results: Sequence[dict]) -> int:
    """3 if a model hit an internal error, else 2 if one was bad input, else 1 if one was refused, else 0."""
    codes = {r["exit_code"] for r in results}
    return next((code for code in (3, 2, 1) if code in codes), 0)


def summary_table(results: Sequence[dict], seconds: float, jobs: int, failures_only: bool = False) -> str:
    """Counts by status, then one row per model that did not come out converted or skipped
    (`failures_only`: those rows alone, for -q)."""
    counts = {s: sum(r["status"] == s for r in results) for s in STATUSES}
    lines = [] if failures_only else ["%-15s %6s" % ("STATUS", "MODELS")]
    if not failures_only:
        lines += ["%-15s %6d" % (s, counts[s]) for s in STATUSES]
        lines.append("%-15s %6d   in %.1f s with %d job(s)" % ("total", len(results), seconds, jobs))
    failed = [r for r in results if r["status"] in FAILED]
    if failed:
        width = max(len(r["path"]) for r in failed)
        status_width = max(len(r["status"]) for r in failed)
        lines += [""] if lines else []
        lines.append("%-*s %4s  %-*s  %s" % (status_width, "STATUS", "EXIT", width, "MODEL", "FIRST PROBLEM"))
        for r in failed:
            lines.append("%-*s %4d  %-*s  %s" % (status_width, r["status"], r["exit_code"], width, r["path"],
                                                 first_problem(r)))
    return "\n".join(lines)


def first_problem(result: dict) -> str:
    """The first problem of a model's result, with how many more there are: `y [MyOp]: detail (+2 more)`."""
    problems = result["problems"]
    first = problems[0] if problems else {}
    what = first.get("detail", "")
    if first.get("node"):
        what = "%s [%s]: %s" % (first["node"], first.get("op", ""), what)
    return what + (" (+%d more)" % (len(problems) - 1) if len(problems) > 1 else "")


def summary_markdown(results: Sequence[dict], seconds: float, jobs: int, target: str) -> str:
    """The batch as one Markdown report for a ticket: counts by status, then every model."""
    lines = ["## tf-transpile batch: %d model(s) for TF %s" % (len(results), target), "",
             "%d converted, %d failed, in %.1f s with %d job(s); exit status %d." % (
                 sum(r["status"] == "converted" for r in results), sum(r["status"] in FAILED for r in results),
                 seconds, jobs, exit_status(results)), ""]
    lines += md_table(("Status", "Models"), [(s, sum(r["status"] == s for r in results)) for s in STATUSES])
    if results:
        lines += ["", "### Models", ""]
        lines += md_table(("Model", "Status", "Exit", "Seconds", "First problem"),
                          [(r["path"], r["status"], r["exit_code"], "%.1f" % r["seconds"], first_problem(r))
                           for r in sorted(results, key=lambda r: r["path"])])
    return "\n".join(lines)


def _check_dirs(in_dir: Path, out_dir: Path) -> None:
    if in_dir.is_symlink():
        raise TranspileError("%s is a symbolic link; tf-transpile does not follow links: give the directory itself"
                             % in_dir)
    if not in_dir.is_dir():
        raise TranspileError("%s is not a directory (batch converts every model under IN_DIR; for one model: "
                             "`tf-transpile IN OUT --to V`)" % in_dir)
    src, dst = in_dir.resolve(), out_dir.resolve()
    if dst == src or src in dst.parents:
        raise TranspileError("OUT_DIR %s is inside IN_DIR %s: the outputs would be taken for input; choose a "
                             "directory outside it" % (out_dir, in_dir))
    if dst in src.parents:
        raise TranspileError("IN_DIR %s is inside OUT_DIR %s: choose an OUT_DIR outside it" % (in_dir, out_dir))
    if out_dir.exists() and not out_dir.is_dir():
        raise TranspileError("OUT_DIR %s exists and is not a directory" % out_dir)
    if not dst.parent.is_dir():
        raise TranspileError("the parent of OUT_DIR %s does not exist" % out_dir)


def cmd_batch(argv: List[str], make_parser, add_convert_options, convert_options) -> int:
    """`tf-transpile batch`; the parser and the conversion options are the single conversion's (cli/main.py)."""
    from transpiler.engine.rule_files import load_rules
    from transpiler.knowledge.releases import catalog

    args = _batch_parser(make_parser, add_convert_options).parse_args(argv)
    if args.checkpoint is not None:
        raise TranspileError("--checkpoint names one model's checkpoint; in a batch each .meta's checkpoint is "
                             "found beside it")
    if args.jobs is not None and args.jobs < 1:
        raise TranspileError("--jobs must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        raise TranspileError("--timeout must be a positive number of seconds")
    options = convert_options(args).replace(progress=None)  # workers run side by side: no progress lines
    release = catalog().opset(options.to).release  # an unknown release or a bad rule file: once, before any work
    load_rules(list(options.rule_files))
    in_dir, out_dir = args.input, args.output
    _check_dirs(in_dir, out_dir)
    entries = shard(find_models(in_dir), *args.shard)
    jobs = args.jobs or _cpus()
    out_dir.mkdir(exist_ok=True)
    run = _Run(out_dir, options_digest(options, release), args.format)
    tasks = [task for task in (run.plan(in_dir, entry) for entry in entries) if task is not None]
    if tasks and _context().get_start_method() == "fork":
        import transpiler.pipeline.convert  # noqa: F401  (loaded once here, shared by every forked worker)
    try:
        run_batch(tasks, options, min(jobs, max(len(tasks), 1)), run.done, timeout=args.timeout)
    except KeyboardInterrupt:
        run.report(jobs, catalog().opset(release).short)
        print("tf-transpile: batch interrupted; %d of %d model(s) done (kept and stamped: a rerun resumes)"
              % (len(run.results), len(entries)), file=sys.stderr)
        return 130
    run.report(jobs, catalog().opset(release).short)
    if not entries:
        print("tf-transpile: no models found under %s%s" % (in_dir, " in shard %d/%d" % args.shard
                                                            if args.shard != (1, 1) else ""), file=sys.stderr)
    return exit_status(run.results)


def _batch_parser(make_parser, add_convert_options) -> argparse.ArgumentParser:
    p = make_parser("tf-transpile batch", DESCRIPTION,
                    usage="tf-transpile batch IN_DIR OUT_DIR --to VERSION [--jobs N] [--shard K/N] [--timeout S] "
                          "[--force] [any conversion option]")
    p.add_argument("input", metavar="IN_DIR", type=Path, help="directory searched for models")
    p.add_argument("output", metavar="OUT_DIR", type=Path, help="where the converted models go (same relative paths)")
    add_convert_options(p)
    p.add_argument("--force", action="store_true",
                   help="replace an existing output that is not stamped as this same conversion")
    p.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                   help="models converted at once (default: the number of CPUs)")
    p.add_argument("--shard", type=parse_shard, default=(1, 1), metavar="K/N",
                   help="convert only the models whose relative path hashes to share K of N (1 <= K <= N)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="kill the conversion of a model that takes longer (status timeout, exit 1; default: none)")
    return p


class _Run:
    """One batch run's bookkeeping: what to skip (stamps), the JSON lines, the stamps it writes."""

    def __init__(self, out_dir: Path, digest: str, fmt: str):
        self.out_dir, self.digest, self.fmt = out_dir, digest, fmt
        self.results: List[dict] = []
        self.began = time.monotonic()

    def plan(self, in_dir: Path, entry: Entry) -> Optional[Task]:
        """The task converting `entry`, or None when it is reported without running (a link, a stamp)."""
        path, out = in_dir / entry.rel, self.out_dir / entry.rel
        if entry.link is not None:
            self.emit(path, out, {"status": "skipped", "exit_code": 0, "problems": [
                {"kind": "symbolic-link", "detail": "%s is a symbolic link (to %s), not followed"
                 % (path, entry.link)}]})
            return None
        inputs = files_digest(model_files(path), path.parent)
        stamp = read_stamp(self.out_dir, entry.rel) or {}
        same = stamp.get("path") == entry.rel and stamp.get("options") == self.digest and stamp.get("inputs") == inputs
        if same and stamp.get("status") == "refused":
            self.emit(path, out, {"status": "skipped-refused", "exit_code": 1, "problems": stamp.get("problems", [])})
            return None
        if same and "status" not in stamp and out.exists() and \
                stamp.get("output") == files_digest(output_files(out), out.parent):
            self.emit(path, out, {"status": "skipped", "exit_code": 0, "problems": []})
            return None
        return Task(entry, path, out, inputs)

    def done(self, task: Task) -> None:
        """Stamp a finished task (converted: with its output's hash; refused: with its problems), report it."""
        stamp = {"path": task.entry.rel, "options": self.digest, "inputs": task.inputs}
        if task.result["status"] == "converted":
            stamp["output"] = files_digest(output_files(task.out), task.out.parent)
            write_stamp(self.out_dir, task.entry.rel, stamp)
        elif task.result["status"] == "refused":
            stamp.update(status="refused", problems=task.result["problems"])
            write_stamp(self.out_dir, task.entry.rel, stamp)
        self.emit(task.path, task.out, task.result)

    def emit(self, path: Path, out: Path, result: dict) -> None:
        line = {"path": str(path), "out": str(out), "status": result["status"], "exit_code": result["exit_code"],
                "problems": result["problems"], "seconds": result.get("seconds", 0.0)}
        self.results.append(line)
        if self.fmt != "markdown":
            print(json.dumps(line, sort_keys=True), flush=True)
        if verbose():
            print("%-15s %7.1f s  %s" % (line["status"], line["seconds"], path), file=sys.stderr, flush=True)

    def report(self, jobs: int, target: str) -> None:
        """The summary: a table on stderr (-q: only the failures), or the Markdown report on stdout."""
        seconds = time.monotonic() - self.began
        if self.fmt == "markdown":
            print(summary_markdown(self.results, seconds, jobs, target))
        elif not quiet() or any(r["status"] in FAILED for r in self.results):
            print(summary_table(self.results, seconds, jobs, failures_only=quiet()), file=sys.stderr)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
