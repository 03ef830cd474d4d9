"""A large synthetic jurisdiction for benchmarks: the sample's districts copied N times under new
names (一区, 二区 …), so that there are thousands of grids and compounds, with the sample's
departments, categories, duty list and time limits.

    python -m tools.large_jurisdiction --copies 12 --out .whistle/large.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from shared.reference import DEFAULT_JURISDICTION, load_jurisdiction

NUMERALS = "一二三四五六七八九十"


def _label(i: int) -> str:
    tens, ones = divmod(i + 1, 10)
    return (
        (NUMERALS[tens - 1] if tens > 1 else "")
        + ("十" if tens else "")
        + (NUMERALS[ones - 1] if ones else "")
    )


def large_jurisdiction(copies: int, source: Path = DEFAULT_JURISDICTION) -> dict[str, Any]:
    base: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    load_jurisdiction(source)  # the source itself must be valid
    districts = []
    for i in range(copies):
        tag, suffix = _label(i), f"_{i}"
        for district in base["districts"]:
            copy = json.loads(json.dumps(district, ensure_ascii=False))
            copy["code"] += suffix
            copy["name"] = f"{copy['name']}{tag}区"
            for street in copy["streets"]:
                street["code"] += suffix
                street["name"] = f"{tag}区{street['name']}"
                street["aliases"] = []
                for community in street["communities"]:
                    community["code"] += suffix
                    community["name"] = f"{tag}区{community['name']}"
                    community["aliases"] = []
                    for grid in community["grids"]:
                        grid["code"] = f"{grid['code']}-{i}"
                    for compound in community["compounds"]:
                        compound["name"] = f"{tag}区{compound['name']}"
                        compound["aliases"] = []
                        compound["grid"] = f"{compound['grid']}-{i}"
            districts.append(copy)
    return base | {"name": f"{base['name']} ×{copies} (synthetic)", "districts": districts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--copies", type=int, default=12)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(large_jurisdiction(args.copies), ensure_ascii=False), encoding="utf-8")
    ref = load_jurisdiction(args.out)
    print(f"{args.out}: {len(ref.places_by_grid)} grids, {len(ref.compounds)} compounds")


if __name__ == "__main__":
    main()
