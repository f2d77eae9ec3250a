"""What several tests share, in one place: import as ``from helpers.NAME import ...``.

- ``sandbox_clients``: small raw HTTP clients of the sandbox's two APIs, for the sandbox's own tests.
- ``fake_server``: a scripted HTTP server (replies, drops, hangs) for the clients' boundary tests.
- ``apply_project``: a manifest folder plus state, run through the real command line, with exactly-once checks.
- ``state_backends``: every state backend the contract suite runs against.
- ``state_builders``: intents, members and outcomes built in one line for state tests.

Fixtures live in the ``conftest.py`` of the folder that uses them (``tests/conftest.py`` for the sandbox and
the official clients, which every folder uses).
"""
