"""PyMySQL as the Lambda project's MySQL/MariaDB driver, standing in for mysqlclient (MySQLdb).

Why PyMySQL: it is pure Python, so the same build runs on arm64 and x86_64 Lambda; mysqlclient is
a C extension that needs libmariadb/libmysqlclient, which the Lambda runtime does not have (it
would need a layer built for the architecture). PyMySQL serves the part of the MySQLdb API that
Django's MySQL backend uses.

Two adjustments make it a drop-in for Django on Lambda:

- Django (5.2 and 6.x) asks for mysqlclient 2.2.1 or newer and reads ``MySQLdb.version_info``;
  PyMySQL reports 1.4.6 there by default, so it is told to report 2.2.1.
- PyMySQL applies ``connect_timeout`` to the TCP connect only, then waits for the server's
  greeting without a limit: a server behind a firewall that accepts and never answers would hold
  the invocation until Lambda kills it. Here the handshake is held to ``connect_timeout`` too.
"""

from __future__ import annotations

from typing import Any

import pymysql
from pymysql.connections import Connection

# The version Django's MySQL backend requires of MySQLdb (mysqlclient).
REPORTED_MYSQLCLIENT_VERSION = (2, 2, 1, "final", 0)


class HandshakeTimeoutConnection(Connection):
    """A PyMySQL connection whose handshake (greeting, authentication) is held to
    ``connect_timeout``; later reads keep ``read_timeout`` (none by default)."""

    def connect(self, sock: Any = None) -> None:
        read_timeout = self._read_timeout
        self._read_timeout = self.connect_timeout
        try:
            super().connect(sock)
        finally:
            # The next read sets the socket's timeout back to this.
            self._read_timeout = read_timeout


def install() -> None:
    """Make ``import MySQLdb`` (what Django imports) give PyMySQL, adjusted as above."""
    pymysql.version_info = REPORTED_MYSQLCLIENT_VERSION
    pymysql.connect = pymysql.Connect = HandshakeTimeoutConnection
    pymysql.install_as_MySQLdb()
