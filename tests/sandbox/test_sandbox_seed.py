"""Seeding: deterministic, ownership respected, scalable; and the CLI around it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from catalog_sync.catalog import read_catalog
from catalog_sync.cli import main
from catalog_sync_sandbox import db
from catalog_sync_sandbox.seed import load_catalog
from tests.conftest import LUMA


def _dump(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = db.make_engine(url)
    with engine.connect() as conn:
        out = {t.name: sorted(tuple(map(repr, r)) for r in conn.execute(select(t))) for t in db.metadata.sorted_tables}
    engine.dispose()
    return out


def test_same_catalog_gives_identical_systems(tmp_path: Path) -> None:
    catalog = read_catalog(LUMA)
    urls = [f"sqlite:///{tmp_path / f'{n}.sqlite'}" for n in ("a", "b")]
    for url in urls:
        engine = db.make_engine(url)
        db.create_schema(engine)
        summary = load_catalog(engine, catalog)
        engine.dispose()
        # one Luma row names categories below ones that do not hold them; Magento skips them, the reader says so
        assert summary.counts["erp_item"] == len(catalog.products) and summary.issue_count == 1
        assert "left out (as Magento's installer does)" in summary.issues[0]
        assert summary.counts["storefront_location"] == 3 and "storefront_product" not in summary.counts
    first, second = _dump(urls[0]), _dump(urls[1])
    assert first == second
    submissions = len(first["supplier_submission"])
    sellable = sum(1 for p in catalog.products if p.product_type == "simple")
    assert 0.03 * sellable < submissions < 0.08 * sellable  # about 5 %


def test_a_scaled_load_keeps_the_shape(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'scaled.sqlite'}")
    db.create_schema(engine)
    summary = load_catalog(engine, LUMA, scale=4000)
    assert summary.counts["erp_item"] == 4000
    assert summary.counts["pim_product"] + summary.counts["pim_product_model"] == 4000
    with engine.connect() as conn:
        models = conn.execute(select(db.pim_product_model.c.code)).scalars().all()
        parents = set(models)
        orphans = conn.execute(select(db.pim_product.c.identifier).where(
            db.pim_product.c.parent.is_not(None), db.pim_product.c.parent.not_in(parents))).all()
        copies = conn.execute(select(db.erp_item.c.sku).where(db.erp_item.c.sku.like("%-K0001"))).scalars().all()
        upcs = conn.execute(select(db.erp_item.c.upc)).scalars().all()
    engine.dispose()
    assert len(models) > 147 and not orphans and copies
    assert len(set(upcs)) == len(upcs)
    assert summary.counts["dam_blob"] < 800  # copies share the source's images


def test_cli_lists_scenarios_and_loads_a_database(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["sandbox", "scenarios"]) == 0
    out = capsys.readouterr().out
    assert "variants_left_behind" in out and "uom_spelling_variants" in out
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    assert main(["sandbox", "load", "--catalog", str(LUMA / "ConfigurableSampleData_products.csv"), "--db", url]) == 0
    assert '"erp_item": 1994' in capsys.readouterr().out
    assert main(["sandbox", "load", "--catalog", str(tmp_path / "missing"), "--db", url]) == 2
    assert main(["sandbox", "fault", "erp", "--clear", "--url", "http://127.0.0.1:9"]) == 2  # nothing listens


def test_cli_drives_a_running_sandbox(fresh_sandbox) -> None:  # type: ignore[no-untyped-def]
    run = [sys.executable, "-m", "catalog_sync.cli", "sandbox"]
    done = subprocess.run([*run, "fault", "dam", "--latency-ms", "10", "--seed", "4", "--url", fresh_sandbox.url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert fresh_sandbox.state.faults.get("dam").latency_ms == 10
    done = subprocess.run([*run, "scenario", "uom_spelling_variants", "--sku", "MH01-XS-Black", "--url",
                           fresh_sandbox.url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and '"MH01-XS-Black"' in done.stdout
    done = subprocess.run([*run, "fault", "dam", "--clear", "--url", fresh_sandbox.url], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and fresh_sandbox.state.faults.get("dam") is None


PG_URL = os.environ.get("CATALOG_SYNC_TEST_PG_URL")


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="CATALOG_SYNC_TEST_PG_URL is not set (CI sets it)")
def test_the_sandbox_runs_on_postgresql() -> None:
    from sqlalchemy import create_engine, text

    from catalog_sync_sandbox.server import SandboxServer

    assert PG_URL
    schema = f"cs_sandbox_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in PG_URL else "?"
        with SandboxServer(f"{PG_URL}{sep}options=-csearch_path%3D{schema}") as server:
            assert server.load(str(LUMA))["counts"]["pim_product_model"] == 147
            result = server.scenario("storefront_stale_cached_page")
            handle = result["changes"][0]["storefront"]["handle"]
            page = requests.get(f"{server.url}/cdn/edge/products/{handle}", timeout=10)
            assert page.headers["X-Cache"] == "HIT"
            server.scenario("uom_spelling_variants")
            feed = requests.get(f"{server.url}/erp/changes", headers={"X-Api-Key": server.credentials["erp"]["api_key"]},
                                timeout=10).json()
            assert [c["seq"] for c in feed["changes"]] == list(range(1, feed["last_seq"] + 1))
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_each_magento_type_has_a_stated_fate_in_the_sandbox(tmp_path: Path) -> None:
    """Virtual and downloadable products are items with nothing to ship; bundles and grouped products are non-stock
    kit items listing their components; the unknown type is a reader issue. Nothing is loaded as something it is
    not."""
    corpus = Path(__file__).resolve().parents[1] / "data" / "magento_types" / "export" / "products.csv"
    engine = db.make_engine(f"sqlite:///{tmp_path / 'types.sqlite'}")
    db.create_schema(engine)
    summary = load_catalog(engine, corpus)
    with engine.connect() as conn:
        items = {r.sku: r for r in conn.execute(select(db.erp_item))}
        stocked = {r.sku for r in conn.execute(select(db.erp_stock))}
    engine.dispose()
    assert {sku: (i.product_type, i.item_type) for sku, i in items.items()} == {
        "MT-SIMPLE": ("simple", "simple"), "MT-TEE": ("configurable", "configurable"),
        "MT-TEE-S-Red": ("simple", "simple"), "MT-TEE-M-Red": ("simple", "simple"),
        "MT-GIFTCARD-CODE": ("simple", "virtual"), "MT-EBOOK": ("simple", "downloadable"),
        "MT-KIT": ("simple", "bundle"), "MT-KIT-DYN": ("simple", "bundle"), "MT-SET": ("simple", "grouped"),
        "MT-GIFTCARD": ("simple", "giftcard"),
    }
    for sku in ("MT-EBOOK", "MT-GIFTCARD-CODE", "MT-KIT", "MT-KIT-DYN", "MT-SET"):
        assert (items[sku].weight, items[sku].length, items[sku].country_of_origin) == (None, None, None), sku
        assert sku not in stocked, sku
    assert items["MT-SIMPLE"].weight == 1.5 and "MT-SIMPLE" in stocked
    assert items["MT-GIFTCARD"].weight == 0.1 and "MT-GIFTCARD" in stocked  # a printed card ships
    assert (items["MT-KIT"].kit_pricing, items["MT-KIT"].components) == ("fixed", [{"sku": "MT-SIMPLE",
                                                                                     "quantity": 1.0}])
    assert items["MT-SET"].components == [{"sku": "MT-SIMPLE", "quantity": 2.0},
                                          {"sku": "MT-GIFTCARD-CODE", "quantity": 1.0}]
    assert items["MT-SET"].kit_pricing is None and items["MT-SIMPLE"].components is None
    said = "\n".join(summary.issues)
    assert "not loaded" not in said
    assert "'MT-NOWHERE' has no row; left out of 'MT-KIT'" in said
    assert "unknown Magento product type 'kit'" in said
