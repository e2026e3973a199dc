"""Receipt id forms: the keys a receipt is looked up under, per SMSC id form (pure)."""

from __future__ import annotations

from broadcaster.domain.receipt_ids import converted, forms_of, keys, normalise


def test_ids_compare_without_case_or_leading_zeros() -> None:
    assert normalise("000000000a1f") == normalise("A1F") == "A1F"
    assert normalise("0000") == ""  # as ltrim(upper(id), '0') in the index


def test_a_decimal_receipt_id_names_the_hex_id_of_the_response() -> None:
    assert converted("12345", "decimal") == "3039"
    assert converted("3039", "hex") == "12345"
    assert converted("3A", "decimal") is None  # not decimal: no such conversion
    assert converted("xyz", "hex") is None
    assert converted("9" * 41, "decimal") is None  # longer than any SMSC's ids


def test_a_known_form_gives_one_key_and_auto_every_plausible_one() -> None:
    assert keys(["12345"], "same") == ["12345"]
    assert keys(["12345"], "decimal") == ["3039"]
    assert keys(["12345"], "auto") == ["12345", "3039", "74565"]
    assert keys(["00ab"], "auto") == ["AB", "171"]  # not decimal: two forms only
    # the TLV id and the text id both count, each key once, blanks ignored
    assert keys(["3039", "12345"], "decimal") == ["BDF", "3039"]
    assert keys(["3039", "3039"], "same") == ["3039"]
    assert keys(["3039", None, ""], "same") == ["3039"]


def test_the_forms_a_matching_key_proves() -> None:
    assert forms_of("3039", ["12345"]) == {"decimal"}
    assert forms_of("12345", ["12345"]) == {"same"}
    assert forms_of("", ["0"]) == {"same", "decimal", "hex"}  # proves nothing: not counted
