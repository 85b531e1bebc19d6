"""The course's benchmarks, measured side by side in one run and printed as one table.

    python3 tasks.py bench                 all three, at full size (several minutes)
    python3 tasks.py bench --tiny          the same machinery on tiny sizes (a smoke test)
    python3 tasks.py bench --only adam     one or more of: adam, grading, book

1. **Adam step**, fp32, on one tensor of 16M elements and on 2000 tensors of 4096: the
   course's fast steps (``book/fast_adam.py`` and the exercise's reference solution)
   against ``torch.optim.Adam`` for-loop, foreach and fused, as time per step, GB/s
   (the 28 bytes per parameter a step must move, over its time) and the fraction of a
   measured ceiling: a compiled kernel with exactly Adam's memory traffic.
2. **Grading**: plain nbgrader autograde against the course's sandboxed grader, serially,
   and the course's class grader with 1 and 2 workers (see :func:`grading_benchmark`).
3. **Book**: a clean build of the book against a rebuild with nothing changed.
4. **Gradebook**: recording cached results into SQLite and PostgreSQL with nbgrader's
   autograde converter and with the batch's own recorder; the whole batch on a cached
   class both ways; a class graded into PostgreSQL by one batch against two shards (see
   :func:`gradebook_benchmark`).

Times vary with the machine and with whatever else runs on it, so the table's headline
is the ratios, each next to the target it is held to. This is a measurement, not a test:
it never fails on a missed target, it reports it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "book"))

import fast_adam  # noqa: E402  (book/ holds the course's reference implementations)


@dataclasses.dataclass
class Row:
    """One line of the table: a measurement, and the ratio it is judged by."""

    benchmark: str
    what: str
    seconds: float | None = None
    gbps: float | None = None
    of_ceiling: float | None = None
    ratio: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Sizes:
    big: int
    small: int
    count: int
    rounds: int
    calls: int


FULL = Sizes(big=1 << 24, small=4096, count=2000, rounds=7, calls=1)
TINY = Sizes(big=1 << 14, small=64, count=20, rounds=2, calls=1)


def adam_parameters(shapes, seed=0):
    """Parameters with gradients (fixed: the benchmark times steps, not training)."""
    gen = torch.Generator().manual_seed(seed)
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=gen).requires_grad_()
        p.grad = torch.randn(shape, generator=gen)
        params.append(p)
    return params


def out_of_place_stepper(params):
    """The textbook equations as tensor expressions; the new tensors replace the old."""
    state = [[p.detach().clone(), p.grad, torch.zeros_like(p), torch.zeros_like(p)] for p in params]
    step = [0]

    def run():
        step[0] += 1
        for entry in state:
            entry[0], entry[2], entry[3] = fast_adam.adam_out_of_place(
                entry[0], entry[1], entry[2], entry[3], step[0], 1e-3, 0.9, 0.999, 1e-8)
    return run


def foreach_stepper(params):
    """The course's multi-tensor step, allocation-free (bit for bit torch's for-loop)."""
    values = [p.detach() for p in params]
    grads = [p.grad for p in params]
    ms, vs = [torch.zeros_like(p) for p in values], [torch.zeros_like(p) for p in values]
    scratch = [torch.empty_like(p) for p in values]
    step = [0]

    def run():
        step[0] += 1
        fast_adam.foreach_adam_(values, grads, ms, vs, scratch, step[0], 1e-3, 0.9, 0.999, 1e-8)
    return run


def ceiling_stepper(numel):
    """The compiled kernel with Adam's traffic, on four flat tensors of ``numel``."""
    tensors = [torch.randn(numel) for _ in range(4)]
    return lambda: fast_adam.ceiling_(*tensors)


def adam_case(title, shapes, sizes, exercise, *, include_out_of_place):
    """Every implementation on its own copy of the same parameters, timed side by side."""
    numel = sum(torch.Size(s).numel() for s in shapes)
    make = {
        "torch.optim.Adam, for-loop": lambda: torch.optim.Adam(adam_parameters(shapes), foreach=False).step,
        "torch.optim.Adam, foreach": lambda: torch.optim.Adam(adam_parameters(shapes), foreach=True).step,
        "torch.optim.Adam, fused": lambda: torch.optim.Adam(adam_parameters(shapes), fused=True).step,
        "course: FastAdam (exercise, eager, allocation-free)": lambda: exercise["FastAdam"](
            adam_parameters(shapes)).step,
        "course: foreach_adam_ (eager, allocation-free)": lambda: foreach_stepper(adam_parameters(shapes)),
        "course: FlatAdam, compiled single pass": lambda: fast_adam.FlatAdam(adam_parameters(shapes)).step,
        "ceiling: Adam's traffic, no arithmetic": lambda: ceiling_stepper(numel),
    }
    if include_out_of_place:
        make["course: adam_out_of_place (textbook, eager)"] = lambda: out_of_place_stepper(
            adam_parameters(shapes))
    functions = {name: build() for name, build in make.items()}
    started = time.perf_counter()
    first = {}
    for name, function in functions.items():  # the first call compiles or creates state
        begin = time.perf_counter()
        function()
        first[name] = time.perf_counter() - begin
    seconds = fast_adam.seconds_per_call(functions, rounds=sizes.rounds, calls=sizes.calls)
    ceiling = seconds["ceiling: Adam's traffic, no arithmetic"]
    rows = []
    for name, s in seconds.items():
        note = f"first call {first[name]:.2f} s" if "compiled" in name or "ceiling" in name else ""
        rows.append(Row(title, name, s, fast_adam.minimal_bytes(numel) / s / 1e9, ceiling / s, note=note))
    del functions
    print(f"  measured {title} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return rows, seconds


def judge(rows, title, name, seconds, versus, limit, *, at_most=True, label):
    """Mark row ``name`` of ``title`` with its ratio to ``versus`` against ``limit``."""
    ratio = seconds[name] / seconds[versus]
    row = next(r for r in rows if r.benchmark == title and r.what == name)
    row.ratio = f"{ratio:.2f}× {label}"
    row.target = f"{'≤' if at_most else '≥'} {limit:g}×"
    row.met = ratio <= limit if at_most else ratio >= limit
    return row


def adam_benchmark(sizes: Sizes) -> list[Row]:
    """Benchmark 1: the Adam step, one big tensor and many small ones."""
    exercise = fast_adam.exercise_reference()
    big = f"Adam, 1 tensor of {sizes.big:,}"
    small = f"Adam, {sizes.count} tensors of {sizes.small:,}"
    rows, on_big = adam_case(big, [(sizes.big,)], sizes, exercise, include_out_of_place=True)
    more, on_small = adam_case(small, [(sizes.small,)] * sizes.count, sizes, exercise,
                               include_out_of_place=False)
    rows += more
    loop, fused = "torch.optim.Adam, for-loop", "torch.optim.Adam, fused"
    judge(rows, big, "course: FastAdam (exercise, eager, allocation-free)", on_big, loop, 0.55,
          label="for-loop's time")
    compiled = judge(rows, big, "course: FlatAdam, compiled single pass", on_big, fused, 1.15,
                     label="fused's time")
    of_ceiling = compiled.of_ceiling
    compiled.ratio += f"; {of_ceiling:.0%} of ceiling"
    compiled.target += " and ≥ 80% of ceiling"
    compiled.met = compiled.met and of_ceiling >= 0.8
    judge(rows, small, "course: FlatAdam, compiled single pass", on_small, fused, 0.35,
          label="fused's time")
    for title, seconds in ((big, on_big), (small, on_small)):
        for row in rows:
            if row.benchmark == title and not row.ratio and row.what != loop:
                row.ratio = f"{row.seconds / seconds[loop]:.2f}× for-loop's time"
    return rows


#: nbgrader as it comes: Execute runs each notebook, test cells included, in one kernel.
PLAIN_NBGRADER = """c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "gd2adam"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.Execute.timeout = 120
"""


def grading_class(folder: Path, config: str | None, submissions) -> list[str]:
    """A course folder with ``submissions`` in ``submitted/``: the course's own
    ``nbgrader_config.py``, or ``config``'s text instead. Returns the assignments."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    import tasks
    from submissions import source_notebook

    folder.mkdir(parents=True)
    if config is None:
        shutil.copy(ROOT / "nbgrader_config.py", folder)
    else:
        (folder / "nbgrader_config.py").write_text(config)
    assignments = sorted({s.assignment for s in submissions})
    for assignment in assignments:
        shutil.copytree(ROOT / "solutions" / assignment, folder / "solutions" / assignment)
        subprocess.run([tasks.tool("nbgrader"), "generate_assignment", assignment, "--log-level=ERROR"],
                       cwd=folder, env=tasks.venv_environ(), check=True, capture_output=True)
    for s in submissions:
        name = source_notebook(s.assignment).name
        s.write(folder / "submitted" / f"{s.assignment[:2]}-{s.name}" / s.assignment / name)
    return assignments


def timed(commands, folder: Path) -> float:
    sys.path.insert(0, str(ROOT))
    import tasks

    start = time.perf_counter()
    for command in commands:
        subprocess.run(command, cwd=folder, env=tasks.venv_environ(), check=True, capture_output=True)
    return time.perf_counter() - start


def grading_benchmark(sizes: Sizes, *, tiny: bool) -> list[Row]:
    """Benchmark 2: the same submissions (every one the test suite predicts a grade for,
    assignment by assignment until there are at least 40) graded four ways, each in a
    fresh course folder with no results kept from before:

    - plain ``nbgrader autograde`` (nbgrader's Execute: a kernel per notebook, the checks
      beside the learner's code);
    - ``nbgrader autograde`` with the course's configuration (a sandbox per notebook, the
      checks outside it), serially;
    - ``python -m autograder.batch`` with 1 and with 2 workers, one command for all the
      assignments (it ends by recording the grades with nbgrader's autograde converter).

    Targets: the course's grader at most 1.3× plain nbgrader serially, and the batch at
    least 1.7× faster with 2 workers than with 1."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    import tasks
    from submissions import SUBMISSIONS

    chosen, assignments = [], []
    for assignment in sorted({s.assignment for s in SUBMISSIONS}):
        if len(chosen) >= (1 if tiny else 40):
            break
        assignments.append(assignment)
        chosen += [s for s in SUBMISSIONS if s.assignment == assignment]
    if tiny:
        chosen = chosen[:1]
    nbgrader, python = tasks.tool("nbgrader"), tasks.tool("python")
    times = {}
    with tempfile.TemporaryDirectory() as scratch:
        # Each way's commands for the class's assignments: nbgrader autograde takes one
        # assignment a run, the batch all of them at once.
        for label, config, commands in (
            ("plain nbgrader autograde", PLAIN_NBGRADER,
             lambda graded: [[nbgrader, "autograde", a, "--log-level=ERROR"] for a in graded]),
            ("course grader: nbgrader autograde, sandboxed", None,
             lambda graded: [[nbgrader, "autograde", a, "--log-level=ERROR", "--IsolatedExecute.use_cache=False"]
                             for a in graded]),
            ("course grader: python -m autograder.batch, 1 worker", None,
             lambda graded: [[python, "-m", "autograder.batch", *graded, "--workers", "1"]]),
            ("course grader: python -m autograder.batch, 2 workers", None,
             lambda graded: [[python, "-m", "autograder.batch", *graded, "--workers", "2"]]),
        ):
            folder = Path(scratch) / label.replace(" ", "-").replace(":", "").replace(",", "")
            times[label] = timed(commands(grading_class(folder, config, chosen)), folder)
            print(f"  graded {len(chosen)} submissions, {label}, in {times[label]:.0f} s", file=sys.stderr)
    plural = "" if len(chosen) == 1 else "s"
    title = f"Grading, {len(chosen)} submission{plural} ({', '.join(a[:2] for a in assignments)})"
    plain, serial = times["plain nbgrader autograde"], times["course grader: nbgrader autograde, sandboxed"]
    one = times["course grader: python -m autograder.batch, 1 worker"]
    two = times["course grader: python -m autograder.batch, 2 workers"]
    return [
        Row(title, "plain nbgrader autograde", plain),
        Row(title, "course grader: nbgrader autograde, sandboxed", serial,
            ratio=f"{serial / plain:.2f}× plain nbgrader's time", target="≤ 1.3×", met=serial / plain <= 1.3),
        Row(title, "course grader: python -m autograder.batch, 1 worker", one,
            ratio=f"{one / plain:.2f}× plain nbgrader's time"),
        Row(title, "course grader: python -m autograder.batch, 2 workers", two,
            ratio=f"{one / two:.2f}× faster than 1 worker", target="≥ 1.7× faster", met=one / two >= 1.7),
    ]


def gradebook_course(folder: Path, db_url: str, learners: int, cache: Path | None) -> Path:
    """A course folder whose gradebook is ``db_url``, holding ``learners`` copies of
    assignment 01's reference submission, with the results cached in ``cache``."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    import tasks
    from submissions import SUBMISSIONS, source_notebook

    assignment = "01-gradient-descent"
    reference = next(s for s in SUBMISSIONS if s.assignment == assignment and s.name == "reference")
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", folder)
    with open(folder / "nbgrader_config.py", "a") as handle:
        handle.write(f"\nc.CourseDirectory.db_url = {db_url!r}\n")
    shutil.copytree(ROOT / "solutions" / assignment, folder / "solutions" / assignment)
    subprocess.run([tasks.tool("nbgrader"), "generate_assignment", assignment, "--log-level=ERROR"],
                   cwd=folder, env=tasks.venv_environ(), check=True, capture_output=True)
    for index in range(learners):
        reference.write(folder / "submitted" / f"learner{index:04d}" / assignment / source_notebook(assignment).name)
    if cache is not None:
        shutil.copytree(cache, folder / ".autograder-cache")
    return folder


def recording_seconds(folder: Path, way: str) -> float:
    """Time ``python -m autograder.batch``'s recording step alone (every result cached):
    ``way`` is "nbgrader" (nbgrader's converter, a gradebook opening per step, as nbgrader
    runs it), "reused" (the converter with the batch's reused connections) or "batch"
    (the batch's own recorder, :mod:`autograder.record`, after the workers have finished
    the notebooks into ``autograded/``, untimed: that is part of grading, on every core)."""
    import argparse

    from autograder import batch, record

    assignment = "01-gradient-descent"
    config = batch.course_config(folder)
    if way == "batch":
        work = [(assignment, student, path) for student, path in batch.submissions(folder, config, assignment)]
        arguments = argparse.Namespace(workers=2, probe_timeout=None, timeout=None, ignore_cache=False)
        outcomes = batch.grade_all(folder, arguments, work, record.finishing_steps(config))
        assert all(outcome.cached and not outcome.error for outcome in outcomes), "the results were not cached"
        start = time.perf_counter()
        students = sorted({outcome.student for outcome in outcomes})
        batch.ensure_students(folder, config, students)  # nbgrader's converter creates them as it goes
        recorded = batch.record_bulk(folder, config, assignment, students)
    else:
        start = time.perf_counter()
        with _plain_gradebook_openings(batch) if way == "nbgrader" else contextlib.nullcontext():
            recorded = batch.record(folder, assignment, None, None)
    assert recorded, f"recording failed: see {folder}/results"
    return time.perf_counter() - start


@contextlib.contextmanager
def _plain_gradebook_openings(batch):
    original = batch.reused_gradebook_connections
    batch.reused_gradebook_connections = contextlib.nullcontext
    try:
        yield
    finally:
        batch.reused_gradebook_connections = original


def gradebook_benchmark(sizes: Sizes, *, tiny: bool) -> list[Row]:
    """Benchmark 4: the gradebook. Recording N cached results (the batch's last step) into
    SQLite and into PostgreSQL (a server started for the run on 127.0.0.1) three ways:
    nbgrader's autograde converter as nbgrader runs it (an engine, a connection and a
    schema inspection for each of about ten gradebook openings per submission), the same
    converter with reused connections, and the batch's recorder (the whole class in a few
    transactions); the whole batch command on a cached class, recording with nbgrader's
    converter and with its own; and a class graded into PostgreSQL by one batch of 2
    workers against 2 shards of 1 worker each, run at once in two working copies.

    Targets: the batch's recorder at least 10× nbgrader's converter on PostgreSQL; the
    shards at most 1.2× the one batch's time (sharding costs little)."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    import postgres
    import tasks

    why = postgres.unavailable()
    if why:
        print(f"  gradebook benchmark skipped: {why}", file=sys.stderr)
        return []
    learners = 3 if tiny else 40
    python = tasks.tool("python")
    rows = []
    with tempfile.TemporaryDirectory() as scratch, postgres.server() as server:
        scratch = Path(scratch)
        # A result is cached per learner (no learner's result ever serves another), so the
        # class is graded once, untimed, for the cache every recorded course starts with.
        warm = gradebook_course(scratch / "warm", "sqlite:///gradebook.db", learners, None)
        timed([[python, "-m", "autograder.batch", "01-gradient-descent", "--workers", "2"]], warm)
        cache = warm / ".autograder-cache"
        for way in ("reused", "batch"):  # imports what each way needs, so no timed row pays for that
            recording_seconds(warm, way)
        title = f"Gradebook, recording {learners} cached results"
        ways = [("nbgrader's converter, a connection per opening", "nbgrader"),
                ("nbgrader's converter, reused connections", "reused"),
                ("the batch's recorder, a transaction per 500 learners", "batch")]
        for database in ("SQLite", "PostgreSQL"):
            seconds = {}
            for label, way in ways:
                name = f"{database}-{way}".lower()
                url = ("sqlite:///gradebook.db" if database == "SQLite"
                       else postgres.create_database(server, name.replace("-", "_")))
                folder = gradebook_course(scratch / name, url, learners, cache)
                seconds[way] = recording_seconds(folder, way)
                print(f"  recorded {learners} results, {database}, {label}, in {seconds[way]:.2f} s", file=sys.stderr)
                row = Row(title, f"{database}, {label}", seconds[way], note=f"{seconds[way] / learners:.3f} s each")
                if way != "nbgrader":
                    row.ratio = f"{seconds['nbgrader'] / seconds[way]:.1f}× faster"
                if way == "batch" and database == "PostgreSQL":
                    row.target, row.met = "≥ 10× faster", seconds["nbgrader"] / seconds[way] >= 10
                rows.append(row)
        # The whole command on a cached class: the recorder's half of the work moved into
        # the grading workers is counted here.
        title = f"Gradebook, the batch on {learners} cached results, into PostgreSQL"
        command = [python, "-m", "autograder.batch", "01-gradient-descent", "--workers", "2"]
        whole = {}
        for label, extra in (("recording with nbgrader's converter", ["--record-with-nbgrader"]),
                             ("recording with the batch's recorder", [])):
            name = "whole_" + ("nbgrader" if extra else "batch")
            folder = gradebook_course(scratch / name, postgres.create_database(server, name), learners, cache)
            whole[label] = timed([command + extra], folder)
            row = Row(title, label, whole[label], note=f"{whole[label] / learners:.3f} s each")
            if not extra:
                first = whole["recording with nbgrader's converter"]
                row.ratio = f"{first / whole[label]:.1f}× faster"
            rows.append(row)
        from submissions import SUBMISSIONS, source_notebook

        class_size = 2 if tiny else 12  # at most; assignment 01 has fewer predicted submissions
        learners = [s for s in SUBMISSIONS if s.assignment == "01-gradient-descent"][:class_size]
        title = f"Gradebook, grading {len(learners)} submissions of 01 into PostgreSQL"
        folders = []
        for name in ("batch", "shards"):
            folder = gradebook_course(scratch / name, postgres.create_database(server, name), 0, None)
            for s in learners:
                s.write(folder / "submitted" / s.name / s.assignment / source_notebook(s.assignment).name)
            folders.append(folder)
        command = [python, "-m", "autograder.batch", "01-gradient-descent"]
        one = timed([command + ["--workers", "2"]], folders[0])
        # Each shard in a working copy of its own, as a Kubernetes pod would have.
        shards = [folders[1], shutil.copytree(folders[1], scratch / "shards-copy")]
        start = time.perf_counter()
        running = [subprocess.Popen(command + ["--workers", "1", "--shard", f"{index}/2"], cwd=folder,
                                    env=tasks.venv_environ(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for index, folder in enumerate(shards)]
        assert all(process.wait() == 0 for process in running), "a shard failed"
        two = time.perf_counter() - start
        rows += [Row(title, "1 batch, 2 workers", one),
                 Row(title, "2 shards, 1 worker each, at once", two, ratio=f"{two / one:.2f}× the batch's time",
                     target="≤ 1.2×", met=two / one <= 1.2)]
    return rows


TINY_BOOK = {
    "_config.yml": "title: Tiny\nexecute:\n  execute_notebooks: cache\nonly_build_toc_files: true\n",
    "_toc.yml": "format: jb-book\nroot: index\n",
    "index.md": ("---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
                 "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
                 "# Tiny\n\n```{code-cell} ipython3\nprint(sum(range(10)))\n```\n"),
}


def course_copy(destination: Path) -> None:
    """The book's sources, as a fresh checkout has them (no build, no environment)."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    for name in files:
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def book_benchmark(sizes: Sizes, *, tiny: bool) -> list[Row]:
    """Benchmark 3: a clean build (fresh copy, no execution cache, an empty compiler
    cache) against a rebuild with nothing changed."""
    sys.path.insert(0, str(ROOT))
    import tasks

    with tempfile.TemporaryDirectory() as scratch:
        book = Path(scratch) / "book"
        if tiny:
            book.mkdir()
            for name, text in TINY_BOOK.items():
                (book / name).write_text(text)
        else:
            course_copy(book)
        environ = dict(tasks.venv_environ(), TORCHINDUCTOR_CACHE_DIR=str(Path(scratch) / "inductor"))
        command = [tasks.tool("jupyter-book"), "build", str(book), *tasks.BOOK_BUILD[3:]]
        times = []
        for _ in range(2):
            start = time.perf_counter()
            subprocess.run(command, cwd=book, env=environ, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
            print(f"  built the book in {times[-1]:.0f} s", file=sys.stderr)
    clean, rebuild = times
    title = "Book (tiny test book)" if tiny else "Book"
    return [
        Row(title, "clean build", clean),
        Row(title, "rebuild, nothing changed", rebuild, ratio=f"{rebuild / clean:.1%} of clean",
            target="≤ 10%", met=rebuild / clean <= 0.10),
    ]


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
                 platform.processor() or platform.machine()) if Path("/proc/cpuinfo").exists() else \
        platform.machine()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{model}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}; "
            f"load average {load} at the end")


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    def number(value, form):
        return "" if value is None else format(value, form)

    lines = ["| benchmark | what | time | GB/s | of ceiling | ratio | target | met |",
             "|---|---|---:|---:|---:|---|---|---|"]
    for r in rows:
        time_text = "" if r.seconds is None else (
            f"{r.seconds * 1e3:.2f} ms" if r.seconds < 1 else f"{r.seconds:.1f} s")
        met = {True: "yes", False: "**no**", None: ""}[r.met]
        ratio = "; ".join(x for x in (r.ratio, r.note) if x)
        lines.append(f"| {r.benchmark} | {r.what} | {time_text} | {number(r.gbps, '.1f')} | "
                     f"{number(r.of_ceiling, '.0%')} | {ratio} | {r.target} | {met} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: checks the machinery")
    parser.add_argument("--only", default="adam,grading,book,gradebook",
                        help="comma-separated benchmarks to run: adam, grading, book, gradebook")
    args = parser.parse_args(argv)
    chosen = args.only.split(",")
    unknown = set(chosen) - {"adam", "grading", "book", "gradebook"}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    sizes = TINY if args.tiny else FULL
    rows = []
    if "adam" in chosen:
        rows += adam_benchmark(sizes)
    if "grading" in chosen:
        rows += grading_benchmark(sizes, tiny=args.tiny)
    if "book" in chosen:
        rows += book_benchmark(sizes, tiny=args.tiny)
    if "gradebook" in chosen:
        rows += gradebook_benchmark(sizes, tiny=args.tiny)
    print(table(rows))
    print(f"\nMachine: {machine()}.")


if __name__ == "__main__":
    main(sys.argv[1:])
