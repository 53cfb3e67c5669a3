"""File delivery throughput: our SFTP and FTPS transports beside OpenSSH's ``sftp`` and curl,
and a 1M-referral batch end to end beside PostgreSQL's COPY plus ``sftp``.

Run:  .venv/bin/python bench/files.py [--rows 1000000] [--size-mb 200] [--repeat 5]
      quick check: .venv/bin/python bench/files.py --rows 20000 --size-mb 20

It starts the test suite's sshd and vsftpd itself (root), fills a scratch database, and
measures, each beside its baseline from the same run:

1. SFTP upload of a random file (``sftp.connect(target).upload``) beside ``sftp -b`` putting
   the same file to the same sshd, on loopback and through a proxy adding 10 ms each way
   (a 20 ms round trip, bandwidth untouched); each run a fresh connection, the runs of every
   measurement interleaved with the others', the best kept (this 2-core machine is noisy);
2. FTPS upload of the same file (``ftps.connect(target).upload``) beside curl to the same
   vsftpd (explicit TLS, TLS 1.2);
3. one batch of ``--rows`` referrals (30 standard columns + 6 custom fields, the
   definitions of ``bench/customfields.py``) through ``file_delivery_run`` over SFTP, from
   claim to sent, in a child process that runs only the batch (its peak RSS is the batch's),
   beside COPY of the same engine SELECT to a local file plus ``sftp -b`` of that file;
4. ``file_delivery_run`` with nothing new over those referrals and their sent ledger items.

The figures go into docs/PERFORMANCE.md when the run is the full one (1M rows, 200 MB) or
``--write`` is given. The scratch database is dropped and the servers stopped at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.database import ROOT, fill, scratch_database, use_database
from harness.docs import write_section
from harness.report import met
from harness.servers import DelayProxy, OpenSsh, curl_put, servers

SCRATCH_DB = "bench_files"
MB = 1_000_000
TRANSFERS = ["sftp_ours", "sftp_openssh", "delay_ours", "delay_openssh", "ftps_ours", "ftps_curl"]
AIMS = {"sftp": 0.90, "delay": 0.50, "ftps": 1.0, "batch": 1.5, "rss_mb": 150, "nothing_ms": 100}


def _customfields_bench():
    """bench/customfields.py, for its column list and custom-field definitions (its module
    name is taken by the Django app)."""
    spec = importlib.util.spec_from_file_location("bench_customfields",
                                                  ROOT / "bench" / "customfields.py")  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--size-mb", type=int, default=200, help="size of the transfer file")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each transfer; best kept")
    parser.add_argument("--batch-repeat", type=int, default=3, help="runs of the batch; best kept")
    parser.add_argument("--nothing-runs", type=int, default=9)
    parser.add_argument("--delay-ms", type=float, default=10.0, help="added each way")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="update docs/PERFORMANCE.md (default: on the full run only)",
    )
    parser.add_argument("--scenario", choices=["batch", "copy"], help=argparse.SUPPRESS)
    parser.add_argument("--delivery", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("paramiko").setLevel(logging.WARNING)  # one line per connection else
    if args.scenario:
        use_database(f"{args.server}/{SCRATCH_DB}")
        print(json.dumps(_child(args)))
        return
    if args.write is None:
        args.write = args.rows == 1_000_000 and args.size_mb == 200

    work = Path(tempfile.mkdtemp(prefix="bench-files-"))
    try:
        with servers() as (sshd, vsftpd):
            results = _bench(args, work, sshd, vsftpd)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        _drop(args.server)
    report = _report(args, results)
    print(report)
    if args.write:
        write_section("bench/files.py", report)
        print("written to docs/PERFORMANCE.md")


def _bench(args, work: Path, sshd, vsftpd) -> dict:
    started = time.perf_counter()
    scratch_database(args.server, SCRATCH_DB)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    openssh = OpenSsh(sshd, work)
    results: dict = {"load_before": os.getloadavg()}

    data = work / "transfer.bin"
    with data.open("wb") as handle:
        for _ in range(args.size_mb):
            handle.write(os.urandom(MB))
    results["transfers"] = _transfers(args, data, sshd, vsftpd, openssh)
    data.unlink()

    filled = time.perf_counter()
    delivery = _prepare(args.rows, sshd)
    results["fill_seconds"] = time.perf_counter() - filled
    print(f"filled {args.rows:,} referrals and ledger items in "
          f"{results['fill_seconds']:.0f} s", flush=True)  # fmt: skip
    results["batch"] = _batches(args, work, delivery, sshd, openssh)
    results["nothing"] = _nothing_new(args, delivery)
    results["load_after"] = os.getloadavg()
    results["total_seconds"] = time.perf_counter() - started
    return results


def _drop(server: str) -> None:
    import psycopg
    from django.conf import settings

    if settings.configured:
        from django.db import connections

        connections.close_all()
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")


# 1 and 2: transfers ------------------------------------------------------------------------


def _transfers(args, data: Path, sshd, vsftpd, openssh: OpenSsh) -> dict:
    from deliveries.transports import ftps, sftp

    size = data.stat().st_size

    def ours(target) -> None:
        with sftp.connect(target) as session:
            session.upload(data, "ours.bin")

    def ftps_ours() -> None:
        with ftps.connect(vsftpd.target()) as session:
            session.upload(data, "ours.bin")

    runs: dict[str, list[float]] = {name: [] for name in TRANSFERS}
    with DelayProxy(sshd.host, sshd.port, delay=args.delay_ms / 1000) as proxy:
        delayed = dataclasses.replace(sshd.target(), port=proxy.port)
        steps = {
            "sftp_ours": lambda: ours(sshd.target()),
            "sftp_openssh": lambda: openssh.put(data, "openssh.bin"),
            "delay_ours": lambda: ours(delayed),
            "delay_openssh": lambda: openssh.put(data, "openssh.bin", port=proxy.port),
            "ftps_ours": ftps_ours,
            "ftps_curl": lambda: curl_put(vsftpd, data, "curl.bin"),
        }
        for repetition in range(args.repeat):
            # Alternate which of each pair goes first: the second may find a warmer cache.
            order = TRANSFERS if repetition % 2 == 0 else _swap_pairs(TRANSFERS)
            for name in order:
                began = time.perf_counter()
                steps[name]()
                seconds = time.perf_counter() - began
                for directory in (sshd.upload_dir, vsftpd.upload_dir):
                    for path in directory.iterdir():
                        if path.stat().st_size != size:
                            raise RuntimeError(f"{path} has {path.stat().st_size} bytes")
                        path.unlink()
                runs[name].append(size / seconds / MB)
                print(f"{name} run {repetition + 1}: {runs[name][-1]:.0f} MB/s", flush=True)
    return {name: {"best": max(v), "median": statistics.median(v), "runs": v}
            for name, v in runs.items()}  # fmt: skip


def _swap_pairs(names: list[str]) -> list[str]:
    swapped = []
    for first, second in zip(names[::2], names[1::2], strict=True):
        swapped += [second, first]
    return swapped


# 3 and 4: a file delivery ------------------------------------------------------------------


def _prepare(rows: int, sshd):
    """``rows`` referrals of one client, its custom fields, an SFTP delivery of 30 standard
    columns + the custom fields to the sshd, and the delivery's ledger items (pending)."""
    from django.db import connection, transaction

    from customfields.models import CustomField
    from customfields.services import custom_field_save
    from deliveries.ledger import ledger_record
    from deliveries.models import Delivery
    from referrals.models import Client, Referral

    definitions = _customfields_bench()
    fill(rows, clients=1)
    client = Client.objects.get(slug="alpha")
    for definition in definitions.CUSTOM_FIELDS:
        custom_field_save(CustomField(client=client, **definition))
    columns = [*definitions.COLUMNS, *(cf["name"] for cf in definitions.CUSTOM_FIELDS)]
    target = sshd.target()
    delivery = Delivery.objects.create(
        client=client, name="bench sftp", kind=Delivery.Kind.SFTP, host=target.host,
        port=target.port, username=target.username, password=target.password,
        remote_dir=target.remote_dir, host_key=target.host_key,
        columns=[{"source": name, "output": name} for name in columns],
        starts_at=datetime(2000, 1, 1, tzinfo=UTC), schedule_kind="daily",
    )  # fmt: skip
    # What ingestion writes with each referral, through the ledger's own SQL, in chunks.
    ids = list(Referral.objects.filter(client=client).order_by("id").values_list("id", flat=True))
    for begin in range(0, len(ids), 100_000):
        with transaction.atomic():
            ledger_record(ids[begin : begin + 100_000])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE deliveries_deliveryitem")
    return delivery


def _batches(args, work: Path, delivery, sshd, openssh: OpenSsh) -> dict:
    """The batch, and COPY + ``sftp -b`` of the same columns, interleaved; best of each."""
    ours, copies = [], []
    for repetition in range(args.batch_repeat):
        if repetition:
            _reset(delivery)
        copy = _run_child(args, "copy", output=str(work / "copy.csv"))
        began = time.perf_counter()
        openssh.put(work / "copy.csv", "copy.csv")
        copy["upload_seconds"] = time.perf_counter() - began
        copy["seconds"] = copy["copy_seconds"] + copy["upload_seconds"]
        (work / "copy.csv").unlink()
        _clear(sshd.upload_dir)
        print(f"COPY + sftp -b run {repetition + 1}: {copy}", flush=True)
        copies.append(copy)

        batch = _run_child(args, "batch", delivery=delivery.pk)
        if batch["outcome"] != "sent" or batch["rows"] != args.rows:
            raise RuntimeError(f"the batch did not go as expected: {batch}")
        if batch["bytes"] != copy["bytes"]:
            print(f"note: the batch file has {batch['bytes']:,} bytes, COPY's {copy['bytes']:,}")
        _clear(sshd.upload_dir)
        print(f"file_delivery_run run {repetition + 1}: {batch}", flush=True)
        ours.append(batch)
    return {
        "ours": min(ours, key=lambda r: r["seconds"]),
        "copy": min(copies, key=lambda r: r["seconds"]),
        "ours_runs": [r["seconds"] for r in ours],
        "copy_runs": [r["seconds"] for r in copies],
        "peak_mb": max(r["peak_mb"] for r in ours),
    }


def _reset(delivery) -> None:
    """Make the delivery owe every referral again, as before its first batch."""
    from django.db import connection

    with connection.cursor() as cursor:
        # A frozen batch's referrals went from the ledger into its entries: put them back.
        cursor.execute(
            "INSERT INTO deliveries_deliveryitem (delivery_id, referral_id, created_at, status, "
            "attempts, reason) SELECT b.delivery_id, e.referral_id, now(), 'file', 0, '' "
            "FROM deliveries_batchentry e JOIN deliveries_batch b ON b.id = e.batch_id "
            "WHERE b.delivery_id = %s AND b.kind = 'new'", [delivery.pk],
        )  # fmt: skip
        cursor.execute("DELETE FROM deliveries_batchentry WHERE batch_id IN (SELECT id FROM "
                       "deliveries_batch WHERE delivery_id = %s)", [delivery.pk])  # fmt: skip
        cursor.execute("DELETE FROM deliveries_batch WHERE delivery_id = %s", [delivery.pk])
        cursor.execute("VACUUM ANALYZE deliveries_batchentry")
        cursor.execute("VACUUM ANALYZE deliveries_deliveryitem")
        cursor.execute("VACUUM ANALYZE deliveries_batch")


def _clear(directory: Path) -> None:
    for path in directory.iterdir():
        path.unlink()


def _run_child(args, scenario: str, **options) -> dict:
    command = [sys.executable, __file__, "--scenario", scenario, "--server", args.server]
    for name, value in options.items():
        command += [f"--{name}", str(value)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _child(args) -> dict:
    """In a process of its own: one batch, or the baseline's COPY."""
    from deliveries.file_runs import file_delivery_run
    from deliveries.filewriter import _csv_line, delivery_compiled
    from deliveries.models import Delivery

    if args.scenario == "batch":
        phases = _timed_phases()
        began = time.perf_counter()
        result = file_delivery_run(args.delivery)
        seconds = time.perf_counter() - began
        [batch] = result.batches
        measured = {"outcome": result.outcome, "message": result.message, "rows": batch.rows,
                    "bytes": batch.bytes, "seconds": seconds, "phases": phases}  # fmt: skip
    else:
        from django.db import connection

        delivery = Delivery.objects.select_related("client").get(kind=Delivery.Kind.SFTP)
        compiled = delivery_compiled(delivery)
        query = compiled.select_sql(where=f"r.client_id = {int(delivery.client_id)}",
                                    order_by="r.id")  # fmt: skip
        began = time.perf_counter()
        with open(args.output, "wb") as sink, connection.cursor() as cursor:
            sink.write(_csv_line(compiled.headers, delivery))  # the delivery's header line
            raw = cursor.cursor
            with raw.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
                for block in copy:
                    sink.write(block)
            rows = raw.rowcount
        measured = {"rows": rows, "bytes": os.path.getsize(args.output),
                    "copy_seconds": time.perf_counter() - began}  # fmt: skip
    measured["peak_mb"] = _peak_rss_mb()
    return measured


def _timed_phases() -> dict[str, float]:
    """Time the run's steps (freeze; write through COPY; upload) as they happen."""
    from deliveries import file_runs

    phases: dict[str, float] = {}
    for name in ("batch_freeze", "batch_write", "_upload"):
        original = getattr(file_runs, name)

        def timed(*args, _original=original, _name=name, **kwargs):
            began = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                phases[_name] = phases.get(_name, 0.0) + time.perf_counter() - began

        setattr(file_runs, name, timed)
    return phases


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB of 2**20 bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _nothing_new(args, delivery) -> dict:
    """``file_delivery_run`` with everything sent: the cost of a scheduled tick with nothing
    to do, right after the batch (1M dead ledger rows, statistics from before it) and after
    ``VACUUM ANALYZE`` (what autovacuum leaves). A bare ``SELECT 1`` round trip for scale."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from deliveries.file_runs import file_delivery_run
    from deliveries.models import BatchEntry, DeliveryItem

    def runs() -> tuple[list[float], int]:
        timings = []
        for _ in range(args.nothing_runs):
            began = time.perf_counter()
            with CaptureQueriesContext(connection) as queries:
                result = file_delivery_run(delivery.pk)
            timings.append((time.perf_counter() - began) * 1000)
            if result.outcome != "nothing":
                raise RuntimeError(f"expected nothing to send: {result}")
        return timings, len(queries)

    after_batch, queries = runs()
    pending = DeliveryItem.objects.filter(delivery=delivery, status="file").count()
    sent = BatchEntry.objects.filter(batch__delivery=delivery, batch__status="sent").count()
    if pending or sent != args.rows:
        raise RuntimeError(f"expected {args.rows} sent items and none pending: {sent}, {pending}")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE deliveries_deliveryitem")
    vacuumed, _ = runs()
    select_one = []
    for _ in range(args.nothing_runs):
        began = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        select_one.append((time.perf_counter() - began) * 1000)
    print(f"nothing new, after the batch: {[round(t, 1) for t in after_batch]} ms; "
          f"after VACUUM ANALYZE: {[round(t, 1) for t in vacuumed]} ms", flush=True)  # fmt: skip
    return {"median_ms": statistics.median(after_batch), "runs_ms": after_batch,
            "vacuumed_ms": statistics.median(vacuumed), "queries": queries,
            "select_one_ms": statistics.median(select_one), "sent_items": sent}  # fmt: skip


# Report ------------------------------------------------------------------------------------


def _report(args, r: dict) -> str:
    t, b, n = r["transfers"], r["batch"], r["nothing"]
    sftp_share = t["sftp_ours"]["best"] / t["sftp_openssh"]["best"]
    delay_share = t["delay_ours"]["best"] / t["delay_openssh"]["best"]
    ftps_share = t["ftps_ours"]["best"] / t["ftps_curl"]["best"]
    ours, copy = b["ours"], b["copy"]
    phases = ours["phases"]
    ratio = ours["seconds"] / copy["seconds"]
    line = "| {} | {:.0f} | {:.0f} | {} |"
    rtt = 2 * args.delay_ms

    def row(name: str, label: str, versus: str = "") -> str:
        return line.format(label, t[name]["best"], t[name]["median"], versus)

    aims = [
        f"SFTP on loopback >= {AIMS['sftp']:.0%} of OpenSSH: {met(sftp_share >= AIMS['sftp'])} "
        f"({sftp_share:.0%})",
        f"SFTP at a {rtt:.0f} ms round trip >= {AIMS['delay']:.0%} of OpenSSH: "
        f"{met(delay_share >= AIMS['delay'])} ({delay_share:.0%})",
        f"FTPS at least as fast as curl: {met(ftps_share >= AIMS['ftps'])} ({ftps_share:.2f}x)",
        f"batch at most {AIMS['batch']}x COPY + `sftp -b`: {met(ratio <= AIMS['batch'])} "
        f"({ratio:.2f}x)",
        f"batch peak RSS < {AIMS['rss_mb']} MB: {met(b['peak_mb'] < AIMS['rss_mb'])} "
        f"({b['peak_mb']:.0f} MB)",
        f"a run with nothing new < {AIMS['nothing_ms']} ms: "
        f"{met(n['median_ms'] < AIMS['nothing_ms'])} ({n['median_ms']:.1f} ms right after "
        "the batch)",
    ]
    fmt = "{:.1f}".format
    return "\n".join([
        "## File delivery (`bench/files.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores (load "
        f"average {r['load_before'][0]:.1f} before, {r['load_after'][0]:.1f} after), Python "
        f"{sys.version.split()[0]}, OpenSSH's sshd and vsftpd from the test suite on loopback. "
        "MB = 10^6 bytes.",
        "",
        f"Uploads of one {args.size_mb} MB random file, each run a fresh connection (connect, "
        f"upload, verify, close); the {args.repeat} runs of each are interleaved with the "
        "others' (the first of each pair alternating); best and median MB/s. The delay proxy "
        f"adds {args.delay_ms:.0f} ms each way ({rtt:.0f} ms round trip) without limiting "
        "bandwidth.",
        "",
        "| upload | best MB/s | median MB/s | vs baseline (best) |",
        "| --- | ---: | ---: | --- |",
        row("sftp_ours", "SFTP, ours (paramiko, pipelined), loopback",
            f"{sftp_share:.0%} of OpenSSH (aim >= {AIMS['sftp']:.0%})"),
        row("sftp_openssh", "SFTP, OpenSSH `sftp -b`, loopback (baseline)"),
        row("delay_ours", f"SFTP, ours, {rtt:.0f} ms round trip",
            f"{delay_share:.0%} of OpenSSH (aim >= {AIMS['delay']:.0%})"),
        row("delay_openssh", f"SFTP, OpenSSH `sftp -b`, {rtt:.0f} ms round trip (baseline)"),
        row("ftps_ours", "FTPS, ours (ftplib, TLS 1.2, 1 MiB blocks)",
            f"{ftps_share:.2f}x curl (aim >= 1x)"),
        row("ftps_curl", "FTPS, curl `--ssl-reqd --tls-max 1.2 -T` (baseline)"),
        "",
        f"One batch of {ours['rows']:,} referrals (30 standard columns + 6 custom fields, "
        f"{ours['bytes'] / MB:,.0f} MB of CSV) through `file_delivery_run` over SFTP to the "
        "local sshd, from claim to sent (freeze the ledger items into a batch, COPY through the "
        "engine, hash, upload, check, mark sent), in a child process that runs only the batch; "
        f"beside the baseline: COPY of the engine's SELECT of the same columns to a local file, "
        f"then `sftp -b` of that file. Best of {args.batch_repeat} interleaved runs each (all: "
        f"ours {', '.join(map(fmt, b['ours_runs']))} s; baseline "
        f"{', '.join(map(fmt, b['copy_runs']))} s).",
        "",
        "| run | seconds | rows/s | peak RSS MB | vs baseline |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| `file_delivery_run`, one batch | {ours['seconds']:.1f} | "
        f"{ours['rows'] / ours['seconds']:,.0f} | {b['peak_mb']:.0f} | {ratio:.2f}x time (aim "
        f"<= {AIMS['batch']}x); RSS aim < {AIMS['rss_mb']} MB |",
        f"| baseline: COPY to a file ({copy['copy_seconds']:.1f} s) + `sftp -b` "
        f"({copy['upload_seconds']:.1f} s) | {copy['seconds']:.1f} | "
        f"{copy['rows'] / copy['seconds']:,.0f} | {copy['peak_mb']:.0f} (COPY) | 1.00x |",
        "",
        f"Where the batch's {ours['seconds']:.1f} s went: freezing the ledger items into the "
        f"batch {phases['batch_freeze']:.1f} s, writing the file through COPY "
        f"{phases['batch_write']:.1f} s, upload {phases['_upload']:.1f} s, the rest "
        f"{ours['seconds'] - sum(phases.values()):.1f} s.",
        "",
        f"A run with nothing new ({n['sent_items']:,} sent ledger items, nothing pending), "
        f"median of {args.nothing_runs} runs ({n['queries']} queries): {n['median_ms']:.1f} ms "
        f"right after the batch (its {n['sent_items']:,} superseded ledger rows not yet "
        f"vacuumed, statistics from before it), {n['vacuumed_ms']:.1f} ms after `VACUUM "
        f"ANALYZE` (what autovacuum leaves); a bare `SELECT 1` round trip: "
        f"{n['select_one_ms']:.2f} ms.",
        "",
        "Aims: " + "; ".join(aims) + ".",
        "",
        "Reproduce (root; PostgreSQL running; sshd and vsftpd installed): "
        "`.venv/bin/python bench/files.py`.",
    ])  # fmt: skip


if __name__ == "__main__":
    main()
