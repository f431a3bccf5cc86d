"""The Batch API's jobs: an input file of requests, run through the same simulation as live ones, on a clock of
the server's own (``[batch]``), with the output and error files the real API writes.

:mod:`.validation` reads the input file as the real API does before a batch starts; :mod:`.runner` takes a
batch through its statuses and runs its lines; the routes are in :mod:`app.api.batches`.
"""
