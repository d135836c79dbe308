"""Generate a large estate: `python -m emulator.generate --vms 10000 --out big.yaml`.

Deterministic for a given seed. VMs are spread over subscriptions, two regions and groups of
`--per-group`; each has an OS disk and 0-3 data disks. Quirks are sprinkled in at fixed rates:
ephemeral OS disks (1 in 50), deallocated VMs (1 in 20), Premium SSD v2 data disks (1 in 25),
disks in another group than their VM (1 in 40), agents not ready (1 in 60).

Shapes of real estates are off by default, so the bench estates stay what they were; `--shapes`
turns them all on in realistic proportions (VMs on unmanaged VHD disks 3%, tagged unattached
disks 2% of VMs, lookalike snapshots on 1% of VMs, disks near the 500-snapshot limit with 440-470
seeded snapshots on 1% of VMs), and `--vhd-percent` etc. set each one. They are drawn from a
random stream of their own, so the rest of the estate is the same with or without them.
"""

from __future__ import annotations

import argparse
import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REGIONS = ("westeurope", "northeurope")
SIZES = ("Standard_D2s_v5", "Standard_D4s_v5", "Standard_E4s_v5", "Standard_B2ms")
SKUS = ("Premium_LRS", "StandardSSD_LRS", "Standard_LRS")


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(frozen=True)
class Shapes:
    """Fractions of VMs that get each shape of a real estate (ESTATE.md); all 0 by default."""

    vhd: float = 0.0  # the VM's disks are unmanaged VHDs
    unattached: float = 0.0  # a tagged disk no VM attaches, beside the VM
    lookalikes: float = 0.0  # three snapshots named like Lifeboat's that fail ownership
    near_limit: float = 0.0  # the OS disk has 440-470 seeded snapshots (the plan warns from 450)

    @property
    def any(self) -> bool:
        return any((self.vhd, self.unattached, self.lookalikes, self.near_limit))


REALISTIC = Shapes(vhd=0.03, unattached=0.02, lookalikes=0.01, near_limit=0.01)


def add_shapes(data: dict[str, Any], shapes: Shapes, seed: int) -> None:
    """Give a generated estate its shapes of real estates, from a random stream of their own."""
    rng = random.Random(f"shapes-{seed}")
    for sub in data["subscriptions"]:
        spare: list[dict[str, Any]] = []
        for vm in sub["vms"]:
            name, group = vm["name"], vm["resourceGroup"]
            draws = [rng.random() for _ in range(4)]
            if draws[0] < shapes.vhd and not vm["osDisk"].get("ephemeral"):
                blobs = f"https://st{group.replace('-', '')[-18:]}.blob.core.windows.net/vhds"
                vm["osDisk"] = {"vhd": f"{blobs}/{name}-osdisk.vhd", "sizeGB": 128}
                vm["dataDisks"] = [
                    {"lun": d["lun"], "vhd": f"{blobs}/{d['name']}.vhd", "sizeGB": d["sizeGB"]}
                    for d in vm["dataDisks"]
                ]
                continue
            if draws[1] < shapes.unattached:
                spare.append(
                    {
                        "name": f"{name}-spare",
                        "resourceGroup": group,
                        "sku": "StandardSSD_LRS",
                        "sizeGB": 128,
                        "tags": {"lifeboat:policy": "daily"},
                    }
                )
            if vm["osDisk"].get("ephemeral"):
                continue
            if draws[2] < shapes.near_limit:
                vm["osDisk"]["snapshots"] = {
                    "count": rng.randint(440, 470),
                    "every": "1d",
                    "newest": "23h",
                }
            elif draws[3] < shapes.lookalikes:
                vm["osDisk"]["snapshots"] = {"count": 3, "naming": "lookalike", "newest": "2d"}
        if spare:
            sub["disks"] = spare


def generate(
    vms: int,
    subscriptions: int = 2,
    per_group: int = 100,
    seed: int = 1,
    shapes: Shapes = Shapes(),
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
    data = {
        "version": 1,
        "description": f"generated estate: {vms} VMs, seed {seed}",
        "identities": [identity],
        "subscriptions": subs,
    }
    if shapes.any:
        add_shapes(data, shapes, seed)
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emulator.generate", description=__doc__)
    p.add_argument("--vms", type=int, default=10000)
    p.add_argument("--subscriptions", type=int, default=2)
    p.add_argument("--per-group", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument(
        "--shapes",
        action="store_true",
        help="shapes of real estates in realistic proportions (VHD VMs, unattached disks, "
        "lookalike snapshots, disks near 500 snapshots); off by default",
    )
    for flag, name in (
        ("--vhd-percent", "VMs on unmanaged VHD disks"),
        ("--unattached-percent", "VMs with a tagged unattached disk beside them"),
        ("--lookalike-percent", "VMs whose OS disk has 3 lookalike snapshots"),
        ("--near-limit-percent", "VMs whose OS disk has 440-470 seeded snapshots"),
    ):
        p.add_argument(flag, type=float, default=None, help=f"%% of {name}")
    p.add_argument(
        "--block-yaml", action="store_true", help="write block-style YAML (slow to load)"
    )
    args = p.parse_args(argv)
    base = REALISTIC if args.shapes else Shapes()
    given = {
        "vhd": args.vhd_percent,
        "unattached": args.unattached_percent,
        "lookalikes": args.lookalike_percent,
        "near_limit": args.near_limit_percent,
    }
    for field, percent in given.items():
        if percent is not None and not 0 <= percent <= 100:
            p.error(f"--{field.replace('_', '-')} percent must be between 0 and 100")
    shapes = Shapes(
        **{
            field: getattr(base, field) if percent is None else percent / 100
            for field, percent in given.items()
        }
    )
    data = generate(args.vms, args.subscriptions, args.per_group, args.seed, shapes)
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
