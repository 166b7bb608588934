"""What a shadow challenger costs the champion's clients: median latency, alone vs shadowed.

Trains a small champion into a temp MLflow store (as the serving tests do), starts the real
service on loopback (`bentoml serve`, one worker, every request shadowed:
`serve.shadow_sample_rate` 1.0) and drives it with `hey` (compiled; a Python client would
share the cores with the server) at 1 and 8 clients, in rounds that alternate the champion
alone and with a `challenger` alias on a second version of the same model, so slow drift of a
shared machine falls on both. Prints per round and client count the p50 and p99 of both, the
p50 difference, non-200 answers, the CPU milliseconds per request of the service's worker, of
the challenger's process (serving/shadow_child.py) and of `hey` itself (the load generator
shares the cores), and the requests shadowed, dropped and failed.

    .venv/bin/python benchmarks/shadow.py [--requests 1000] [--single 300] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.serving import hey  # noqa: E402  (the same load generator run)
from tests.integration.serving.conftest import (  # noqa: E402  (helpers shared with the tests)
    Registry,
    Server,
    _train_and_log,
    sample_records,
    start_server,
    stop_server,
    wait_for,
)
from tests.integration.serving.test_service import sample_value, scrape  # noqa: E402

SHADOW_CHILD = "flywheel.serving.shadow_child"  # how the challenger's process is told apart


def cpu_seconds(server: Server) -> dict[str, float]:
    """CPU time so far of the serve processes: the worker(s) and any shadow child, apart."""
    import psutil

    totals = {"serve": 0.0, "shadow": 0.0}
    for process in psutil.Process(server.process.pid).children(recursive=True):
        try:
            times = process.cpu_times()
            kind = "shadow" if SHADOW_CHILD in " ".join(process.cmdline()) else "serve"
        except psutil.NoSuchProcess:
            continue
        totals[kind] += times.user + times.system
    return totals


def timed_hey(server: Server, body: Path, requests: int, clients: int) -> dict[str, float]:
    """One hey run, with the CPU ms per request it cost hey itself and each serve process."""
    import resource

    before, hey_before = cpu_seconds(server), resource.getrusage(resource.RUSAGE_CHILDREN)
    found = hey(server.url, body, "-n", str(requests), "-c", str(clients))
    after, hey_after = cpu_seconds(server), resource.getrusage(resource.RUSAGE_CHILDREN)
    per_request = 1000 / found["requests"]
    found["hey_cpu_ms"] = per_request * (hey_after.ru_utime + hey_after.ru_stime
                                         - hey_before.ru_utime - hey_before.ru_stime)
    for kind in after:
        found[f"{kind}_cpu_ms"] = per_request * (after[kind] - before[kind])
    return found


def measure(server: Server, body: Path, requests: int, single: int) -> dict[str, dict]:
    hey(server.url, body, "-n", "30", "-c", "1")  # connections and first-call costs
    return {"c1": timed_hey(server, body, single, 1),
            "c8": timed_hey(server, body, requests, 8)}


def set_challenger(registry: Registry, server: Server, version: str | None) -> None:
    """Point the alias at `version` (None: remove it) and wait until the service follows."""
    client, name = registry.client(), registry.name
    if version is None:
        gone = client.get_model_version_by_alias(name, "challenger").version
        client.delete_registered_model_alias(name, "challenger")
        wait_for(lambda: sample_value(scrape(server), "flywheel_shadow_challenger_info",
                                      model_version=str(gone)) == 0, 60, "the alias's removal")
        return
    client.set_registered_model_alias(name, "challenger", version)
    wait_for(lambda: sample_value(scrape(server), "flywheel_shadow_challenger_info",
                                  model_version=version) == 1, 60, "the challenger to load")


def run(args: argparse.Namespace, tmp: Path) -> list[dict]:
    from flywheel.registry.signing import ensure_keyring

    # Versions are signed with a key of this run; the server started below inherits it.
    os.environ["FLYWHEEL_SIGNING_KEY_FILE"] = str(tmp / "signing.key")
    ensure_keyring(tmp / "signing.key")
    registry = _train_and_log(tmp / "registry")
    registry.register(commit="bench1", data_md5="bench")
    challenger = registry.register(commit="bench2", data_md5="bench", champion=False)
    body = tmp / "one.json"
    body.write_text(json.dumps(sample_records()[0]))
    server = start_server(tmp / "server", registry, shadow_sample_rate=1.0,
                          reload_interval_s=0.5)
    rows = []
    try:
        for round_no in range(1, args.rounds + 1):
            alone = measure(server, body, args.requests, args.single)
            set_challenger(registry, server, challenger)
            shadowed = measure(server, body, args.requests, args.single)
            set_challenger(registry, server, None)
            rows += [{"round": round_no, "clients": clients, "alone": alone[clients],
                      "shadowed": shadowed[clients]} for clients in ("c1", "c8")]
        families = scrape(server)
        totals = {name: sample_value(families, name) for name in (
            "flywheel_shadow_requests_total", "flywheel_shadow_dropped_requests_total",
            "flywheel_shadow_errors_total", "flywheel_shadow_latency_seconds_sum",
            "flywheel_shadow_latency_seconds_count")}
    finally:
        stop_server(server)
    print(json.dumps(totals))
    return rows


def table(rows: list[dict]) -> str:
    lines = ["round clients  alone p50/p99 ms   shadowed p50/p99 ms   p50 +ms  non-200"
             "   CPU ms/request alone: serve hey; shadowed: serve shadow hey"]
    for row in rows:
        a, s = row["alone"], row["shadowed"]
        lines.append(f"{row['round']:>5} {row['clients']:>7}  {a['p50_ms']:7.2f} "
                     f"{a['p99_ms']:7.2f}    {s['p50_ms']:7.2f} {s['p99_ms']:7.2f}    "
                     f"{s['p50_ms'] - a['p50_ms']:+7.2f}  {a['non_200'] + s['non_200']:7d}"
                     f"   {a['serve_cpu_ms']:5.2f} {a['hey_cpu_ms']:5.2f};  "
                     f"{s['serve_cpu_ms']:5.2f} {s['shadow_cpu_ms']:5.2f} {s['hey_cpu_ms']:5.2f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests at 8 clients")
    parser.add_argument("--single", type=int, default=300, help="requests at 1 client")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flywheel-shadow-bench-") as scratch:
        print(table(run(args, Path(scratch))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
