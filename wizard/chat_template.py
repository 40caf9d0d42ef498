"""A model's chat template, loaded from its weights folder and rendered the way transformers does.

transformers renders `apply_chat_template` with a sandboxed Jinja environment
(huggingface/transformers `src/transformers/utils/chat_template_utils.py`, `_compile_jinja_template`):
`ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)` with the `loopcontrols`
extension and a `{% generation %}` tag, globals `raise_exception` and `strftime_now`, its own `tojson`
filter (no HTML escaping, `ensure_ascii=False`), and the tokenizer's special tokens (`bos_token`,
`eos_token`, ...) as template variables. This module does the same with jinja2 alone, so modelwiz can
build a prompt without transformers, and can tell whether two models render chats identically.

Where the template lives (transformers `tokenization_utils_base.py`): a `chat_template.jinja` file next
to `tokenizer_config.json` wins over the config's `chat_template` key ("the file template clobbers any
template in the config", transformers `tests/test_tokenization_common.py`), which is either a string or
a list of `{"name", "template"}` entries (`get_chat_template` uses `default` unless a name is asked for).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard.errors import ModelwizError

if TYPE_CHECKING:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
DEFAULT_TEMPLATE_NAME = "default"
# The special tokens transformers passes to the template (`special_tokens_map` attributes).
SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

Message = Mapping[str, Any]


def _raise_exception(message: str) -> None:
    import jinja2

    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _environment() -> ImmutableSandboxedEnvironment:
    """transformers' environment. jinja2 (~12 ms to import) loads here, when a template is first
    rendered: reading and comparing templates (which models chat at /v1) does not need it."""
    import jinja2.ext
    from jinja2 import nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _GenerationTag(jinja2.ext.Extension):
        """`{% generation %}...{% endgeneration %}` renders its body (transformers' AssistantTracker only
        records where the body lands, for training masks; rendering is unchanged)."""

        tags = {"generation"}  # noqa: RUF012 - jinja2 declares `tags` as a plain class attribute

        def parse(self, parser: jinja2.parser.Parser) -> nodes.Node:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Callable[[], str]) -> str:
            return caller()

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


@dataclass(frozen=True)
class ChatTemplate:
    """One model's chat template and the special-token strings it may use."""

    source: str
    origin: Path  # the file the template came from
    special_tokens: Mapping[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Equal for two models exactly when they render every conversation identically
        (same template text, same special-token strings)."""
        payload = json.dumps({"template": self.source, "tokens": dict(self.special_tokens)}, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool = True, **variables: Any) -> str:
        """The prompt text for `messages`, as `apply_chat_template(..., tokenize=False)` returns it.
        `variables` are extra template variables (`tools`, `date_string`, ...), as transformers allows."""
        import jinja2

        try:
            template = _environment().from_string(self.source)
        except jinja2.exceptions.TemplateSyntaxError as error:
            raise ModelwizError(
                f"the chat template in {self.origin} is not valid Jinja (line {error.lineno}: {error.message})",
                hint="fix or remove the template, or chat through /v1/completions",
            ) from error
        context: dict[str, Any] = {**self.special_tokens, **variables}
        try:
            return template.render(
                messages=[dict(m) for m in messages], add_generation_prompt=add_generation_prompt, **context
            )
        except jinja2.exceptions.TemplateError as error:
            raise ModelwizError(
                f"the chat template in {self.origin} refused the conversation: {error.message or error}",
                hint="this model's template sets the rules (for example no system message, or strictly alternating user/assistant turns)",
            ) from error


def load_chat_template(weights_dir: Path, *, name: str | None = None) -> ChatTemplate | None:
    """The chat template in a model's weights folder, or None when the model has none (a base model).

    `name` picks one of several named templates (`tool_use`, `rag`, ...); without it the `default`
    one is used, and a list without `default` is refused, as transformers' `get_chat_template` does."""
    config = _read_json(weights_dir / TOKENIZER_CONFIG)
    tokens = _special_tokens(config, weights_dir)
    jinja_file = weights_dir / CHAT_TEMPLATE_FILE
    if jinja_file.is_file():
        try:
            source = jinja_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ModelwizError(f"cannot read {jinja_file}: {error}", hint="download the model again") from error
        return ChatTemplate(source=source, origin=jinja_file, special_tokens=tokens)
    raw = config.get("chat_template")
    if raw is None:
        return None
    source = _pick_template(raw, name, weights_dir / TOKENIZER_CONFIG)
    return ChatTemplate(source=source, origin=weights_dir / TOKENIZER_CONFIG, special_tokens=tokens)


def _pick_template(raw: object, name: str | None, origin: Path) -> str:
    if isinstance(raw, str):
        if name not in (None, DEFAULT_TEMPLATE_NAME):
            raise ModelwizError(f"{origin} has one chat template, not one named {name!r}", hint="leave the name out")
        return raw
    named: dict[str, str] = {}
    if isinstance(raw, list):
        for entry in raw:
            if (
                isinstance(entry, dict)
                and isinstance(entry.get("name"), str)
                and isinstance(entry.get("template"), str)
            ):
                named[entry["name"]] = entry["template"]
    if not named:
        raise ModelwizError(
            f"{origin}: chat_template is neither a string nor a list of named templates",
            hint="download the model again, or fix its tokenizer_config.json",
        )
    wanted = name or DEFAULT_TEMPLATE_NAME
    if wanted in named:
        return named[wanted]
    raise ModelwizError(
        f"{origin} has no chat template named {wanted!r}", hint=f"choose one of: {', '.join(sorted(named))}"
    )


def _special_tokens(config: Mapping[str, Any], weights_dir: Path) -> dict[str, str]:
    """`bos_token`, `eos_token`, ... as strings: tokenizer_config.json first, then special_tokens_map.json.
    A token is a string or an AddedToken dict (`{"content": "<s>", ...}`); null means unset."""
    tokens = {key: text for key in SPECIAL_TOKEN_KEYS if (text := _token_text(config.get(key))) is not None}
    missing = [key for key in SPECIAL_TOKEN_KEYS if key not in tokens]
    map_file = weights_dir / SPECIAL_TOKENS_MAP
    if missing and map_file.is_file():
        extra = _read_json(map_file)
        for key in missing:
            text = _token_text(extra.get(key))
            if text is not None:
                tokens[key] = text
    return tokens


def _token_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ModelwizError(
            f"{path} is missing", hint="download the model's tokenizer files (modelwiz download)"
        ) from error
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelwizError(f"cannot read {path}: {error}", hint="download the model again") from error
    if not isinstance(data, dict):
        raise ModelwizError(f"{path} is not a JSON object", hint="download the model again")
    return data
