"""The one description of how the server runs: ServeOptions, its flags, its layers, the spec."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from wizard import launcher
from wizard.cli import build_parser
from wizard.container import (
    PODMAN_RLIMIT_DEFAULT,
    LaunchSpec,
    default_ulimits,
    parse_ports_label,
    spec_labels,
)
from wizard.launch_inputs import HostFacts, LaunchInputs, build_launch_spec
from wizard.serve_options import DEFAULTS, LAYER_ORDER, ServeOptions, add_serve_arguments, merge_layers


def sub_parser(*path: str) -> argparse.ArgumentParser:
    parser = build_parser(path)
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def inputs(tmp_path, image: str | None = "img:manifest") -> LaunchInputs:
    return LaunchInputs(tmp_path, ("a",), ("0",), image, "/models", True)


HOST = HostFacts(rootless=False, selinux=False)


# -- flags ----------------------------------------------------------------------------------------


def test_each_command_gets_its_flags_from_the_one_declaration():
    expected = {
        ("up",): {
            "--image",
            "--name",
            "--listen",
            "--http-port",
            "--grpc-port",
            "--metrics-port",
            "--timeout",
            "--openai",
            "--openai-port",
        },
        ("add",): {"--image", "--openai", "--openai-port"},
        ("export", "kube"): {"--image", "--name", "--openai"},
        ("export", "systemd"): {
            "--image",
            "--name",
            "--listen",
            "--http-port",
            "--grpc-port",
            "--metrics-port",
            "--openai",
            "--openai-port",
        },
    }
    declared = {f.metadata["flag"].option for f in fields(ServeOptions)}
    for path, flags in expected.items():
        options = {o for a in sub_parser(*path)._actions for o in a.option_strings}
        others = declared - flags - ({"--name"} if path == ("add",) else set())  # add's --name names a model
        assert flags <= options and not others & options, path


def test_flags_parse_into_the_flags_layer():
    args = sub_parser("up").parse_args(["--image", "x:1", "--listen", "0.0.0.0", "--http-port", "9000"])
    options = ServeOptions.from_args(args)
    assert options == ServeOptions(image="x:1", listen="0.0.0.0", http_port=9000, live_timeout_s=900.0)
    assert not options.is_set("name") and options.is_set("listen")
    # Only the command's own serve flags are read: `add --name` names a model, not the container.
    args = sub_parser("add").parse_args(["org/m", "--name", "model-name", "--image", "x:2"])
    assert ServeOptions.from_args(args) == ServeOptions(image="x:2")
    assert ServeOptions.from_args(sub_parser("export", "kube").parse_args([])) == ServeOptions()


def test_a_port_flag_refuses_what_is_not_a_port():
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser, "up")
    with pytest.raises(SystemExit):
        parser.parse_args(["--http-port", "70000"])


# -- layers ---------------------------------------------------------------------------------------


def test_layers_merge_in_the_documented_order():
    assert LAYER_ORDER == ("defaults", "manifest", "running", "flags")
    manifest = ServeOptions(image="img:manifest")
    running = ServeOptions(image="img:running", name="kept", http_port=9000)
    flags = ServeOptions(http_port=9100)
    merged = merge_layers({"defaults": DEFAULTS, "manifest": manifest, "running": running, "flags": flags})
    assert (merged.image, merged.name, merged.http_port, merged.grpc_port) == ("img:running", "kept", 9100, 8001)
    assert merge_layers({"defaults": DEFAULTS, "manifest": manifest}).image == "img:manifest"
    # The order is the layers', not the mapping's.
    assert merge_layers({"flags": flags, "defaults": DEFAULTS}).http_port == 9100


def test_build_launch_spec_takes_each_layer(tmp_path):
    spec = build_launch_spec(inputs(tmp_path), ServeOptions(), HOST)
    assert (spec.image, spec.name, spec.listen, spec.http_port) == (
        "img:manifest",
        "modelwiz-triton",
        "127.0.0.1",
        8000,
    )
    running = ServeOptions(image="img:running", name="kept", listen="0.0.0.0", http_port=9000, grpc_port=9001)
    host = HostFacts(rootless=True, selinux=True, running=running)
    spec = build_launch_spec(inputs(tmp_path), ServeOptions(grpc_port=9501), host)
    assert (spec.image, spec.name, spec.listen, spec.http_port, spec.grpc_port) == (
        "img:running",
        "kept",
        "0.0.0.0",
        9000,
        9501,
    )
    assert spec.selinux_label_disable and "memlock" not in {u.name for u in spec.ulimits}
    assert spec.mount_point == "/models" and spec.devices == ("0",) and spec.models == ("a",)


def test_endpoints_and_the_ports_label(tmp_path):
    spec = LaunchSpec(
        image="i", repository=tmp_path, listen="0.0.0.0", http_port=9000, grpc_port=9001, metrics_port=9002
    )
    assert (spec.http_url, spec.grpc_address, spec.metrics_url) == (
        "http://127.0.0.1:9000",
        "127.0.0.1:9001",
        "http://127.0.0.1:9002/metrics",
    )
    v6 = LaunchSpec(image="i", repository=tmp_path, listen="::1")
    assert v6.grpc_address == "[::1]:8001" and v6.http_url == "http://[::1]:8000"
    label = parse_ports_label(spec_labels(spec)["io.modelwiz.ports"])
    assert label is not None and (label.listen, label.http, label.grpc, label.metrics) == ("0.0.0.0", 9000, 9001, 9002)
    assert parse_ports_label("garbage") is None and parse_ports_label("") is None


# -- ulimits --------------------------------------------------------------------------------------


def test_ulimits_ask_only_what_the_host_grants():
    limits = {u.name: u for u in default_ulimits(rootless=False, nofile=20000, nproc=PODMAN_RLIMIT_DEFAULT * 4)}
    assert (limits["nofile"].soft, limits["nofile"].hard) == (20000, 20000)
    assert limits["nproc"].hard == PODMAN_RLIMIT_DEFAULT  # never above podman's own default
    assert limits["memlock"].hard == -1 and limits["stack"].hard == 67108864
    assert "memlock" not in {u.name for u in default_ulimits(rootless=True)}


@pytest.mark.parametrize(
    "text, name",
    [
        (
            "runc create failed: error setting rlimits for ready process: error setting rlimit type 7: "
            "operation not permitted: OCI permission denied",
            "nofile",
        ),
        ("error setting rlimit type 8: operation not permitted", "memlock"),
        ("error setting rlimit type 6: operation not permitted", "nproc"),
        ("crun: setrlimit `RLIMIT_NOFILE`: Operation not permitted: OCI permission denied", "nofile"),
        ("crun: setrlimit RLIMIT_MEMLOCK: Operation not permitted", "memlock"),
        ("unresolvable CDI devices nvidia.com/gpu=0", None),
    ],
)
def test_rlimit_refusals_are_recognised(text, name):
    assert launcher._refused_rlimit(text) == name


def test_a_refused_rlimit_is_one_line_with_a_fix(tmp_path):
    spec = build_launch_spec(
        inputs(tmp_path), ServeOptions(), HostFacts(rootless=False, selinux=False, nofile_max=4096)
    )
    failure = launcher._rlimit_failure(spec, "nofile")
    assert failure.one_line().count("\n") == 0
    assert "nofile limit (4096:4096)" in failure.message and "LimitNOFILE=" in failure.hint
    lowered = launcher._lowered(spec, "nofile")
    assert lowered is not None and {u.name: u.hard for u in lowered.ulimits}["nofile"] == 1024
    assert launcher._lowered(lowered, "nofile") is None and launcher._lowered(spec, "stack") is None
