"""Text from a user, a path or the Hub cannot change the structure of what modelwiz writes.

Property tests (hypothesis): any string round-trips through each format modelwiz writes it into
(config.pbtxt comments, model.json, the manifest and the user config in TOML) without adding,
removing or changing anything else. config.pbtxt is parsed with Triton's own ModelConfig schema
(protobuf text_format), as the repository code does.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures_repository import make_plan
from wizard.manifest import Manifest, ManifestModel, load_manifest, save_manifest
from wizard.model_config import parse_config_pbtxt, render_config_pbtxt, render_model_json

# Strings as a file system, a user or the Hub can hand them over: anything but lone surrogates
# (which cannot be written as UTF-8 at all); line breaks, quotes, braces, '#', '%' and unicode
# are drawn often.
HOSTILE = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("\n\r\t\x00\x0b\x0c\x1b\x7f\x85\u2028\u2029\"'{}[]#%\\$:=,; ")),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=60,
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
INJECTION = 'm\nparameters { key: "x" value: { string_value: "y" } }\nmodel_warmup [{ name: "w" }]\n#'


def _pbtxt(source: str, devices=("0",)) -> str:
    return render_config_pbtxt(replace(make_plan("m", devices=devices), model=source), list(devices))


def test_a_folder_name_cannot_inject_triton_config():
    text = _pbtxt(INJECTION)
    config = parse_config_pbtxt(text)
    assert "x" not in config.parameters and not config.model_warmup
    assert config == parse_config_pbtxt(_pbtxt("org/plain"))
    assert text.count("\n") == _pbtxt("org/plain").count("\n")


@SETTINGS
@given(HOSTILE)
def test_any_source_stays_inside_the_config_pbtxt_comment(source):
    text = _pbtxt(source)
    baseline = _pbtxt("org/plain")
    assert parse_config_pbtxt(text) == parse_config_pbtxt(baseline)
    assert text.splitlines()[1:] == baseline.splitlines()[1:]  # only the comment line differs
    assert len(text.splitlines()) == len(baseline.splitlines())


@SETTINGS
@given(HOSTILE)
def test_any_weights_path_round_trips_through_model_json(path):
    plan = make_plan("m")
    data = json.loads(render_model_json(plan, model_path=path, vllm_version="0.24.0"))
    baseline = json.loads(render_model_json(plan, model_path="/x", vllm_version="0.24.0"))
    assert data["model"] == path
    assert {k: v for k, v in data.items() if k != "model"} == {k: v for k, v in baseline.items() if k != "model"}


@SETTINGS
@given(source=HOSTILE, revision=HOSTILE, note=HOSTILE)
def test_any_source_and_revision_round_trip_through_the_manifest(tmp_path, source, revision, note):
    plan = replace(make_plan("m"), model=source, extra={"note": note})
    entry = ManifestModel("m", source, "weights", plan, revision=revision or None)
    other = ManifestModel("n", "org/n", "weights", make_plan("n"))
    save_manifest(tmp_path, Manifest(image="img:1").with_model(entry).with_model(other))
    loaded = load_manifest(tmp_path)
    assert loaded.names == ("m", "n") and loaded.image == "img:1"
    got = loaded.get("m")
    assert got.source == source and got.revision == (revision or None) and got.plan.model == source
    assert got.plan.extra == {"note": note}
    assert loaded.get("n") == other


@SETTINGS
@given(HOSTILE.filter(lambda s: s.strip() and "\x00" not in s))
def test_any_repository_path_round_trips_through_the_user_config(tmp_path, name):
    from wizard.repository import configured_repository, remember_repository

    saved = {k: os.environ.get(k) for k in ("XDG_CONFIG_HOME", "MODEL_REPOSITORY")}
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    os.environ.pop("MODEL_REPOSITORY", None)
    try:
        path = Path("/srv") / name.replace("/", "_")
        remember_repository(path)
        assert configured_repository() == path
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
