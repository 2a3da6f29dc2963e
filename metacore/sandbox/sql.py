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
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SQLRefused(ValidationError):
    """The statement is outside what the import allows (code in `.code`)."""

    def __init__(self, message, code="invalid_sql"):
        super().__init__(message)
        self.code = code


@dataclass
class Prepared:
    sql: str
    params: list
    verb: str
    tables: list = field(default_factory=list)  # (schema or None, logical name) as written


def prepare(sql_text: str, args: list, resolve, *, write: bool) -> Prepared:
    """Validate `sql_text` and rewrite its relations with `resolve(schema, name, for_write)`,
    which returns a quoted physical name or raises SQLRefused."""
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
    cte_names = _cte_names(stmt)
    tables, table_functions = [], set()
    _rewrite_relations(stmt, resolve, cte_names, tables, table_functions, write, verb)
    _check_functions(stmt, table_functions)
    sql_out, params = _bind(stmt, args)
    return Prepared(sql_out, params, verb, tables)


def _check_tokens(stmt, write):
    tokens = [t for t in stmt.flatten() if not t.is_whitespace and t.ttype not in T.Comment]
    while tokens and tokens[-1].match(T.Punctuation, ";"):
        tokens.pop()
    verbs = []
    for tok in tokens:
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


def _rewrite_relations(group, resolve, ctes, tables, table_functions, write, verb):
    expect = False
    for index, tok in enumerate(list(group.tokens)):
        if tok.is_whitespace or tok.ttype in T.Comment:
            continue
        if expect:
            expect = False
            target = write and _is_target(group.tokens, index, verb)
            if isinstance(tok, S.IdentifierList):
                for item in list(tok.get_identifiers()):
                    _swap(tok, item, _relation(item, resolve, ctes, tables, table_functions, False))
            else:
                _swap(group, tok, _relation(tok, resolve, ctes, tables, table_functions, target))
            if tok.is_group:
                _rewrite_relations(tok, resolve, ctes, tables, table_functions, write, verb)
            continue
        if _is_relation_keyword(tok, verb) or (tok.ttype in T.Keyword.DML and tok.normalized.upper() == "UPDATE"):
            expect = True
        elif tok.is_group:
            _rewrite_relations(tok, resolve, ctes, tables, table_functions, write, verb)


def _swap(owner, node, text):
    """Replace `node` (or, for `table (cols)`, the Function's name part) by a leaf holding `text`."""
    if text is None:
        return
    if isinstance(node, S.Function):
        owner, node = node, node.tokens[0]
    owner.tokens[owner.tokens.index(node)] = S.Token(T.Name, text)


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


def _relation(item, resolve, ctes, tables, table_functions, target):
    """The replacement text for one FROM/JOIN/target item (None: nothing to replace)."""
    if isinstance(item, S.Parenthesis):
        return None  # a subquery: walked recursively
    if isinstance(item, S.Function):
        name_part = item.tokens[0]
        if target and isinstance(name_part, S.Identifier):  # INSERT INTO t (a, b)
            table_functions.add(id(item))
            return _resolved(name_part, resolve, ctes, tables, True, alias=False)
        raise SQLRefused(f"table function {item.get_name()} is not allowed", code="forbidden")
    if isinstance(item, S.Identifier):
        if any(isinstance(t, S.Parenthesis) for t in item.tokens):
            return None  # `(SELECT ...) AS alias`: walked recursively
        return _resolved(item, resolve, ctes, tables, target, alias=not target)
    if item.ttype in T.Name:
        return _resolved(S.Identifier([item]), resolve, ctes, tables, target, alias=not target)
    raise SQLRefused(f"cannot read the relation {str(item)!r}")


def _resolved(ident, resolve, ctes, tables, for_write, alias):
    name = ident.get_real_name()
    schema = ident.get_parent_name()
    if not name or not IDENT.match(name) or (schema and not IDENT.match(schema)):
        raise SQLRefused(f"cannot read the relation {str(ident)!r}", code="forbidden")
    if schema is None and name.lower() in ctes and not for_write:
        return None
    tables.append((schema, name))
    physical = resolve(schema, name, for_write)
    if not alias:
        return physical
    return f"{physical} AS {ident.get_alias() or name}"


def _check_functions(stmt, table_functions):
    for tok in _walk(stmt):
        if isinstance(tok, S.Function) and id(tok) not in table_functions:
            name = (tok.get_name() or "").lower()
            if name not in ALLOWED_FUNCTIONS:
                raise SQLRefused(f"function {name or str(tok)!r} is not allowed", code="forbidden")


def _bind(stmt, args):
    """Turn `?`, `$n` and `%s` placeholders into DB-API `%s` with parameters in order."""
    parts, params, sequential = [], [], 0
    for tok in stmt.flatten():
        if tok.ttype in T.Name.Placeholder:
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
