from metacore.context import CallContext
from metacore.kernel import get_kernel
from metacore.management.base import MetacoreCommand

from ._installer import installation_data


class Command(MetacoreCommand):
    help = (
        "Uninstall an addon. Its tables and rows are kept for a later reinstall unless --drop-data, "
        "which asks first (skip the question with --noinput or --yes)."
    )

    def add_arguments(self, parser):
        parser.add_argument("key", help="addon key")
        parser.add_argument(
            "--drop-data", action="store_true", help="drop the addon's tables, rows and permissions too"
        )
        self.add_organization_argument(parser, "uninstall for this organization only")
        self.add_noinput_argument(parser)
        self.add_format_argument(parser)

    def handle(self, *args, key, drop_data, organization, **options):
        installer = get_kernel().installer
        if drop_data:
            tables = [m["table"] for m in installer.get(key).manifest.get("models", [])]
            self.confirm(
                f"This drops {key}'s tables ({', '.join(tables) or 'none'}), every row in them and its "
                "permissions. This cannot be undone.",
                options,
            )
        installation = installer.uninstall(
            key, drop_data=drop_data, context=CallContext.system(), organization=organization
        )
        kept = "tables and rows dropped" if drop_data else "tables and rows kept"
        self.report(
            options,
            f"uninstalled {installation.key} {installation.version} ({kept})",
            {**installation_data(installation), "state": "uninstalled", "data_dropped": drop_data},
            success=True,
        )
