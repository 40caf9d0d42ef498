"""Hostile strings through the exports: the YAML and the systemd units keep their structure.

Any string an export writes that a user or a repository controls (the image reference, the
repository path in the labels, a model's config files, a reason in the header) is replaced with
text built to break out: newlines, quotes, braces, `#`, `%`, `: `, unicode line separators,
leading `-`/`*`/`&`. The YAML must read back as exactly the objects, the header must stay a
comment, and a unit must either refuse the value or carry it as one value of the same key.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml  # PyYAML, which kubernetes-validate brings (a reader as kubectl's go-yaml)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.export_helpers import export_facts, make_repository
from tests.test_export_systemd import systemd_split, unit_sections
from wizard.errors import ModelwizError
from wizard.export_kube import KubeOptions, kube_objects, render_kube
from wizard.export_systemd import quadlet_unit, service_unit

PIECES = ["\n", "\r", "\r\n", '"', "'", "{", "}", "[", "]", "#", " #", "%", "%n", ": ", "$", "${X}", "\\", "\t"]
PIECES += ["\u2028", "\u2029", "\x85", "\ufeff", "é", "😀", "- ", "* ", "& ", "! ", "? ", "|", ">", "---", "..."]
hostile = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=4)), min_size=1, max_size=8).map("".join)


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
    repo = make_repository(tmp_path_factory.mktemp("hostile") / "repo", "meta-llama/Llama-2-7b-hf")
    return export_facts(repo)


def with_hostile(facts, text: str):
    spec = replace(facts.spec, image=f"registry.example/{text}", repository=Path(f"/srv/{text}"))
    model = replace(facts.models[0], config_pbtxt=text, model_json=text)
    return replace(facts, spec=spec, models=(model,), skipped=(f"other: {text}",))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=hostile)
def test_hostile_strings_keep_the_yaml_structure(facts, text):
    bad = with_hostile(facts, text)
    rendered = render_kube(bad, KubeOptions())
    header, _, body = rendered.partition("\n---\n")
    # The header stays comment lines, whatever the reasons in it hold.
    assert all(line.startswith("#") for line in header.splitlines())
    assert yaml.safe_load(header) is None
    docs = [d for d in yaml.safe_load_all("---\n" + body) if d is not None]
    assert docs == kube_objects(bad, KubeOptions())  # every string read back exactly, nothing added
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    assert cm["data"]["model.json"] == text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=hostile)
def test_hostile_strings_keep_the_unit_structure(facts, text):
    bad = with_hostile(facts, text)
    baseline = unit_sections(quadlet_unit(facts))
    try:
        unit = quadlet_unit(bad)
        service = service_unit(bad, podman="/usr/bin/podman")
    except ModelwizError as error:  # a value a unit cannot hold is refused, never written
        assert "line break" in error.message or "':'" in error.message
        assert any(c in text for c in "\n\r:")
        return
    sections = unit_sections(unit)
    assert {s: set(keys) for s, keys in sections.items()} == {s: set(keys) for s, keys in baseline.items()}
    assert {k: len(v) for k, v in sections["Container"].items()} == {
        k: len(v) for k, v in baseline["Container"].items()
    }
    assert systemd_split(sections["Container"]["Image"][0]) == [bad.spec.image]
    labels = dict(systemd_split(v)[0].split("=", 1) for v in sections["Container"]["Label"])
    assert labels["io.modelwiz.repository"] == str(bad.spec.repository)
    (start,) = unit_sections(service)["Service"]["ExecStart"]
    words = systemd_split(start)
    assert bad.spec.image in words and f"io.modelwiz.image={bad.spec.image}" in words
