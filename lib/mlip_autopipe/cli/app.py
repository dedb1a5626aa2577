"""``mlip-autopipe``: the front door (init, check, run, status, report, export, dashboard).

Every command reads or drives the same files the Snakemake workflow does; none holds science.
Bad arguments print one line and exit 2; an invalid configuration prints one line and exits 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

# Typer >= 0.23 vendors Click: its usage errors are these classes, not click's.
from typer._click import exceptions as click_exceptions

from mlip_autopipe.cli.init_config import starter_config
from mlip_autopipe.errors import MlipAutopipeError

#: The workflow checkout this package belongs to (Snakefile, profiles, schema).
REPO = Path(__file__).resolve().parents[3]
SNAKEFILE = REPO / "Snakefile"
PROFILES = {"local": REPO / "profiles" / "local", "slurm": REPO / "profiles" / "slurm"}
#: Where `run` records which config and profile a run folder was started with.
RUN_RECORD = Path(".mlip-autopipe") / "run.json"

app = typer.Typer(
    name="mlip-autopipe",
    help="Closed-loop active learning of ACE potentials: from a composition to a validated potential.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class BadArgument(click_exceptions.UsageError):
    """A command-line argument that cannot be used (exit 2, one line)."""


def _run_dir(path: Path) -> Path:
    if not path.is_dir():
        raise BadArgument(f"run folder '{path}' does not exist")
    return path


def _snakemake_env() -> dict[str, str]:
    """This Python's bin folder (pacemaker, lmp, mpirun) first on PATH."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


@app.command()
def init(
    elements: Annotated[list[str], typer.Argument(help="Chemical elements, e.g. Cu Ni.")],
    oracle: Annotated[str, typer.Option(help="Labelling oracle: qe (pw.x) or emt (ASE's EMT, fast).")] = "qe",
    lattice: Annotated[
        str | None, typer.Option(help="Parent lattice (fcc|bcc|sc|diamond|hcp); derived when omitted.")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Config file to write.")] = Path(
        "config.yaml"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter config from the composition alone."""
    if output.exists() and not force:
        raise BadArgument(f"'{output}' exists (use --force to overwrite)")
    try:
        text = starter_config(elements, oracle, lattice)
    except MlipAutopipeError as error:
        raise BadArgument(str(error)) from None
    output.write_text(text)
    typer.echo(f"wrote {output}: check it with `mlip-autopipe check {output}`")


def check_config_file(path: Path) -> dict[str, Any]:
    """The workflow's full config check (schema with defaults, semantic checks, SQS set-ups)."""
    from mlip_autopipe.config import SCHEMA_PATH, check_config, load_yaml, validate_schema
    from mlip_autopipe.structures import check_sqs_setups

    config = load_yaml(path)
    validate_schema(config, load_yaml(SCHEMA_PATH))
    check_config(config)
    check_sqs_setups(config["structures"], config["elements"])
    return config


@app.command()
def check(config: Annotated[Path, typer.Argument(help="Config file (YAML).")]) -> None:
    """Check a config the way the workflow does, without running any job."""
    if not config.is_file():
        raise BadArgument(f"config file '{config}' does not exist")
    try:
        settings = check_config_file(config)
    except MlipAutopipeError as error:
        typer.echo(f"{type(error).__name__}: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{config}: ok ({'-'.join(settings['elements'])}, oracle {settings['oracle']['kind']}, "
        f"up to {settings['loop']['max_generations']} generations)"
    )


def snakemake_command(
    config: Path, run_dir: Path, profile: str, cores: int | None, dry_run: bool, extra: list[str]
) -> list[str]:
    """The `make run` command line: our Snakefile in ``run_dir`` with a profile."""
    profile_path = PROFILES.get(profile, Path(profile))
    if not profile_path.is_dir():
        raise BadArgument(f"profile '{profile}' is neither local, slurm nor a folder")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE)]
    command += ["--directory", str(run_dir), "--profile", str(profile_path.resolve())]
    command += ["--configfile", str(config.resolve())]
    if cores is not None:
        command += ["--cores", str(cores)]
    if dry_run:
        command += ["--dry-run"]
    return [*command, *extra]


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    context: typer.Context,
    config: Annotated[Path, typer.Argument(help="Config file (YAML).")],
    directory: Annotated[Path, typer.Option("--dir", help="Run folder (created if missing).")] = Path("."),
    profile: Annotated[str, typer.Option(help="local, slurm or a Snakemake profile folder.")] = "local",
    cores: Annotated[int | None, typer.Option(min=1, help="Cores (default: the profile's).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the jobs, run none.")] = False,
) -> None:
    """Run the loop (resumable, like `make run`); extra Snakemake arguments go after `--`."""
    from mlip_autopipe.cli import resume

    if not config.is_file():
        raise BadArgument(f"config file '{config}' does not exist")
    try:
        settings = check_config_file(config)
    except MlipAutopipeError as error:
        typer.echo(f"{type(error).__name__}: {error}", err=True)
        raise typer.Exit(1) from None
    directory.mkdir(parents=True, exist_ok=True)
    command = snakemake_command(config, directory, profile, cores, dry_run, list(context.args))
    live = resume.live_processes_in(directory) if (directory / ".snakemake" / "locks").is_dir() else []
    if live:
        typer.echo(f"a run is still working in {directory} (pid {live[0]}): wait for it or end it", err=True)
        raise typer.Exit(1)
    if resume.clear_stale_lock(directory):
        typer.echo(f"removed the stale Snakemake lock left in {directory} by a killed run")
    if dry_run:
        raise typer.Exit(subprocess.run(command, env=_snakemake_env(), check=False).returncode)
    record = directory / RUN_RECORD
    record.parent.mkdir(exist_ok=True)
    record.write_text(json.dumps({"config": str(config.resolve()), "profile": profile}) + "\n")
    from mlip_autopipe.cli.progress import follow_run

    code = follow_run(command, directory, settings, _snakemake_env())
    raise typer.Exit(code)


@app.command()
def status(
    run_dir: Annotated[Path, typer.Argument(help="Run folder.")] = Path("."),
    html: Annotated[Path | None, typer.Option(help="Also write the table as an HTML page.")] = None,
    watch: Annotated[bool, typer.Option(help="Refresh until interrupted.")] = False,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes (--watch).")] = 2.0,
) -> None:
    """Where a run stands, from its results folder (works while it runs)."""
    from mlip_autopipe.cli.status import render, render_html

    _run_dir(run_dir)
    if html is not None:
        html.write_text(render_html(run_dir))
    if not watch:
        typer.echo(render(run_dir), nl=False)
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    with Live(Text.from_ansi(render(run_dir)), console=Console(), auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(Text.from_ansi(render(run_dir)), refresh=True)
                if html is not None:
                    html.write_text(render_html(run_dir))
        except KeyboardInterrupt:
            pass


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="Run folder.")] = Path("."),
    config: Annotated[Path | None, typer.Option(help="Config (default: the one `run` used).")] = None,
) -> None:
    """Snakemake's HTML report of a finished run (figures, provenance) into RUN_DIR/report.html."""
    _run_dir(run_dir)
    if config is None:
        try:
            config = Path(json.loads((run_dir / RUN_RECORD).read_text())["config"])
        except (OSError, ValueError, KeyError):
            raise BadArgument(f"no --config given and no `mlip-autopipe run` record in '{run_dir}'") from None
    if not config.is_file():
        raise BadArgument(f"config file '{config}' does not exist")
    target = (run_dir / "report.html").resolve()
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(run_dir)]
    command += ["--configfile", str(config.resolve()), "--report", str(target)]
    result = subprocess.run(command, env=_snakemake_env(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        typer.echo(result.stderr[-3000:], err=True)
        raise typer.Exit(result.returncode)
    typer.echo(f"wrote {target}")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run folder.")],
    db: Annotated[str, typer.Option(help="ase.db file or URL (e.g. postgresql://user@host/name).")],
) -> None:
    """Write every candidate of every generation (and the fits) to an ase.db database."""
    from mlip_autopipe.provenance import update_database

    _run_dir(run_dir)
    try:
        summary = update_database(db, run_dir)
    except Exception as error:  # the backends raise their own types (sqlite3, psycopg2, ...)
        typer.echo(f"cannot write to '{db}': {type(error).__name__}: {error}".splitlines()[0], err=True)
        raise typer.Exit(1) from None
    total = sum(summary["rows"].values())
    typer.echo(
        f"{db}: {total} rows over {len(summary['rows'])} generations, "
        f"{len(summary['fits'])} fits ({summary['seconds']:.2f} s)"
    )


@app.command()
def dashboard(
    run_dir: Annotated[Path, typer.Argument(help="Run folder.")] = Path("."),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to listen on.")] = "localhost",
) -> None:
    """A live web dashboard of the run (Streamlit; reads the files, works while it runs)."""
    _run_dir(run_dir)
    page = Path(__file__).with_name("dashboard.py")
    command = [sys.executable, "-m", "streamlit", "run", str(page), "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", address]
    command += ["--browser.gatherUsageStats", "false", "--", str(run_dir.resolve())]
    typer.echo(f"dashboard of {run_dir} on http://{address}:{port}")
    raise typer.Exit(subprocess.run(command, check=False).returncode)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: usage errors as one line and exit 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="mlip-autopipe", standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as error:
        typer.echo(error.ctx.get_help() if error.ctx is not None else str(error))
        sys.exit(2)
    except click_exceptions.UsageError as error:
        typer.echo(f"mlip-autopipe: {error.format_message()}".splitlines()[0], err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
