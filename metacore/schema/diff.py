"""Manifest diff -> ordered upgrade steps, each a Django migration operation.

The plan is expressed in Django's own migration operations (CreateModel, AddField,
AlterField, RenameField, RemoveField, AlterModelTable, ...) applied the way `migrate`
applies them: one operation at a time over an evolving `ProjectState`. That is what makes
SQLite's table remakes and PostgreSQL's `ALTER ... USING` right without metacore writing
DDL of its own, and what lets `collect_sql` print the SQL exactly as `sqlmigrate` would.

Each step says in words what it does and how safe it is:
- `safe`: no row or value can be lost;
- `destructive`: drops or narrows data; refused unless the caller allows destructive steps;
- `needs-data-check`: safe only if the existing rows allow it (a check query runs first,
  and a failing check stops the plan with the count it found).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import migrations
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.backends.utils import split_identifier
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ModelState, ProjectState
from django.db.models import Count, Field, QuerySet
from django.db.models import Model as DjangoModel

from metacore.manifest.model import Column, Manifest, Model
from metacore.schema.builder import app_label, build_addon_models, field_names
from metacore.schema.naming import physical_table
from metacore.schema.types import DESTRUCTIVE, NEEDS_CHECK, SAFE, get_type


@dataclass
class Step:
    action: (
        str  # add_table, drop_table, rename_table, add_column, drop_column, rename_column, alter_column, ...
    )
    table: str
    words: str
    safety: str = SAFE
    column: str | None = None
    operations: list[Operation] = field(default_factory=list)  # Django migration operations, in order
    check: Callable[[], str | None] | None = None  # returns a blocking message, or None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "action": self.action,
            "table": self.table,
            "column": self.column,
            "words": self.words,
            "safety": self.safety,
        }


def _rows_are(n: int, where: str, problem: str) -> str | None:
    """`3 rows in tickets.code are null` (None when no row is)."""
    return f"{n} row{'s' if n != 1 else ''} in {where} {'are' if n != 1 else 'is'} {problem}" if n else None


def describe_column(column: Column) -> str:
    words = get_type(column.type).describe(column)
    words += " not null" if column.required else " null"
    if column.unique:
        words += " unique"
    if column.has_default:
        words += f" default {column.default!r}"
    elif column.default_fn:
        words += f" default {column.default_fn}()"
    if column.references:
        words += f" references {column.references.table}"
    return words


def project_state(
    manifest: Manifest, vendor: str, classes: dict[str, type[DjangoModel]] | None = None
) -> ProjectState:
    """The migration state of an addon's models (managed, so operations act on them);
    `classes` are the addon's runtime classes when the caller has built them already."""
    state = ProjectState()
    if classes is None:
        classes = build_addon_models(manifest, revision=0, vendor=vendor).classes
    for model_class in classes.values():
        model_state = ModelState.from_model(model_class)
        model_state.options["managed"] = True
        state.add_model(model_state)
    return state


class Differ:
    """Compares the installed manifest with a new one for one database vendor."""

    def __init__(
        self,
        old: Manifest,
        new: Manifest,
        vendor: str,
        old_models: dict[str, type[DjangoModel]],
        assign_organization: uuid.UUID | None = None,
    ):
        self.old, self.new, self.vendor = old, new, vendor
        self.assign_organization = assign_organization  # the tenant of rows in tables becoming org-scoped
        self.old_models = old_models  # table -> runtime class over the current tables (for data checks)
        self.new_state = project_state(new, vendor)
        self.old_state = project_state(old, vendor, old_models)
        self.label = app_label(new.key)

    # -- helpers ----------------------------------------------------------------------------
    def _new_field(self, spec: Model, column_name: str) -> tuple[str, Field[Any, Any]]:
        name = field_names(spec)[column_name]
        return name, self.new_state.models[self.label, spec.table.lower()].fields[name].clone()

    def _old_spec_for(self, new_spec: Model) -> Model | None:
        """The installed model this one continues: same table, or the `renamed_from` one."""
        for table in (new_spec.table, new_spec.renamed_from):
            old = next((m for m in self.old.models if m.table == table), None)
            if old is not None:
                return old
        return None

    def _rows(self, table: str) -> QuerySet[DjangoModel]:
        return self.old_models[table]._default_manager.all()

    # -- the plan ---------------------------------------------------------------------------
    def steps(self) -> list[Step]:
        renames: list[Step] = []
        creates: list[Model] = []
        columns: list[Step] = []
        indexes: list[Step] = []
        drops_columns: list[Step] = []
        drops_tables: list[Step] = []
        matched_old: set[str] = set()
        for spec in self.new.models:
            old_spec = self._old_spec_for(spec)
            if old_spec is None:
                creates.append(spec)
                continue
            matched_old.add(old_spec.table)
            if old_spec.table != spec.table:
                renames.append(self._rename_table(old_spec, spec))
            col_steps, drop_steps = self._column_steps(old_spec, spec)
            columns.extend(col_steps)
            drops_columns.extend(drop_steps)
            indexes.extend(self._index_steps(old_spec, spec))
        for old_spec in self.old.models:
            if old_spec.table not in matched_old:
                drops_tables.append(
                    Step(
                        "drop_table",
                        old_spec.table,
                        f"drop table {old_spec.table} ({self._count_words(old_spec.table)})",
                        DESTRUCTIVE,
                        operations=[migrations.DeleteModel(old_spec.table)],
                    )
                )
        return renames + self._create_steps(creates) + columns + indexes + drops_columns + drops_tables

    def _count_words(self, table: str) -> str:
        n = self._rows(table).count()
        return f"{n} row{'s' if n != 1 else ''}"

    def _rename_table(self, old_spec: Model, spec: Model) -> Step:
        return Step(
            "rename_table",
            spec.table,
            f"rename table {old_spec.table} to {spec.table}",
            operations=[
                migrations.RenameModel(old_spec.table, spec.table),
                migrations.AlterModelTable(spec.table, physical_table(self.new.key, spec.table, self.vendor)),
            ],
        )

    def _create_steps(self, specs: list[Model]) -> list[Step]:
        """CREATE TABLE in dependency order (a referenced new table first)."""
        pending = {s.table: s for s in specs}
        ordered: list[Model] = []
        while pending:
            ready = [
                s
                for s in pending.values()
                if not any(
                    c.references and c.references.table in pending and c.references.table != s.table
                    for c in s.columns
                )
            ]
            if not ready:  # a reference cycle between new tables: Django defers the FK SQL anyway
                ready = list(pending.values())
            for s in ready:
                ordered.append(pending.pop(s.table))
        steps: list[Step] = []
        for spec in ordered:
            model_state = self.new_state.models[self.label, spec.table.lower()]
            steps.append(
                Step(
                    "add_table",
                    spec.table,
                    f"add table {spec.table} ({len(spec.columns)} columns)",
                    operations=[
                        migrations.CreateModel(
                            spec.table,
                            fields=[(n, f.clone()) for n, f in model_state.fields.items()],
                            options=dict(model_state.options),
                            bases=model_state.bases,
                        )
                    ],
                )
            )
        return steps

    def _column_steps(self, old_spec: Model, spec: Model) -> tuple[list[Step], list[Step]]:
        steps: list[Step] = []
        drops: list[Step] = []
        old_names = field_names(old_spec)
        matched: set[str] = set()
        for column in spec.columns:
            old_column = old_spec.column(column.name)
            if old_column is None and column.renamed_from and old_spec.column(column.renamed_from):
                old_column = old_spec.column(column.renamed_from)
            if old_column is None and column.name == "organization_id" and column.system:
                steps.append(self._scope_table(old_spec, spec, column))
                continue
            if old_column is None:
                steps.append(self._add_column(old_spec, spec, column))
                continue
            matched.add(old_column.name)
            if old_column.name != column.name:
                new_name, new_field = self._new_field(spec, column.name)
                steps.append(
                    Step(
                        "rename_column",
                        spec.table,
                        f"rename column {spec.table}.{old_column.name} to {column.name}",
                        column=column.name,
                        operations=[
                            migrations.RenameField(spec.table, old_names[old_column.name], new_name),
                            migrations.AlterField(spec.table, new_name, new_field),
                        ],
                    )
                )
            steps.extend(self._alter_column(old_spec, spec, old_column, column))
        for old_column in old_spec.columns:
            if old_column.name not in matched:
                drops.append(
                    Step(
                        "drop_column",
                        spec.table,
                        f"drop column {spec.table}.{old_column.name}",
                        DESTRUCTIVE,
                        column=old_column.name,
                        operations=[migrations.RemoveField(spec.table, old_names[old_column.name])],
                    )
                )
        return steps, drops

    def _add_column(self, old_spec: Model, spec: Model, column: Column) -> Step:
        name, new_field = self._new_field(spec, column.name)
        step = Step(
            "add_column",
            spec.table,
            f"add column {spec.table}.{column.name} {describe_column(column)}",
            column=column.name,
            operations=[migrations.AddField(spec.table, name, new_field)],
        )
        if (
            column.required
            and not (column.has_default and column.default is not None)
            and not column.default_fn
        ):
            step.safety = NEEDS_CHECK
            table = old_spec.table

            def check() -> str | None:
                n = self._rows(table).count()
                if n:
                    return (
                        f"cannot add NOT NULL column {spec.table}.{column.name} without a default: "
                        f"{spec.table} has {n} row{'s' if n != 1 else ''}; give it a default or make it nullable"
                    )
                return None

            step.check = check
        return step

    def _scope_table(self, old_spec: Model, spec: Model, column: Column) -> Step:
        """A shared table becoming organization-scoped (an addon upgraded to tenant-isolation
        defaults): its existing rows need an organization before `organization_id` can be
        NOT NULL. Nothing is guessed: without `assign_organization` a table with rows blocks
        the plan with their count; with it, every row is given that organization."""
        name, new_field = self._new_field(spec, column.name)
        table = old_spec.table
        org = self.assign_organization
        words = f"organization-scope table {spec.table}: add column {spec.table}.organization_id not null"
        if org is None:
            step = Step(
                "scope_table",
                spec.table,
                words + " (existing rows need an organization)",
                NEEDS_CHECK,
                column=column.name,
                operations=[migrations.AddField(spec.table, name, new_field)],
            )

            def check() -> str | None:
                n = self._rows(table).count()
                if n:
                    return (
                        f"table {spec.table} becomes organization-scoped and {n} row{'s have' if n != 1 else ' has'} "
                        "no organization; assign them one with --assign-organization <organization id>"
                    )
                return None

            step.check = check
            return step
        nullable = new_field.clone()
        nullable.null = True
        db_table = physical_table(self.new.key, spec.table, self.vendor)
        if self.vendor == "postgresql":
            assign = (
                f'UPDATE "{db_table}" SET "organization_id" = CAST(%s AS uuid) WHERE "organization_id" IS NULL',
                [str(org)],
            )
        else:  # Django stores UUIDField as 32 hex characters on SQLite
            assign = (
                f'UPDATE "{db_table}" SET "organization_id" = %s WHERE "organization_id" IS NULL',
                [org.hex],
            )
        return Step(
            "scope_table",
            spec.table,
            words + f" (existing rows assigned to organization {org})",
            NEEDS_CHECK,
            column=column.name,
            operations=[
                migrations.AddField(spec.table, name, nullable),
                migrations.RunSQL([assign]),
                migrations.AlterField(spec.table, name, new_field),
            ],
        )

    def _alter_column(self, old_spec: Model, spec: Model, old: Column, new: Column) -> list[Step]:
        """One AlterField carrying every change of the column; safety is the worst change."""
        changes: list[str] = []
        safety = SAFE
        checks: list[Callable[[], str | None]] = []
        old_field_name = field_names(old_spec)[old.name]
        table = old_spec.table

        def rows() -> QuerySet[DjangoModel]:  # evaluated lazily, at check time
            return self._rows(table)

        where = f"{spec.table}.{new.name}"

        def worst(level: str) -> None:
            nonlocal safety
            order = [SAFE, NEEDS_CHECK, DESTRUCTIVE]
            safety = max(safety, level, key=order.index)

        alteration = get_type(new.type).alteration(get_type(old.type), old, new)
        if alteration is not None:
            changes.append(alteration.words)
            worst(alteration.safety)
            if alteration.offending is not None:
                offending, problem = alteration.offending, alteration.problem or "not convertible"

                def misfits() -> str | None:
                    return _rows_are(offending(rows(), old_field_name).count(), where, problem)

                checks.append(misfits)
        if old.required != new.required:
            changes.append("not null" if new.required else "null")
            if new.required:
                worst(NEEDS_CHECK)

                def nulls() -> str | None:
                    n = rows().filter(**{f"{old_field_name}__isnull": True}).count()
                    return _rows_are(n, where, "null")

                checks.append(nulls)
        if (old.has_default, old.default, old.default_fn) != (new.has_default, new.default, new.default_fn):
            changes.append(
                f"default {new.default!r}"
                if new.has_default
                else (f"default {new.default_fn}()" if new.default_fn else "drop default")
            )
        if old.unique != new.unique:
            changes.append("unique" if new.unique else "not unique")
            if new.unique:
                worst(NEEDS_CHECK)

                def duplicates() -> str | None:
                    n = (
                        rows()
                        .exclude(**{f"{old_field_name}__isnull": True})
                        .values(old_field_name)
                        .annotate(_n=Count("pk"))
                        .filter(_n__gt=1)
                        .count()
                    )
                    return (
                        f"{n} value{'s' if n != 1 else ''} in {where} {'are' if n != 1 else 'is'} duplicated"
                        if n
                        else None
                    )

                checks.append(duplicates)
        if old.index != new.index and not new.unique:
            changes.append("index" if new.index else "drop index")
        if old.references != new.references:
            if new.references is None:
                changes.append(f"drop reference to {old.references.table}")  # type: ignore[union-attr]  # references differ and new is None, so old is set
            else:
                changes.append(f"reference {new.references.table}")
                worst(NEEDS_CHECK)
                target = new.references.table

                def orphans(target: str = target) -> str | None:
                    if target not in self.old_models:
                        return None  # the referenced table is new, so it is empty: checked by the DDL
                    ids = self.old_models[target]._default_manager.values("pk")
                    n = (
                        rows()
                        .exclude(**{f"{old_field_name}__isnull": True})
                        .exclude(**{f"{old_field_name}__in": ids})
                        .count()
                    )
                    return (
                        f"{n} row{'s' if n != 1 else ''} in {where} reference missing {target} rows"
                        if n
                        else None
                    )

                checks.append(orphans)
        if not changes:
            return []
        name, new_field = self._new_field(spec, new.name)
        if old.references != new.references and (old.references is None) != (new.references is None):
            # A plain column becoming a reference (or back) changes the field's class and
            # name: drop-and-add would lose data, so rename the state field and alter it.
            ops: list[Operation] = []
            if old_field_name != name:
                ops.append(migrations.RenameField(spec.table, old_field_name, name))
            ops.append(migrations.AlterField(spec.table, name, new_field))
        else:
            ops = [migrations.AlterField(spec.table, name, new_field)]

        def run_checks() -> str | None:
            found = [msg for msg in (c() for c in checks) if msg]
            return "; ".join(found) or None

        return [
            Step(
                "alter_column",
                spec.table,
                f"alter column {where}: {', '.join(changes)}",
                safety,
                column=new.name,
                operations=ops,
                check=run_checks if checks else None,
            )
        ]

    def _index_steps(self, old_spec: Model, spec: Model) -> list[Step]:
        new_state = self.new_state.models[self.label, spec.table.lower()]
        old_ix = {(tuple(i.columns), i.unique) for i in old_spec.indexes}
        new_ix = {(tuple(i.columns), i.unique) for i in spec.indexes}
        steps: list[Step] = []
        names = field_names(spec)
        for columns, unique in sorted(new_ix - old_ix):
            fields = [names[c] for c in columns]
            if unique:
                constraint = next(c for c in new_state.options["constraints"] if list(c.fields) == fields)
                steps.append(
                    Step(
                        "add_index",
                        spec.table,
                        f"add unique index {spec.table}({', '.join(columns)})",
                        NEEDS_CHECK,
                        operations=[migrations.AddConstraint(spec.table, constraint)],
                        check=self._composite_duplicates(old_spec, columns),
                    )
                )
            else:
                index = next(i for i in new_state.options["indexes"] if list(i.fields) == fields)
                steps.append(
                    Step(
                        "add_index",
                        spec.table,
                        f"add index {spec.table}({', '.join(columns)})",
                        operations=[migrations.AddIndex(spec.table, index)],
                    )
                )
        old_state = self.old_state.models[self.label, old_spec.table.lower()]
        old_names = field_names(old_spec)
        for columns, unique in sorted(old_ix - new_ix):
            fields = [old_names[c] for c in columns]
            if unique:
                constraint = next(c for c in old_state.options["constraints"] if list(c.fields) == fields)
                op: migrations.RemoveConstraint | migrations.RemoveIndex = migrations.RemoveConstraint(
                    spec.table, constraint.name
                )
            else:
                index = next(i for i in old_state.options["indexes"] if list(i.fields) == fields)
                op = migrations.RemoveIndex(spec.table, index.name)
            steps.append(
                Step(
                    "drop_index",
                    spec.table,
                    f"drop {'unique ' if unique else ''}index {spec.table}({', '.join(columns)})",
                    operations=[op],
                )
            )
        return steps

    def _composite_duplicates(
        self, old_spec: Model, columns: tuple[str, ...]
    ) -> Callable[[], str | None] | None:
        names = field_names(old_spec)
        if any(old_spec.column(c) is None for c in columns):
            return None

        def check() -> str | None:
            fields = [names[c] for c in columns]
            n = self._rows(old_spec.table).values(*fields).annotate(_n=Count("pk")).filter(_n__gt=1).count()
            return (
                f"{n} duplicated value{'s' if n != 1 else ''} in {old_spec.table}({', '.join(columns)})"
                if n
                else None
            )

        return check


def _target(field: Field[Any, Any]) -> str | None:
    remote = getattr(field, "remote_field", None)
    if remote is None:
        return None
    model = remote.model
    return (model if isinstance(model, str) else model._meta.label).rsplit(".", 1)[-1].lower()


def _relevant(state: ProjectState, operation: Operation) -> set[str]:
    """Model names one operation needs rendered: its own model(s), the models referencing
    them, and everything those reference (transitively), as Django must resolve relations."""
    names = {
        getattr(operation, attr)
        for attr in ("name_lower", "model_name_lower", "old_name_lower", "new_name_lower")
        if isinstance(getattr(operation, attr, None), str)
    }
    fields = {name: list(model_state.fields.values()) for (_, name), model_state in state.models.items()}
    names |= {name for name, model_fields in fields.items() if any(_target(f) in names for f in model_fields)}
    pending = [f for _, f in getattr(operation, "fields", [])] + [
        f for name in names for f in fields.get(name, ())
    ]
    own_field = getattr(operation, "field", None)
    if own_field is not None:
        pending.append(own_field)
    while pending:
        target = _target(pending.pop())
        if target and target not in names:
            names.add(target)
            pending.extend(fields.get(target, ()))
    return names


def run_steps(
    old: Manifest, steps: list[Step], editor: BaseDatabaseSchemaEditor, state: ProjectState | None = None
) -> None:
    """Apply the steps' operations in order, as `migrate` applies a migration's, except
    that each operation renders only the models it touches (and their relations): cloning
    the whole state per operation, as a migration does, is quadratic in the addon's size.

    PostgreSQL keeps addon tables in the addon's schema: the caller puts that schema first on
    the search_path (`installer.upgrade.addon_search_path`) and the tables are named bare
    here, as Django's introspection looks them up and `ALTER TABLE ... RENAME TO` wants them.
    """
    label = app_label(old.key)
    vendor = editor.connection.vendor
    state = project_state(old, vendor) if state is None else state  # consumed: mutated step by step
    if vendor == "postgresql":
        _name_tables_bare(state, steps)
    for step in steps:
        for operation in step.operations:
            relevant = _relevant(state, operation)
            after = ProjectState(models={k: v for k, v in state.models.items() if k[1] in relevant})
            before = after.clone()
            operation.state_forwards(label, after)
            operation.database_forwards(label, editor, before, after)
            for key in [k for k in state.models if k[1] in relevant]:
                del state.models[key]
            state.models.update(after.models)


def _name_tables_bare(state: ProjectState, steps: list[Step]) -> None:
    """Drop the schema from the `db_table` of the state's models and of the operations that
    name one (idempotent: a plan's steps may run for its SQL, then for real)."""
    for model_state in state.models.values():
        if "db_table" in model_state.options:
            model_state.options["db_table"] = split_identifier(model_state.options["db_table"])[1]
    for step in steps:
        for operation in step.operations:
            if isinstance(operation, migrations.CreateModel) and "db_table" in operation.options:
                operation.options["db_table"] = split_identifier(operation.options["db_table"])[1]
            elif isinstance(operation, migrations.AlterModelTable) and operation.table:
                operation.table = split_identifier(operation.table)[1]


def collect_sql(
    old: Manifest, steps: list[Step], connection: BaseDatabaseWrapper, state: ProjectState | None = None
) -> list[str]:
    """The SQL the steps would run on `connection`, without running it (like sqlmigrate)."""
    from metacore.schema.ddl import schema_editor

    with schema_editor(connection.alias, collect_sql=True) as editor:
        run_steps(old, steps, editor, state)
    return list(editor.collected_sql)
