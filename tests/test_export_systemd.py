from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.export_helpers import make_repository, up_facts
from wizard.cli import main
from wizard.container import create_kwargs
from wizard.export_facts import boot_command
from wizard.export_systemd import (
    pick_format,
    podman_run_argv,
    quadlet_unit,
    service_unit,
    systemd_word,
)


def unit_sections(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as section -> key -> values (keys may repeat), read as systemd reads
    it (systemd.syntax(7), src/shared/conf-parser.c): comment lines are skipped, and a line ending
    in an unescaped backslash continues on the next one."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    current = None
    pending = ""
    for raw in text.split("\n"):
        if not pending and raw.lstrip().startswith(("#", ";")):
            continue
        trailing = len(raw) - len(raw.rstrip("\\"))
        if trailing % 2:
            pending += raw[:-1] + " "
            continue
        line, pending = pending + raw, ""
        if not line.strip():
            continue
        if line.startswith("["):
            current = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        sections[current][key].append(value)
    return sections


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "s": " "}


def systemd_split(value: str) -> list[str]:
    """Words of a systemd command line as systemd reads ours: whitespace separates words, quotes
    group them, backslash escapes are C-style (extract_first_word with EXTRACT_UNQUOTE and
    EXTRACT_CUNESCAPE), then %% and $$ stand for % and $."""
    words: list[str] = []
    word: str | None = None
    quote = ""
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            word = (word or "") + _ESCAPES.get(nxt, nxt)
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
            else:
                word += ch
        elif ch in "\"'":
            quote, word = ch, word or ""
        elif ch.isspace():
            if word is not None:
                words.append(word)
            word = None
        else:
            word = (word or "") + ch
        i += 1
    if word is not None:
        words.append(word)
    return [w.replace("%%", "%").replace("$$", "$") for w in words]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repository(
        tmp_path_factory.mktemp("systemd") / "repo",
        "meta-llama/Llama-2-7b-hf",
        "Qwen/Qwen2-7B",
        "mistralai/Mistral-7B-v0.1",
        "google/gemma-7b",
    )


@pytest.fixture(
    params=[
        {},
        {
            "listen": "0.0.0.0",
            "http_port": 9000,
            "grpc_port": 9001,
            "metrics_port": 9002,
            "name": "triton-prod",
            "rootless": True,
        },
    ]
)
def choices(request):
    return request.param


def parse_size(value: str) -> int:
    """podman's `\\d+[kmg]` size (binary units)."""
    factor = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(value[-1].lower(), 1)
    return int(value.rstrip("kmgKMG")) * factor


def test_quadlet_encodes_what_modelwiz_up_creates(repo, choices):
    facts, kwargs = up_facts(repo, selinux=True, **choices)
    unit = unit_sections(quadlet_unit(facts))
    c = unit["Container"]
    assert c["Image"] == [kwargs["image"]]
    assert c["ContainerName"] == [kwargs["name"]]
    assert c["AddDevice"] == kwargs["devices"] == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    (mount,) = kwargs["mounts"]
    assert mount["read_only"] is True and mount["target"] == repo.manifest.mount_point
    ((volume, cache),) = kwargs["volumes"].items()
    assert c["Volume"] == [f"{mount['source']}:{mount['target']}:ro", f"{volume}:{cache['bind']}:{cache['mode']}"]
    # (ip, port) binds one address; a bare port binds every interface (--listen 0.0.0.0).
    published = {
        port.split("/")[0]: f"{host[0]}:{host[1]}" if isinstance(host, tuple) else str(host)
        for port, host in kwargs["ports"].items()
    }
    assert sorted(c["PublishPort"]) == sorted(f"{host}:{port}/tcp" for port, host in published.items())
    assert all(isinstance(h, int) for h in kwargs["ports"].values()) is (choices.get("listen") == "0.0.0.0")
    assert [parse_size(v) for v in c["ShmSize"]] == [kwargs["shm_size"]]
    unlimited = lambda v: -1 if v >= 2**63 else v  # noqa: E731 - libpod's RLIM_INFINITY is podman's -1
    assert c["Ulimit"] == [f"{u['Name']}={unlimited(u['Soft'])}:{unlimited(u['Hard'])}" for u in kwargs["ulimits"]]
    assert ("memlock=-1:-1" in c["Ulimit"]) is (not choices.get("rootless"))
    assert c["SecurityLabelDisable"] == ["true"] and kwargs["security_opt"] == ["disable"]
    labels = dict(systemd_split(v)[0].split("=", 1) for v in c["Label"])
    assert labels == kwargs["labels"]
    (exec_line,) = c["Exec"]
    words = systemd_split(exec_line)
    names = [m.name for m in facts.models]
    assert words == kwargs["command"] + [f"--load-model={n}" for n in names] + ["--model-load-thread-count=1"]
    assert "PodmanArgs" not in c  # everything has a key of its own
    assert unit["Install"]["WantedBy"] == ["multi-user.target default.target"]


def test_service_unit_runs_the_same_podman_options(repo):
    facts, kwargs = up_facts(repo)
    unit = unit_sections(service_unit(facts, podman="/usr/bin/podman"))
    (start,) = unit["Service"]["ExecStart"]
    words = systemd_split(start)
    assert words[:2] == ["/usr/bin/podman", "run"]
    assert "--cidfile=%t/%n.ctr-id" in words and "--replace" in words and "--rm" in words
    argv = words[words.index("-d") + 1 :]
    assert argv == podman_run_argv(facts)
    image_at = argv.index(kwargs["image"])
    assert argv[image_at + 1 : image_at + 1 + len(kwargs["command"])] == kwargs["command"]
    options = list(zip(argv[:image_at:2], argv[1:image_at:2], strict=False))
    assert [v for f, v in options if f == "--device"] == kwargs["devices"]
    assert ("--shm-size", "1g") in options
    assert unit["Service"]["Type"] == ["notify"]
    assert unit["Service"]["ExecStartPre"] == ["/bin/rm -f %t/%n.ctr-id"]
    assert unit["Service"]["ExecStop"] == ["/usr/bin/podman stop --ignore -t 10 --cidfile=%t/%n.ctr-id"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=30))
def test_systemd_words_read_back_as_written(arg):
    assert systemd_split(systemd_word(arg)) == [arg]


def test_systemd_word_escapes_specifiers_and_variables():
    assert systemd_word("50%") == "50%%"
    assert "$$HOME" in systemd_word("$HOME") and systemd_split(systemd_word("$HOME")) == ["$HOME"]
    assert systemd_word("a b") == '"a b"'
    assert systemd_word('say "hi"') == '"say \\"hi\\""'
    assert systemd_word("") == '""'


# Where each podman-py option `up` passes is written in the exports. An option added to
# `create_kwargs` fails here until both exports encode it (so none is silently dropped).
EXPORTED = {
    "image": "Image= / image word",
    "name": "ContainerName= / --name",
    "command": "Exec= / the command words",
    "devices": "AddDevice= / --device; kube: nvidia.com/gpu",
    "mounts": "Volume= / --volume; kube: the PVC",
    "volumes": "Volume= / --volume (the compile cache); kube: an emptyDir",
    "ports": "PublishPort= / --publish; kube: Service ports",
    "shm_size": "ShmSize= / --shm-size; kube: the memory emptyDir",
    "ulimits": "Ulimit= / --ulimit; kube: not expressible (said in the header)",
    "security_opt": "SecurityLabelDisable=; kube: not needed",
    "labels": "Label= / --label; kube: annotations",
    "environment": "Environment= / --env; kube: env",
    "privileged": "never set (False)",
    "detach": "how podman-py is called",
}


def test_every_podman_option_up_passes_is_exported(repo):
    for choice in ({}, {"rootless": True, "selinux": True}):
        facts, kwargs = up_facts(repo, **choice)
        assert set(kwargs) <= set(EXPORTED), set(kwargs) - set(EXPORTED)
        assert kwargs["privileged"] is False and create_kwargs(facts.spec) == kwargs


def test_a_line_break_cannot_reach_a_unit(repo):
    from dataclasses import replace

    from wizard.errors import ModelwizError

    facts = up_facts(repo)[0]
    facts = replace(facts, spec=replace(facts.spec, environment=(("X", "a\nExecStartPre=/bin/evil"),)))
    with pytest.raises(ModelwizError, match="line break"):
        quadlet_unit(facts)


@pytest.mark.parametrize(
    "version, expected",
    [
        ((4, 3, 1), "service"),
        ((4, 4, 0), "service"),
        ((4, 6, 2), "service"),
        ((4, 7, 0), "quadlet"),
        ((5, 2), "quadlet"),
        (None, "quadlet"),
    ],
)
def test_format_follows_the_podman_version(version, expected):
    assert pick_format(version) == expected


def test_boot_command_loads_the_models_one_at_a_time():
    base = ["tritonserver", "--model-repository=/m", "--model-control-mode=explicit"]
    assert boot_command(base, ["a", "b"]) == (*base, "--load-model=a", "--load-model=b", "--model-load-thread-count=1")
    # Idempotent, and a server in the default mode (everything at startup) gets no --load-model.
    assert boot_command(boot_command(base, ["a"]), ["a"]) == boot_command(base, ["a"])
    assert boot_command(["tritonserver", "--model-repository=/m"], ["a"]) == (
        "tritonserver",
        "--model-repository=/m",
        "--model-load-thread-count=1",
    )


def test_cli_writes_the_chosen_format(repo, tmp_path, capsys):
    out = tmp_path / "triton.container"
    assert main(["export", "systemd", "--repository", str(repo.root), "--format", "quadlet", "--output", str(out)]) == 0
    assert unit_sections(out.read_text())["Container"]["ContainerName"] == ["modelwiz-triton"]
    assert (
        main(
            [
                "export",
                "systemd",
                "--repository",
                str(repo.root),
                "--format",
                "service",
                "--name",
                "other",
                "--http-port",
                "9000",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "--name other" in text and "--publish 127.0.0.1:9000:8000/tcp" in text
    with pytest.raises(SystemExit) as exited:
        main(["export", "systemd", "--repository", str(repo.root), "--format", "bogus"])
    assert exited.value.code == 2
