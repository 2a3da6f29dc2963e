"""Import and export of a model's rows (upstream `dynamic/handler_export.go`), over the store.

- Export streams the rows a list query selects (same filters, search and ordering) as CSV or
  JSON, reading them with a database cursor in chunks: memory stays flat whatever the size.
  Permission `<model>.read`; one `crud.export` audit event.
- Import reads CSV (first record = header, by column key or label) or JSON (an array of
  objects or `{"data": [...]}`), validates every row first (types, required columns,
  uniqueness within the file and against the table, references) and reports each problem
  with its row number (and, for CSV, the line the record starts on). Only when every row is
  valid are the rows written, through the store's own `create`, in one transaction: all or
  nothing. Permission `<model>.create`; one `crud.import` audit event besides each row's
  `crud.create`.
- Progress: `import_rows(..., progress=callback)` is told where a long import stands every
  PROGRESS_EVERY rows while it validates and while it writes, and once at the end (`done`,
  `validated` or `failed`, also when an error stops it): the API sends these to the
  importing user over the hub as IMPORT_PROGRESS frames (docs/realtime.md).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from django.db import transaction

from metacore.errors import InvalidInput, MetacoreError
from metacore.manifest.model import SYSTEM_COLUMNS
from metacore.metadata.derive import column_label
from metacore.schema.types import get_type
from metacore.store.query import ListQuery, QueryParams, parse_list_query

if TYPE_CHECKING:
    from metacore.audit.pipe import AuditPipe
    from metacore.context import CallContext
    from metacore.manifest.model import Column, Model
    from metacore.schema.registry import ResolvedModel
    from metacore.store.service import Row, StoreService

Record = tuple[int | None, object]  # (line the record starts on, or None; the raw row)

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    # Not application/json: the SDK's export dialog reads an application/json answer
    # as an error or async-job envelope instead of downloading it.
    "json": "text/json; charset=utf-8",
}
EXPORT_PARAMS = {"format", "columns", "column_labels", "lang"}
CHUNK_ROWS = 2000
MAX_IMPORT_ROWS = 100_000
SAMPLE_ROWS = 5
PROGRESS_EVERY = 500  # rows between two progress reports of an import


@dataclass
class RowProblem:
    row: int
    column: str
    message: str
    line: int | None = None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "row": self.row,
            "column": self.column,
            "message": self.message,
            "error": self.message,
        }
        if self.line is not None:
            out["line"] = self.line
        return out


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    sample: list[dict[str, object]] = field(default_factory=list)

    @property
    def valid(self) -> int:
        return self.rows - len({p.row for p in self.problems})

    def as_json(self) -> dict[str, object]:
        return {
            "rowCount": self.rows,
            "valid": self.valid,
            "created": self.created,
            "failed": len({p.row for p in self.problems}),
            "errors": [p.as_json() for p in self.problems],
            "failures": [p.as_json() for p in self.problems],
            "ignored_columns": self.ignored_columns,
            "sample": self.sample,
        }


@dataclass(frozen=True)
class ImportProgress:
    """Where an import stands (see the module docstring)."""

    model: str  # qualified name, `<addon>.<model>`
    stage: str  # validating | writing | done | validated | failed
    rows: int  # rows read so far
    written: int  # rows created so far (in the import's transaction until `done`)
    failed: int  # rows with a problem so far
    message: str = ""  # why it failed

    def as_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "stage": self.stage,
            "rows": self.rows,
            "written": self.written,
            "failed": self.failed,
            "message": self.message,
        }


ProgressCallback = Callable[[ImportProgress], None]


@dataclass(frozen=True)
class Export:
    content_type: str
    filename: str
    chunks: Iterator[bytes]


class TransferService:
    def __init__(self, store: StoreService, audit: AuditPipe) -> None:
        self.store = store
        self.audit = audit

    # -- export ---------------------------------------------------------------------------
    def export(self, ctx: CallContext, ref: str, params: QueryParams, *, template: bool = False) -> Export:
        resolved = self.store._authorize(ctx, ref, "read")
        spec = resolved.spec
        fmt = (_first(params, "format") or "csv").lower()
        if fmt not in FORMATS:
            raise InvalidInput(
                f'format: "{fmt}" is not one of {", ".join(FORMATS)}',
                errors={"format": [f"expected one of: {', '.join(FORMATS)}"]},
            )
        columns = self._columns(spec, _first(params, "columns"), writable=template)
        labels = _labels(_first(params, "column_labels"))
        list_params = {k: _all(params, k) for k in params if k not in EXPORT_PARAMS}
        query = parse_list_query(spec, list_params, using=self.store._db(resolved))
        name = spec.table + ("-template" if template else "")
        if template:
            rows: Iterable[Row] = ()
        else:
            self.audit.record(
                "crud.export",
                actor=ctx.actor,
                tenant=ctx.tenant,
                addon=resolved.installation_key,
                target=f"{resolved.installation_key}.{spec.table}",
                decision="allow",
                request_id=ctx.request_id,
                details={"model": spec.key, "format": fmt, "columns": [c.name for c in columns]},
            )
            rows = self._rows(ctx, resolved, query, columns)
        encode = _csv_chunks if fmt == "csv" else _json_chunks
        return Export(FORMATS[fmt], f"{name}.{fmt}", encode(columns, labels, rows))

    def _rows(
        self, ctx: CallContext, resolved: ResolvedModel, query: ListQuery, columns: list[Column]
    ) -> Iterator[Row]:
        """Rows as JSON-ready dicts, read with a cursor inside the tenant's transaction (the
        generator runs while the response streams)."""
        names = [c.name for c in columns]
        converters = [(c.name, get_type(c.type).to_json) for c in columns]
        with self.store.tenant_transaction(ctx, resolved):
            queryset = query.apply(self.store.scoped_queryset(ctx, resolved)).values(*names)
            for row in queryset.iterator(chunk_size=CHUNK_ROWS):
                for name, to_json in converters:
                    row[name] = to_json(row[name])
                yield row

    @staticmethod
    def _columns(spec: Model, raw: str | None, *, writable: bool) -> list[Column]:
        """`columns=a,b` in that order; by default what a table shows (a template: what an
        import writes)."""
        if not raw or not raw.strip():
            if writable:
                return list(spec.user_columns)
            return [c for c in spec.columns if c.name not in ("id", "organization_id", "deleted_at")]
        names = [n.strip() for n in raw.split(",") if n.strip()]
        unknown = [n for n in names if spec.column(n) is None]
        if unknown:
            raise InvalidInput(
                f'columns: unknown column "{unknown[0]}"',
                errors={"columns": [f'unknown column "{n}"' for n in unknown]},
            )
        return [column for n in names if (column := spec.column(n)) is not None]  # all known (above)

    # -- import ---------------------------------------------------------------------------
    def import_rows(
        self,
        ctx: CallContext,
        ref: str,
        records: Iterable[Record],
        *,
        write: bool,
        progress: ProgressCallback | None = None,
    ) -> ImportReport:
        """`records`: (line or None, raw row) pairs from `read_csv`/`read_json`. Validates every
        row; with `write`, creates them all in one transaction when all are valid."""
        resolved = self.store._authorize(ctx, ref, "create")
        report = ImportReport()

        def tell(stage: str, message: str = "") -> None:
            if progress is not None:
                failed = len({p.row for p in report.problems})
                progress(
                    ImportProgress(
                        resolved.qualified_name, stage, report.rows, report.created, failed, message
                    )
                )

        try:
            self._import(ctx, ref, resolved, records, report, write=write, tell=tell)
        except MetacoreError as exc:
            tell("failed", exc.message)
            raise
        except Exception:
            tell("failed", "the import stopped on a server error; nothing was imported")
            raise
        if report.problems:
            first = report.problems[0]
            where = f"row {first.row}" + (f" (line {first.line})" if first.line else "")
            tell(
                "failed",
                f"{where}: {first.column}: {first.message}" if first.column else f"{where}: {first.message}",
            )
        else:
            tell("done" if write else "validated")
        return report

    def _import(
        self,
        ctx: CallContext,
        ref: str,
        resolved: ResolvedModel,
        records: Iterable[Record],
        report: ImportReport,
        *,
        write: bool,
        tell: Callable[[str], None],
    ) -> None:
        spec = resolved.spec
        prepared: list[tuple[int, int | None, dict[str, object]]] = []
        # unique column -> {value: first row number with it}
        seen_unique: dict[str, dict[object, int]] = {c.name: {} for c in spec.user_columns if c.unique}
        ignored: set[str] = set()
        with self.store.tenant_transaction(ctx, resolved):
            for number, (line, raw) in enumerate(with_keys(spec, records), start=1):
                if number > MAX_IMPORT_ROWS:
                    raise InvalidInput(
                        f"file: more than {MAX_IMPORT_ROWS} rows; split the import",
                        errors={"file": [f"at most {MAX_IMPORT_ROWS} rows per import"]},
                    )
                report.rows = number
                if number % PROGRESS_EVERY == 0:
                    tell("validating")
                if not isinstance(raw, dict):
                    report.problems.append(RowProblem(number, "", "expected an object", line))
                    continue
                data = self._row_values(spec, raw, ignored, report, number, line)
                if data is None:
                    continue
                if len(report.sample) < SAMPLE_ROWS:
                    report.sample.append(data)
                problem = self._check_row(ctx, resolved, data, seen_unique, number)
                if problem:
                    column, message = problem
                    report.problems.append(RowProblem(number, column, message, line))
                    continue
                prepared.append((number, line, data))
        report.ignored_columns = sorted(ignored)
        if not write or report.problems:
            return
        with self.store.tenant_transaction(ctx, resolved):
            for number, line, data in prepared:
                try:
                    self.store.create(ctx, ref, data)
                except MetacoreError as exc:  # a concurrent write made a checked row invalid
                    column, messages = next(iter((exc.errors or {"": [exc.message]}).items()))
                    report.problems.append(RowProblem(number, column, messages[0], line))
                    transaction.set_rollback(True, using=self.store._db(resolved))
                    report.created = 0
                    return
                report.created += 1
                if report.created % PROGRESS_EVERY == 0:
                    tell("writing")
            self.audit.record(
                "crud.import",
                actor=ctx.actor,
                tenant=ctx.tenant,
                addon=resolved.installation_key,
                target=f"{resolved.installation_key}.{spec.table}",
                decision="allow",
                request_id=ctx.request_id,
                details={"model": spec.key, "created": report.created},
            )

    @staticmethod
    def _row_values(
        spec: Model,
        raw: dict[str, object],
        ignored: set[str],
        report: ImportReport,
        number: int,
        line: int | None,
    ) -> dict[str, object] | None:
        """The row's writable values: managed columns ignored (an export re-imports), CSV text
        turned into JSON values, an empty cell NULL (or the default on NOT NULL columns)."""
        data: dict[str, object] = {}
        for key, value in raw.items():
            column = spec.column(key)
            if column is not None and (column.system or key in SYSTEM_COLUMNS):
                ignored.add(key)
                continue
            if column is None:
                report.problems.append(RowProblem(number, key, f'unknown column "{key}"', line))
                return None
            if isinstance(value, str) and line is not None:
                if value == "":
                    if column.required:
                        continue
                    value = None
                else:
                    try:
                        value = get_type(column.type).from_csv(value)
                    except ValueError as exc:
                        report.problems.append(RowProblem(number, key, str(exc), line))
                        return None
            data[key] = value
        return data

    def _check_row(
        self,
        ctx: CallContext,
        resolved: ResolvedModel,
        data: dict[str, object],
        seen_unique: dict[str, dict[object, int]],
        number: int,
    ) -> tuple[str, str] | None:
        try:
            values = self.store._validate(resolved, data, partial=False)
            self.store._check_unique(resolved, values)
            self.store._check_references(ctx, resolved, values)
        except MetacoreError as exc:
            column, messages = next(iter((exc.errors or {"": [exc.message]}).items()))
            return column, messages[0]
        for name, seen in seen_unique.items():
            value = values.get(name)
            if value is None:
                continue
            if value in seen:
                return name, f"the same value as row {seen[value]}"
            seen[value] = number
        return None


# -- readers and writers -------------------------------------------------------------------
def read_csv(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line the record starts on, {header: cell}) per data record of a CSV byte stream."""
    text = codecs.getreader("utf-8-sig")(stream, errors="strict")  # type: ignore[call-arg]  # StreamReader takes errors (typeshed's protocol omits it)
    reader = csv.reader(text)
    try:
        header = next(reader, None)
        if header is None:
            return
        header = [h.strip() for h in header]
        line = reader.line_num + 1
        for record in reader:
            if any(cell != "" for cell in record):
                yield line, dict(zip(header, record, strict=False))
            line = reader.line_num + 1
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"file: not a readable UTF-8 CSV file near line {reader.line_num}: {exc}",
            errors={"file": [f"line {reader.line_num}: {exc}"]},
        ) from None


def read_json(payload: object) -> Iterator[tuple[None, object]]:
    rows = payload.get("data") if isinstance(payload, dict) else payload
    if not isinstance(rows, list):
        raise InvalidInput(
            'body: expected a JSON array of objects or {"data": [...]}',
            errors={"body": ['expected a JSON array of objects or {"data": [...]}']},
        )
    return ((None, row) for row in rows)


def with_keys(spec: Model, records: Iterable[Record]) -> Iterator[Record]:
    """Header cells that are column labels (case-insensitive) become column keys, so an
    export with `column_labels` or a filled-in template re-imports."""
    aliases = {column_label(column).lower(): column.name for column in spec.columns}
    for line, raw in records:
        if isinstance(raw, dict):
            raw = {
                k if spec.column(k) is not None else aliases.get(str(k).lower(), k): v for k, v in raw.items()
            }
        yield line, raw


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _csv_chunks(columns: list[Column], labels: dict[str, str], rows: Iterable[Row]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([labels.get(c.name, c.name) for c in columns])
    names = [c.name for c in columns]
    count = 0
    for row in rows:
        writer.writerow([_csv_cell(row[n]) for n in names])
        count += 1
        if count % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _json_chunks(columns: list[Column], labels: dict[str, str], rows: Iterable[Row]) -> Iterator[bytes]:
    yield b"["
    separator = b"\n"
    batch: list[bytes] = []
    for row in rows:
        batch.append(separator + json.dumps(row, ensure_ascii=False).encode())
        separator = b",\n"
        if len(batch) == 500:
            yield b"".join(batch)
            batch = []
    yield b"".join(batch) + b"\n]\n"


def _labels(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        labels = json.loads(raw)
    except ValueError:
        labels = None
    if not isinstance(labels, dict):
        raise InvalidInput(
            "column_labels: expected a JSON object {column: label}",
            errors={"column_labels": ["expected a JSON object {column: label}"]},
        )
    return {str(k): str(v) for k, v in labels.items()}


def _all(params: QueryParams, name: str) -> str | list[str] | tuple[str, ...]:
    return params.getlist(name) if hasattr(params, "getlist") else params[name]


def _first(params: QueryParams, name: str) -> str | None:
    values = _all(params, name) if name in params else []
    if isinstance(values, str):
        return values
    return values[0] if values else None
