"""SQL confinement for db_query / db_exec, on PostgreSQL's own grammar (`pglast`).

The guest's text is parsed by libpg_query (the PostgreSQL parser itself), so what is
checked is exactly what the database would run: comments, dollar quotes, unicode escapes
and `fn/**/(...)` are all resolved by the grammar before anything is judged. The tree is
then accepted only when every node is of an allowlisted kind:
- exactly one statement: SELECT (with WITH/set operations) for reads; one INSERT, UPDATE
  or DELETE for writes; no data-modifying CTEs, SELECT INTO, FOR UPDATE, table functions;
- every relation is a CTE of the statement or a table the resolver accepts, and is
  rewritten to its physical name;
- every function is on a short allowlist of pure functions, every cast to a plain type;
- db_exec never writes `organization_id` or another system column (by UPDATE SET,
  INSERT column list, INSERT ... SELECT or ON CONFLICT DO UPDATE): the host fills them;
- arguments are bound as parameters (`?` or `$n`), never interpolated.
The statement sent to the database is deparsed from the checked tree, never the guest's
text. The database adds its own wall underneath (see host.py and schema/roles.py: a
per-addon role with row-level security on PostgreSQL, the authorizer on SQLite).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import OnConflictAction, SQLValueFunctionOp
from pglast.parser import ParseError, scan
from pglast.stream import RawStream

from metacore.manifest.model import SYSTEM_COLUMNS
from metacore.sandbox.errors import SQLRefused

MAX_SQL_BYTES = 16 * 1024
MAX_ARGS = 64
ALLOWED_FUNCTIONS = {
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "total",
    "coalesce",
    "nullif",
    "ifnull",
    "lower",
    "upper",
    "length",
    "char_length",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "substr",
    "substring",
    "replace",
    "instr",
    "abs",
    "round",
    "ceil",
    "floor",
    "date",
    "datetime",
    "time",
    "strftime",
    "julianday",
    "now",
    "date_trunc",
    "extract",
    "date_part",
    "to_char",
    "concat",
    "greatest",
    "least",
    "group_concat",
    "string_agg",
    "array_agg",
    "json_extract",
    "json_object",
    "json_array",
    "json_group_array",
    "json_build_object",
    "jsonb_build_object",
    "json_agg",
    "jsonb_agg",
    "row_number",
    "rank",
    "dense_rank",
}
ALLOWED_TYPES = {
    "int2",
    "int4",
    "int8",
    "int",
    "integer",
    "bigint",
    "smallint",
    "numeric",
    "decimal",
    "float4",
    "float8",
    "real",
    "text",
    "varchar",
    "bpchar",
    "char",
    "bool",
    "boolean",
    "date",
    "time",
    "timetz",
    "timestamp",
    "timestamptz",
    "interval",
    "uuid",
    "json",
    "jsonb",
}
ALLOWED_VALUE_FUNCTIONS = {
    SQLValueFunctionOp.SVFOP_CURRENT_DATE,
    SQLValueFunctionOp.SVFOP_CURRENT_TIME,
    SQLValueFunctionOp.SVFOP_CURRENT_TIME_N,
    SQLValueFunctionOp.SVFOP_CURRENT_TIMESTAMP,
    SQLValueFunctionOp.SVFOP_CURRENT_TIMESTAMP_N,
    SQLValueFunctionOp.SVFOP_LOCALTIME,
    SQLValueFunctionOp.SVFOP_LOCALTIME_N,
    SQLValueFunctionOp.SVFOP_LOCALTIMESTAMP,
    SQLValueFunctionOp.SVFOP_LOCALTIMESTAMP_N,
}
# Node kinds a statement may contain. Anything else (DDL, utility statements, SELECT INTO,
# locking clauses, table functions, XML, COLLATE, sequences...) is refused by kind.
EXPRESSION_NODES = (
    ast.ResTarget,
    ast.ColumnRef,
    ast.A_Star,
    ast.A_Const,
    ast.Integer,
    ast.Float,
    ast.String,
    ast.Boolean,
    ast.ParamRef,
    ast.A_Expr,
    ast.BoolExpr,
    ast.NullTest,
    ast.BooleanTest,
    ast.FuncCall,
    ast.TypeCast,
    ast.TypeName,
    ast.SubLink,
    ast.CaseExpr,
    ast.CaseWhen,
    ast.CoalesceExpr,
    ast.MinMaxExpr,
    ast.SortBy,
    ast.WindowDef,
    ast.RangeVar,
    ast.Alias,
    ast.JoinExpr,
    ast.RangeSubselect,
    ast.CommonTableExpr,
    ast.WithClause,
    ast.A_ArrayExpr,
    ast.A_Indirection,
    ast.A_Indices,
    ast.RowExpr,
    ast.SQLValueFunction,
    ast.SelectStmt,
    ast.SetToDefault,
    ast.MultiAssignRef,
    ast.OnConflictClause,
    ast.InferClause,
    ast.IndexElem,
    ast.ReturningClause,
)
WRITE_STATEMENTS = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)
HOST_COLUMNS = tuple(c for c in SYSTEM_COLUMNS if c != "id")  # a new row's id is the guest's to choose


@dataclass(frozen=True)
class Relation:
    """What a resolver answers for a table reference."""

    schema: str | None  # physical schema (PostgreSQL) or None (SQLite)
    table: str  # physical table name
    org_scoped: bool = False
    soft_delete: bool = False
    columns: frozenset[str] = frozenset()  # every column of the table


@dataclass
class Prepared:
    sql: str  # DB-API text with %s placeholders
    params: list[object]
    verb: str
    # (schema or None, logical name) as written
    tables: list[tuple[str | None, str]] = field(default_factory=list)


TENANT, NOW = "tenant", "now"  # the host values a statement may carry after the guest's arguments
CACHE_SIZE = 512


@dataclass(frozen=True)
class _Plan:
    """A checked statement, reusable while its tables resolve to the same Relations."""

    sql: str
    positions: tuple[int, ...]  # parameter order: index into guest args + host values
    host: tuple[str | None, ...]  # TENANT / NOW for each host value, in order
    verb: str
    tables: tuple[_Answer, ...]  # as resolved


# `resolve(schema, name, for_write)`: a table reference to its Relation, or SQLRefused.
Resolver = Callable[[str | None, str, bool], Relation]
_Answer = tuple[str | None, str, bool, Relation]  # (schema, name, for_write, Relation)
_PlanKey = tuple[str, int, bool, str, bool, bool]
_plans: OrderedDict[_PlanKey, _Plan] = OrderedDict()
_plans_lock = threading.Lock()


def prepare(
    sql_text: str,
    args: Sequence[object],
    resolve: Resolver,
    *,
    write: bool,
    tenant: object = None,
    now: object = None,
    vendor: str = "postgresql",
) -> Prepared:
    """Check `sql_text` and rewrite its relations with `resolve(schema, name, for_write)`,
    which returns a Relation or raises SQLRefused. Organization-scoped tables are confined
    to `tenant`: reads see only its rows (and no soft-deleted ones), UPDATE/DELETE get an
    `organization_id` predicate, INSERT gets `organization_id` (and the timestamps, `now`)
    filled in; UPDATE sets `updated_at` to `now`.

    Parsing and deparsing cost milliseconds, so the checked statement is kept (keyed by its
    text): a later call reuses it only after `resolve` answered the same for every table
    again (so a capability check or a manifest change is never skipped)."""
    if not sql_text or not sql_text.strip():
        raise SQLRefused("empty statement")
    if len(sql_text.encode()) > MAX_SQL_BYTES:
        raise SQLRefused(f"sql exceeds {MAX_SQL_BYTES} bytes")
    if len(args) > MAX_ARGS:
        raise SQLRefused(f"more than {MAX_ARGS} arguments", code="arg_decode")
    key = (sql_text, len(args), write, vendor, tenant is None, now is None)
    with _plans_lock:
        plan = _plans.get(key)
    if plan is not None and all(
        resolve(schema, name, for_write) == relation for schema, name, for_write, relation in plan.tables
    ):
        with _plans_lock:
            _plans[key] = plan
            _plans.move_to_end(key)
    else:
        plan = _plan(
            sql_text, len(args), _Recording(resolve), write=write, tenant=tenant, now=now, vendor=vendor
        )
        with _plans_lock:
            _plans[key] = plan
            while len(_plans) > CACHE_SIZE:
                _plans.popitem(last=False)
    values = [*args, *[tenant if kind == TENANT else now for kind in plan.host]]
    return Prepared(
        plan.sql,
        [values[i] for i in plan.positions],
        plan.verb,
        [(schema, name) for schema, name, _, _ in plan.tables],
    )


class _Recording:
    """The resolver, remembering what it answered (the plan's validity check)."""

    def __init__(self, resolve: Resolver) -> None:
        self.resolve = resolve
        self.answers: list[_Answer] = []

    def __call__(self, schema: str | None, name: str, for_write: bool) -> Relation:
        relation = self.resolve(schema, name, for_write)
        self.answers.append((schema, name, for_write, relation))
        return relation


def _plan(
    sql_text: str, n_args: int, resolve: _Recording, *, write: bool, tenant: object, now: object, vendor: str
) -> _Plan:
    try:
        statements = parse_sql(_numbered_placeholders(sql_text))
    except ParseError as exc:
        raise SQLRefused(f"not valid SQL: {exc}") from None
    if len(statements) != 1:
        raise SQLRefused("exactly one statement is allowed")
    stmt = statements[0].stmt
    verb: str
    if write:
        if not isinstance(stmt, WRITE_STATEMENTS):
            raise SQLRefused("db_exec runs exactly one INSERT, UPDATE or DELETE")
        verb = {ast.InsertStmt: "INSERT", ast.UpdateStmt: "UPDATE", ast.DeleteStmt: "DELETE"}[type(stmt)]
    else:
        if not isinstance(stmt, ast.SelectStmt):
            raise SQLRefused("db_query runs exactly one SELECT (or WITH ... SELECT); use db_exec to write")
        verb = "SELECT"
    params = _Params(n_args)
    _Rewriter(
        resolve,
        write,
        TENANT if tenant is not None else None,
        NOW if now is not None else None,
        params,
        vendor,
    ).statement(stmt)
    text, positions = params.bind(RawStream()(stmt))
    return _Plan(text, tuple(positions), tuple(params.host_values), verb, tuple(resolve.answers))


def _numbered_placeholders(sql_text: str) -> str:
    """`?` placeholders (as the grammar's scanner finds them, never inside a string) become
    `$n`, numbered in order, so one grammar reads both spellings."""
    out: list[str] = []
    last = number = 0
    for token in scan(sql_text):
        if token.name == "Op" and sql_text[token.start : token.end + 1] == "?":
            number += 1
            out += [sql_text[last : token.start], f"${number}"]
            last = token.end + 1
    return "".join(out) + sql_text[last:]


class _Params:
    """The guest's arguments ($1..$n) and the host's own values (TENANT/NOW), numbered after them."""

    def __init__(self, n_args: int) -> None:
        self.n_args = n_args
        self.host_values: list[str | None] = []

    def host(self, kind: str | None) -> ast.ParamRef:
        self.host_values.append(kind)
        return ast.ParamRef(number=self.n_args + len(self.host_values))

    def bind(self, text: str) -> tuple[str, list[int]]:
        """DB-API text (`%s`, `%%`) and, for each placeholder, the index of its value."""
        parts: list[str] = []
        positions: list[int] = []
        last = 0
        for token in scan(text):
            if token.name == "PARAM":
                position = int(text[token.start + 1 : token.end + 1]) - 1
                if not 0 <= position < self.n_args + len(self.host_values):
                    raise SQLRefused(f"placeholder ${position + 1} has no argument", code="arg_decode")
                parts += [text[last : token.start].replace("%", "%%"), "%s"]
                positions.append(position)
                last = token.end + 1
        parts.append(text[last:].replace("%", "%%"))
        return "".join(parts).strip(), positions


def _names(nodes: Sequence[object] | None) -> list[str]:
    return [n.sval.lower() for n in nodes or () if isinstance(n, ast.String)]  # type: ignore[union-attr]  # libpg_query always fills a String's sval


class _Rewriter:
    def __init__(
        self,
        resolve: Resolver,
        write: bool,
        tenant: str | None,
        now: str | None,
        params: _Params,
        vendor: str,
    ) -> None:
        self.resolve, self.write, self.tenant, self.now = resolve, write, tenant, now
        self.params, self.vendor = params, vendor
        self.guest_args = params.n_args
        self.tables: list[tuple[str | None, str]] = []
        self.ctes: list[set[str]] = []  # CTE names visible at each WITH level

    # -- statements ---------------------------------------------------------------------

    def statement(self, stmt: ast.SelectStmt | ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt) -> None:
        if isinstance(stmt, ast.SelectStmt):
            self.select(stmt)
            return
        with_names = self._with(stmt.withClause)
        try:
            relation = self._target(stmt.relation)  # type: ignore[arg-type]  # INSERT/UPDATE/DELETE always name their table
            if isinstance(stmt, ast.InsertStmt):
                self._insert(stmt, relation)
            elif isinstance(stmt, ast.UpdateStmt):
                self._assignments(stmt.targetList, relation)  # type: ignore[arg-type]  # UPDATE always has a SET list
                self._from(stmt, "fromClause")
                self.expr(stmt.whereClause)
                stmt.whereClause = self._confine(stmt.whereClause, relation)
                if relation.columns and "updated_at" in relation.columns and self.now is not None:
                    stmt.targetList = (
                        *stmt.targetList,  # type: ignore[misc]  # UPDATE always has a SET list
                        ast.ResTarget(name="updated_at", val=self.params.host(self.now)),
                    )
            else:
                self._from(stmt, "usingClause")
                self.expr(stmt.whereClause)
                stmt.whereClause = self._confine(stmt.whereClause, relation)
            if stmt.returningClause is not None:
                for item in stmt.returningClause.exprs or ():
                    self.expr(item)
        finally:
            self._leave(with_names)

    def select(self, stmt: ast.SelectStmt) -> None:
        if stmt.intoClause is not None:
            raise SQLRefused("SELECT INTO is not allowed")
        if stmt.lockingClause:
            raise SQLRefused("FOR UPDATE/SHARE is not allowed")
        with_names = self._with(stmt.withClause)
        try:
            if stmt.larg is not None or stmt.rarg is not None:
                self.select(stmt.larg)  # type: ignore[arg-type]  # a set operation has both sides
                self.select(stmt.rarg)  # type: ignore[arg-type]  # a set operation has both sides
            self._from(stmt, "fromClause")
            for name in (
                "targetList",
                "distinctClause",
                "groupClause",
                "sortClause",
                "windowClause",
                "valuesLists",
            ):
                for item in getattr(stmt, name) or ():
                    self.expr(item)
            for name in ("whereClause", "havingClause", "limitCount", "limitOffset"):
                self.expr(getattr(stmt, name))
        finally:
            self._leave(with_names)

    def _with(self, clause: ast.WithClause | None) -> set[str] | None:
        if clause is None:
            return None
        names: set[str] = set()
        self.ctes.append(names)
        for cte in clause.ctes:  # type: ignore[union-attr]  # WITH has at least one query
            if not isinstance(cte.ctequery, ast.SelectStmt):
                raise SQLRefused("only SELECT is allowed inside WITH")
            if clause.recursive:
                names.add(cte.ctename.lower())
            self.select(cte.ctequery)
            names.add(cte.ctename.lower())
        return names

    def _leave(self, names: set[str] | None) -> None:
        if names is not None:
            self.ctes.pop()

    def _insert(self, stmt: ast.InsertStmt, relation: Relation) -> None:
        cols = stmt.cols or ()
        columns = [c.name.lower() for c in cols]
        if not columns:
            raise SQLRefused("INSERT needs a column list")
        self._refuse_host_columns(columns, HOST_COLUMNS)
        source = stmt.selectStmt
        if not isinstance(source, ast.SelectStmt):  # None for DEFAULT VALUES
            raise SQLRefused("INSERT needs VALUES or a SELECT")
        self.select(source)
        added: list[tuple[str, str | None]] = []  # (column, TENANT or NOW)
        if relation.org_scoped:
            added.append(("organization_id", self.tenant))
        for name in ("created_at", "updated_at"):
            if name in relation.columns and self.now is not None:
                added.append((name, self.now))
        if added:
            if not source.valuesLists:
                raise SQLRefused(
                    "INSERT into this table takes VALUES rows (the host fills its system columns)"
                )
            stmt.cols = (*cols, *[ast.ResTarget(name=name) for name, _ in added])
            refs = [self.params.host(value) for _, value in added]
            source.valuesLists = tuple((*row, *refs) for row in source.valuesLists)
        conflict = stmt.onConflictClause
        if conflict is not None:
            if conflict.infer is not None:
                for item in conflict.infer.indexElems or ():
                    if not isinstance(item, ast.IndexElem) or item.expr is not None:
                        raise SQLRefused("ON CONFLICT takes plain column names")
                self.expr(conflict.infer.whereClause)
            if conflict.action == OnConflictAction.ONCONFLICT_UPDATE:
                self._assignments(conflict.targetList, relation)  # type: ignore[arg-type]  # DO UPDATE always has a SET list
                self.expr(conflict.whereClause)
                conflict.whereClause = self._confine(conflict.whereClause, relation)
                if "updated_at" in relation.columns and self.now is not None:
                    conflict.targetList = (
                        *conflict.targetList,  # type: ignore[misc]  # DO UPDATE always has a SET list
                        ast.ResTarget(name="updated_at", val=self.params.host(self.now)),
                    )

    def _assignments(self, targets: Sequence[ast.ResTarget], relation: Relation) -> None:
        self._refuse_host_columns([t.name.lower() for t in targets], SYSTEM_COLUMNS)  # type: ignore[union-attr]  # a SET target always names its column
        for target in targets:
            if target.indirection:
                raise SQLRefused("assignments to subfields or array elements are not allowed")
            self.expr(target.val)

    @staticmethod
    def _refuse_host_columns(columns: Sequence[str], reserved: Sequence[str]) -> None:
        for name in columns:
            if name in reserved:
                raise SQLRefused(f"{name} is set by the host, not by addon code", code="forbidden")

    def _confine(self, where: ast.Node | None, relation: Relation) -> ast.Node | None:
        """`where AND organization_id = <tenant>` for a write target that is org-scoped."""
        if not relation.org_scoped:
            return where
        if self.tenant is None:
            raise SQLRefused(
                "the table is organization-scoped and the call has no organization", code="no_active_org"
            )
        condition = ast.A_Expr(
            kind=0,
            name=(ast.String(sval="="),),
            lexpr=ast.ColumnRef(fields=(ast.String(sval=relation.table), ast.String(sval="organization_id"))),
            rexpr=self.params.host(self.tenant),
        )
        if where is None:
            return condition
        return ast.BoolExpr(boolop=0, args=(where, condition))

    # -- relations ------------------------------------------------------------------------

    def _target(self, node: ast.RangeVar) -> Relation:
        if node.alias is not None:
            raise SQLRefused("aliases on the written table are not allowed")
        if not node.inh:
            raise SQLRefused("ONLY is not allowed")
        relation = self._resolve(node, True)
        if relation.org_scoped and self.tenant is None:
            raise SQLRefused(
                f"table {node.relname} is organization-scoped and the call has no organization",
                code="no_active_org",
            )
        node.schemaname, node.relname = relation.schema, relation.table
        return relation

    def _resolve(self, node: ast.RangeVar, for_write: bool) -> Relation:
        if node.catalogname is not None:
            raise SQLRefused(
                f"cannot read the relation {node.catalogname}.{node.schemaname}.{node.relname}",
                code="forbidden",
            )
        self.tables.append((node.schemaname, node.relname))  # type: ignore[arg-type]  # a RangeVar always has relname
        return self.resolve(node.schemaname, node.relname, for_write)  # type: ignore[arg-type]  # a RangeVar always has relname

    def _from(self, stmt: ast.Node, attribute: str) -> None:
        items = getattr(stmt, attribute)
        if items:
            setattr(stmt, attribute, tuple(self.from_item(item) for item in items))

    def from_item(self, node: ast.Node) -> ast.Node:
        if isinstance(node, ast.RangeVar):
            return self._read(node)
        if isinstance(node, ast.JoinExpr):
            node.larg, node.rarg = self.from_item(node.larg), self.from_item(node.rarg)  # type: ignore[arg-type]  # a join has both sides
            self.expr(node.quals)
            if node.alias is not None:
                self._check(node.alias)
            return node
        if isinstance(node, ast.RangeSubselect):
            if node.lateral:
                raise SQLRefused("LATERAL is not allowed")
            self.select(node.subquery)  # type: ignore[arg-type]  # a subquery in FROM is a SelectStmt
            return node
        raise SQLRefused(f"{type(node).__name__} is not allowed in FROM", code="forbidden")

    def _read(self, node: ast.RangeVar) -> ast.Node:
        if not node.inh:
            raise SQLRefused("ONLY is not allowed")
        name = node.relname.lower()  # type: ignore[union-attr]  # a RangeVar always has relname
        if node.schemaname is None and any(name in level for level in self.ctes):
            return node
        relation = self._resolve(node, False)
        if relation.org_scoped and self.tenant is None:
            raise SQLRefused(
                f"table {node.relname} is organization-scoped and the call has no organization",
                code="no_active_org",
            )
        alias = node.alias or ast.Alias(aliasname=node.relname)
        physical = ast.RangeVar(
            schemaname=relation.schema, relname=relation.table, inh=True, relpersistence="p"
        )
        if not (relation.org_scoped or relation.soft_delete):
            physical.alias = alias
            return physical
        conditions: list[ast.Node] = []
        if relation.org_scoped:
            conditions.append(
                ast.A_Expr(
                    kind=0,
                    name=(ast.String(sval="="),),
                    lexpr=ast.ColumnRef(fields=(ast.String(sval="organization_id"),)),
                    rexpr=self.params.host(self.tenant),
                )
            )
        if relation.soft_delete:
            conditions.append(
                ast.NullTest(arg=ast.ColumnRef(fields=(ast.String(sval="deleted_at"),)), nulltesttype=0)
            )
        where = conditions[0] if len(conditions) == 1 else ast.BoolExpr(boolop=0, args=tuple(conditions))
        subquery = ast.SelectStmt(
            targetList=(ast.ResTarget(val=ast.ColumnRef(fields=(ast.A_Star(),))),),
            fromClause=(physical,),
            whereClause=where,
            limitOption=0,
            op=0,
        )
        return ast.RangeSubselect(lateral=False, subquery=subquery, alias=alias)

    # -- expressions ----------------------------------------------------------------------

    def expr(self, node: ast.Node | tuple[Any, ...] | list[Any] | None) -> None:
        """Walk an expression, refusing any node kind or function outside the allowlists."""
        if node is None:
            return
        if isinstance(node, (tuple, list)):
            for item in node:
                self.expr(item)
            return
        if isinstance(node, ast.SelectStmt):
            self.select(node)
            return
        if isinstance(node, (ast.RangeVar, ast.JoinExpr, ast.RangeSubselect)):
            raise SQLRefused("relations are only allowed in FROM", code="forbidden")
        self._check(node)
        if isinstance(node, ast.FuncCall):
            self._function(node)
        elif isinstance(node, ast.TypeCast):
            self._type(node.typeName)  # type: ignore[arg-type]  # a cast always names its type
            self.expr(node.arg)
            return
        elif isinstance(node, ast.SQLValueFunction) and node.op not in ALLOWED_VALUE_FUNCTIONS:
            raise SQLRefused(f"{node.op.name[6:]} is not allowed", code="forbidden")  # type: ignore[union-attr]  # the grammar always sets op
        elif isinstance(node, ast.SubLink):
            self.expr(node.testexpr)
            self.select(node.subselect)  # type: ignore[arg-type]  # a sublink's subselect is a SelectStmt
            return
        elif isinstance(node, ast.ParamRef) and not 1 <= node.number <= self.guest_args:  # type: ignore[operator]  # a ParamRef always has its number
            raise SQLRefused(f"placeholder ${node.number} has no argument", code="arg_decode")
        elif (
            isinstance(node, ast.A_Expr) and len(node.name or ()) > 1 and _names(node.name)[0] != "pg_catalog"
        ):
            raise SQLRefused("schema-qualified operators are not allowed", code="forbidden")
        elif isinstance(node, ast.ColumnRef) and len(node.fields) > 2:  # type: ignore[arg-type]  # a ColumnRef always has fields
            raise SQLRefused("column references take at most table.column", code="forbidden")
        for name in node:  # its field names (the class's __slots__)
            value = getattr(node, name)
            if isinstance(value, (ast.Node, tuple, list)) and name not in (
                "funcname",
                "typeName",
                "name",
                "fields",
            ):
                self.expr(value)

    @staticmethod
    def _check(node: object) -> None:
        if not isinstance(node, EXPRESSION_NODES):
            raise SQLRefused(f"{type(node).__name__} is not allowed", code="forbidden")

    @staticmethod
    def _function(node: ast.FuncCall) -> None:
        names = _names(node.funcname)
        if not names or (len(names) == 2 and names[0] != "pg_catalog") or len(names) > 2:
            raise SQLRefused(f"function {'.'.join(names)} is not allowed", code="forbidden")
        if names[-1] not in ALLOWED_FUNCTIONS:
            raise SQLRefused(f"function {names[-1]!r} is not allowed", code="forbidden")
        if node.func_variadic:
            raise SQLRefused("VARIADIC is not allowed", code="forbidden")

    @staticmethod
    def _type(type_name: ast.TypeName) -> None:
        names = _names(type_name.names)
        if (
            not names
            or names[-1] not in ALLOWED_TYPES
            or (len(names) == 2 and names[0] != "pg_catalog")
            or len(names) > 2
            or type_name.setof
            or type_name.pct_type
            or type_name.arrayBounds
        ):
            raise SQLRefused(f"cast to {'.'.join(names)} is not allowed", code="forbidden")
