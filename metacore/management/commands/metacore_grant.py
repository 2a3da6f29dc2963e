from metacore.management.permission_command import GrantCommand


class Command(GrantCommand):
    help = "Grant addon permissions to a user or a group (role), e.g. `metacore_grant --group agents tickets.tickets.*`."
    verb = "grant"
