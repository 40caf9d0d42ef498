import pytest
import yaml  # PyYAML (test dependency, via kubernetes-validate)
from hypothesis import given, settings
from hypothesis import strategies as st

from wizard.yamltext import dump, dump_all

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(
        [
            "yes",
            "No",
            "on",
            "OFF",
            "y",
            "n",
            "null",
            "~",
            "true",
            "1e3",
            "0x1F",
            "1_000",
            "0o17",
            "12:30",
            ".5",
            "-",
            "- a",
            "a: b",
            "#x",
            "x #y",
            "&a",
            "*a",
            "!tag",
            "%x",
            "@x",
            "`x",
            "'q'",
            '"q"',
            "[a]",
            "{a}",
            "a,b",
            "|",
            ">",
            "?",
            ":",
            "",
            " ",
            " lead",
            "trail ",
            "a\nb",
            "a\nb\n",
            "a\nb\n\n",
            "\na",
            "  indented\nx",
            "tab\tx\ny",
            "nvidia.com/gpu",
            "8000",
            "1Gi",
            "--flag=x",
            "ünïcode\nline",
            "\u2028x\ny",
            "cr\r\nlf",
        ]
    ),
)
keys = st.one_of(st.text(max_size=20), st.sampled_from(["nvidia.com/gpu", "app.kubernetes.io/name", "yes", "1"]))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values, max_size=5))
def test_any_document_reads_back_identically(doc):
    assert yaml.safe_load(dump(doc)) == (doc or {})


@pytest.mark.parametrize(
    "text",
    ["yes", "no", "on", "off", "y", "N", "null", "true", "8000", "1.5", "0x1f", "12:30", "a: b", "- x", "#c", ""],
)
def test_strings_that_look_like_something_else_stay_strings(text):
    out = dump({"k": text})
    assert out != f"k: {text}\n"
    assert yaml.safe_load(out) == {"k": text}


def test_multiline_text_is_a_literal_block_and_keys_stay_plain():
    config = 'backend: "vllm"\nmax_batch_size: 0\n'
    out = dump({"data": {"config.pbtxt": config, "nvidia.com/gpu": "2"}})
    assert out == 'data:\n  config.pbtxt: |\n    backend: "vllm"\n    max_batch_size: 0\n  nvidia.com/gpu: "2"\n'
    assert yaml.safe_load(out)["data"]["config.pbtxt"] == config


def test_lists_of_mappings_and_empty_collections():
    doc = {"containers": [{"name": "a", "args": ["x", "y"]}, {"name": "b", "env": []}], "empty": {}}
    out = dump(doc)
    assert "  - name: a\n    args:\n      - x\n" in out
    assert "env: []" in out and "empty: {}" in out
    assert yaml.safe_load(out) == doc


def test_several_documents_with_a_comment_header():
    text = dump_all([{"kind": "A"}, {"kind": "B"}], header=["first line", "", "third"])
    assert text.startswith("# first line\n#\n# third\n---\nkind: A\n")
    assert list(yaml.safe_load_all(text)) == [{"kind": "A"}, {"kind": "B"}]


def test_unsupported_values_are_refused():
    with pytest.raises(TypeError):
        dump({"k": object()})
    with pytest.raises(TypeError):
        dump({1: "x"})


def test_a_trailing_newline_is_kept():
    import yaml

    from wizard.yamltext import dump

    for doc in ({"note": "abc\n"}, {"k": {"A\n": None}}):
        assert yaml.safe_load(dump(doc)) == doc
