"""Ingress: the ways mail reaches mailbot (smtp, imap, pipe).

Each ingress gets raw message bytes into the spool and does nothing else; a message is
acknowledged to its source only after `Spool.put` has made it durable.
"""
