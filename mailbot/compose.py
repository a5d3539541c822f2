"""Compose: render a Jinja2 template into an OutgoingMail.

Takes a template name, its variables, recipients and threading; hands a complete
RFC 5322 message (bytes) with its envelope to the outbox. All wording lives in
`templates/mail/NAME.txt` (blocks `subject` and `body`) and, where it helps,
`templates/mail/NAME.html` (an HTML alternative).

Mail content only ever reaches a template as a variable, never as template source, and
every header value passes through `clean_header` so CR/LF from a subject or a name can
never start a new header.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from email.utils import format_datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import jinja2
import jinja2.bccache

from mailbot import wire
from mailbot.config import ConfigError, builtin_templates_dir
from mailbot.formatting import format_duration, format_when
from mailbot.models import OutgoingMail

if TYPE_CHECKING:  # the rules package imports all of parsing: `mailbot show` needs none
    from mailbot.rules.recipients import RecipientPolicy

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]+")


def clean_header(value: str, limit: int = 400) -> str:
    """One line, no control characters, bounded length: safe in any header."""
    value = _CONTROL.sub(" ", value or "")
    value = re.sub(r"\s+", " ", value).strip()
    # Text that only looks like an RFC 2047 encoded word (a subject kept as written because
    # its words would not decode) would be decoded again by the stdlib header parser when
    # set, and "=?utf-8?Q?=FF?=" then yields surrogates that make as_bytes() raise: the
    # declaration landed in failed/ (tests/system/test_hostile.py). A zero-width space
    # keeps it literal text for us and for every reader.
    value = value.replace("=?", "=\u200b?")
    if len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    return value


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """Jinja2's file cache, except that nothing in it can fail a mail: a damaged entry
    (Jinja2 itself only survives a damaged code part, not a cut-short header) is
    compiled again, and a failed write (disk full) keeps the template in memory only."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # noqa: BLE001 - any damage means: compile it
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError as exc:
            log.warning("template cache not written (%s); templates still work", exc)


def has_overrides(templates_dir: Path) -> bool:
    """Whether `[templates] dir` is a folder of the operator's, searched before ours."""
    return Path(templates_dir) != builtin_templates_dir()


def template_search_path(templates_dir: Path) -> list[Path]:
    """Where templates are looked up: the configured folder, then the built-in one."""
    if not has_overrides(templates_dir):
        return [templates_dir]
    return [templates_dir, builtin_templates_dir()]


def check_overrides(env: jinja2.Environment, templates_dir: Path) -> None:
    """ConfigError naming the first mail template of `[templates] dir` that does not
    compile, or lacks a block its built-in counterpart defines (a mail's Subject: comes
    from its `subject` block). The built-in ones ship tested; an operator's override can
    be broken, and a process that would render with it must not take mail it then cannot
    answer (`serve` refuses to start, `ingest` defers with 75). The site's templates are
    compiled by the site's own environment, in `check-config` and `publish`."""
    if not has_overrides(templates_dir):
        return
    builtin = builtin_templates_dir()
    for path in sorted(Path(templates_dir).rglob("*")):
        name = path.relative_to(templates_dir).as_posix()
        if not path.is_file() or name.startswith("site/") or \
                path.suffix not in (".txt", ".html"):
            continue
        try:
            blocks = set(env.get_template(name).blocks)
            shipped = builtin / name
            wanted = set(env.parse(shipped.read_text("utf-8")).find_all(jinja2.nodes.Block)) \
                if shipped.is_file() else set()
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"template {name} line {exc.lineno} ({path}): "
                              f"{exc.message}") from None
        missing = sorted({block.name for block in wanted} - blocks)
        if missing:
            raise ConfigError(f"template {name} ({path}) lacks "
                              + ", ".join(f"{{% block {b} %}}" for b in missing)
                              + ", which the built-in one defines and mailbot renders")


def make_environment(templates_dir: Path, cache_dir: Path | None = None
                     ) -> jinja2.Environment:
    """The one Jinja2 environment for mail and pages (autoescape for .html only).

    `cache_dir`: where compiled templates are kept between processes (Jinja2's
    `FileSystemBytecodeCache`: keyed by the template's source checksum, so an edited
    template is compiled afresh; written to a temporary file and renamed, and a damaged
    entry is compiled again). Each `mailbot ingest` run by an MTA is a new process: it
    loads the two or three templates it needs instead of compiling them (~20 ms)."""
    bytecode_cache = None
    if cache_dir is not None:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            bytecode_cache = _TemplateCache(str(cache_dir))
        except OSError:
            bytecode_cache = None  # a cache is an optimisation: never a reason to stop
    env = jinja2.Environment(
        bytecode_cache=bytecode_cache,
        # [templates] dir overrides the built-in templates one file at a time.
        loader=jinja2.FileSystemLoader([str(d) for d in template_search_path(templates_dir)]),
        autoescape=jinja2.select_autoescape(["html", "htm", "xml"],
                                            default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Templates are read once per process (restart to pick up an edit): otherwise
        # every render stats each template it uses to see whether it changed.
        auto_reload=False,
    )
    # Mail shows "-" where a value is missing, so a label never trails off into nothing.
    env.filters["when"] = partial(format_when, missing="-")
    env.filters["ago"] = partial(format_duration, missing="-")
    return env


class Composer:
    """Builds OutgoingMail from templates with the headers every mailbot mail carries."""

    def __init__(self, env: jinja2.Environment, bot_address: str, bot_name: str,
                 common: dict[str, Any] | None = None, *, list_address: str = "",
                 recipients: RecipientPolicy | None = None,
                 builtin_env: jinja2.Environment | None = None) -> None:
        self.env = env
        # With a [templates] dir: the built-in templates alone, to write a mail whose
        # override fails to render (see `_render_any`).
        self.builtin_env = builtin_env
        # Every mail passes here, so this is where mail to anyone outside the list and
        # the allowed addresses is stopped (rules/recipients.py); None: no filter.
        self.recipients = recipients
        self.bot_address = bot_address
        self.bot_name = bot_name
        self.domain = bot_address.rsplit("@", 1)[-1]
        # Two mailbots whose bot addresses share a domain (one per list) must not write
        # the same Message-ID for the same day's digest, or for the acks of one message
        # cross-posted to both lists: a client keeps only one of two equal ids.
        instance = f"{bot_address.lower()} {list_address.lower()}"
        self._instance = hashlib.sha1(instance.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        self.list_address = list_address
        self.common = dict(common or {})
        self._html: dict[int, frozenset[str]] = {}  # by id() of the environment

    def _html_templates(self, env: jinja2.Environment) -> frozenset[str]:
        """Templates with an HTML alternative in `env` (listed once: a walk of the
        directory)."""
        if id(env) not in self._html:
            self._html[id(env)] = frozenset(
                name[len("mail/"):-len(".html")]
                for name in env.list_templates(extensions=["html"])
                if name.startswith("mail/"))
        return self._html[id(env)]

    def _render_any(self, template: str, context: dict[str, Any], what: str
                    ) -> tuple[str, str, str | None]:
        """(subject, text, HTML or None) of `template`. An override that fails to render
        (a variable mailbot does not pass, say: compiling cannot tell) must not leave the
        people unanswered: the built-in template writes the mail, and the log says which
        override to fix."""
        try:
            return self._render(self.env, template, context, self._html_templates(self.env))
        except Exception as exc:  # any error of an operator's template
            if self.builtin_env is None:
                raise
            log.error("%s: the [templates] dir override of mail/%s failed (%s: %s); the "
                      "mail is written with the built-in template: fix the override (then "
                      "restart serve, if it runs)", what, template, type(exc).__name__, exc)
            return self._render(self.builtin_env, template, context,
                                self._html_templates(self.builtin_env))

    @staticmethod
    def _render(env: jinja2.Environment, template: str, context: dict[str, Any],
                html_names: frozenset[str]) -> tuple[str, str, str | None]:
        text_tmpl = env.get_template(f"mail/{template}.txt")
        ctx = text_tmpl.new_context(context)
        subject = clean_header("".join(text_tmpl.blocks["subject"](ctx)))
        body = "".join(text_tmpl.blocks["body"](ctx))
        html = None
        if template in html_names:
            html = env.get_template(f"mail/{template}.html").render(context)
        return subject, body, html

    def may_mail(self, address: str) -> bool:
        """Whether mailbot may send to `address` (see `rules/recipients.py`)."""
        return self.recipients is None or self.recipients.allows(address)

    def message_id_for(self, name: str) -> str:
        """A deterministic Message-ID, so a re-run after a crash makes the same mail."""
        return f"mailbot.{name}.{self._instance}@{self.domain}"

    def compose(
        self,
        template: str,
        *,
        name: str,
        to: Iterable[str],
        cc: Iterable[str] = (),
        now: dt.datetime,
        in_reply_to: str = "",
        references: Iterable[str] = (),
        auto_submitted: str = "auto-replied",
        attachments: Iterable[tuple[str, str, bytes]] = (),
        **variables: Any,
    ) -> OutgoingMail:
        """Render `templates/mail/<template>.txt` (and .html if present) into a mail."""
        context = {**self.common, **variables, "now": now}
        subject, body, html = self._render_any(template, context, variables.get("ref") or name)

        to = [a for a in (clean_header(x) for x in to) if a]
        cc = [a for a in (clean_header(x) for x in cc) if a and a not in to]
        if self.recipients is not None:
            to, withheld = self.recipients.split(to)
            cc, withheld_cc = self.recipients.split(cc)
            if withheld or withheld_cc:
                log.warning("%s: %s not mailed to %s: not the list nor an allowed address",
                            variables.get("ref") or name, template,
                            ", ".join([*withheld, *withheld_cc]))
        message_id = self.message_id_for(name)
        refs = [clean_header(r) for r in references if r]
        if in_reply_to and in_reply_to not in refs:
            refs.append(in_reply_to)
        # RFC 5322 3.6.4: keep the thread root and the most recent ids.
        kept = refs if len(refs) <= 20 else [refs[0], *refs[-19:]]
        headers = [
            "From: " + wire.mailbox(clean_header(self.bot_name), self.bot_address),
            wire.address_header("To", to),
            wire.address_header("Cc", cc),
            # A plain Reply to anything mailbot writes reaches the team, not the bot.
            wire.address_header("Reply-To", [self.list_address] if self.list_address else []),
            wire.text_header("Subject", subject),
            "Date: " + format_datetime(now),
            wire.msgid_header("Message-ID", [message_id]),
            wire.msgid_header("In-Reply-To", [clean_header(in_reply_to)] if in_reply_to else []),
            wire.msgid_header("References", kept),
            # RFC 3834: marks us as automatic so well-behaved responders leave us alone;
            # X-Loop and Outlook's suppression header cover the rest.
            wire.text_header("Auto-Submitted", clean_header(auto_submitted)),
            "X-Auto-Response-Suppress: All",
            "X-Loop: " + self.bot_address,
            wire.text_header("X-Mailbot-Kind", clean_header(template)),
        ]
        attachments = [(clean_header(f), ctype, data) for f, ctype, data in attachments]
        message = wire.assemble(headers, body, html=html, attachments=attachments,
                                seed=message_id)
        return OutgoingMail(
            name=name,
            mail_from=self.bot_address,
            recipients=tuple(dict.fromkeys([*to, *cc])),
            message=message,
            message_id=message_id,
            kind=template,
        )


def mail_name(cause: str, kind: str, index: int = 0) -> str:
    """A stable outbox/Message-ID name for the `index`-th `kind` mail caused by `cause`."""
    digest = hashlib.sha1(cause.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    return f"{digest}.{kind}.{index}"
