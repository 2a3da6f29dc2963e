from django.core.management.base import BaseCommand, CommandError

from metacore.errors import MetacoreError
from metacore.kernel import get_kernel
from metacore.security.enforcer import MODES


class Command(BaseCommand):
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

    def handle(self, *args, mode=None, addon="", clear=False, actor="cli", **options):
        enforcer = get_kernel().enforcer
        try:
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
                self.stdout.write(f"{addon}: {enforcer.mode_for(addon)}")
            else:
                self._show(enforcer.modes())
        except MetacoreError as exc:
            raise CommandError(exc.message) from None

    def _show(self, modes):
        source = "set" if modes["global"] else "default"
        self.stdout.write(f"global: {modes['effective']} ({source})")
        for addon, mode in modes["overrides"].items():
            self.stdout.write(f"{addon}: {mode}")
