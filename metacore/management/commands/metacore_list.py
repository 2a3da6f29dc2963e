import json

from django.core.management.base import BaseCommand

from metacore.kernel import get_kernel


class Command(BaseCommand):
    help = "List the addons on this host: key, version, state and tables."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="one JSON array instead of a table")

    def handle(self, *args, **options):
        rows = [
            {
                "key": i.key,
                "version": i.version,
                "state": i.state,
                "tables": [m["table"] for m in i.manifest.get("models", [])],
                "revision": i.revision,
            }
            for i in get_kernel().installer.list()
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("no addons installed")
            return
        width = max(len(r["key"]) for r in rows)
        for r in rows:
            self.stdout.write(f"{r['key']:<{width}}  {r['version']:<10} {r['state']:<11} {', '.join(r['tables']) or '-'}")
