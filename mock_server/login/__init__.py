"""Login admission of one mock node (docs/login-model.md §1): the pure model and its asyncio shell.

What lives here:

- ``ticket``: the life of one login (waiting, in service, dropping, answered, abandoned), one table;
- ``cost``: ``LoginCostModel``, the token bucket, workers, service time and bounded queue, on the
  caller's clock (pure);
- ``admission``: ``LoginAdmission``, the shell that runs the model on the loop's clock and timers;
  the CPA handler awaits its ``admit()``.

May import: the standard library and the shared root ``mock_server.params`` (login profiles); the
shell imports asyncio and the two pure modules. Nothing above it (cpa, node, pair). Imported by the
shared root ``pair_config`` (the settings), by ``cpa.app`` and by ``node``.

The package re-exports nothing: import each name from its module, so that importing the pure model
never loads the shell.
"""

__all__: list[str] = []
