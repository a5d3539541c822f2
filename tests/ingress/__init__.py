"""IMAP ingress tests against a real, private Dovecot (see dovecot.py)."""
