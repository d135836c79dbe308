"""Requests per second the Azure stand-in sustains with keep-alive (issue 3 asks for >= 300/s).

`python -m bench emulator`: starts the stand-in on the demo estate (throttling off, so the numbers
measure the server), then times GET snapshot and GET VM with httpx clients that keep their
connections: one client, then several concurrent clients (threads).
"""

from __future__ import annotations

import os
import ssl
import threading
import time

import httpx

from emulator.process import DEMO_ESTATE, Endpoints, running_emulator

SUB = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"
PATHS = {
    "GET snapshot": f"/subscriptions/{SUB}/resourceGroups/rg-lifeboat-snapshots/providers/"
    "Microsoft.Compute/snapshots/lb-cjpatr2qbqd3h6qm-202611260200?api-version=2026-03-02",
    "GET VM": f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/"
    "virtualMachines/vm-web-01?api-version=2026-04-01",
}
REQUESTS = int(os.environ.get("BENCH_EMULATOR_REQUESTS", "1500"))


def token(endpoints: Endpoints, verify: ssl.SSLContext) -> str:
    response = httpx.get(
        endpoints.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": endpoints.arm_audience},
        headers={"X-IDENTITY-HEADER": endpoints.identity_header},
        verify=verify,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def run(endpoints: Endpoints, path: str, clients: int, total: int) -> float:
    """Requests per second for `total` requests spread over `clients` keep-alive clients."""
    verify = ssl.create_default_context(cafile=endpoints.ca_bundle)
    bearer = token(endpoints, verify)
    per_client = total // clients
    errors: list[str] = []

    def work() -> None:
        with httpx.Client(
            base_url=endpoints.arm, verify=verify, headers={"Authorization": f"Bearer {bearer}"}
        ) as client:
            client.get(path)  # handshake outside the timing would flatter; it stays inside
            for _ in range(per_client - 1):
                response = client.get(path)
                if response.status_code != 200:
                    errors.append(str(response.status_code))

    threads = [threading.Thread(target=work) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return per_client * clients / elapsed


def main() -> None:
    with running_emulator(DEMO_ESTATE, "--no-throttle") as endpoints:
        rows = []
        for name, path in PATHS.items():
            for clients in (1, 4):
                rate = run(endpoints, path, clients, REQUESTS)
                rows.append((name, clients, REQUESTS, rate))
    print(f"{'request':<14} {'clients':>7} {'requests':>8} {'req/s':>8}")
    for name, clients, total, rate in rows:
        print(f"{name:<14} {clients:>7} {total:>8} {rate:>8.0f}")
