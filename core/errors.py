class Conflict(Exception):
    """A request that clashes with the current state (closing a closed contact, ...).

    Services raise it; the API answers 409 with the message as `detail`, the admin
    shows the message to the user.
    """
