"""`mailbot check`: how a message is read and what mailbot would do, without doing it."""

from __future__ import annotations

from typing import Any

from mailbot.parsing import parse_mail


def explain(rt: Any, raw: bytes, show_mail: bool = False) -> str:
    """Render the explanation of one message (dry run: nothing is written or sent)."""
    mail = parse_mail(raw, rt.pipeline.language)
    plan = rt.planner.evaluate(mail, rt.clock.now())
    template = rt.composer.env.get_template("cli/check.txt")
    return template.render(mail=plan.mail, plan=plan, show_mail=show_mail,
                           prefix=rt.config.list.incident_prefix,
                           already=rt.store.is_processed(mail.key))
