"""The notebook face of jupyter_par: ``%%parallel`` and its line-magic companions.

This module only parses flags and delegates: the cell machinery is in
:mod:`jupyter_par.cell.run`, defaults and their precedence in :mod:`jupyter_par.run.options`.
Flags left out stay ``None`` so that one place decides what they default to.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.utils.process import arg_split

from .backends import START_METHODS, shutdown, warm_backends
from .cell import run as cell
from .errors import UsageError
from .run import options as config
from .shown_errors import notebook_lines


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


#: Flags whose value is a comma-separated list of names.
_LIST_FLAGS = ("--by", "--share")


def _joined_lists(argv: list[str]) -> list[str]:
    """``--by g, h`` as ``--by g,h``: a list's value goes on past a comma and its spaces.

    Written with a space after the comma, the names arrive as separate words and the
    last one would be read as TARGET ("unrecognized arguments: df").
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word in _LIST_FLAGS and i < len(argv):
            out.append(word)
            word = argv[i]
            i += 1
        elif not word.startswith(tuple(f"{flag}=" for flag in _LIST_FLAGS)):
            out.append(word)
            continue
        while i < len(argv) and not argv[i].startswith("-") and (
                word.endswith(",") or argv[i].startswith(",")):
            word += argv[i]
            i += 1
        out.append(word)
    return out


@magics_class
class ParallelMagics(Magics):
    """``%%parallel``, ``%parallel_config``, ``%parallel_shutdown``, ``%parallel_panel``."""

    @magic_arguments()
    @argument("target", metavar="TARGET",
              help="notebook variable to split: DataFrame, Series, list or chunked reader")
    @argument("-j", "--jobs", type=int, default=None,
              help="number of workers (-1: every CPU, -2: all but one)")
    @argument("--oversubscribe", action="store_true",
              help="start every worker asked for, even beyond 4 per CPU")
    @argument("--blas-threads", type=int, default=None, metavar="N",
              help="BLAS/OpenMP threads per worker (default: the CPUs shared out)")
    @argument("-b", "--backend", default=None,
              help="where partitions run: processes (default), threads, inline, dask, or a "
                   "backend registered with jupyter_par.register_backend")
    @argument("-p", "--partitions", type=int, default=None,
              help="number of partitions (default: several per worker)")
    @argument("--by", default=None, metavar="COL[,COL...]",
              help="partition by group: each group wholly inside one partition")
    @argument("--axis", choices=["rows", "columns"], default="rows",
              help="partition by rows (default) or by columns")
    @argument("-o", "--out", default=None, metavar="NAME",
              help="store the result in NAME instead of writing back to TARGET")
    @argument("--share", default=None, metavar="NAME[,NAME...]",
              help="read-only objects to send to each worker once per run")
    @argument("--reduce", default=None, metavar="FUNC",
              help="combine the partitions' values of an aggregate: a notebook function or "
                   "expression taking the list of values, or 'list', or 'concat'")
    @argument("--per-partition", action="store_true",
              help="the body means each partition's own answer (df.head(), df.x.mean()): "
                   "skip the check for operations that need other partitions' rows")
    @argument("--overlap", type=int, default=None, metavar="N",
              help="rows of overlap around each partition for windows the body does not "
                   "size with a literal (rolling('2h'), shift(k)); literal ones are read")
    @argument("--timeout", type=float, default=None, metavar="SECONDS",
              help="stop a partition that runs longer than this")
    @argument("--retries", type=int, default=None, help="retries of a failed partition")
    @argument("--on-error", choices=["raise", "skip"], default=None,
              help="raise (default) stops at the first failure; skip reports and goes on")
    @argument("--start", choices=list(START_METHODS), default=None,
              help="how worker processes start")
    @argument("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler address (with --backend dask)")
    @argument("--init", default=None, metavar="NAME",
              help="a notebook function run once in each worker before its first task; "
                   "its value is jp.worker_state() in the body")
    @argument("--max-tasks-per-worker", type=int, default=None, metavar="N",
              help="replace a worker process after it ran N partitions (leaky libraries)")
    @argument("--no-progress", action="store_true", help="draw no progress bars")
    @argument("--resume", action="store_true",
              help="reuse the partitions a failed, cancelled or interrupted run of this cell "
                   "finished (same data cut the same way); compute only the rest")
    @argument("--cache", default=None, metavar="PATH",
              help="keep finished partitions in this private directory, so --resume works "
                   "after a kernel restart too")
    @argument("--background", action="store_true",
              help="return a handle at once and run while other cells run; TARGET (or --out) "
                   "is written when it ends")
    @cell_magic
    def parallel(self, line: str, body: str) -> Any:
        """Run this cell once per partition of TARGET, in parallel workers.

        The body sees TARGET's name bound to one partition. It may use any function,
        lambda, constant or module of the notebook. The result of a partition is the
        body's last expression, or else TARGET's final value; results are combined in
        order (pandas objects concatenated, anything else a list per partition). With
        no last expression the result replaces TARGET (or goes to ``--out``), and only
        once every partition has succeeded: a failed or interrupted run changes nothing.
        A body whose result for a row needs other rows of TARGET (``df.x.mean()``,
        ``df.head()``, ``cumsum``) is refused before any worker starts, unless
        ``--per-partition`` says each partition's own value is meant. Windows with
        literal sizes (``rolling(50)``, ``shift(2)``, ``diff()``, ``pct_change(3)``) run
        with the rows around each partition they reach; ``--overlap N`` sizes the others.

        Example::

            In [1]: %load_ext jupyter_par
            In [2]: def score(row):
               ...:     return row["a"] * 2 + row["b"]
            In [3]: %%parallel --jobs 4 df
               ...: df["score"] = df.apply(score, axis=1)
            In [4]: %%parallel --by city --out stats df
               ...: df.groupby("city")["score"].mean()
            In [5]: %%parallel --reduce "lambda parts: sum(parts)" df
               ...: int((df["score"] > 10).sum())
            In [6]: %%parallel --resume df          # after a failure: only what did not finish
               ...: df["score"] = df.apply(score, axis=1)
            In [7]: %%parallel --background df      # a handle now; df is written at the end
               ...: df["score"] = df.apply(score, axis=1)
        """
        __tracebackhide__ = True
        try:
            args = self.parallel.parser.parse_args(_joined_lists(arg_split(line, strict=True)))
            request = cell.CellRequest(
                target=args.target,
                body=body,
                header=line,
                by=_names(args.by),
                axis=args.axis,
                out=args.out,
                share=_names(args.share),
                reduce=args.reduce,
                per_partition=args.per_partition,
                overlap=args.overlap,
                options={
                    "jobs": args.jobs, "backend": args.backend, "partitions": args.partitions,
                    "timeout": args.timeout, "retries": args.retries,
                    "on_error": args.on_error, "start_method": args.start,
                    "scheduler": args.scheduler,
                    "progress": False if args.no_progress else None,
                    "oversubscribe": True if args.oversubscribe else None,
                    "blas_threads": args.blas_threads,
                    "worker_init": args.init,
                    "max_tasks_per_worker": args.max_tasks_per_worker,
                    "resume": True if args.resume else None,
                    "cache": args.cache,
                    "background": True if args.background else None,
                },
            )
            return cell.run_cell(self.shell, request)
        except UsageError as exc:
            # A mistake in the call, not in the user's code: one line, no traceback.
            raise IPythonUsageError(str(exc)) from None
        except Exception as exc:
            lines = notebook_lines(exc)
            if lines is not None:
                # IPython shows what _render_traceback_ returns instead of its own frames.
                exc._render_traceback_ = lambda: lines  # type: ignore[attr-defined]
            raise

    @magic_arguments()
    @argument("-j", "--jobs", type=int, default=None, help="default number of workers")
    @argument("-b", "--backend", default=None, help="default backend (a registered name)")
    @argument("--start", choices=list(START_METHODS), default=None,
              help="default start method of worker processes")
    @argument("--progress", choices=["on", "off"], default=None, help="draw progress bars")
    @argument("--reset", action="store_true", help="forget every session default")
    @line_magic
    def parallel_config(self, line: str) -> None:
        """Show the defaults of ``%%parallel`` runs, or set them for this session.

        Example::

            In [1]: %parallel_config --jobs 4 --backend threads
            In [2]: %parallel_config --reset
        """
        try:
            args = parse_argstring(self.parallel_config, line)
            if args.reset:
                config.reset_defaults()
            given = {"jobs": args.jobs, "backend": args.backend, "start_method": args.start,
                     "progress": None if args.progress is None else args.progress == "on"}
            # set_defaults(name=None) forgets a default: pass only what this line sets.
            current = config.set_defaults(**{k: v for k, v in given.items() if v is not None})
        except UsageError as exc:
            raise IPythonUsageError(str(exc)) from None
        width = max(map(len, current))
        for name, value in current.items():
            print(f"{name:<{width}}  {value!r}")

    @line_magic
    def parallel_shutdown(self, line: str) -> None:
        """Stop the warm workers now (the next run starts fresh ones)."""
        stopped = sum(b.jobs for b in warm_backends().values())
        shutdown()
        print(f"jupyter_par: stopped {stopped} warm worker(s).")

    @line_magic
    def parallel_panel(self, line: str) -> Any:
        """Open the panel: pick a DataFrame and a function, set workers, run, tune."""
        try:
            from .widgets import Panel
        except ImportError as exc:
            msg = (f"the panel cannot open: {exc}. It needs ipywidgets "
                   "(pip install ipywidgets) and jupyter_par.widgets.panel.")
            raise IPythonUsageError(msg) from None
        return Panel()


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext jupyter_par``)."""
    ipython.register_magics(ParallelMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics and stop the warm workers (``%unload_ext jupyter_par``)."""
    magics = ipython.magics_manager.magics
    magics["cell"].pop("parallel", None)
    for name in ("parallel_config", "parallel_shutdown", "parallel_panel"):
        magics["line"].pop(name, None)
    ipython.magics_manager.registry.pop("ParallelMagics", None)
    shutdown()
