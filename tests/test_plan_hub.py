"""`modelwiz plan` on a Hub repo id: metadata through the real huggingface_hub, no weights fetched."""

from __future__ import annotations

import json

from tests.fakehub import FakeRepo, safetensors_bytes
from tests.planner_data import config, parameters
from wizard import cli
from wizard.units import GiB


def _serve_llama_8b(fake_hub) -> None:
    params = parameters("Llama-3.1-8B")
    fake_hub.add(
        FakeRepo(
            "meta-llama/Llama-3.1-8B",
            {
                "config.json": json.dumps(config("Llama-3.1-8B")).encode(),
                # A small stand-in file: the planner must take the size from the Hub's parameter
                # counts, not from this file.
                "model.safetensors": safetensors_bytes({"w": ("BF16", [8])}),
            },
            info={
                "downloads": 10,
                "tags": ["text-generation"],
                "safetensors": {"parameters": params, "total": sum(params.values())},
            },
        )
    )


def test_plan_a_hub_model_without_downloading_weights(fake_hub, capsys):
    _serve_llama_8b(fake_hub)
    code = cli.main(["plan", "meta-llama/Llama-3.1-8B", "--gpus", "L4", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    (model,) = out["models"]
    assert model["model"] == "meta-llama/Llama-3.1-8B"
    assert model["fits"] is True
    assert model["kv_cache_bytes_per_token"] == 128 * 1024
    assert 14.9 * GiB < model["weights_bytes"] < 15.0 * GiB
    assert model["tensor_parallel_size"] == 1
    assert model["max_model_len"] < 131072  # an L4 cannot hold the full context
    # Only metadata went over the wire: no GET of the weights file.
    assert not [
        r
        for r in fake_hub.requests("GET")
        if r.path.endswith("model.safetensors") and "range" not in {k.lower() for k in r.headers}
    ]


def test_plan_a_missing_hub_model_is_bad_input(fake_hub, capsys):
    assert cli.main(["plan", "nobody/nothing", "--gpus", "L4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nobody/nothing" in err
