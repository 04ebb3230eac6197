"""Business operations used by pages, the JSON API and the CLI alike.

The only code that moves money. A service never reads `request`; it takes plain
values and raises `services.errors.TallyError` subclasses with a code and a message.
"""
