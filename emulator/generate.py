"""Generate a large estate: `python -m emulator.generate --vms 10000 --out big.yaml`.

Deterministic for a given seed. VMs are spread over subscriptions, two regions and groups of
`--per-group`; each has an OS disk and 0-3 data disks. Quirks are sprinkled in at fixed rates:
ephemeral OS disks (1 in 50), deallocated VMs (1 in 20), Premium SSD v2 data disks (1 in 25),
disks in another group than their VM (1 in 40), agents not ready (1 in 60).
"""

from __future__ import annotations

import argparse
import json
import random
import uuid
from pathlib import Path
from typing import Any

import yaml

REGIONS = ("westeurope", "northeurope")
SIZES = ("Standard_D2s_v5", "Standard_D4s_v5", "Standard_E4s_v5", "Standard_B2ms")
SKUS = ("Premium_LRS", "StandardSSD_LRS", "Standard_LRS")


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def generate(
    vms: int, subscriptions: int = 2, per_group: int = 100, seed: int = 1
) -> dict[str, Any]:
    rng = random.Random(seed)
    identity = {"name": "id-lifeboat", "clientId": _guid(rng), "objectId": _guid(rng)}
    subs: list[dict[str, Any]] = []
    for s in range(subscriptions):
        subs.append(
            {
                "id": _guid(rng),
                "name": f"estate-{s:02d}",
                "location": REGIONS[0],
                "resourceGroups": [{"name": "rg-lifeboat-snapshots", "location": REGIONS[0]}],
                "vms": [],
            }
        )
    for i in range(vms):
        sub = subs[i % subscriptions]
        n = i // subscriptions
        region = REGIONS[(n // per_group) % len(REGIONS)]
        group = f"rg-app-{n // per_group:04d}"
        if not sub["resourceGroups"] or sub["resourceGroups"][-1]["name"] != group:
            sub["resourceGroups"].append(
                {"name": group, "location": region, "tags": {"env": "prod"}}
            )
        name = f"vm-{n:06d}"
        vm: dict[str, Any] = {
            "name": name,
            "resourceGroup": group,
            "size": rng.choice(SIZES),
            "osType": "Windows" if n % 3 == 0 else "Linux",
            "tags": {"lifeboat:policy": "daily"} if n % 10 else {},
            "osDisk": {"sku": rng.choice(SKUS[:2]), "sizeGB": rng.choice((32, 64, 128))},
            "dataDisks": [],
        }
        if n % 50 == 7:
            vm["osDisk"] = {"ephemeral": True, "sizeGB": 64}
        if n % 20 == 3:
            vm["powerState"] = "deallocated"
        if n % 60 == 11:
            vm["agentReady"] = False
        if n % 7 == 0:
            vm["securityType"] = "TrustedLaunch"
        for lun in range(rng.randint(0, 3)):
            disk: dict[str, Any] = {
                "lun": lun,
                "name": f"{name}-data-{lun:02d}",
                "sku": "PremiumV2_LRS" if n % 25 == 5 and lun == 0 else rng.choice(SKUS),
                "sizeGB": rng.choice((64, 128, 256, 512)),
            }
            if n % 40 == 9 and lun == 0 and n >= per_group:
                disk["resourceGroup"] = f"rg-app-{(n // per_group) - 1:04d}"
            vm["dataDisks"].append(disk)
        sub["vms"].append(vm)
    return {
        "version": 1,
        "description": f"generated estate: {vms} VMs, seed {seed}",
        "identities": [identity],
        "subscriptions": subs,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emulator.generate", description=__doc__)
    p.add_argument("--vms", type=int, default=10000)
    p.add_argument("--subscriptions", type=int, default=2)
    p.add_argument("--per-group", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument(
        "--block-yaml", action="store_true", help="write block-style YAML (slow to load)"
    )
    args = p.parse_args(argv)
    data = generate(args.vms, args.subscriptions, args.per_group, args.seed)
    if args.block_yaml:
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        text = yaml.dump(data, Dumper=dumper, sort_keys=False)
    else:
        text = json.dumps(data, indent=1) + "\n"  # JSON is YAML; it loads much faster
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {args.vms} VMs in {args.subscriptions} subscriptions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
