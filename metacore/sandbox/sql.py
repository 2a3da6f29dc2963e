"""SQL confinement for db_query / db_exec, on sqlparse's token tree (never string matching).

A statement is accepted only when:
- it is exactly one statement of the allowed kind (SELECT/WITH for reads; one
  INSERT/UPDATE/DELETE for writes) with no DDL, no second DML verb, no banned keyword;
- every relation in a FROM/JOIN/INTO/UPDATE/USING position is a CTE of the statement or
  a table the resolver accepts, and is rewritten to its physical name;
- every function call is on a short allowlist (so nothing like `query_to_xml('...')` or
  `pg_read_file` runs SQL or reads files behind the parser's back);
- arguments are bound as parameters (`?`, `$n` or `%s` placeholders), never interpolated.
The database adds its own wall on top (see host.py: a SQLite authorizer, PostgreSQL's
search_path restricted to the addon schema).
"""
import re
from dataclasses import dataclass, field

import sqlparse
from sqlparse import sql as S
from sqlparse import tokens as T

from metacore.errors import ValidationError

MAX_SQL_BYTES = 16 * 1024
MAX_ARGS = 64
WRITE_VERBS = {"INSERT", "UPDATE", "DELETE"}
BANNED_KEYWORDS = {
    "PRAGMA", "ATTACH", "DETACH", "VACUUM", "COPY", "GRANT", "REVOKE", "LOCK", "CALL", "DO",
    "LISTEN", "NOTIFY", "UNLISTEN", "EXECUTE", "PREPARE", "DEALLOCATE", "REINDEX", "ANALYZE",
    "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "TRUNCATE", "LOAD", "REPLACE",
}
ALLOWED_FUNCTIONS = {
    "count", "sum", "avg", "min", "max", "total", "coalesce", "nullif", "ifnull", "lower", "upper",
    "length", "char_length", "trim", "ltrim", "rtrim", "substr", "substring", "replace", "instr",
    "abs", "round", "ceil", "floor", "cast", "date", "datetime", "time", "strftime", "julianday",
    "now", "date_trunc", "extract", "to_char", "concat", "greatest", "least", "group_concat",
    "string_agg", "array_agg", "json_extract", "json_object", "json_array", "json_group_array",
    "json_build_object", "jsonb_build_object", "json_agg", "jsonb_agg", "row_number", "rank",
    "dense_rank", "exists", "in", "values",
}
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SQLRefused(ValidationError):
    """The statement is outside what the import allows (code in `.code`)."""

    def __init__(self, message, code="invalid_sql"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Relation:
    """What a resolver answers for a table reference."""

    physical: str  # quoted physical name
    org_scoped: bool = False
    soft_delete: bool = False


@dataclass
class Prepared:
    sql: str
    params: list
    verb: str
    tables: list = field(default_factory=list)  # (schema or None, logical name) as written


class _TenantParam(S.Token):
    """A placeholder the host adds for the invocation's tenant (bound after the guest's)."""

    def __init__(self):
        super().__init__(T.Name.Placeholder, "%s")


def prepare(sql_text: str, args: list, resolve, *, write: bool, tenant=None) -> Prepared:
    """Validate `sql_text` and rewrite its relations with `resolve(schema, name, for_write)`,
    which returns a Relation or raises SQLRefused. Organization-scoped tables are confined
    to `tenant`: reads see only its rows (and no soft-deleted ones), UPDATE/DELETE get an
    `organization_id` predicate, INSERT gets the `organization_id` column filled in."""
    if not sql_text or not sql_text.strip():
        raise SQLRefused("empty statement")
    if len(sql_text.encode()) > MAX_SQL_BYTES:
        raise SQLRefused(f"sql exceeds {MAX_SQL_BYTES} bytes")
    if len(args) > MAX_ARGS:
        raise SQLRefused(f"more than {MAX_ARGS} arguments", code="arg_decode")
    statements = [s for s in sqlparse.parse(sql_text) if s.token_first(skip_cm=True, skip_ws=True) is not None]
    if len(statements) != 1:
        raise SQLRefused("exactly one statement is allowed")
    stmt = statements[0]
    verb = _check_tokens(stmt, write)
    for tok in stmt.flatten():  # comments go, so nothing appended can end up inside one
        if tok.ttype in T.Comment:
            tok.value = " "
    rewriter = _Rewriter(resolve, _cte_names(stmt), write, verb, tenant)
    rewriter.walk(stmt)
    if rewriter.target is not None:
        rewriter.confine_target(stmt)
    _check_functions(stmt, rewriter.table_functions)
    sql_out, params = _bind(stmt, args, tenant)
    return Prepared(sql_out, params, verb, rewriter.tables)


def _check_tokens(stmt, write):
    tokens = [t for t in stmt.flatten() if not t.is_whitespace and t.ttype not in T.Comment]
    while tokens and tokens[-1].match(T.Punctuation, ";"):
        tokens.pop()
    verbs = []
    for tok in tokens:
        # Where sqlparse's lexer and the database could read a token differently, refuse it:
        # backslashes (sqlparse takes \' as an escaped quote, PostgreSQL and SQLite do not),
        # dollar-quoted strings, UESCAPE (unicode escapes), and anything the lexer could not classify.
        if "\\" in tok.value:
            raise SQLRefused("backslashes are not allowed in SQL text; pass such values as arguments")
        if tok.ttype is T.Error or tok.ttype is T.Literal or tok.value.upper() == "UESCAPE":
            raise SQLRefused(f"{tok.value[:20]!r} is not allowed; pass values as arguments")
        value = tok.normalized.upper() if tok.is_keyword else tok.value
        if tok.ttype in T.Keyword.DDL:
            raise SQLRefused(f"{value} is not allowed")
        if tok.ttype in T.Keyword.DML:
            verbs.append(value)
        elif tok.is_keyword and value in BANNED_KEYWORDS:
            raise SQLRefused(f"{value} is not allowed")
        elif tok.is_keyword and value in ("INTO", "FOR") and not write:
            raise SQLRefused(f"{value} is not allowed in db_query")
        elif tok.match(T.Punctuation, ";"):
            raise SQLRefused("exactly one statement is allowed")
        elif tok.ttype in T.Name and not tok.ttype in T.Name.Placeholder:
            name = tok.value.strip('"`[]').lower()
            if name.startswith(("pg_", "sqlite_")) or name == "information_schema":
                raise SQLRefused(f"{tok.value} is not reachable from addon code", code="forbidden")
    writes = [v for v in verbs if v != "SELECT"]
    if write:
        if len(writes) != 1 or writes[0] not in WRITE_VERBS:
            raise SQLRefused("db_exec runs exactly one INSERT, UPDATE or DELETE")
        return writes[0]
    if writes or "SELECT" not in verbs:
        raise SQLRefused("db_query runs exactly one SELECT (or WITH ... SELECT); use db_exec to write")
    first = tokens[0].normalized.upper() if tokens else ""
    if first not in ("SELECT", "WITH"):
        raise SQLRefused(f"db_query statements start with SELECT or WITH, not {first}")
    return "SELECT"


def _cte_names(stmt):
    names = set()
    for group in [stmt, *[t for t in _walk(stmt) if t.is_group]]:
        toks = [t for t in group.tokens if not t.is_whitespace]
        for i, tok in enumerate(toks):
            if tok.ttype in T.Keyword.CTE and i + 1 < len(toks):
                nxt = toks[i + 1]
                if nxt.is_keyword and nxt.normalized.upper() == "RECURSIVE" and i + 2 < len(toks):
                    nxt = toks[i + 2]
                items = nxt.get_identifiers() if isinstance(nxt, S.IdentifierList) else [nxt]
                for item in items:
                    if isinstance(item, S.Identifier):
                        names.add(item.get_real_name().lower())
    return names


def _walk(token):
    if token.is_group:
        for child in token.tokens:
            yield child
            yield from _walk(child)


def _is_relation_keyword(tok, verb):
    if not tok.is_keyword:
        return False
    word = tok.normalized.upper()
    return word in ("FROM", "INTO", "USING") or word.endswith("JOIN") or (word == "UPDATE" and verb == "UPDATE")


class _Rewriter:
    def __init__(self, resolve, ctes, write, verb, tenant):
        self.resolve, self.ctes, self.write, self.verb, self.tenant = resolve, ctes, write, verb, tenant
        self.tables, self.table_functions = [], set()
        self.target = None  # (Relation, the Function of `INSERT INTO t (cols)` or None)

    def walk(self, group):
        expect = False
        for index, tok in enumerate(list(group.tokens)):
            if tok.is_whitespace or tok.ttype in T.Comment:
                continue
            if expect:
                expect = False
                is_target = self.write and _is_target(group.tokens, index, self.verb)
                if isinstance(tok, S.IdentifierList):
                    for item in list(tok.get_identifiers()):
                        self._swap(tok, item, self._relation(item, False))
                else:
                    self._swap(group, tok, self._relation(tok, is_target))
                if tok.is_group:
                    self.walk(tok)
                continue
            if _is_relation_keyword(tok, self.verb) or (tok.ttype in T.Keyword.DML and tok.normalized.upper() == "UPDATE"):
                expect = True
            elif tok.is_group:
                self.walk(tok)

    @staticmethod
    def _swap(owner, node, parts):
        """Replace `node` (for `table (cols)`, the Function's name part) by `parts`."""
        if parts is None:
            return
        if isinstance(node, S.Function):
            owner, node = node, node.tokens[0]
        owner.tokens[owner.tokens.index(node)] = S.TokenList(parts)

    def _relation(self, item, target):
        """Replacement tokens for one FROM/JOIN/target item (None: nothing to replace)."""
        if isinstance(item, S.Parenthesis):
            return None  # a subquery: walked recursively
        if isinstance(item, S.Function):
            name_part = item.tokens[0]
            if target and self.verb == "INSERT" and isinstance(name_part, S.Identifier):  # INSERT INTO t (a, b)
                self.table_functions.add(id(item))
                return self._resolved(name_part, True, function=item)
            raise SQLRefused(f"table function {item.get_name()} is not allowed", code="forbidden")
        if isinstance(item, S.Identifier):
            if any(isinstance(t, S.Parenthesis) for t in item.tokens):
                return None  # `(SELECT ...) AS alias`: walked recursively
            return self._resolved(item, target)
        if item.ttype in T.Name:
            return self._resolved(S.Identifier([item]), target)
        raise SQLRefused(f"cannot read the relation {str(item)!r}")

    def _resolved(self, ident, target, function=None):
        name = ident.get_real_name()
        schema = ident.get_parent_name()
        if not name or not IDENT.fullmatch(name) or (schema and not IDENT.fullmatch(schema)):
            raise SQLRefused(f"cannot read the relation {str(ident)!r}", code="forbidden")
        if schema is None and name.lower() in self.ctes and not target:
            return None
        self.tables.append((schema, name))
        relation = self.resolve(schema, name, target)
        if relation.org_scoped and self.tenant is None:
            raise SQLRefused(f"table {name} is organization-scoped and the call has no organization", code="no_active_org")
        if target:
            self.target = (relation, function)
            return [S.Token(T.Name, relation.physical)]
        alias = ident.get_alias() or name
        if not (relation.org_scoped or relation.soft_delete):
            return [S.Token(T.Name, f"{relation.physical} AS {alias}")]
        conditions = ["deleted_at IS NULL"] if relation.soft_delete else []
        parts = [S.Token(T.Name, f"(SELECT * FROM {relation.physical} WHERE ")]
        if relation.org_scoped:
            parts += [S.Token(T.Name, "organization_id = "), _TenantParam()]
            conditions = [" AND " + c for c in conditions]
        parts.append(S.Token(T.Name, "".join(conditions) + f") AS {alias}"))
        return parts

    def confine_target(self, stmt):
        relation, function = self.target
        if not relation.org_scoped:
            return
        if self.verb == "INSERT":
            self._insert_tenant(stmt, function)
            return
        where = next((t for t in stmt.tokens if isinstance(t, S.Where)), None)
        if where is not None:
            keyword = where.tokens[0]
            where.tokens = [keyword, S.Token(T.Name, " ("), *where.tokens[1:],
                            S.Token(T.Name, ") AND organization_id = "), _TenantParam(), S.Token(T.Whitespace, " ")]
            return
        clause = [S.Token(T.Name, " WHERE organization_id = "), _TenantParam(), S.Token(T.Whitespace, " ")]
        position = next((i for i, t in enumerate(stmt.tokens) if t.is_keyword and t.normalized.upper() == "RETURNING"),
                        len(stmt.tokens))
        while position > 0 and (stmt.tokens[position - 1].match(T.Punctuation, ";") or stmt.tokens[position - 1].is_whitespace):
            position -= 1
        stmt.tokens[position:position] = clause

    def _insert_tenant(self, stmt, function):
        values = next((t for t in stmt.tokens if isinstance(t, S.Values)), None)
        columns = function.tokens[-1] if function is not None else None
        if values is None or not isinstance(columns, S.Parenthesis):
            raise SQLRefused("INSERT into an organization-scoped table needs a column list and VALUES")
        names = {t.value.strip('"').lower() for t in columns.flatten() if t.ttype in T.Name}
        if "organization_id" in names:
            raise SQLRefused("organization_id is set by the host, not by addon code", code="forbidden")
        columns.tokens[-1:-1] = [S.Token(T.Punctuation, ","), S.Token(T.Name, " organization_id")]
        rows = [t for t in values.tokens if isinstance(t, S.Parenthesis)]
        if not rows:
            raise SQLRefused("INSERT into an organization-scoped table needs VALUES (...) rows")
        for row in rows:
            row.tokens[-1:-1] = [S.Token(T.Punctuation, ","), S.Token(T.Whitespace, " "), _TenantParam()]


def _is_target(toks, index, verb):
    """The first relation after INSERT INTO / UPDATE / DELETE FROM is the write target."""
    words = [t.normalized.upper() for t in toks[:index] if t.is_keyword]
    if verb == "INSERT":
        return words[-2:] == ["INSERT", "INTO"]
    if verb == "UPDATE":
        return words[-1:] == ["UPDATE"]
    if verb == "DELETE":
        return words[-2:] == ["DELETE", "FROM"]
    return False


def _check_functions(stmt, table_functions):
    for tok in _walk(stmt):
        if isinstance(tok, S.Function) and id(tok) not in table_functions:
            name = (tok.get_name() or "").lower()
            if name not in ALLOWED_FUNCTIONS:
                raise SQLRefused(f"function {name or str(tok)!r} is not allowed", code="forbidden")


def _bind(stmt, args, tenant):
    """Turn `?`, `$n` and `%s` placeholders into DB-API `%s` with parameters in order."""
    parts, params, sequential = [], [], 0
    for tok in stmt.flatten():
        if isinstance(tok, _TenantParam):
            params.append(tenant)
            parts.append("%s")
        elif tok.ttype in T.Name.Placeholder:
            value = tok.value
            if value.startswith("$") and value[1:].isdigit():
                position = int(value[1:]) - 1
            elif value in ("?", "%s"):
                position = sequential
                sequential += 1
            else:
                raise SQLRefused(f"unsupported placeholder {value}; use ?, $1 or %s", code="arg_decode")
            if not 0 <= position < len(args):
                raise SQLRefused(f"placeholder {value} has no argument", code="arg_decode")
            params.append(args[position])
            parts.append("%s")
        else:
            parts.append(tok.value.replace("%", "%%"))
    text = "".join(parts).strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text, params
