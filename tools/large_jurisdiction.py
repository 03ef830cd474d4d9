"""A large synthetic jurisdiction for benchmarks: the sample's districts copied N times under new
names (一区, 二区 …), so that there are thousands of grids and compounds, with the sample's
departments, categories, duty list and time limits.

    python -m tools.large_jurisdiction --copies 12 --out .whistle/large.json
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any

import orjson
import typer

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
    base: dict[str, Any] = orjson.loads(source.read_bytes())
    load_jurisdiction(source)  # the source itself must be valid
    districts = []
    for i in range(copies):
        tag, suffix = _label(i), f"_{i}"
        for district in base["districts"]:
            copy = deepcopy(district)
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


app = typer.Typer(add_completion=False)


@app.command()
def main(
    copies: int = typer.Option(12, min=1, help="copies of the sample's districts"),
    out: Path = typer.Option(..., dir_okay=False, help="the JSON file to write"),
) -> None:
    """A large synthetic jurisdiction for benchmarks: the sample's districts copied N times."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(large_jurisdiction(copies)))
    ref = load_jurisdiction(out)
    typer.echo(f"{out}: {len(ref.places_by_grid)} grids, {len(ref.compounds)} compounds")


if __name__ == "__main__":
    app()
