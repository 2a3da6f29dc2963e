from metacore.kernel import get_kernel
from metacore.management.base import MetacoreCommand


class Command(MetacoreCommand):
    help = "List the addons on this host: key, version, state, enforcer mode and tables."

    def add_arguments(self, parser):
        self.add_format_argument(parser, legacy_json=True)

    def handle(self, *args, format, **options):
        kernel = get_kernel()
        rows = [
            {
                "key": i.key,
                "version": i.version,
                "state": i.state,
                "enforcer": kernel.enforcer.mode_for(i.key),
                "tables": [m["table"] for m in i.manifest.get("models", [])],
                "revision": i.revision,
            }
            for i in kernel.installer.list()
        ]
        if format == "json":
            self.write_json(rows)
        elif not rows:
            self.stdout.write("no addons installed")
        else:
            self.write_table(
                ("KEY", "VERSION", "STATE", "ENFORCER", "TABLES"),
                [
                    (r["key"], r["version"], r["state"], r["enforcer"], ", ".join(r["tables"]) or "-")
                    for r in rows
                ],
            )
