"""Django's `flush`, able to empty the audit tables on SQLite as well.

On PostgreSQL flush uses TRUNCATE, which the append-only trigger does not see (by
design: audit/migrations/0004). On SQLite it is a DELETE per table, which the triggers
of migration 0005 refuse; this opens SQLite's "flush" gate (audit/gate.py) inside the
flush's own transaction, so flush empties the database there too (the test runner flushes
between transactional tests this way). An emptied audit table with no chain head
verifies as an empty chain on both databases.
"""

from django.core.management.commands import flush
from django.db import connections

from audit import gate


class Command(flush.Command):
    def handle(self, **options):
        connection = connections[options["database"]]
        if (
            connection.vendor != "sqlite"
            or gate.GATE_TABLE not in connection.introspection.table_names()
        ):
            return super().handle(**options)
        ops = connection.ops
        execute_sql_flush = ops.execute_sql_flush
        token = gate.new_token()

        def through_the_gate(sql_list):
            # One transaction: the gate row is never visible outside it.
            return execute_sql_flush(
                [gate.open_sql(token, gate.FLUSH), *sql_list, gate.close_sql(token)]
            )

        ops.execute_sql_flush = through_the_gate
        try:
            return super().handle(**options)
        finally:
            del ops.execute_sql_flush
