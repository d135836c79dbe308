"""Azure Monitor state: the data collection rule, its streams and the tables rows land in
(`Monitor`), and the KQL queries run over them with duckdb-kql. The HTTP side is `monitor.py`.

The DCR, its stream and columns, and the workspace come from the estate's `monitor:` key, else
from defaults derived from the tenant, with the columns read from the infra's generated
`infra/app/outcome-columns.json` (data, not the app's code: the stand-in imports nothing of it).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from emulator.clock import format_instant, parse_instant
from emulator.errors import ArmError

INGESTION_AUDIENCES = ("https://monitor.azure.com", "https://monitor.azure.com/")
QUERY_AUDIENCES = ("https://api.loganalytics.io", "https://api.loganalytics.io/")
INGESTION_API_VERSION = "2023-01-01"
MAX_INGESTION_BYTES = 1024 * 1024  # 1 MB per call, as the SDK chunks it (uncompressed JSON)
MAX_FIELD_BYTES = 64 * 1024
DEFAULT_COLUMNS_FILE = (
    Path(__file__).resolve().parent.parent / "infra" / "app" / "outcome-columns.json"
)
DEFAULT_STREAM = "Custom-LifeboatOutcomes_CL"
DEFAULT_ROW_LIMIT = 500_000  # Log Analytics answers at most 500,000 rows

_SQL_TYPES = {
    "datetime": "TIMESTAMPTZ",
    "string": "VARCHAR",
    "long": "BIGINT",
    "int": "INTEGER",
    "real": "DOUBLE",
    "boolean": "BOOLEAN",
    "bool": "BOOLEAN",
    "dynamic": "JSON",
    "guid": "VARCHAR",
    "timespan": "INTERVAL",
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Stream:
    name: str
    table: str
    columns: list[tuple[str, str]]


@dataclass
class MonitorConfig:
    dcr_immutable_id: str
    workspace_id: str
    streams: dict[str, Stream]
    row_limit: int = DEFAULT_ROW_LIMIT

    @classmethod
    def from_estate(
        cls, extra: Mapping[str, Any], tenant_id: str, columns_file: Path = DEFAULT_COLUMNS_FILE
    ) -> MonitorConfig:
        raw = extra.get("monitor") or {}
        digest = hashlib.sha256(tenant_id.encode()).hexdigest()
        dcr = str(raw.get("dcrImmutableId") or f"dcr-{digest[:32]}")
        workspace = str(raw.get("workspaceId") or uuid.UUID(digest[32:64]))
        streams: dict[str, Stream] = {}
        for name, spec in (raw.get("streams") or {}).items():
            columns = [(str(c["name"]), str(c["type"])) for c in spec["columns"]]
            streams[name] = Stream(name, str(spec.get("table") or _table_of(name)), columns)
        if not streams:
            columns = [
                (str(c["name"]), str(c["type"]))
                for c in json.loads(columns_file.read_text(encoding="utf-8"))
            ]
            streams[DEFAULT_STREAM] = Stream(DEFAULT_STREAM, _table_of(DEFAULT_STREAM), columns)
        for stream in streams.values():
            for column, kind in stream.columns:
                if not _NAME.match(column) or kind.lower() not in _SQL_TYPES:
                    raise ValueError(f"monitor stream {stream.name}: bad column {column}:{kind}")
        return cls(dcr_immutable_id=dcr, workspace_id=workspace, streams=streams)


def _table_of(stream: str) -> str:
    return stream.removeprefix("Custom-")


class QueryError(Exception):
    def __init__(self, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.inner = inner


@dataclass
class Monitor:
    """The rows ingested so far, in DuckDB, one table per stream's table."""

    config: MonitorConfig
    ingested: int = 0
    calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _con: Any = None

    def __post_init__(self) -> None:
        import duckdb_kql

        self._con = duckdb_kql.connect()
        self._con.execute("CREATE SCHEMA store")
        for stream in self.config.streams.values():
            columns = ", ".join(
                f'"{name}" {_SQL_TYPES[kind.lower()]}' for name, kind in stream.columns
            )
            self._con.execute(f'CREATE TABLE IF NOT EXISTS store."{stream.table}" ({columns})')

    # ---------------------------------------------------------------- ingestion

    def ingest(self, dcr: str, stream_name: str, rows: Any) -> None:
        if dcr != self.config.dcr_immutable_id:
            raise ArmError(
                404,
                "NotFound",
                f"Data collection rule with immutable Id '{dcr}' not found.",
            )
        stream = self.config.streams.get(stream_name)
        if stream is None:
            raise ArmError(
                400,
                "InvalidStream",
                f"Stream '{stream_name}' is not declared in data collection rule '{dcr}'.",
            )
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ArmError(400, "InvalidArgument", "The body must be a JSON array of objects.")
        declared = dict(stream.columns)
        values: list[list[Any]] = []
        for index, row in enumerate(rows):
            unknown = sorted(set(row) - set(declared))
            if unknown:
                raise ArmError(
                    400,
                    "InvalidArgument",
                    f"Row {index}: column(s) {', '.join(unknown)} are not declared in stream "
                    f"'{stream_name}'.",
                )
            values.append(
                [_convert(row.get(name), kind, name, index) for name, kind in stream.columns]
            )
        if not values:
            return
        marks = ", ".join("?" for _ in stream.columns)
        with self._lock:
            self._con.executemany(f'INSERT INTO store."{stream.table}" VALUES ({marks})', values)
            self.ingested += len(values)
            self.calls += 1

    # -------------------------------------------------------------------- query

    def query(self, workspace: str, text: str, timespan: str | None, now: datetime) -> Any:
        import duckdb_kql

        if workspace.lower() != self.config.workspace_id.lower():
            raise ArmError(
                404,
                "WorkspaceNotFoundError",
                f"The workspace could not be found (workspace '{workspace}').",
            )
        if not text or not text.strip():
            raise QueryError("SemanticError", "The query is empty.")
        start, end = parse_timespan(timespan, now) if timespan else (None, None)
        with self._lock:
            for stream in self.config.streams.values():
                where = ""
                if start is not None and end is not None:
                    where = (
                        f" WHERE \"TimeGenerated\" >= TIMESTAMPTZ '{start.isoformat()}'"
                        f" AND \"TimeGenerated\" <= TIMESTAMPTZ '{end.isoformat()}'"
                    )
                self._con.execute(
                    f'CREATE OR REPLACE VIEW main."{stream.table}" AS '
                    f'SELECT * FROM store."{stream.table}"{where}'
                )
            try:
                relation = duckdb_kql.query(self._con, text, query_now=now)
                names = list(relation.columns)
                kinds = [_kql_type(str(t)) for t in relation.types]
                rows = relation.limit(self.config.row_limit + 1).fetchall()
            except duckdb_kql.KqlUnsupportedError as e:
                raise QueryError(
                    "UnsupportedError", "The query uses KQL the stand-in cannot run.", str(e)
                ) from e
            except duckdb_kql.KqlError as e:
                raise QueryError(
                    "SyntaxError", "A recognition error occurred in the query.", str(e)
                ) from e
            except Exception as e:  # DuckDB refused what duckdb-kql produced
                raise QueryError("SemanticError", "The query could not be run.", str(e)) from e
        body: dict[str, Any] = {
            "tables": [
                {
                    "name": "PrimaryResult",
                    "columns": [{"name": n, "type": k} for n, k in zip(names, kinds, strict=True)],
                    "rows": [
                        [_json_value(v, k) for v, k in zip(row, kinds, strict=True)]
                        for row in rows[: self.config.row_limit]
                    ],
                }
            ]
        }
        if len(rows) > self.config.row_limit:
            body["error"] = {
                "code": "PartialError",
                "message": "There were some errors when processing your query.",
                "details": [
                    {
                        "code": "EngineError",
                        "message": "Something went wrong processing your query on the server.",
                        "innererror": {
                            "code": "-2133196797",
                            "message": "Query result set has exceeded the internal record count "
                            f"limit {self.config.row_limit} records",
                            "severity": 2,
                            "severityName": "Error",
                        },
                    }
                ],
            }
        return body

    def clear(self) -> None:
        with self._lock:
            for stream in self.config.streams.values():
                self._con.execute(f'DELETE FROM store."{stream.table}"')
            self.ingested = 0
            self.calls = 0

    def counts(self) -> dict[str, int]:
        with self._lock:
            counts = {}
            for s in self.config.streams.values():
                row = self._con.execute(f'SELECT count(*) FROM store."{s.table}"').fetchone()
                counts[s.table] = int(row[0])
            return counts


def _convert(value: Any, kind: str, name: str, index: int) -> Any:
    if value is None:
        return None
    kind = kind.lower()

    def bad() -> ArmError:
        return ArmError(
            400,
            "InvalidArgument",
            f"Row {index}: column '{name}' expects {kind}, "
            f"got {type(value).__name__} {value!r:.80}.",
        )

    if kind == "datetime":
        if not isinstance(value, str):
            raise bad()
        try:
            return parse_instant(value)
        except ValueError:
            raise bad() from None
    if kind in ("string", "guid"):
        if not isinstance(value, str):
            raise bad()
        if len(value.encode("utf-8")) > MAX_FIELD_BYTES:
            return value.encode("utf-8")[:MAX_FIELD_BYTES].decode("utf-8", "ignore")
        return value
    if kind in ("long", "int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if kind == "real":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad()
        return float(value)
    if kind in ("boolean", "bool"):
        if not isinstance(value, bool):
            raise bad()
        return value
    if kind == "dynamic":
        return json.dumps(value, separators=(",", ":"))
    if kind == "timespan":
        if not isinstance(value, str):
            raise bad()
        return value
    raise bad()


def _kql_type(sql_type: str) -> str:
    t = sql_type.upper()
    if t.startswith("TIMESTAMP") or t == "DATE":
        return "datetime"
    if t in ("VARCHAR", "UUID") or t.startswith("VARCHAR"):
        return "string"
    if t in ("BIGINT", "HUGEINT", "UBIGINT", "UINTEGER"):
        return "long"
    if t in ("INTEGER", "SMALLINT", "TINYINT", "USMALLINT", "UTINYINT"):
        return "int"
    if t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL"):
        return "real"
    if t == "BOOLEAN":
        return "bool"
    if t == "INTERVAL":
        return "timespan"
    return "dynamic"


def _json_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "datetime":
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return format_instant(value)
        return str(value)
    if kind == "timespan" and isinstance(value, timedelta):
        total = value.total_seconds()
        sign = "-" if total < 0 else ""
        total = abs(total)
        days, rest = divmod(total, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        head = f"{int(days)}." if days else ""
        return f"{sign}{head}{int(hours):02d}:{int(minutes):02d}:{seconds:010.7f}"
    if kind == "dynamic":
        # The API returns dynamic values as JSON text.
        return value if isinstance(value, str) else json.dumps(value, default=str)
    if kind == "real":
        return float(value)
    return value


_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip().upper())
    if not match or text.strip().upper() in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


def parse_timespan(text: str, now: datetime) -> tuple[datetime, datetime]:
    """ISO 8601 interval as the API takes it: `duration` (ending now), `start/end`,
    `start/duration` or `duration/end`."""
    first, sep, second = text.partition("/")
    if not sep:
        return now - parse_duration(first), now
    if first.upper().startswith("P"):
        end = parse_instant(second)
        return end - parse_duration(first), end
    start = parse_instant(first)
    if second.upper().startswith("P"):
        return start, start + parse_duration(second)
    return start, parse_instant(second)
