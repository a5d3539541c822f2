"""Tests of mailbot/ingress/: SMTP on loopback, IMAP against a real, private Dovecot
(tests/support/dovecot.py; its fixtures in conftest.py here)."""
