"""Putting failed rows of a queue (the inbound spool, the outbox) back to work: one UPDATE
shared by `inbound retry` and `outbox retry`, so both choose rows the same way."""

from __future__ import annotations

import json

from gateway.storage.database import Database, Statement


async def requeue(
    database: Database,
    table: str,
    changes: str,
    values: tuple[object, ...],
    ids: list[int] | None,
    which: str = "status = 'failed'",
    also: tuple[Statement, ...] = (),
) -> list[int]:
    """`UPDATE table SET changes WHERE which`, for the rows `ids` (every such row when
    None), and the statements `also`, in one transaction; returns the ids changed, in
    order. `table`, `changes` and `which` are the caller's own SQL, never an operator's."""
    chosen: str = ""
    chosen_values: tuple[object, ...] = ()
    if ids is not None:  # json_each: any number of ids, past SQLite's limit on parameters
        chosen, chosen_values = " AND id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)
    async with database.transaction():
        updated, *_ = await database.execute_all(
            [(f"UPDATE {table} SET {changes} WHERE ({which}){chosen} RETURNING id", (*values, *chosen_values)), *also]
        )
    return sorted(row["id"] for row in updated.rows)
