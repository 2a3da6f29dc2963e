from django.core.management.base import CommandError

from metacore.kernel import get_kernel
from metacore.management.base import MetacoreCommand
from metacore.security.enforcer import MODES


class Command(MetacoreCommand):
    help = (
        "Show or set the capability enforcer mode: `metacore_enforcer` shows it, "
        "`--mode enforce|shadow [--addon KEY]` sets the global mode or an addon's override, "
        "`--clear --addon KEY` drops an override. Applies to every process before its next check."
    )

    def add_arguments(self, parser):
        parser.add_argument("--mode", choices=MODES)
        parser.add_argument("--addon", default="", help="addon key (omit for the global mode)")
        parser.add_argument("--clear", action="store_true", help="drop the addon's override")
        parser.add_argument("--actor", default="cli", help="recorded as the audit actor")
        self.add_format_argument(parser)

    def handle(self, *args, mode=None, addon="", clear=False, actor="cli", format="text", **options):
        enforcer = get_kernel().enforcer
        if clear:
            if mode or not addon:
                raise CommandError("--clear needs --addon KEY and no --mode")
            if not enforcer.clear_mode(addon, actor=actor):
                raise CommandError(f"addon {addon!r} has no override")
            self.stdout.write(f"{addon} override cleared: follows the global mode")
        elif mode:
            enforcer.set_mode(mode, addon_key=addon, actor=actor)
            self.stdout.write(f"{addon or 'global'} mode: {mode}")
        elif addon:
            effective = enforcer.mode_for(addon)
            if format == "json":
                self.write_json({"addon": addon, "effective": effective})
            else:
                self.stdout.write(f"{addon}: {effective}")
        elif format == "json":
            self.write_json(enforcer.modes())
        else:
            self._show(enforcer.modes())

    def _show(self, modes):
        source = "set" if modes["global"] else "default"
        self.stdout.write(f"global: {modes['effective']} ({source})")
        for addon, mode in modes["overrides"].items():
            self.stdout.write(f"{addon}: {mode}")
