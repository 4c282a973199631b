"""Accuracies with standard errors from per-sample outcomes; terminal, markdown and CSV tables; the JSON
and CSV writers every entry point ends with; one-line errors for a user's mistakes."""
from __future__ import annotations

import csv
import io
import math

import numpy as np

import sys
import time
from typing import Any, Callable

from empirical.results import atomic_write_json, atomic_write_text
from empirical.outcomes import Accuracy, accuracy  # noqa: F401  (re-exported: the tables' cells)
from empirical.stats import paired_difference


def format_table(rows: list[dict], columns: list[tuple[str, str]], spread: bool = True) -> str:
    """Fixed-width text table; `columns` are (key, header) pairs; Accuracy cells print mean±SE [spread]."""
    cells = [[_cell(row.get(key), spread) for key, _ in columns] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, (_, h) in enumerate(columns)]
    line = lambda items: "  ".join(s.ljust(w) for s, w in zip(items, widths)).rstrip()
    out = [line([h for _, h in columns]), line(["-" * w for w in widths])]
    return "\n".join(out + [line(c) for c in cells])


def _cell(value, spread: bool = True) -> str:
    if value is None:
        return "-"
    if isinstance(value, Accuracy):
        return value.text(spread)
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def write_csv(path: str, rows: list[dict], columns: list[tuple[str, str]]) -> None:
    """CSV with mean and SE columns for every accuracy cell, written atomically."""
    buf = io.StringIO()
    _csv_rows(csv.writer(buf), rows, columns)
    atomic_write_text(path, buf.getvalue())


def _csv_rows(writer, rows: list[dict], columns: list[tuple[str, str]]) -> None:
    header = []
    for key, _ in columns:
        header += [key] if not any(isinstance(r.get(key), Accuracy) for r in rows) else [key, f"{key}_se"]
    writer.writerow(header)
    for row in rows:
        out = []
        for key, _ in columns:
            value = row.get(key)
            if any(isinstance(r.get(key), Accuracy) for r in rows):
                out += [f"{value.mean:.3f}", f"{value.se:.3f}"] if isinstance(value, Accuracy) else ["", ""]
            else:
                out.append("" if value is None else value)
        writer.writerow(out)


def paired_drop(no_fix, fixed) -> Accuracy | None:
    """Accuracy lost by fixing the noise, paired over the same samples: mean and SE of
    d_i = (mean over fresh draws of sample i's correctness) - (its correctness under replay)."""
    if no_fix is None or fixed is None:
        return None
    d = paired_difference(no_fix, fixed)
    return Accuracy(d.mean, d.se, d.n)


def jsonable(row: dict) -> dict:
    """A table row with its Accuracy cells as dicts."""
    return {k: (v.to_dict() if isinstance(v, Accuracy) else v) for k, v in row.items()}


def write_outputs(config, result: dict, rows: list[dict] | None = None, columns=None) -> None:
    """--json (the whole result, with the configuration and the code and library versions that produced it)
    and --csv (the rows), each written atomically ("-" or /dev/stdout: after the table on stdout)."""
    from empirical.identity import code_summary, source_identity
    out = config.output
    if out.json:
        atomic_write_json(out.json, {"config": config.to_dict(), "code": code_summary(source_identity()), **result})
    if out.csv and rows is not None:
        write_csv(out.csv, rows, columns)


class Interrupted(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that atomic writes clean up and nothing catches it."""


def run_main(main: Callable[[], Any], prog: str) -> Any:
    """Run an entry point's body; a user's mistake found after parsing (a missing file, a store that does
    not match) becomes one line on stderr and exit status 2, never a traceback. SIGINT / SIGTERM stop the
    run with one line naming the results store that keeps every finished chunk (exit status 130 / 143)."""
    import signal
    import threading

    from empirical.harness.store import StoreError, active_paths, close_all

    def terminate(signum, frame):
        raise Interrupted()

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate) if main_thread else None
    try:
        return main()
    except StoreError as err:
        _line(f"{prog}: error: {err}")
        raise SystemExit(2)
    except (FileNotFoundError, PermissionError, ValueError, ImportError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        _line(f"{prog}: error: {first}")
        raise SystemExit(2)
    except (KeyboardInterrupt, Interrupted) as err:
        stores = active_paths()
        kept = (f"finished chunks are saved in {', '.join(stores)}: rerun the same command (with --resume "
                "when you gave --results) to continue" if stores else "no results store was open, so nothing was saved")
        _line(f"{prog}: interrupted by {'SIGTERM' if isinstance(err, Interrupted) else 'SIGINT'}; {kept}")
        raise SystemExit(143 if isinstance(err, Interrupted) else 130)
    finally:
        close_all()
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _line(text: str) -> None:
    """One line on stderr in a single write, so the lines of several ranks sharing a terminal or a pipe
    never run together."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def set_threads(threads: int | None) -> None:
    """Torch's CPU thread count for this run (None leaves torch's choice)."""
    if threads:
        import torch
        torch.set_num_threads(threads)


def status(text: str, config=None) -> None:
    """Run descriptions go to stderr (with the progress bars), so a redirected stdout holds only the table."""
    print(text, file=sys.stderr, flush=True)


def render(rows: list[dict], columns: list[tuple[str, str]], fmt: str = "compact", spread: bool = False) -> str:
    """The table in one of the --format styles: compact / wide (fixed width), markdown, csv."""
    if fmt == "csv":
        buf = io.StringIO()
        _csv_rows(csv.writer(buf), rows, columns)
        return buf.getvalue().rstrip("\n")
    if fmt == "markdown":
        head = "| " + " | ".join(h for _, h in columns) + " |"
        rule = "|" + "|".join("---" for _ in columns) + "|"
        body = ["| " + " | ".join(_cell(r.get(k), spread) for k, _ in columns) + " |" for r in rows]
        return "\n".join([head, rule] + body)
    return format_table(rows, columns, spread=spread or fmt == "wide")


# No creation or modification date in a saved figure, so that redrawing it from the same data gives the same
# bytes and a regenerated figure leaves version control clean.
PDF_METADATA = {"CreationDate": None, "ModDate": None}


def save_figure(fig, png: str, dpi: int = 300) -> list[str]:
    """The figure as PNG and, beside it, PDF (print resolution), both byte-identical when redrawn from the
    same data (no dates in their metadata); returns both paths."""
    from pathlib import Path
    pdf = str(Path(png).with_suffix(".pdf"))
    fig.savefig(png, dpi=dpi, bbox_inches="tight")
    fig.savefig(pdf, bbox_inches="tight", metadata=PDF_METADATA)
    return [png, pdf]


def launch(spec, run: Callable[[Any], Any], argv: list[str] | None = None, extra=None, check=None,
           parallel: Callable[[Any], bool] = lambda config: True) -> Any:
    """An entry point's whole main: parse and validate its Config, then either relaunch it as local
    single-thread worker processes (a CPU run of a table that attacks, where `parallel(config)` allows:
    harness.workers) or set torch's threads and run here; a user's mistake found after parsing becomes one
    line and exit status 2."""
    from empirical.harness import config as cfg, workers
    config = cfg.parse(spec, argv, extra, check)
    count = workers.worker_count(config.output.workers, config.output.threads, config.run.device,
                                 cfg.MAX_AUTO_WORKERS) if spec.attacks and parallel(config) else 1
    if count > 1:
        status(f"running as {count} single-thread worker processes (--workers 1 runs in one process)", config)
        code = workers.run_workers(spec.prog.split()[-1], list(sys.argv[1:] if argv is None else argv), count,
                                   config.output.threads)
        if code:
            raise SystemExit(code)
        return {}
    set_threads(config.output.threads)
    return run_main(lambda: run(config), spec.prog)
