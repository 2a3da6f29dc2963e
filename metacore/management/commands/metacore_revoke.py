from metacore.management.permission_command import GrantCommand


class Command(GrantCommand):
    help = "Revoke addon permissions granted directly to a user or a group (role)."
    verb = "revoke"
