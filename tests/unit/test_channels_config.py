"""The declared sales channels (governance/channels.yaml): the file loads, every mistake is refused naming the
channel and the field, and the channel's rules (what it sells, titles, HTML, store views) do what they say."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from catalog_sync.governance.channels import (
    DEFAULT_PATH,
    IMAGE_TYPES,
    ChannelsError,
    ImageRules,
    clean_html,
    cut_title,
    load_channels,
    parse_channels,
)


def declared() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(DEFAULT_PATH.read_text())
    return doc


def test_the_declared_file_loads() -> None:
    adobe = load_channels().channel("adobe_commerce")
    assert adobe.enabled and adobe.kind == "adobe_commerce" and adobe.pool == "adobe_commerce_api"
    assert adobe.connection_id == "catalog_sync_adobe_commerce"
    assert adobe.hop == "pim->adobe_commerce" and adobe.task_id == "publish_channel_adobe_commerce"
    assert [c.name for c in load_channels().enabled()] == ["adobe_commerce"]


@pytest.mark.parametrize(("path", "value", "message"), [
    (("kind",), "magento1", "kind 'magento1' is not one of"),
    (("pool",), "storefront_api", "pool 'storefront_api' is not a pool of this channel"),
    (("enabled",), "yes", "enabled must be true or false"),
    (("sells", "pim_channel"), "print", "the nightly stages the values of the PIM channel 'ecommerce' only"),
    (("sells", "category_trees"), [], "sells.category_trees must list at least one"),
    (("locales", "en_US"), "default", "locales.en_US is the reference locale"),
    (("locales", "it_IT"), "it", "locales.it_IT is not a locale of the PIM channel"),
    (("locales", "fr_FR"), "admin", "locales.fr_FR must be a store view code"),
    (("formatting", "title_max_length"), 3, "title_max_length must be a whole number of at least 10"),
    (("formatting", "allowed_html"), ["<p>"], "allowed_html must list lower-case HTML tag names"),
    (("formatting", "title_length"), 40, "unknown field(s) ['title_length']"),
    (("images", "rendition"), "Large Square", "images.rendition must name a DAM rendition"),
    (("images", "region"), "europe", "images.region must be the sales region"),
    (("images", "roles"), {}, "images.roles must map DAM roles"),
    (("images", "roles", "banner"), ["image"], "images.roles.banner is not a DAM role"),
    (("images", "roles", "hero"), ["main_image"], "images.roles.hero: ['main_image'] are not image roles"),
    (("images", "roles", "swatch"), "swatch_image", "images.roles.swatch must list image roles"),
    (("images", "size"), 1200, "unknown field(s) ['size']"),
    (("images",), "square", "images must say rendition, region and roles"),
])
def test_a_mistake_is_refused_naming_the_channel_and_the_field(path: tuple[str, ...], value: Any,
                                                               message: str) -> None:
    doc = copy.deepcopy(declared())
    target = doc["channels"]["adobe_commerce"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ChannelsError) as refused:
        parse_channels(doc)
    assert "channel 'adobe_commerce'" in str(refused.value) and message in str(refused.value)


def test_the_primary_storefront_and_odd_names_are_not_channels() -> None:
    for name in ("storefront", "Adobe Commerce"):
        doc = declared()
        doc["channels"] = {name: doc["channels"]["adobe_commerce"]}
        with pytest.raises(ChannelsError, match="channel"):
            parse_channels(doc)


def test_a_product_is_sold_when_a_category_is_at_or_under_a_tree() -> None:
    adobe = load_channels().channel("adobe_commerce")  # Gear, Women
    assert adobe.sells({"categories": ["gear_bags"]})  # an Akeneo code under Gear
    assert adobe.sells({"categories": ["Women/Tops/Jackets"]})  # a path
    assert adobe.sells({"category": "Gear"})  # the root itself
    assert adobe.sells({"categories": ["collections_eco_friendly", "women_bottoms_pants"]})
    assert not adobe.sells({"categories": ["men_tops_hoodies_sweatshirts", "promotions_men_sale"]})
    assert not adobe.sells({"categories": ["gearbox_parts"]})  # a prefix is not a subtree
    assert not adobe.sells({"categories": None})


def test_titles_are_cut_at_a_word_boundary() -> None:
    assert cut_title("Harmony Lumaflex Strength Band Kit", 32) == "Harmony Lumaflex Strength Band"
    assert cut_title("Joust Duffle Bag", 32) == "Joust Duffle Bag"
    assert cut_title("Joust Duffle Bag", 12) == "Joust Duffle"  # the limit falls on a space
    assert cut_title("Supercalifragilistic bag", 10) == "Supercalif"  # one word longer than the limit
    assert cut_title("Stellar Solar - Jacket", 15) == "Stellar Solar"  # no dangling separator


def test_descriptions_keep_only_the_allowed_tags() -> None:
    text = '<p class="x" onclick="steal()">Big <b>bag</b><br>roomy<script>alert(1)</script></p><!-- note -->'
    assert clean_html(text, {"p"}) == "<p>Big bag roomy</p>"
    assert clean_html("<UL><LI>one</LI></UL>", {"ul", "li"}) == "<ul><li>one</li></ul>"


def test_store_views_come_from_the_file_or_the_channels_store_configs() -> None:
    adobe = load_channels().channel("adobe_commerce")  # fr_FR: fr, de_DE: store_configs
    assert adobe.store_views({"de_DE": "german", "fr_FR": "ignored"}) == {"fr_FR": "fr", "de_DE": "german"}
    with pytest.raises(ChannelsError, match="locales.de_DE is store_configs, but the channel's store configs"):
        adobe.store_views({"fr_FR": "fr"})


def test_shaping_applies_to_translations_too() -> None:
    adobe = load_channels().channel("adobe_commerce")
    shaped = adobe.formatting.shape({"sku": "X", "name": "A name that is far too long for this channel's titles",
                                     "description": "<p>ok<br>fine</p>",
                                     "translations": {"fr_FR": {"name": "Un nom beaucoup trop long pour ce canal-ci"}}})
    assert shaped["name"] == "A name that is far too long for"
    assert shaped["description"] == "<p>ok fine</p>"
    assert shaped["translations"]["fr_FR"]["name"] == "Un nom beaucoup trop long pour"


def test_a_channel_declares_its_rendition_region_and_image_roles() -> None:
    adobe = load_channels().channel("adobe_commerce")
    assert adobe.images is not None
    assert (adobe.images.rendition, adobe.images.region) == ("square", "EU")
    assert adobe.images.roles["hero"] == ("image", "small_image", "thumbnail")
    assert adobe.image_hop == "dam->adobe_commerce" and adobe.image_task_id == "publish_channel_images_adobe_commerce"
    # no images section: the channel takes no images
    doc = declared()
    del doc["channels"]["adobe_commerce"]["images"]
    assert parse_channels(doc).channel("adobe_commerce").images is None


def test_each_channel_role_goes_to_the_first_image_in_gallery_order() -> None:
    rules = load_channels().channel("adobe_commerce").images
    assert rules is not None
    assert rules.types(["seasonal", "hero", "hero", "gallery", "swatch", None]) == [
        [], ["image", "small_image", "thumbnail"], [], [], ["swatch_image"], []]
    wide = ImageRules("square", "EU", {"seasonal": ("image",), "hero": ("image", "small_image", "thumbnail")})
    assert wide.types(["seasonal", "hero"]) == [["image"], ["small_image", "thumbnail"]]


def test_the_image_roles_are_magentos() -> None:
    from catalog_sync.connectors.adobe_mapping import MAGENTO_IMAGE_TYPES
    from catalog_sync_sandbox.adobe import IMAGE_ROLES

    assert IMAGE_TYPES["adobe_commerce"] == MAGENTO_IMAGE_TYPES == IMAGE_ROLES


def test_an_entry_is_known_again_by_its_file_name() -> None:
    from catalog_sync.connectors.adobe_mapping import media_entry_stem, media_stem

    stem = media_stem("luma/24-MB01 hero.jpg", "square", "ABCDEF0123456789")
    assert stem == "cs-luma-24-mb01-hero-jpg-square-abcdef012345"
    assert media_entry_stem({"file": f"/c/s/{stem}.png"}) == stem
    assert media_entry_stem({"file": f"/c/s/{stem}_2.png"}) == stem  # Magento renamed it: the name was taken
    assert media_entry_stem({"file": "/m/b/mb01-hero.jpg"}) is None  # made by hand on the channel
    assert media_stem("a", "square", "1" * 64) != media_stem("a", "square", "2" * 64)  # a new file, a new entry
