"""mailbot: an incident mailing-list daemon.

Flow: ingress (smtp, imap, pipe) -> spool -> parsing -> rules -> store -> outbox,
with the scheduler feeding the outbox on its own clock.
"""

__version__ = "0.1.0"
