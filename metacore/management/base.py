"""The base of every metacore command: one flag vocabulary (`--organization`, `--format
text|json`, `--noinput`/`--yes`), the old spellings kept as deprecated aliases, and the one
place where a service error becomes a one-line CommandError (a traceback only with
`--traceback`).

Exit codes: 0 done, 1 an error (or a bundle this host would refuse), 2 a usage error
(argparse), 3 an upgrade plan that is BLOCKED.
"""

import argparse
import json
import sys

from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from metacore.errors import MetacoreError

EXIT_BLOCKED = 3


class DeprecatedAlias(argparse.Action):
    """An old spelling kept for one release: it still works, and says what replaces it."""

    def __init__(self, option_strings, dest, replacement="", **kwargs):
        self.replacement = replacement
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        notes = list(getattr(namespace, "deprecated_flags", None) or [])
        namespace.deprecated_flags = notes + [(option_string, self.replacement)]


class MetacoreCommand(BaseCommand):
    def add_format_argument(self, parser, *, legacy_json=False):
        parser.add_argument(
            "--format",
            choices=["text", "json"],
            default="text",
            help="text for people (default) or json for scripts",
        )
        if legacy_json:
            parser.add_argument(
                "--json",
                dest="format",
                action=DeprecatedAlias,
                nargs=0,
                const="json",
                replacement="--format json",
                help=argparse.SUPPRESS,
            )

    def add_organization_argument(self, parser, help_text, *, legacy_tenant=False):
        parser.add_argument("--organization", metavar="ID", default=None, help=help_text)
        if legacy_tenant:
            parser.add_argument(
                "--tenant",
                dest="organization",
                action=DeprecatedAlias,
                replacement="--organization",
                help=argparse.SUPPRESS,
            )

    def add_noinput_argument(self, parser):
        parser.add_argument(
            "--noinput",
            "--no-input",
            "--yes",
            action="store_false",
            dest="interactive",
            help="do not ask for confirmation",
        )

    def confirm(self, question: str, options) -> None:
        """Ask unless --noinput/--yes; anything but 'yes' cancels (exit 1)."""
        if not options.get("interactive", True):
            return
        try:
            answer = input(f"{question}\nType 'yes' to continue, or 'no' to cancel: ")
        except (EOFError, OSError):  # no terminal to ask: no
            answer = ""
        if answer.strip().lower() != "yes":
            raise CommandError("cancelled (nothing changed); pass --noinput to skip this question")

    def report(self, options, text: str, data, *, success=False) -> None:
        """`data` as JSON under `--format json`, else the sentence `text`."""
        if options.get("format") == "json":
            self.write_json(data)
        else:
            self.stdout.write(self.style.SUCCESS(text) if success else text)

    def write_json(self, value) -> None:
        self.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str))

    def write_table(self, header: tuple, rows: list[tuple]) -> None:
        """Columns padded to their widest cell, under a header line."""
        cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in row) for row in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        for row in cells:
            self.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())

    def execute(self, *args, **options):
        for flag, replacement in options.pop("deprecated_flags", None) or []:
            OutputWrapper(options.get("stderr") or sys.stderr).write(
                f"warning: {flag} is deprecated and will be removed in the next release; use {replacement}"
            )
        try:
            return super().execute(*args, **options)
        except MetacoreError as exc:
            if options.get("traceback"):
                raise
            for line in (getattr(exc, "problems", None) or [])[1:]:
                self.stderr.write(f"  {line}")
            raise CommandError(exc.message) from None


class PruneCommand(MetacoreCommand):
    """Retention for a table of records: `--older-than DAYS`, `--dry-run`, `--batch-size`.
    Subclasses name what they prune (`noun`) and answer `old_rows(cutoff, options)`."""

    noun = "records"

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS")
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        parser.add_argument("--batch-size", type=int, default=5000)
        self.add_format_argument(parser)

    def old_rows(self, cutoff, options):
        raise NotImplementedError

    def handle(self, *args, older_than, dry_run, batch_size, **options):
        from datetime import timedelta

        from django.utils import timezone

        from metacore.retention import delete_in_batches

        if older_than < 0:
            raise CommandError("--older-than must be 0 or more days")
        if batch_size < 1:
            raise CommandError("--batch-size must be positive")
        cutoff = timezone.now() - timedelta(days=older_than)
        old = self.old_rows(cutoff, options)
        since = f"older than {cutoff:%Y-%m-%d %H:%M}"
        if dry_run:
            count = old.count()
            self.report(
                options,
                f"{count} {self.noun} {since} would be deleted",
                {"would_delete": count, "cutoff": cutoff.isoformat()},
            )
            return
        deleted = delete_in_batches(old, batch_size)
        self.report(
            options,
            f"deleted {deleted} {self.noun} {since}",
            {"deleted": deleted, "cutoff": cutoff.isoformat()},
        )
