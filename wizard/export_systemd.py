"""`modelwiz export systemd`: the container `modelwiz up` runs, started by systemd at boot.

Two forms, both from the `LaunchSpec` that `modelwiz up` runs:

- a Quadlet `.container` unit (podman 4.7 or newer: the first release whose Quadlet has every key
  used here, `ShmSize=` and `Ulimit=` being the last to arrive);
- for older podman, a plain service unit whose `ExecStart` is the equivalent `podman run` line, in
  the shape `podman generate systemd --new` writes (that command needs an existing container).

Both run Triton with the boot command (`export_facts.boot_command`): a container started by
systemd has no `modelwiz up` to load the models over HTTP, so Triton loads them itself, one at a
time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wizard.container import ANY_ADDRESS, CACHE_DIR, LaunchSpec, spec_labels
from wizard.errors import ModelwizError
from wizard.export_facts import ServingFacts, format_size
from wizard.yamltext import printable

QUADLET_MIN_PODMAN = (4, 7)
FORMATS = ("quadlet", "service")


@dataclass(frozen=True)
class RunOption:
    """One `podman run` option and its Quadlet key (None: Quadlet has no key, use PodmanArgs)."""

    flag: str
    value: str
    quadlet_key: str | None


def systemd_word(arg: str) -> str:
    """One word of a systemd command line (ExecStart=, Quadlet Exec=): specifiers and variables
    escaped (`%%`, `$$`), quoted when it holds spaces, quotes, backslashes or control chars."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if escaped and re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", escaped) and escaped != ";":
        return escaped
    out = escaped.replace("\\", "\\\\").replace('"', '\\"')
    out = out.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return f'"{out}"'


def _check_value(what: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ModelwizError(f"{what} {value!r} has a line break; a systemd unit cannot hold it")
    return value


def _volume(source: str, target: str, read_only: bool) -> str:
    for path in (source, target):
        if ":" in path:
            raise ModelwizError(
                f"the path {path!r} contains ':', which podman's --volume cannot express",
                hint="move the model repository to a path without ':'",
            )
    return f"{source}:{target}:{'ro' if read_only else 'rw'}"


def _publish(listen: str, host_port: int, container_port: int) -> str:
    """podman's --publish; every interface without an address, as `up` publishes it."""
    if listen in ANY_ADDRESS:
        return f"{host_port}:{container_port}/tcp"
    ip = f"[{listen}]" if ":" in listen else listen
    return f"{ip}:{host_port}:{container_port}/tcp"


def run_options(spec: LaunchSpec) -> list[RunOption]:
    """What `podman run` needs, besides image and command, to create the container `up` creates."""
    opts: list[RunOption] = [RunOption("--name", spec.name, "ContainerName")]
    for device in spec.cdi_devices:
        opts.append(RunOption("--device", device, "AddDevice"))
    opts.append(RunOption("--volume", _volume(str(spec.repository), spec.mount_point, True), "Volume"))
    opts.append(RunOption("--volume", _volume(spec.cache_volume, CACHE_DIR, False), "Volume"))
    for container_port, host_port in spec.host_ports.items():
        opts.append(RunOption("--publish", _publish(spec.listen, host_port, container_port), "PublishPort"))
    opts.append(RunOption("--shm-size", format_size(spec.shm_size_bytes), "ShmSize"))
    for limit in spec.ulimits:
        opts.append(RunOption("--ulimit", f"{limit.name}={limit.soft}:{limit.hard}", "Ulimit"))
    if spec.selinux_label_disable:
        opts.append(RunOption("--security-opt", "label=disable", "SecurityLabelDisable"))
    for key, value in sorted(spec_labels(spec).items()):
        opts.append(RunOption("--label", f"{key}={value}", "Label"))
    for key, value in spec.environment:
        opts.append(RunOption("--env", f"{key}={value}", "Environment"))
    for opt in opts:
        _check_value(opt.flag, opt.value)
    return opts


def podman_run_argv(facts: ServingFacts) -> list[str]:
    """`podman run` options, image and command (without `podman run` and systemd's own flags)."""
    argv: list[str] = []
    for opt in run_options(facts.spec):
        argv += [opt.flag, opt.value]
    return [*argv, facts.spec.image, *facts.boot_command()]


def _header(facts: ServingFacts, install: list[str]) -> list[str]:
    models = ", ".join(m.name for m in facts.models) or "none"
    lines = [
        f"# Triton Inference Server for modelwiz ({printable(models)}), exported by `modelwiz export systemd`.",
        "# Same image, devices, mounts, ports and limits as `modelwiz up`; Triton loads the models",
        "# itself at start (--load-model, one at a time) since no `modelwiz up` runs at boot.",
    ]
    lines += [f"# {line}" for line in install]
    for skipped in facts.skipped:
        lines.append(f"# Not loaded: {printable(skipped)}")
    return lines


def _unit_section(facts: ServingFacts, install: list[str], *extra: str) -> list[str]:
    """The comment header and the [Unit] section both forms share."""
    lines = [*_header(facts, install), ""]
    lines += [
        "[Unit]",
        f"Description=Triton Inference Server ({facts.spec.name}, modelwiz)",
        *extra,
        "Wants=network-online.target",
        "After=network-online.target",
    ]
    return lines


def quadlet_unit(facts: ServingFacts) -> str:
    """A Quadlet `<name>.container` file (podman >= 4.7)."""
    name = facts.spec.name
    install = [
        f"Install: save as ~/.config/containers/systemd/{name}.container (rootless) or",
        f"/etc/containers/systemd/{name}.container (root), then `systemctl [--user] daemon-reload`",
        f"and `systemctl [--user] start {name}`. Rootless, at boot: `loginctl enable-linger $USER`.",
    ]
    lines = _unit_section(facts, install)
    lines += [
        "",
        "[Container]",
        f"Image={systemd_word(facts.spec.image)}",
    ]
    extra: list[str] = []
    for opt in run_options(facts.spec):
        if opt.quadlet_key is None:
            extra += [opt.flag, opt.value]
        elif opt.quadlet_key == "SecurityLabelDisable":
            lines.append("SecurityLabelDisable=true")
        elif opt.quadlet_key in ("Label", "Environment"):
            lines.append(f"{opt.quadlet_key}={systemd_word(opt.value)}")
        else:
            lines.append(f"{opt.quadlet_key}={opt.value.replace('%', '%%')}")
    if extra:
        lines.append("PodmanArgs=" + " ".join(systemd_word(a) for a in extra))
    lines.append("Exec=" + " ".join(systemd_word(a) for a in facts.boot_command()))
    lines += [
        "",
        "[Service]",
        "Restart=on-failure",
        "# The first start may pull a large image.",
        "TimeoutStartSec=1800",
        "",
        "[Install]",
        "WantedBy=multi-user.target default.target",
    ]
    return "\n".join(lines) + "\n"


def service_unit(facts: ServingFacts, *, podman: str = "/usr/bin/podman") -> str:
    """A plain `<name>.service` running `podman run` (podman < 4.7; `generate systemd --new` shape)."""
    name = facts.spec.name
    install = [
        f"Install: save as ~/.config/systemd/user/{name}.service (rootless) or",
        f"/etc/systemd/system/{name}.service (root), then `systemctl [--user] daemon-reload` and",
        f"`systemctl [--user] enable --now {name}`. Rootless, at boot: `loginctl enable-linger $USER`.",
    ]
    podman = systemd_word(podman)
    run = [
        podman,
        "run",
        "--cidfile=%t/%n.ctr-id",
        "--cgroups=no-conmon",
        "--rm",
        "--sdnotify=conmon",
        "--replace",
        "-d",
    ]
    argv = podman_run_argv(facts)
    # %t / %n are systemd specifiers here, so these first words are written as they are.
    start = " ".join(run[:2]) + " \\\n\t" + " ".join(run[2:])
    words = [systemd_word(a) for a in argv]
    pairs: list[str] = []
    i = 0
    options_end = len(argv) - len(facts.boot_command()) - 1
    while i < options_end:
        pairs.append(f"{words[i]} {words[i + 1]}")
        i += 2
    pairs.append(" ".join(words[options_end:]))
    lines = _unit_section(facts, install, "Documentation=man:podman-generate-systemd(1)")
    lines += [
        "RequiresMountsFor=%t/containers",
        "",
        "[Service]",
        "Environment=PODMAN_SYSTEMD_UNIT=%n",
        "Restart=on-failure",
        "# The first start may pull a large image.",
        "TimeoutStartSec=1800",
        "TimeoutStopSec=70",
        "ExecStartPre=/bin/rm -f %t/%n.ctr-id",
        "ExecStart=" + start + " \\\n\t" + " \\\n\t".join(pairs),
        f"ExecStop={podman} stop --ignore -t 10 --cidfile=%t/%n.ctr-id",
        f"ExecStopPost={podman} rm -f --ignore -t 10 --cidfile=%t/%n.ctr-id",
        "Type=notify",
        "NotifyAccess=all",
        "",
        "[Install]",
        "WantedBy=multi-user.target default.target",
    ]
    return "\n".join(lines) + "\n"


def pick_format(podman_version: tuple[int, ...] | None) -> str:
    """Quadlet where the podman here has every key used; the plain service otherwise."""
    if podman_version is None or tuple(podman_version[:2]) >= QUADLET_MIN_PODMAN:
        return "quadlet"
    return "service"


def render_systemd(facts: ServingFacts, fmt: str, *, podman: str = "/usr/bin/podman") -> str:
    if fmt == "quadlet":
        return quadlet_unit(facts)
    if fmt == "service":
        return service_unit(facts, podman=podman)
    raise ValueError(f"unknown format {fmt!r}")
