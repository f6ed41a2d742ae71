"""Benchmark 9: reading a Magento 2 product import/export CSV. A file of N products is written first (configurable
families of 12 variants over size and colour, each with a base image and two more, and a French and a German
store-view row for every tenth parent); the reader then reads it in a fresh subprocess, which reports its own time
and peak RSS. Targets: 100,000 products in seconds (<= 60 s) and 1,000,000 rows without exhausting the machine's
24 GB (peak RSS stated)."""

from __future__ import annotations

import csv
import json
import subprocess
import tempfile
from pathlib import Path

from bench.common import PY, ROOT, Result, base_args, emit

HEADER = ["sku", "store_view_code", "attribute_set_code", "product_type", "categories", "product_websites", "name",
          "description", "weight", "price", "url_key", "additional_attributes", "qty", "base_image",
          "additional_images", "configurable_variations"]
SIZES = ("XS", "S", "M", "L")
COLOURS = ("Black", "Blue", "Red")
PROBE = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
from catalog_sync.catalog.magento import read_catalog
t0 = time.perf_counter()
catalog = read_catalog(sys.argv[1])
seconds = time.perf_counter() - t0
print("READ " + json.dumps({"seconds": seconds, "products": len(catalog.products), "parents": len(catalog.parents),
                            "variants": len(catalog.variants), "issues": len(catalog.issues),
                            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_export(path: Path, products: int) -> int:
    """Write about ``products`` product rows (plus store-view rows); returns the number of rows written."""
    rows = 0
    per_family = len(SIZES) * len(COLOURS)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(HEADER)
        family = 0
        while rows < products:
            parent = f"BF{family:07d}"
            variations = []
            for size in SIZES:
                for colour in COLOURS:
                    sku = f"{parent}-{size}-{colour}"
                    variations.append(f"sku={sku},size={size},color={colour}")
                    out.writerow([sku, "", "Top", "simple", "Default Category/Men/Tops", "base",
                                  f"Bench tee {family} {size} {colour}", "", "0.4", "25", sku.lower(),
                                  f"size={size},color={colour}", "100", f"/b/f/{sku.lower()}.jpg", "", ""])
            out.writerow([parent, "", "Top", "configurable",
                          "Default Category/Men/Tops,Default Category/Promotions/Tees", "base", f"Bench tee {family}",
                          f"<p>Tee number {family}, soft cotton.</p>", "", "25", parent.lower(), "", "",
                          f"/b/f/{parent.lower()}.jpg", f"/b/f/{parent.lower()}_alt1.jpg,/b/f/{parent.lower()}_b.jpg",
                          "|".join(variations)])
            rows += per_family + 1
            if family % 10 == 0:
                for view, name in (("fr", "T-shirt"), ("de", "Hemd")):
                    out.writerow([parent, view, "Top", "configurable", "", "", f"{name} {family}",
                                  f"<p>{name} {family}</p>", "", "", "", "", "", "", "", ""])
                    rows += 1
            family += 1
    return rows


def measure(products: int, folder: Path) -> dict[str, float]:
    path = folder / f"export_{products}.csv"
    rows = write_export(path, products)
    size_mb = path.stat().st_size / 1e6
    out = subprocess.run([PY, "-c", PROBE, str(path), str(ROOT / "include")], cwd=ROOT, capture_output=True,
                         text=True)
    path.unlink()
    line = next((x for x in out.stdout.splitlines() if x.startswith("READ ")), None)
    if line is None:
        raise RuntimeError(f"the reader failed on {products:,} products: {out.stderr[-800:]}")
    return {"rows": rows, "file_mb": round(size_mb, 1), **json.loads(line[5:])}


def main() -> None:
    args = base_args(__doc__).parse_args()
    scales = (10_000, 100_000) if args.quick else (100_000, 1_000_000)
    with tempfile.TemporaryDirectory(prefix="bench_catalog_") as tmp:
        runs = {n: measure(n, Path(tmp)) for n in scales}
    small, big = runs[scales[0]], runs[scales[1]]
    held = small["seconds"] <= 60 and small["issues"] == 0 and big["issues"] == 0 and big["peak_rss_mb"] < 20_000
    result = Result(
        name="catalog_read", title="Magento import/export CSV read (configurable families, images, store views)",
        scale={"products": scales[1]},
        figures={**{f"{k}_{n}": round(v, 2) if isinstance(v, float) else v for n, r in runs.items()
                    for k, v in r.items()}},
        target=f"{scales[0]:,} products <= 60 s; {scales[1]:,} rows under 20 GB peak RSS", held=held,
        notes=["each read in a fresh subprocess; peak RSS is that process's ru_maxrss"],
    )
    emit(result)


if __name__ == "__main__":
    main()
